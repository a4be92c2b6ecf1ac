"""``sereca.Service``: the declaration an application developer writes.

    svc = Service("detector")

    @svc.consumer("sensors.>")
    async def on_reading(reading: Reading, msg) -> None: ...

A ``Service`` only records declarations (consumers, hooks, periodic tasks,
publishers, the bridge).  Running it is the job of :mod:`sereca.service.runtime`:
``sereca run module:svc`` in production, ``async with svc.run_local(bus)`` in
tests and single-process apps.
"""

from __future__ import annotations

import logging
import math
import re
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import BaseModel

from sereca.service import busapi
from sereca.service.addresses import check_address
from sereca.service.context import Params, ServiceContext
from sereca.service.errors import ServiceDefinitionError, ServiceNotRunningError
from sereca.service.handlers import Handler, TypedBody, encode_body
from sereca.service.metrics import ServiceMetrics

if TYPE_CHECKING:
    from sereca.service.bridge import BridgeOptions
    from sereca.service.runtime import Runtime

F = TypeVar("F", bound=Callable[..., Any])
Hook = Callable[[], Awaitable[None] | None]

_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")  # as the manifest's service names


@dataclass(frozen=True)
class Periodic:
    """A function run every ``seconds`` while the service runs."""

    name: str
    seconds: float
    func: Hook
    at_start: bool


class Publisher:
    """A declared outgoing address with its body type (validated before sealing).

    Declaring publishers puts them into the service's AsyncAPI description.
    """

    def __init__(self, service: Service, address: str, body: TypedBody, description: str) -> None:
        self.service = service
        self.address = address
        self.body = body
        self.description = description

    def _checked(self, value: Any) -> Any:
        if self.body.annotation is not None and not isinstance(value, BaseModel):
            value = self.body.validate(self.address, value)
        return value

    async def publish(self, value: Any, headers: Mapping[str, str] | None = None) -> None:
        await self.service.publish(self.address, self._checked(value), headers)

    async def send(self, value: Any, headers: Mapping[str, str] | None = None) -> None:
        await self.service.send(self.address, self._checked(value), headers)


class Service:
    """A SERECA service: a name, consumers, hooks and periodic tasks.

    ``name`` must be the service's name in the manifest: the CAS admits and
    provisions it under that name.
    """

    def __init__(self, name: str, *, description: str = "", version: str = "0.1.0") -> None:
        if not isinstance(name, str) or not _NAME.match(name):
            raise ServiceDefinitionError(
                f"bad service name {name!r}: use lower-case letters, digits and '-' (as in the manifest)"
            )
        self.name = name
        self.description = description
        self.version = version
        self.handlers: dict[str, Handler] = {}
        self.publishers: dict[str, Publisher] = {}
        self.start_hooks: list[Hook] = []
        self.stop_hooks: list[Hook] = []
        self.periodic: list[Periodic] = []
        self.bridge_options: BridgeOptions | None = None
        self.http_routers: list[tuple[Any, str]] = []
        self.http_mounts: list[tuple[str, Any]] = []
        self.metrics = ServiceMetrics()
        self.logger = logging.getLogger(f"sereca.service.{name}")
        self._context: ServiceContext | None = None

    def __repr__(self) -> str:
        return f"Service({self.name!r}, consumers={list(self.handlers)})"

    # -- declarations ----------------------------------------------------------

    def consumer(self, address: str, *, description: str | None = None) -> Callable[[F], F]:
        """Run the decorated function for each message on ``address`` (a pattern may use * and >).

        Returning a value from a handler of a request replies with it.
        """
        check_address(address, allow_wildcards=True)
        if address in self.handlers:
            raise ServiceDefinitionError(f"service {self.name!r} already has a consumer for {address!r}")

        def decorate(func: F) -> F:
            self.handlers[address] = Handler.analyse(address, func, description)
            return func

        return decorate

    def on_start(self, func: F) -> F:
        """Run ``func()`` once the bus is connected, before messages are delivered."""
        self.start_hooks.append(func)
        return func

    def on_stop(self, func: F) -> F:
        """Run ``func()`` on shutdown, after in-flight handlers have drained."""
        self.stop_hooks.append(func)
        return func

    def every(self, seconds: float, *, name: str | None = None, at_start: bool = False) -> Callable[[F], F]:
        """Run the decorated function every ``seconds`` (never two runs at once)."""
        if not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds <= 0:
            raise ServiceDefinitionError(f"@every needs a positive number of seconds, got {seconds!r}")

        def decorate(func: F) -> F:
            self.periodic.append(Periodic(name or func.__name__, float(seconds), func, at_start))
            return func

        return decorate

    def publisher(self, address: str, model: Any = None, *, description: str = "") -> Publisher:
        """Declare an address this service publishes or sends to, with its body type."""
        check_address(address, allow_wildcards=False)
        pub = Publisher(self, address, TypedBody.of(model), description)
        self.publishers[address] = pub
        return pub

    def bridge(
        self,
        *,
        inbound: Sequence[str] = (),
        outbound: Sequence[str] = (),
        tokens: Sequence[str] = (),
        token_param: str | None = None,
        client_cert_names: Sequence[str] = (),
        path: str = "/eventbus",
        reply_timeout: float = 10.0,
        max_frame_bytes: int = 256 * 1024,
    ) -> BridgeOptions:
        """Let WebSocket clients (browser dashboards) join the bus; see :mod:`sereca.service.bridge`."""
        from sereca.service.bridge import BridgeOptions

        self.bridge_options = BridgeOptions(
            inbound=tuple(inbound),
            outbound=tuple(outbound),
            tokens=tuple(tokens),
            token_param=token_param,
            client_cert_names=tuple(client_cert_names),
            path=path,
            reply_timeout=reply_timeout,
            max_frame_bytes=max_frame_bytes,
        )
        return self.bridge_options

    def include_router(self, router: Any, *, prefix: str = "") -> None:
        """Serve a FastAPI ``APIRouter``'s routes on the service's HTTP port (a page, a JSON API).

        The runtime's own paths (/healthz, /readyz, /metrics, /asyncapi.json,
        the bridge) take precedence.
        """
        self.http_routers.append((router, prefix))

    def mount(self, path: str, app: Any) -> None:
        """Serve an ASGI app (e.g. ``StaticFiles``) under ``path`` on the service's HTTP port, after all routes."""
        if not path.startswith("/"):
            raise ServiceDefinitionError(f"mount path must start with '/', got {path!r}")
        self.http_mounts.append((path, app))

    # -- the running context ---------------------------------------------------

    def _ctx(self) -> ServiceContext:
        if self._context is None:
            raise ServiceNotRunningError(
                f"service {self.name!r} is not running: use it from handlers and hooks, "
                "or inside 'async with svc.run_local(bus)'"
            )
        return self._context

    @property
    def running(self) -> bool:
        return self._context is not None

    @property
    def bus(self) -> Any:
        return self._ctx().bus

    @property
    def params(self) -> Params:
        return self._ctx().params

    @property
    def instance_id(self) -> str:
        return self._ctx().instance_id

    @property
    def simulated(self) -> bool:
        return self._ctx().simulated

    @property
    def platform(self) -> str:
        return self._ctx().platform

    async def publish(self, address: str, body: Any, headers: Mapping[str, str] | None = None) -> None:
        """Publish to every consumer of ``address`` (pydantic models are encoded for you)."""
        await busapi.publish(self.bus, address, encode_body(body), headers)

    async def send(self, address: str, body: Any, headers: Mapping[str, str] | None = None) -> None:
        """Send to one consumer of ``address``."""
        await busapi.send(self.bus, address, encode_body(body), headers)

    async def request(
        self,
        address: str,
        body: Any,
        *,
        reply_model: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10.0,
    ) -> Any:
        """Send a request and return the reply's body (validated against ``reply_model`` if given)."""
        reply = await busapi.request(self.bus, address, encode_body(body), headers, timeout)
        return TypedBody.of(reply_model).validate(address, busapi.body(reply))

    # -- running ---------------------------------------------------------------

    def asyncapi(self) -> dict[str, Any]:
        """An AsyncAPI 3.0 description of every address this service consumes or publishes."""
        from sereca.service.asyncapi import describe

        return describe(self)

    @asynccontextmanager
    async def run_local(
        self,
        bus: Any,
        *,
        params: Params | Mapping[str, Any] | None = None,
        instance_id: str | None = None,
        simulated: bool = False,
        platform: str = "local",
        tee: str = "none",
        http_port: int | None = None,
        http_host: str = "127.0.0.1",
        http_tls: ssl.SSLContext | None = None,
        drain_timeout: float = 10.0,
    ) -> AsyncIterator[Runtime]:
        """Run this service on an already-built bus (no CAS), for tests and single-process apps.

        ``http_port`` None serves no HTTP; 0 picks a free port (``runtime.http_url``);
        ``http_tls`` (a server-side context) serves it over TLS.
        The bus is not closed on exit: whoever built it owns it.
        """
        from sereca.service.runtime import Runtime

        runtime = Runtime(
            self,
            bus,
            params=params if isinstance(params, Params) else Params.from_activation(params),
            instance_id=instance_id or f"{self.name}-local",
            simulated=simulated,
            platform=platform,
            tee=tee,
            drain_timeout=drain_timeout,
        )
        await runtime.start(http_port=http_port, http_host=http_host, http_tls=http_tls)
        try:
            yield runtime
        finally:
            await runtime.stop()
