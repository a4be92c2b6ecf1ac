"""The few things the runtime and the bridge need from a bus and its messages.

Kept in one place so the rest of the service package depends on the
event bus only through these calls.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

Unregister = Callable[[], Awaitable[None]]


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


async def register(bus: Any, address: str, callback: Callable[[Any], Awaitable[None]]) -> Unregister:
    """Subscribe ``callback`` to ``address``; return a coroutine function that unsubscribes."""
    registration = await _maybe_await(bus.consumer(address, callback))

    async def unregister() -> None:
        await _maybe_await(registration.unregister())

    return unregister


def body(msg: Any) -> Any:
    return msg.body


def headers(msg: Any) -> Mapping[str, str]:
    return dict(getattr(msg, "headers", None) or {})


def address(msg: Any) -> str:
    return str(msg.address)


def expects_reply(msg: Any) -> bool:
    """True for a message sent with ``request`` (the sender waits for reply or fail)."""
    return bool(getattr(msg, "is_request", False))


async def reply(msg: Any, value: Any) -> None:
    await _maybe_await(msg.reply(value))


async def fail(msg: Any, code: int, text: str) -> None:
    await _maybe_await(msg.fail(code, text))


async def publish(bus: Any, address: str, value: Any, headers: Mapping[str, str] | None) -> None:
    await _maybe_await(bus.publish(address, value, headers=dict(headers or {})))


async def send(bus: Any, address: str, value: Any, headers: Mapping[str, str] | None) -> None:
    await _maybe_await(bus.send(address, value, headers=dict(headers or {})))


async def request(bus: Any, address: str, value: Any, headers: Mapping[str, str] | None, timeout: float) -> Any:
    """Send a request and return the reply message (raises the bus's error on failure/timeout)."""
    return await bus.request(address, value, headers=dict(headers or {}), timeout=timeout)


def failure_of(exc: BaseException) -> tuple[int, str, str] | None:
    """(code, type, text) in Vert.x's terms if ``exc`` ended a request, else None."""
    from sereca.bus.errors import NoHandlers, RecipientFailure, ReplyTimeout

    if isinstance(exc, RecipientFailure):
        return exc.code, "RECIPIENT_FAILURE", exc.text
    if isinstance(exc, ReplyTimeout):
        return -1, "TIMEOUT", str(exc)
    if isinstance(exc, NoHandlers):
        return -1, "NO_HANDLERS", str(exc)
    return None


def connection(bus: Any) -> str:
    """The bus's link to its broker: "connected", "reconnecting", "closed", or "local" (in-process)."""
    from sereca.bus.errors import BusClosed

    transport = getattr(bus, "transport", None)
    if not hasattr(type(transport), "nc"):
        return "local"
    try:
        nc = transport.nc
    except BusClosed:
        return "closed"
    if getattr(nc, "is_connected", False):
        return "connected"
    return "reconnecting"
