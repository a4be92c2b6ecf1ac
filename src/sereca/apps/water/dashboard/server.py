"""A uvicorn server inside the service's own event loop, on a port bound before start.

The service runtime serves only its health/metrics app, with no hook for
extra routes, so the dashboard serves its page on a second port of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from sereca.apps.water.errors import WaterConfigError


class _Server(uvicorn.Server):
    # The service runtime, not uvicorn, owns SIGTERM/SIGINT (it drains first).
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class WebServer:
    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.requested_port = port
        self.port: int | None = None
        self._server: _Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._sock: socket.socket | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    async def start(self, timeout: float = 10.0) -> None:
        sock = socket.socket(socket.AF_INET6 if ":" in self.host else socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.requested_port))
        except OSError as exc:
            sock.close()
            raise WaterConfigError(
                f"dashboard cannot listen on {self.host}:{self.requested_port}: {exc.strerror or exc}") from None
        sock.listen(128)
        sock.setblocking(False)
        self._sock = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(self.app, lifespan="off", log_level="warning", log_config=None, access_log=False,
                                ws="websockets-sansio", timeout_graceful_shutdown=2)
        self._server = _Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]), name="dashboard-http")
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not self._server.started:
            if self._task.done():
                raise WaterConfigError(f"dashboard web server failed to start: {self._task.exception()}")
            if loop.time() > end:
                raise WaterConfigError("dashboard web server did not start in time")
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
        self._server = self._task = self._sock = None
