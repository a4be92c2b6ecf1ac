"""The transport interface the bus is written against (httpx-style: one abstract base).

A transport moves opaque bytes between broker subjects; it never sees keys,
addresses or bodies.  Callbacks receive ``(data, reply_subject)`` and return
True when the message is done with (durable subscriptions ack it) or False
to have it redelivered (durable subscriptions nak it; others ignore it).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Awaitable, Callable

from sereca.bus.errors import BusError

Callback = Callable[[bytes, str], Awaitable[bool]]


class TransportNoResponders(BusError):
    """The broker reports no subscriber for a request subject."""


class TransportTimeout(BusError):
    """A request or flush did not complete in time."""


class Subscription(ABC):
    @abstractmethod
    async def unsubscribe(self) -> None: ...


class Transport(ABC):
    """Moves sealed envelopes.  All methods are coroutines and never block the loop."""

    @abstractmethod
    async def start(self) -> None:
        """Connect (idempotent)."""

    @abstractmethod
    async def close(self) -> None:
        """Flush what can be flushed and disconnect (idempotent)."""

    @abstractmethod
    async def publish(self, subject: str, data: bytes, reply: str = "") -> None:
        """Fire and forget; may buffer (see :meth:`flush`)."""

    def publisher(self) -> Callable[[str, bytes], Awaitable[None] | None]:
        """The cheapest callable doing :meth:`publish` without a reply subject (valid after :meth:`start`).

        It returns None when the message is buffered, or an awaitable the caller must await.
        """
        return self.publish

    @abstractmethod
    async def subscribe(self, subject: str, cb: Callback, queue: str = "") -> Subscription:
        """Deliver every message on ``subject`` (NATS wildcards allowed); with ``queue``, one member per group."""

    @abstractmethod
    async def request(self, subject: str, data: bytes, timeout: float) -> bytes:
        """Publish with a fresh reply subject and return the first reply's bytes.

        Raises :class:`TransportNoResponders` or :class:`TransportTimeout`.
        """

    @abstractmethod
    async def flush(self, timeout: float = 5.0) -> None:
        """Wait until buffered publishes reached the broker."""

    @abstractmethod
    async def publish_durable(self, stream: str, stream_subjects: list[str], subject: str, data: bytes,
                              msg_id: str, timeout: float = 5.0) -> None:
        """Store ``data`` in ``stream`` (created if missing) and wait for the broker's ack.

        ``msg_id`` lets the broker drop duplicates of a retried publish.
        """

    @abstractmethod
    async def subscribe_durable(self, stream: str, stream_subjects: list[str], filter_subject: str,
                                durable_name: str, cb: Callback, *, ack_wait: float = 30.0,
                                max_deliver: int = -1) -> Subscription:
        """Consume ``stream`` through the named durable consumer (shared by everyone using the name):
        at-least-once, explicit ack, redelivery after ``ack_wait`` or a nak."""
