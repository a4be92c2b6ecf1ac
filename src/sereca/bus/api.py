"""The event bus API (Vert.x semantics on asyncio): EventBus, Message, Identity."""

from __future__ import annotations

import inspect
import logging
import os
import secrets
import struct
import time
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

import msgpack
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sereca.bus import envelope as E
from sereca.bus.codec import Codec, MsgpackCodec, decode_headers, encode_headers
from sereca.bus.errors import (BusClosed, BusConfigError, EnvelopeError, MalformedEnvelope, NoHandlers,
                               NotEntitled, RecipientFailure, ReplyTimeout, StaleEnvelope, TamperedEnvelope,
                               UnauthenticatedSender)
from sereca.bus.keys import (MODE_ALL, MODE_ONE, MODE_REQ, Grant, Keyring, Route, _token, is_pattern, matches,
                             split_address, stream_name)
from sereca.bus.metrics import BusMetrics
from sereca.bus.replay import ReplayGuard, SeenSet
from sereca.bus.sender import SenderVerifier, leaf_der, make_signer
from sereca.bus.transports.base import Subscription, Transport, TransportNoResponders, TransportTimeout

log = logging.getLogger("sereca.bus")

Handler = Callable[["Message"], Awaitable[None] | None]
_KIND_MODE = {E.KIND_PUBLISH: MODE_ALL, E.KIND_SEND: MODE_ONE, E.KIND_REQUEST: MODE_REQ}
_MODE_KIND = {v: k for k, v in _KIND_MODE.items()}
_REPLY_AD_KINDS = (E.KIND_REPLY, E.KIND_FAILURE)
_FIXED_UNPACK = E.FIXED.unpack_from


@dataclass(frozen=True)
class Identity:
    """Who sends: ``service/instance``, and the key and certificate for sender signatures.

    Each :class:`EventBus` draws a fresh random session id, so sequence numbers
    restart safely whenever a bus is created (process start, reconnect).  Pass
    ``session`` only to pin it (tests); never share a pinned session between two
    buses: their sequence numbers would collide and be rejected as replays.

    ``private_key`` (Ed25519) and ``cert_chain_pem`` are needed only for
    addresses with ``authenticity: sender``.
    """

    service: str
    instance: str = field(default_factory=lambda: secrets.token_hex(4))
    session: bytes | None = field(default=None, repr=False)
    private_key: Any = field(default=None, repr=False)
    cert_chain_pem: str | None = field(default=None, repr=False)

    @property
    def sender(self) -> str:
        return f"{self.service}/{self.instance}"

    @classmethod
    def from_activation(cls, service: str, activation: Any) -> Identity:
        """From a ``sereca.cas.client.Activation`` (duck-typed)."""
        return cls(service=service, instance=str(activation.instance_id),
                   private_key=getattr(activation, "private_key", None),
                   cert_chain_pem=getattr(activation, "cert_chain_pem", None))


class Message:
    """A delivered message.  ``reply``/``fail`` answer a ``request``."""

    __slots__ = ("address", "body", "headers", "sender", "session", "seq", "timestamp_ms", "kind",
                 "sender_verified", "durable", "_bus", "_reply_to", "_reply_key", "_replied")

    def __init__(self, address: str, body: Any, headers: dict[str, str], sender: str, session: bytes, seq: int,
                 timestamp_ms: int, kind: int, sender_verified: bool, bus: EventBus | None = None,
                 reply_to: str = "", reply_key: bytes = b"", durable: bool = False) -> None:
        self.address = address
        self.body = body
        self.headers = headers
        self.sender = sender
        self.session = session
        self.seq = seq
        self.timestamp_ms = timestamp_ms
        self.kind = kind
        self.sender_verified = sender_verified
        self.durable = durable  # stored by the broker: acked when the handler returns, redelivered if it raises
        self._bus = bus
        self._reply_to = reply_to
        self._reply_key = reply_key
        self._replied = False

    @property
    def is_request(self) -> bool:
        return self.kind == E.KIND_REQUEST

    @property
    def sender_service(self) -> str:
        return self.sender.split("/", 1)[0]

    async def reply(self, body: Any, headers: dict[str, str] | None = None) -> None:
        await self._answer(E.KIND_REPLY, body, headers)

    async def fail(self, code: int, text: str) -> None:
        await self._answer(E.KIND_FAILURE, [int(code), str(text)], None)

    async def _answer(self, kind: int, body: Any, headers: dict[str, str] | None) -> None:
        if self._bus is None or not self._reply_to:
            raise BusConfigError(f"message on {self.address!r} was not sent with request(); nothing to reply to")
        if self._replied:
            raise BusConfigError(f"message on {self.address!r} was already answered")
        self._replied = True
        await self._bus._answer(self, kind, body, headers)

    def __repr__(self) -> str:
        return f"Message(address={self.address!r}, sender={self.sender!r}, seq={self.seq}, body={self.body!r:.60})"


class Consumer:
    """A registered handler; ``await consumer.unregister()`` stops it."""

    def __init__(self, bus: EventBus, address: str, subs: list[Subscription]) -> None:
        self.address = address
        self._bus = bus
        self._subs = subs

    async def unregister(self) -> None:
        for s in self._subs:
            await s.unsubscribe()
        self._subs.clear()
        if self in self._bus._consumers:
            self._bus._consumers.remove(self)


class _Inbound:
    """Receive-side state of one consumer registration and one delivery mode."""

    __slots__ = ("bus", "grant", "address", "concrete", "mode", "kind", "handler", "is_async", "durable",
                 "aead", "addr_ad", "name_aead", "routes", "seen", "guard", "fast", "epoch", "decode", "current",
                 "sync_call", "_warned", "_warned_at", "_unwarned")

    def __init__(self, bus: EventBus, grant: Grant, address: str, mode: str, handler: Handler, durable: bool) -> None:
        self.bus = bus
        self.grant = grant
        self.address = address
        self.concrete = not is_pattern(address)
        self.mode = mode
        self.kind = _MODE_KIND[mode]
        self.handler = handler
        self.is_async = inspect.iscoroutinefunction(handler)
        self.durable = durable
        self.epoch = grant.epoch
        self.decode = bus.codec.decode
        self.name_aead = bus.keyring.name_aead(grant) if grant.pattern else None
        if grant.pattern:
            self.aead, self.addr_ad = None, b""
        else:
            self.aead, self.addr_ad = AESGCM(grant.key), E.address_ad(grant.address)
        self.routes: dict[str, Route] = {}
        self.seen = SeenSet() if durable else None
        self.guard = bus._new_guard(durable)
        # the common case gets an inlined path: concrete address, address authenticity, not durable
        self.fast = not grant.pattern and grant.authenticity == "address" and not durable
        self.current: Message | None = None
        self._warned = 0  # rejections of durable messages: the first 10 logged, then at most one a second
        self._warned_at = 0.0
        self._unwarned = 0
        # transports that support it call sync_call (no coroutine per message; see transports/nats.py)
        self.sync_call = self._sync_call if self.fast else None

    def _sync_call(self, data: bytes, reply: str) -> Awaitable[Any] | None:
        """Open and dispatch without a coroutine of our own.

        Returns None when done, or an awaitable the transport must await and,
        if it raises, pass the exception to :meth:`on_error`.
        """
        bus = self.bus
        try:
            msg = self.open_fast(data, reply)
        except EnvelopeError as exc:
            bus.metrics.reject(exc.reason)
            log.debug("%s", exc)
            return None
        bus.metrics.delivered += 1
        self.current = msg
        try:
            res = self.handler(msg)
        except Exception as exc:
            return self._failed(msg, exc)
        if res is not None and inspect.isawaitable(res):
            return res
        return None

    async def on_error(self, exc: Exception) -> None:
        if self.current is not None:
            await self._failed(self.current, exc)

    async def __call__(self, data: bytes, reply: str) -> bool:
        bus = self.bus
        try:
            msg = self.open_fast(data, reply) if self.fast else self.open(data, reply)
        except EnvelopeError as exc:
            bus.metrics.reject(exc.reason)
            if self.durable:
                self._warn_rejected(exc)
            else:
                log.debug("%s", exc)
            return True
        if msg is None:
            return True
        bus.metrics.delivered += 1
        try:
            if self.is_async:
                await self.handler(msg)
            else:
                res = self.handler(msg)
                if inspect.isawaitable(res):
                    await res
        except Exception as exc:
            return await self._failed(msg, exc)
        if self.seen is not None:
            self.seen.add((msg.sender, msg.session, msg.seq))
        return True

    def _warn_rejected(self, exc: EnvelopeError) -> None:
        """A stored (durable) message that fails the checks is acked and gone: never only a debug line.

        The first ten per consumer registration are each logged, then at most one a second (a hostile
        broker could store many), with the number since the last warning; ``metrics.rejected`` counts all.
        """
        self._unwarned += 1
        now = time.monotonic()
        if self._warned >= 10 and now - self._warned_at < 1.0:
            return
        n, self._unwarned, self._warned_at = self._unwarned, 0, now
        self._warned += 1
        log.warning("rejected a durable message on %r (%s, sent with %s): %s%s; acknowledged, not delivered",
                    self.address, exc.reason, "send" if self.mode == MODE_ONE else "publish", exc,
                    f" ({n - 1} more rejected since the last warning)" if n > 1 else "")

    async def _failed(self, msg: Message, exc: Exception) -> bool:
        self.bus.metrics.handler_errors += 1
        log.warning("handler for bus address %r raised %r", msg.address, exc)
        if msg.kind == E.KIND_REQUEST and not msg._replied:
            try:
                await msg.fail(500, f"handler raised {type(exc).__name__}")
            except Exception:
                pass
        return not self.durable

    def open_fast(self, data: bytes, reply: str) -> Message:
        """Inlined :meth:`open` for unsigned messages on a concrete, non-durable address."""
        if len(data) < 69:
            raise MalformedEnvelope(f"{len(data)} bytes is shorter than any envelope")
        version, kind, flags, _r, epoch, seq, ts, session, slen = _FIXED_UNPACK(data)
        if version != 1 or flags or kind != self.kind or epoch != self.epoch:
            return self.open(data, reply)  # type: ignore[return-value]  # precise errors there
        p = 41 + slen
        try:
            plaintext = self.aead.decrypt(data[p:p + 12], data[p + 12:], data[:p] + self.addr_ad)
        except InvalidTag:
            raise TamperedEnvelope("ciphertext or associated data does not authenticate (wrong key, address, "
                                   "epoch or modified bytes)") from None
        # replay window, in-order case inlined (see ReplayGuard.check for the general case)
        guard = self.guard
        now = time.time_ns() // 1_000_000
        key = data[24:p]  # session || sender-length || sender
        st = guard._state.get(key)
        if (st is not None and seq == st[0] + 1 and now - guard.max_age_ms <= ts <= now + guard.max_skew_ms):
            st[0] = seq
            st[1] = ((st[1] << 1) | 1) & guard._mask
            st[2] = now
            sender = st[3]
        else:
            guard.check(key, seq, ts, now)
            st = guard._state[key]
            if len(st) == 3:
                try:
                    st.append(data[41:p].decode())
                except UnicodeDecodeError:
                    raise MalformedEnvelope("sender id is not UTF-8") from None
            sender = st[3]
        if plaintext[:2] == b"\x00\x00":
            headers: dict[str, str] = {}
            off = 2
        else:
            headers, off = decode_headers(plaintext)
        reply_key = b""
        if kind == 3:
            reply_key = plaintext[off:off + 32]
            if len(reply_key) != 32 or not reply:
                raise MalformedEnvelope("request without reply key or reply subject")
            off += 32
        return Message(self.address, self.decode(plaintext[off:]), headers, sender, session, seq, ts, kind, False,
                       self.bus, reply, reply_key)

    def open(self, data: bytes, reply: str) -> Message | None:
        bus = self.bus
        env = E.Envelope(data)
        if env.kind != self.kind:
            raise _misaddressed(f"a kind-{env.kind} message arrived on the {self.mode!r} subject")
        grant = self.grant
        if env.epoch != grant.epoch:
            raise StaleEnvelope(f"epoch {env.epoch} but this service holds epoch {grant.epoch} keys")
        if grant.pattern:
            if not env.flags & E.FLAG_NAME:
                raise MalformedEnvelope("message on a pattern subject carries no address box")
            address = env.open_name(self.name_aead)  # type: ignore[arg-type]
            if (address != self.address) if self.concrete else not matches(self.address, address):
                raise _misaddressed(f"address {address!r} is not consumed here ({self.address!r})")
            route = self.routes.get(address)
            if route is None:
                try:
                    split_address(address, allow_wildcards=False)
                except BusConfigError as exc:
                    raise MalformedEnvelope(str(exc)) from exc
                route = bus.keyring.route(grant, address)
                if len(self.routes) > 10_000:
                    self.routes.clear()
                self.routes[address] = route
            aead, addr_ad = route.aead, route.addr_ad
        else:
            if env.flags & E.FLAG_NAME:
                raise MalformedEnvelope("unexpected address box on a concrete-address subject")
            address, aead, addr_ad = grant.address, self.aead, self.addr_ad
        verified = False
        if grant.authenticity == "sender":
            if not env.flags & E.FLAG_SIGNED:
                raise UnauthenticatedSender(f"address {address!r} requires sender signatures; message is unsigned")
            signed, sig = env.signed_bytes(addr_ad)
            bus._verifier.verify(env.cert, env.sender, signed, sig)
            verified = True
        plaintext = env.open(aead, addr_ad)  # type: ignore[arg-type]
        now = time.time_ns() // 1_000_000
        if self.durable:
            self.guard.check_fresh(env.ts_ms, now)
            if (env.sender, env.session, env.seq) in self.seen:  # type: ignore[operator]
                self.bus.metrics.duplicates += 1
                return None
        else:
            self.guard.check((address, env.sender, env.session), env.seq, env.ts_ms, now)
        headers, off = decode_headers(plaintext)
        reply_key = b""
        if env.kind == E.KIND_REQUEST:
            reply_key = plaintext[off:off + E.REPLY_KEY]
            if len(reply_key) != E.REPLY_KEY or not reply:
                raise MalformedEnvelope("request without reply key or reply subject")
            off += E.REPLY_KEY
        body = self.decode(plaintext[off:])
        return Message(address, body, headers, env.sender, env.session, env.seq, env.ts_ms, env.kind, verified,
                       bus, reply, reply_key, self.durable)


def _misaddressed(detail: str) -> EnvelopeError:
    err = MalformedEnvelope(detail)
    err.reason = "misaddressed"
    return err


class EventBus:
    """Sealed publish/send/request over a :class:`Transport`.

    ``keyring`` holds this service's grants; the bus refuses locally any
    address or action they do not cover.
    """

    def __init__(self, keyring: Keyring, transport: Transport, identity: Identity, *,
                 codec: Codec | None = None, replay_window: int = 1024, max_age: float = 60.0,
                 max_skew: float = 10.0, durable_max_age: float = 7 * 86400.0, durable_ack_wait: float = 30.0,
                 metrics: BusMetrics | None = None) -> None:
        self.keyring = keyring
        self.transport = transport
        self.identity = identity
        self.codec: Codec = codec or MsgpackCodec()
        self._msgpack = type(self.codec) is MsgpackCodec  # bytes bodies encode the same whatever its hooks
        self._bin_prefix: dict[int, bytes] = {}
        self.metrics = metrics or BusMetrics()
        self.durable_ack_wait = durable_ack_wait
        self._guard_args = (replay_window, max_age, durable_max_age, max_skew)
        self._verifier = SenderVerifier(keyring.ca_pem)
        self._session, self._sender = E.identity_block(identity.session or os.urandom(16), identity.sender)
        self._head_pack = struct.Struct(E.FIXED.format + f"{len(self._sender)}s").pack
        self._sign = make_signer(identity.private_key) if identity.private_key is not None else None
        self._cert = leaf_der(identity.cert_chain_pem) if identity.cert_chain_pem else b""
        self._routes: dict[str, Route] = {}
        self._consumers: list[Consumer] = []
        self._publish = transport.publish
        self._seq = 0  # one counter per bus session: unique across addresses and kinds (see docs/bus.md)
        self._started = False

    @classmethod
    def from_activation(cls, service: str, activation: Any, *, transport: Transport | None = None,
                        url: str | None = None, **kw: Any) -> EventBus:
        """A bus for an activated service: its bus keys, identity, and (unless ``transport`` is given) a NATS
        transport to ``url`` or ``activation.nats["url"]``, with mutual TLS when ``activation.nats["tls"]``."""
        keys = (getattr(activation, "keys", None) or {}).get("bus")
        if keys is None:
            raise BusConfigError(f"activation of {service!r} carries no bus keys; does the manifest's bus section "
                                 f"name this service?")
        keyring = Keyring.from_activation(keys)
        identity = Identity.from_activation(service, activation)
        if transport is None:
            from sereca.bus.transports.nats import NatsTransport, client_tls_context

            nats_cfg = getattr(activation, "nats", None) or {}
            url = url or nats_cfg.get("url")
            if not url:
                raise BusConfigError("no NATS URL: the manifest's config.nats is empty; pass url= (e.g. of an "
                                     "EmbeddedNatsServer) or a transport")
            tls = None
            if nats_cfg.get("tls") or url.startswith("tls://"):
                tls = client_tls_context(activation.ca_pem, activation.cert_chain_pem, activation.private_key)
            transport = NatsTransport(url, tls=tls, name=identity.sender)
        return cls(keyring, transport, identity, **kw)

    def _new_guard(self, durable: bool) -> ReplayGuard:
        window, max_age, durable_max_age, max_skew = self._guard_args
        return ReplayGuard(window, durable_max_age if durable else max_age, max_skew)

    @property
    def session(self) -> bytes:
        """This bus's sender session id (16 random bytes unless the identity pins one)."""
        return self._session

    # lifecycle -------------------------------------------------------------
    async def start(self) -> EventBus:
        await self.transport.start()
        self._publish = self.transport.publisher()
        self._started = True
        return self

    async def close(self) -> None:
        self._started = False
        self._publish = self.transport.publish
        for c in list(self._consumers):
            await c.unregister()
        await self.transport.close()

    async def __aenter__(self) -> EventBus:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def flush(self, timeout: float = 5.0) -> None:
        await self.transport.flush(timeout)

    # entitlement -----------------------------------------------------------
    def _route(self, address: str, action: str) -> Route:
        route = self._routes.get(address)
        if route is None:
            split_address(address, allow_wildcards=False)
            grant = self.keyring.grant_for(address)
            if grant is None:
                raise NotEntitled(address, action, self.identity.service)
            route = self.keyring.route(grant, address)
            route.stream = stream_name(self.keyring.subject_key, grant.address)
            tail = ".*" if grant.pattern else ""
            base = self.keyring.consume_subjects(grant, grant.address)
            route.stream_subjects = [base[MODE_ALL].removesuffix(tail) + tail, base[MODE_ONE].removesuffix(tail) + tail]
            if len(self._routes) > 10_000:
                self._routes.clear()
            self._routes[address] = route
        if action not in route.grant.actions:
            raise NotEntitled(address, action, self.identity.service)
        return route

    def entitled(self, address: str, action: str) -> bool:
        try:
            if is_pattern(address):
                g = self.keyring.grant_for(address)
                return g is not None and action in g.actions
            self._route(address, action)
            return True
        except (NotEntitled, BusConfigError):
            return False

    # sending ---------------------------------------------------------------
    def _seal(self, route: Route, kind: int, plaintext: bytes) -> bytes:
        if not self._started:
            raise BusClosed("event bus is not started; use `async with bus:` or `await bus.start()`")
        seq = self._seq = self._seq + 1
        sign = None
        if route.grant.authenticity == "sender":
            if self._sign is None or not self._cert:
                raise BusConfigError(f"address {route.address!r} requires sender authenticity: give the bus an "
                                     f"Identity with the activation's private key and certificate chain")
            sign = self._sign
        self.metrics.sent += 1
        return E.seal(route.aead, kind, route.grant.epoch, seq, time.time_ns() // 1_000_000, self._session,
                      self._sender, route.addr_ad, plaintext, name_aead=route.name_aead, address=route.addr_bytes,
                      sign=sign, cert_der=self._cert)

    async def publish(self, address: str, body: Any, headers: dict[str, str] | None = None) -> None:
        """Deliver to every consumer of ``address``."""
        route = self._routes.get(address)
        if route is None or "publish" not in route.grant.actions:
            route = self._route(address, "publish")
        if route.fast and self._started:
            # inlined _seal/E.seal for the common case (concrete address, address authenticity, not durable)
            seq = self._seq = self._seq + 1
            head = self._head_pack(1, 1, 0, 0, route.grant.epoch, seq, time.time_ns() // 1_000_000, self._session,
                                   len(self._sender), self._sender)
            # nonce: the route's random 96-bit base XOR the sequence number (unique per key, no syscall);
            # only this publish path uses counter nonces, every other message gets a random nonce
            nonce = (route.nonce_base ^ seq).to_bytes(12, "big")
            if type(body) is bytes and not headers and self._msgpack:
                prefix = self._bin_prefix.get(len(body))  # no headers + msgpack bin header, cached by size
                if prefix is None:
                    prefix = b"\x00\x00" + self.codec.encode(b"\x00" * len(body))[:-len(body) or None]
                    if len(self._bin_prefix) < 1024:
                        self._bin_prefix[len(body)] = prefix
                pt = prefix + body
            else:
                pt = (encode_headers(headers) if headers else b"\x00\x00") + self.codec.encode(body)
            self.metrics.sent += 1
            pending = self._publish(route.subjects[MODE_ALL],
                                    b"".join((head, nonce, route.aead.encrypt(nonce, pt, head + route.addr_ad))))
            if pending is not None:
                await pending
            return
        data = self._seal(route, E.KIND_PUBLISH, encode_headers(headers) + self.codec.encode(body))
        await self._emit(route, MODE_ALL, E.KIND_PUBLISH, data)

    async def send(self, address: str, body: Any, headers: dict[str, str] | None = None) -> None:
        """Deliver to one consumer of ``address`` (round-robin)."""
        route = self._routes.get(address)
        if route is None or "send" not in route.grant.actions:
            route = self._route(address, "send")
        data = self._seal(route, E.KIND_SEND, encode_headers(headers) + self.codec.encode(body))
        await self._emit(route, MODE_ONE, E.KIND_SEND, data)

    async def _emit(self, route: Route, mode: str, kind: int, data: bytes) -> None:
        if route.grant.durable:
            msg_id = f"{self._session.hex()}-{int.from_bytes(data[8:16], 'big')}"
            await self.transport.publish_durable(route.stream, route.stream_subjects, route.subjects[mode], data,
                                                 msg_id)
        else:
            pending = self._publish(route.subjects[mode], data)
            if pending is not None:
                await pending

    async def request(self, address: str, body: Any, headers: dict[str, str] | None = None, *,
                      timeout: float = 5.0) -> Message:
        """Send to one consumer and return its reply (a :class:`Message`).

        Raises :class:`NoHandlers`, :class:`ReplyTimeout` or :class:`RecipientFailure`.
        """
        route = self._routes.get(address)
        if route is None or "request" not in route.grant.actions:
            route = self._route(address, "request")
        reply_key = os.urandom(E.REPLY_KEY)
        data = self._seal(route, E.KIND_REQUEST, encode_headers(headers) + reply_key + self.codec.encode(body))
        try:
            raw = await self.transport.request(route.subjects[MODE_REQ], data, timeout)
        except TransportNoResponders:
            raise NoHandlers(address) from None
        except TransportTimeout:
            raise ReplyTimeout(address, timeout) from None
        return self._open_reply(route, raw, reply_key)

    def _open_reply(self, route: Route, raw: bytes, reply_key: bytes) -> Message:
        try:
            env = E.Envelope(raw)
            if env.kind not in _REPLY_AD_KINDS:
                raise MalformedEnvelope(f"kind-{env.kind} message where a reply was expected")
            verified = False
            if route.grant.authenticity == "sender":
                if not env.flags & E.FLAG_SIGNED:
                    raise UnauthenticatedSender("reply on a sender-authenticated address is unsigned")
                signed, sig = env.signed_bytes(route.addr_ad)
                self._verifier.verify(env.cert, env.sender, signed, sig)
                verified = True
            plaintext = env.open(AESGCM(reply_key), route.addr_ad)
            headers, off = decode_headers(plaintext)
            if env.kind == E.KIND_FAILURE:
                try:
                    code, text = msgpack.unpackb(plaintext[off:], raw=False)
                except Exception as exc:
                    raise MalformedEnvelope("failure reply is not [code, text]") from exc
                raise RecipientFailure(route.address, int(code), str(text))
            body = self.codec.decode(plaintext[off:])
        except EnvelopeError as exc:
            self.metrics.reject(exc.reason)
            raise
        self.metrics.delivered += 1
        return Message(route.address, body, headers, env.sender, env.session, env.seq, env.ts_ms, env.kind,
                       verified)

    async def _answer(self, msg: Message, kind: int, body: Any, headers: dict[str, str] | None) -> None:
        route = self._routes.get(msg.address)
        if route is None or "reply" not in route.grant.actions:
            route = self._route(msg.address, "reply")
        sign = None
        if route.grant.authenticity == "sender" and self._sign is not None and self._cert:
            sign = self._sign
        body_bytes = msgpack.packb(body, use_bin_type=True) if kind == E.KIND_FAILURE else self.codec.encode(body)
        data = E.seal(AESGCM(msg._reply_key), kind, route.grant.epoch, 0, time.time_ns() // 1_000_000,
                      self._session, self._sender, route.addr_ad, encode_headers(headers) + body_bytes,
                      sign=sign, cert_der=self._cert)
        self.metrics.sent += 1
        await self.transport.publish(msg._reply_to, data)

    # consuming -------------------------------------------------------------
    async def consumer(self, address: str, handler: Handler) -> Consumer:
        """Register ``handler`` for ``address`` (a concrete address, a granted pattern, or a sub-pattern of one).

        The handler receives every ``publish``, and its share of ``send`` and
        ``request`` messages.  It may be a coroutine function.  Returns once the
        broker has registered the subscriptions.
        """
        if not self._started:
            raise BusClosed("event bus is not started; use `async with bus:` or `await bus.start()`")
        split_address(address)
        grant = self.keyring.grant_for(address)
        if grant is None or "consume" not in grant.actions:
            raise NotEntitled(address, "consume", self.identity.service)
        if grant.authenticity == "sender" and not self._verifier.configured:
            raise BusConfigError(f"address {address!r} requires sender authenticity but the bus keys carry no "
                                 f"ca_pem to check sender certificates")
        ks = self.keyring
        subjects = ks.consume_subjects(grant, address)
        queue = "q" + _token(ks.subject_key, "queue\x00" + address)
        subs: list[Subscription] = []
        try:
            if grant.durable:
                stream = stream_name(ks.subject_key, grant.address)
                base = ks.consume_subjects(grant, grant.address)
                stream_subjects = [base[MODE_ALL], base[MODE_ONE]]
                durable_all = "d" + _token(ks.subject_key, f"all\x00{self.identity.service}\x00{address}")
                durable_one = "d" + _token(ks.subject_key, f"one\x00{address}")
                for mode, name in ((MODE_ALL, durable_all), (MODE_ONE, durable_one)):
                    subs.append(await self.transport.subscribe_durable(
                        stream, stream_subjects, subjects[mode], name, _Inbound(self, grant, address, mode, handler, True),
                        ack_wait=self.durable_ack_wait))
                subs.append(await self.transport.subscribe(
                    subjects[MODE_REQ], _Inbound(self, grant, address, MODE_REQ, handler, False), queue))
            else:
                subs.append(await self.transport.subscribe(
                    subjects[MODE_ALL], _Inbound(self, grant, address, MODE_ALL, handler, False)))
                for mode in (MODE_ONE, MODE_REQ):
                    subs.append(await self.transport.subscribe(
                        subjects[mode], _Inbound(self, grant, address, mode, handler, False), queue))
        except BaseException:
            for s in subs:
                await s.unsubscribe()
            raise
        consumer = Consumer(self, address, subs)
        self._consumers.append(consumer)
        await self.transport.flush()  # when consumer() returns, the broker knows the subscriptions
        return consumer
