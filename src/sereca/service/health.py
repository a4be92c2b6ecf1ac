"""The service's HTTP side: health, readiness, Prometheus metrics, AsyncAPI, bridge.

Served by uvicorn inside the service's own event loop (no thread, no
second process), on a socket bound before start so that port 0 yields a
known free port.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import uvicorn
from fastapi import FastAPI
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST
from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

from sereca.service.errors import ServiceStartupError

if TYPE_CHECKING:
    from sereca.service.runtime import Runtime


def build_app(runtime: Runtime) -> FastAPI:
    svc = runtime.service
    app = FastAPI(title=f"sereca service {svc.name}", docs_url=None, redoc_url=None, openapi_url=None)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        # Liveness: the process and its loop answer.  SIMULATION is visible here too.
        return JSONResponse(runtime.health())

    @app.get("/readyz")
    async def readyz() -> JSONResponse:
        body = {
            "ready": runtime.ready,
            "state": runtime.state,
            "bus": runtime.bus_connection(),
            "simulated": runtime.context.simulated,
        }
        return JSONResponse(body, status_code=200 if runtime.ready else 503)

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(svc.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    @app.get("/asyncapi.json")
    async def asyncapi() -> JSONResponse:
        return JSONResponse(svc.asyncapi())

    if runtime.bridge is not None:
        runtime.bridge.mount(app)
    # The application's own routes come after the runtime's, so they cannot shadow them.
    for router, prefix in svc.http_routers:
        app.include_router(router, prefix=prefix)
    for path, asgi in svc.http_mounts:
        app.mount(path, asgi)
    return app


class _TLSWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's WebSocket protocol, plus the ASGI TLS extension (the verified client certificate).

    uvicorn does not expose the peer certificate; the bridge needs it to
    authenticate clients by certificate.
    """

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object is not None else None
        if not der:
            return
        tls = {"client_cert_chain": (ssl.DER_cert_to_PEM_cert(der),)}
        app = self.app

        async def with_tls(scope: Any, receive: Any, send: Any) -> None:
            scope["extensions"] = {**(scope.get("extensions") or {}), "tls": tls}
            await app(scope, receive, send)

        self.app = with_tls


class _EmbeddedServer(uvicorn.Server):
    # The service, not uvicorn, owns SIGTERM/SIGINT: it must drain handlers first.
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HttpServer:
    """uvicorn serving :func:`build_app` on ``host:port`` (0 = a free port), over TLS if given a context."""

    def __init__(
        self, runtime: Runtime, *, host: str = "127.0.0.1", port: int = 0, tls: ssl.SSLContext | None = None
    ) -> None:
        self.runtime = runtime
        self.tls = tls
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        self._server: _EmbeddedServer | None = None
        self._task: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    async def start(self, timeout: float = 10.0) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.requested_port))
        except OSError as exc:
            sock.close()
            raise ServiceStartupError(
                f"cannot serve HTTP on {self.host}:{self.requested_port}: {exc.strerror or exc} "
                "(choose another --http-port, or 0 for a free one)"
            ) from None
        sock.listen(128)
        sock.setblocking(False)
        self._sock = sock
        self.port = sock.getsockname()[1]
        tls = self.tls
        config = uvicorn.Config(
            build_app(self.runtime),
            ssl_context_factory=(lambda _config, _default: tls) if tls is not None else None,
            lifespan="off",
            log_level="warning",
            log_config=None,  # leave the process's logging setup alone
            access_log=False,
            ws=_TLSWebSocketProtocol,
            ws_max_size=self.runtime.bridge.options.max_frame_bytes if self.runtime.bridge else 1 << 20,
            timeout_graceful_shutdown=2,
        )
        self._server = _EmbeddedServer(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="sereca-http")
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not self._server.started:
            if self._task.done():
                exc = self._task.exception() if not self._task.cancelled() else None
                raise ServiceStartupError(f"HTTP server failed to start: {exc}")
            if loop.time() > end:
                raise ServiceStartupError("HTTP server did not start in time")
            await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await asyncio.wait_for(asyncio.shield(self._task), 5.0)
        except (TimeoutError, Exception):
            self._server.force_exit = True
            self._task.cancel()
            with contextlib.suppress(BaseException):
                await self._task
        if self._sock is not None:
            self._sock.close()
        self._server = None
        self._task = None
