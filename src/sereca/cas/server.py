"""Running the CAS: uvicorn over TLS, with client certificates in the ASGI scope.

Uvicorn requests client certificates when told to (``CERT_OPTIONAL``) but
does not hand them to the application.  :class:`TLSH11Protocol` is a small
transport extension: after the handshake it reads the peer certificate from
the connection's ``ssl_object`` and adds it to every request's scope as the
ASGI TLS extension (``scope["extensions"]["tls"]["client_cert_chain"]``, a
tuple of PEM strings, leaf first).  The TLS stack has already checked that
the client holds the certificate's private key and that the certificate is
a trusted one (the deployment CA or a user listed in the manifest); the API
then maps the exact certificate to a user or service instance.

The server's SSL context is built here and updated in place when the
manifest (users) or the mode (recovery → ready) changes; new handshakes
pick up the change.

Programmatic use::

    server = CASServer(state_dir, "127.0.0.1:0")
    await server.start()            # returns once it accepts connections
    server.url, server.root_pem     # https://127.0.0.1:PORT, the root to pin
    await server.stop()

or ``run(state_dir, listen)`` (blocking, what ``sereca cas start`` does).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import ssl
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from uvicorn.protocols.http.h11_impl import H11Protocol

from sereca.cas.api import create_app
from sereca.cas.core import CAS
from sereca.cas.errors import TransportError
from sereca.cas.pki import default_sans
from sereca.errors import ConfigError
from sereca.tee import get_platform
from sereca.tee.base import Platform

log = logging.getLogger("sereca.cas")

URL_FILE, ROOT_FILE = "cas.url", "root.pem"


class TLSH11Protocol(H11Protocol):
    """h11 protocol that exposes the TLS client certificate (ASGI TLS extension)."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        if ssl_object is None:
            return
        der = ssl_object.getpeercert(binary_form=True)
        tls = {
            "server_cert": None,
            "client_cert_chain": (ssl.DER_cert_to_PEM_cert(der),) if der else (),
            "client_cert_name": None,
            "client_cert_error": None,
            "tls_version": None,
            "cipher_suite": None,
        }
        app = self.app

        async def with_tls(scope: Any, receive: Any, send: Any) -> None:
            scope["extensions"] = {**scope.get("extensions", {}), "tls": tls}
            await app(scope, receive, send)

        self.app = with_tls


def parse_listen(listen: str) -> tuple[str, int]:
    """``host:port``, ``[v6]:port``, ``:port`` or ``port`` -> (host, port)."""
    text = listen.strip()
    try:
        if text.startswith("["):
            host, _, port = text[1:].partition("]:")
        elif ":" in text:
            host, _, port = text.rpartition(":")
        else:
            host, port = "127.0.0.1", text
        number = int(port)
        if not 0 <= number <= 65535:
            raise ValueError
    except ValueError:
        raise ConfigError(f"invalid listen address {listen!r}: use HOST:PORT (e.g. 127.0.0.1:8443)") from None
    return host or "0.0.0.0", number


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    sock.listen(2048)
    sock.setblocking(False)
    return sock


def _load_chain(ctx: ssl.SSLContext, chain_pem: bytes, key_pem: bytes) -> None:
    # ssl can only load keys from files: a private temp dir, removed at once.
    with tempfile.TemporaryDirectory(prefix="sereca-cas-tls-") as d:
        cert_path, key_path = Path(d, "cert.pem"), Path(d, "key.pem")
        cert_path.write_bytes(chain_pem)
        fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(key_pem)
        ctx.load_cert_chain(cert_path, key_path)


class CASServer:
    """A CAS serving HTTPS on one socket, in the current event loop."""

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        listen: str = "127.0.0.1:0",
        *,
        platform: Platform | None = None,
        sans: Sequence[str] = (),
        log_level: str = "warning",
    ) -> None:
        self.state_dir = Path(state_dir)
        self.host, self.port = parse_listen(listen)
        self.platform = platform
        self.extra_sans = list(sans)
        self.log_level = log_level
        self.cas: CAS | None = None
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._ssl: ssl.SSLContext | None = None
        self._trusted: set[str] = set()

    @property
    def url(self) -> str:
        host = self.host
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        elif host == "::":
            host = "::1"
        return f"https://[{host}]:{self.port}" if ":" in host else f"https://{host}:{self.port}"

    @property
    def root_pem(self) -> str | None:
        """The root certificate to pin, or None in recovery mode."""
        assert self.cas is not None
        return None if self.cas.mode == "recovery" else self.cas.root_pem()

    def _ssl_context(self) -> ssl.SSLContext:
        assert self.cas is not None
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.verify_mode = ssl.CERT_OPTIONAL
        ctx.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
        self._ssl = ctx
        self._trusted = set()
        self.refresh_tls()
        return ctx

    def refresh_tls(self) -> None:
        """Reload the server certificate and trusted client certificates (after manifest/recovery)."""
        assert self.cas is not None and self._ssl is not None
        chain, key = self.cas.tls_credentials()
        _load_chain(self._ssl, chain, key)
        for pem in self.cas.trusted_client_pems():
            if pem not in self._trusted:
                self._ssl.load_verify_locations(cadata=pem)
                self._trusted.add(pem)
        if self.cas.mode != "recovery":
            (self.state_dir / ROOT_FILE).write_text(self.cas.root_pem())

    async def start(self, timeout: float = 30.0) -> None:
        platform = self.platform or await asyncio.to_thread(get_platform)
        sans = default_sans(self.host) + self.extra_sans
        self.cas = await CAS.open(self.state_dir, platform, sans)
        self.cas.on_trust_change = self.refresh_tls
        ctx = self._ssl_context()
        sock = _bind(self.host, self.port)
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(self.cas),
            http=TLSH11Protocol,  # type: ignore[arg-type]
            log_level=self.log_level,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=2,
            server_header=False,
        )
        config.load()
        config.ssl = ctx  # our context, updated in place on manifest changes (any uvicorn version)
        server = uvicorn.Server(config)
        server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._server = server
        self._task = asyncio.get_running_loop().create_task(server.serve(sockets=[sock]))
        deadline = asyncio.get_running_loop().time() + timeout
        while not server.started:
            if self._task.done():
                sock.close()
                exc = self._task.exception()
                raise TransportError(f"the CAS server failed to start: {exc}")
            if asyncio.get_running_loop().time() > deadline:
                raise TransportError("the CAS server did not start in time")
            await asyncio.sleep(0.01)
        (self.state_dir / URL_FILE).write_text(self.url + "\n")
        if platform.tee_type == "sim":
            log.warning("SIMULATION: this CAS runs in a simulated TEE; its sealed state and evidence protect nothing")
        log.info("CAS listening on %s (mode %s, tee %s)", self.url, self.cas.mode, platform.tee_type)

    async def stop(self) -> None:
        if self.cas is not None:
            try:
                await self.cas.flush()
            except Exception as exc:  # noqa: BLE001 - stopping must go on
                log.error("final state write failed: %s", exc)
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            try:
                await asyncio.wait_for(self._task, 10)
            except (asyncio.TimeoutError, asyncio.CancelledError):
                self._task.cancel()
            self._server = self._task = None

    async def wait_closed(self) -> None:
        if self._task is not None:
            await self._task

    async def __aenter__(self) -> CASServer:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def run(
    state_dir: str | os.PathLike[str],
    listen: str = "127.0.0.1:8443",
    *,
    platform: Platform | None = None,
    sans: Sequence[str] = (),
    log_level: str = "info",
) -> None:
    """Run a CAS until SIGINT/SIGTERM (what ``sereca cas start`` does)."""
    import signal

    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    async def main() -> None:
        server = CASServer(state_dir, listen, platform=platform, sans=sans, log_level=log_level)
        await server.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        waiter = loop.create_task(stop.wait())
        assert server._task is not None
        await asyncio.wait({waiter, server._task}, return_when=asyncio.FIRST_COMPLETED)
        waiter.cancel()
        await server.stop()

    asyncio.run(main())


async def wait_ready(
    url: str, root_pem: str | None = None, timeout: float = 15.0, *, want_mode: str | None = None
) -> dict[str, Any]:
    """Poll ``GET /api/v1/status`` until the CAS answers (and is in ``want_mode``); return the status.

    Without ``root_pem`` the TLS certificate is not checked (readiness only).
    """
    if root_pem:
        verify: ssl.SSLContext | bool = ssl.create_default_context(cadata=root_pem)
    else:
        verify = False
    deadline = asyncio.get_running_loop().time() + timeout
    last: str = "no answer"
    async with httpx.AsyncClient(verify=verify, timeout=2.0) as client:
        while True:
            try:
                r = await client.get(f"{url.rstrip('/')}/api/v1/status")
                if r.status_code == 200:
                    status = r.json()
                    if want_mode is None or status.get("mode") == want_mode:
                        return status
                    last = f"mode {status.get('mode')}"
                else:
                    last = f"HTTP {r.status_code}"
            except httpx.HTTPError as exc:
                last = str(exc) or type(exc).__name__
            if asyncio.get_running_loop().time() > deadline:
                raise TransportError(f"the CAS at {url} is not ready after {timeout:g} s ({last})")
            await asyncio.sleep(0.05)
