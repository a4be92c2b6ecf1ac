"""WebSocket bridge: browser dashboards join the bus, as Vert.x's SockJS bridge.

Frames are JSON text, in the Vert.x event-bus-bridge format::

  client -> service
    {"type": "register",   "address": A}                 receive messages on A (outbound-permitted)
    {"type": "unregister", "address": A}
    {"type": "publish",    "address": A, "body": B, "headers": {..}}          (inbound-permitted)
    {"type": "send",       "address": A, "body": B, "headers": {..},
                           "replyAddress": R}            R given: a request, answered on R
    {"type": "send",       "address": R', "body": B}     reply to a message received with replyAddress R'
    {"type": "ping"}
  service -> client
    {"type": "rec", "address": A, "body": B, "headers": {..}, "replyAddress": R'?}
    {"type": "err", "message": "access_denied" | "unknown_type" | "invalid_frame" | ...,
                    "address": A?}                       refused frame
    {"type": "err", "address": R, "failureCode": n, "failureType": t, "message": text}   failed request
    {"type": "pong"}

Security: a connection must present a token (``Authorization: Bearer T``
or, for browsers, ``?token=T``) that equals one of the configured tokens,
compared in constant time, or -- when the HTTP side runs over TLS -- a
client certificate that the TLS layer verified against the deployment CA
and whose common name or DNS name is in ``client_cert_names`` ("*": any);
otherwise the upgrade is refused (HTTP 403).  Tokens come from ``tokens=``
or, in production, from an activation parameter (``token_param=``): a
secret the CAS releases only to the attested service.  Every frame is checked against the inbound (publish/send) and
outbound (register) address patterns; the bus itself still enforces the
service's manifest grants, so a browser can never do more than the
bridging service may.  Inside the service, messages are sealed by the bus
like any other; between browser and bridge, serve the HTTP port behind TLS.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from pydantic_core import to_jsonable_python

from sereca.service import busapi
from sereca.service.addresses import check_address, covers, is_pattern, matches
from sereca.service.errors import BridgeConfigError, ServiceDefinitionError
from sereca.service.handlers import encode_body

if TYPE_CHECKING:
    from sereca.service.runtime import Runtime

# Per connection: enough for a dashboard, small enough that one client cannot exhaust the service.
MAX_REGISTRATIONS = 64
MAX_PENDING_REQUESTS = 64
MAX_PENDING_REPLIES = 256
OUT_QUEUE = 1024
CLOSE_POLICY = 1008
CLOSE_GOING_AWAY = 1001


@dataclass(frozen=True)
class BridgeOptions:
    """Which addresses bridge clients may use, and how they authenticate."""

    inbound: tuple[str, ...] = ()
    outbound: tuple[str, ...] = ()
    tokens: tuple[str, ...] = ()
    token_param: str | None = None
    client_cert_names: tuple[str, ...] = ()
    path: str = "/eventbus"
    reply_timeout: float = 10.0
    max_frame_bytes: int = 256 * 1024

    def __post_init__(self) -> None:
        try:
            for pattern in (*self.inbound, *self.outbound):
                check_address(pattern, allow_wildcards=True)
        except ServiceDefinitionError as exc:
            raise BridgeConfigError(f"bridge: {exc}") from None
        if not self.tokens and not self.token_param and not self.client_cert_names:
            raise BridgeConfigError(
                "bridge: no way to authenticate clients; give tokens=[...], token_param='NAME' "
                "(an env parameter provisioned by the CAS) or client_cert_names=[...] (with --http-tls)"
            )
        if any(len(t) < 16 for t in self.tokens):
            raise BridgeConfigError("bridge: tokens must be at least 16 characters")
        if not self.path.startswith("/"):
            raise BridgeConfigError(f"bridge: path must start with '/', got {self.path!r}")
        if self.reply_timeout <= 0 or self.max_frame_bytes <= 0:
            raise BridgeConfigError("bridge: reply_timeout and max_frame_bytes must be positive")

    def may_register(self, address: str) -> bool:
        return any(covers(p, address) for p in self.outbound)

    def may_send(self, address: str) -> bool:
        return not is_pattern(address) and any(matches(p, address) for p in self.inbound)


class Bridge:
    """The bridge of one running service."""

    def __init__(self, options: BridgeOptions, runtime: Runtime) -> None:
        self.options = options
        self.runtime = runtime
        self.connections: set[_Connection] = set()

    def _accepted_tokens(self) -> list[bytes]:
        tokens = list(self.options.tokens)
        if self.options.token_param:
            provisioned = self.runtime.context.params.get(self.options.token_param)
            if provisioned:
                tokens.extend(t.strip() for t in provisioned.split(",") if t.strip())
        return [t.encode() for t in tokens]

    def authenticate(self, ws: WebSocket) -> str | None:
        """Who the client is ("token" or "cert:<name>"), or None if it is not authenticated."""
        presented = ws.query_params.get("token")
        auth = ws.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            presented = auth[7:].strip()
        if presented:
            candidate = presented.encode()
            # Compare against every token (no early exit) so timing reveals nothing.
            ok = False
            for token in self._accepted_tokens():
                ok |= hmac.compare_digest(candidate, token)
            if ok:
                return "token"
        allowed = set(self.options.client_cert_names)
        if allowed:
            tls = (ws.scope.get("extensions") or {}).get("tls") or {}
            chain = tls.get("client_cert_chain") or ()
            # Only our TLS protocol fills this in, after the handshake verified the chain.
            names = _cert_names(chain[0]) if chain else []
            for name in names:
                if "*" in allowed or name in allowed:
                    return f"cert:{name}"
        return None

    def mount(self, app: FastAPI) -> None:
        @app.websocket(self.options.path)
        async def eventbus(ws: WebSocket) -> None:
            metrics = self.runtime.service.metrics
            if not self.runtime.ready:
                metrics.bridge_denied.labels("not_ready").inc()
                await ws.close(code=CLOSE_GOING_AWAY)
                return
            principal = self.authenticate(ws)
            if principal is None:
                metrics.bridge_denied.labels("unauthenticated").inc()
                self.runtime.service.logger.warning("bridge: refused unauthenticated connection from %s", ws.client)
                await ws.close(code=CLOSE_POLICY)  # before accept: the upgrade fails with 403
                return
            await ws.accept()
            self.runtime.service.logger.info("bridge: %s connected as %s", ws.client, principal)
            conn = _Connection(self, ws)
            self.connections.add(conn)
            metrics.bridge_connections.inc()
            try:
                await conn.run()
            finally:
                self.connections.discard(conn)
                metrics.bridge_connections.dec()

    async def close_all(self) -> None:
        await asyncio.gather(*(c.close(CLOSE_GOING_AWAY) for c in list(self.connections)), return_exceptions=True)


class _Connection:
    """One authenticated WebSocket client."""

    def __init__(self, bridge: Bridge, ws: WebSocket) -> None:
        self.bridge = bridge
        self.ws = ws
        self.options = bridge.options
        self.runtime = bridge.runtime
        self.metrics = bridge.runtime.service.metrics
        self.registrations: dict[str, busapi.Unregister] = {}
        self.awaiting_reply: dict[str, Any] = {}  # reply id handed to the client -> bus message
        self.requests: set[asyncio.Task[None]] = set()
        self.out: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue(OUT_QUEUE)
        self.closed = False

    # -- output ---------------------------------------------------------------

    def emit(self, frame: dict[str, Any]) -> None:
        if self.closed:
            return
        try:
            self.out.put_nowait(frame)
        except asyncio.QueueFull:
            # A client that cannot keep up loses messages rather than stalling the bus.
            self.metrics.bridge_denied.labels("slow_client").inc()

    def error(self, message: str, address: str | None = None) -> None:
        frame: dict[str, Any] = {"type": "err", "message": message}
        if address is not None:
            frame["address"] = address
        self.emit(frame)

    async def _writer(self) -> None:
        while (frame := await self.out.get()) is not None:
            text = json.dumps(to_jsonable_python(frame, bytes_mode="base64"), separators=(",", ":"))
            await self.ws.send_text(text)
            self.metrics.bridge_frames.labels("out", str(frame.get("type"))).inc()

    # -- main loop ------------------------------------------------------------

    async def run(self) -> None:
        writer = asyncio.create_task(self._writer())
        try:
            while True:
                raw = await self.ws.receive()
                if raw["type"] == "websocket.disconnect":
                    break
                data = raw.get("text")
                if data is None and raw.get("bytes") is not None:
                    data = raw["bytes"].decode("utf-8", "replace")
                await self.on_frame(data or "")
        except (WebSocketDisconnect, RuntimeError):
            pass
        finally:
            self.closed = True
            await self._cleanup()
            with contextlib.suppress(asyncio.QueueFull):
                self.out.put_nowait(None)
            writer.cancel()
            with contextlib.suppress(BaseException):
                await writer

    async def close(self, code: int) -> None:
        if not self.closed:
            self.closed = True
            with contextlib.suppress(Exception):
                await self.ws.close(code=code)

    async def _cleanup(self) -> None:
        for unregister in self.registrations.values():
            with contextlib.suppress(Exception):
                await asyncio.wait_for(unregister(), 2.0)
        self.registrations.clear()
        for task in self.requests:
            task.cancel()
        self.awaiting_reply.clear()

    async def on_frame(self, data: str) -> None:
        try:
            frame = json.loads(data)
        except (ValueError, RecursionError):  # RecursionError: hostile nesting
            self.metrics.bridge_frames.labels("in", "invalid").inc()
            self.error("invalid_json")
            return
        if not isinstance(frame, dict) or not isinstance(frame.get("type"), str):
            self.metrics.bridge_frames.labels("in", "invalid").inc()
            self.error("invalid_frame")
            return
        kind = frame["type"]
        self.metrics.bridge_frames.labels("in", kind if kind in _HANDLERS else "unknown").inc()
        handler = _HANDLERS.get(kind)
        if handler is None:
            self.error("unknown_type")
            return
        if kind != "ping":
            address = frame.get("address")
            headers = frame.get("headers", {})
            if not isinstance(address, str) or not isinstance(headers, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in headers.items()
            ):
                self.error("invalid_frame", address if isinstance(address, str) else None)
                return
        await handler(self, frame)

    # -- frame types ----------------------------------------------------------

    async def _ping(self, frame: Mapping[str, Any]) -> None:
        self.emit({"type": "pong"})

    def _deny(self, address: str) -> None:
        self.metrics.bridge_denied.labels("access_denied").inc()
        self.error("access_denied", address)

    async def _register(self, frame: Mapping[str, Any]) -> None:
        address = frame["address"]
        try:
            check_address(address, allow_wildcards=True)
        except ServiceDefinitionError:
            self.error("invalid_address", address)
            return
        if not self.options.may_register(address):
            self._deny(address)
            return
        if address in self.registrations:
            return
        if len(self.registrations) >= MAX_REGISTRATIONS:
            self.error("too_many_registrations", address)
            return

        async def forward(msg: Any) -> None:
            rec: dict[str, Any] = {
                "type": "rec",
                "address": busapi.address(msg),
                "body": encode_body(busapi.body(msg)),
                "headers": dict(busapi.headers(msg)),
            }
            if busapi.expects_reply(msg) and len(self.awaiting_reply) < MAX_PENDING_REPLIES:
                reply_id = f"bridge.reply.{secrets.token_hex(12)}"
                self.awaiting_reply[reply_id] = msg
                rec["replyAddress"] = reply_id
                asyncio.get_running_loop().call_later(
                    self.options.reply_timeout, self.awaiting_reply.pop, reply_id, None
                )
            self.emit(rec)

        try:
            self.registrations[address] = await busapi.register(self.runtime.bus, address, forward)
        except Exception as exc:
            self.runtime.service.logger.warning("bridge: cannot register %r: %s", address, exc)
            self.error(f"register_failed: {_short(exc)}", address)

    async def _unregister(self, frame: Mapping[str, Any]) -> None:
        unregister = self.registrations.pop(frame["address"], None)
        if unregister is None:
            self.error("not_registered", frame["address"])
            return
        with contextlib.suppress(Exception):
            await asyncio.wait_for(unregister(), 2.0)

    async def _publish(self, frame: Mapping[str, Any]) -> None:
        address = frame["address"]
        if not self.options.may_send(address):
            self._deny(address)
            return
        try:
            await busapi.publish(self.runtime.bus, address, frame.get("body"), frame.get("headers"))
        except Exception as exc:
            self.error(f"publish_failed: {_short(exc)}", address)

    async def _send(self, frame: Mapping[str, Any]) -> None:
        address = frame["address"]
        original = self.awaiting_reply.pop(address, None)
        if original is not None:
            # The client answers a message it received: a reply needs no inbound permission.
            try:
                await busapi.reply(original, frame.get("body"))
            except Exception as exc:
                self.error(f"reply_failed: {_short(exc)}", address)
            return
        if not self.options.may_send(address):
            self._deny(address)
            return
        reply_address = frame.get("replyAddress")
        if reply_address is None:
            try:
                await busapi.send(self.runtime.bus, address, frame.get("body"), frame.get("headers"))
            except Exception as exc:
                self.error(f"send_failed: {_short(exc)}", address)
            return
        if not isinstance(reply_address, str) or len(reply_address) > 256:
            self.error("invalid_frame", address)
            return
        if len(self.requests) >= MAX_PENDING_REQUESTS:
            self.error("too_many_requests", address)
            return
        task = asyncio.create_task(self._request(address, reply_address, frame))
        self.requests.add(task)
        task.add_done_callback(self.requests.discard)

    async def _request(self, address: str, reply_address: str, frame: Mapping[str, Any]) -> None:
        try:
            reply = await asyncio.wait_for(
                busapi.request(
                    self.runtime.bus, address, frame.get("body"), frame.get("headers"), self.options.reply_timeout
                ),
                self.options.reply_timeout + 1.0,
            )
        except TimeoutError:
            self.emit(_failure(reply_address, address, -1, "TIMEOUT", "no reply in time"))
            return
        except Exception as exc:
            code, kind, text = busapi.failure_of(exc) or (-1, "SEND_FAILED", _short(exc))
            self.emit(_failure(reply_address, address, code, kind, text))
            return
        self.emit(
            {
                "type": "rec",
                "address": reply_address,
                "body": encode_body(busapi.body(reply)),
                "headers": dict(busapi.headers(reply)),
            }
        )


def _cert_names(pem: str) -> list[str]:
    """Common name and DNS names of a certificate (empty if it cannot be parsed)."""
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    try:
        cert = x509.load_pem_x509_certificate(pem.encode())
    except ValueError:
        return []
    names = [str(a.value) for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)]
    try:
        names += cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.DNSName
        )
    except x509.ExtensionNotFound:
        pass
    return names


def _failure(reply_address: str, source: str, code: int, kind: str, text: str) -> dict[str, Any]:
    return {
        "type": "err",
        "address": reply_address,
        "sourceAddress": source,
        "failureCode": code,
        "failureType": kind,
        "message": text,
    }


def _short(exc: BaseException) -> str:
    return (str(exc) or type(exc).__name__)[:200]


_HANDLERS = MappingProxyType(
    {
        "ping": _Connection._ping,
        "register": _Connection._register,
        "unregister": _Connection._unregister,
        "publish": _Connection._publish,
        "send": _Connection._send,
    }
)
