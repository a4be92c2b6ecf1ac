"""NATS transport (nats-py): core pub/sub, queue groups, request/reply, JetStream durables, mutual TLS."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import tempfile
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as _NatsClient
from nats.js import api as js_api

from sereca.bus.errors import BusClosed, BusConfigError, BusError
from sereca.bus.transports.base import (Callback, Subscription, Transport, TransportNoResponders,
                                        TransportTimeout)

log = logging.getLogger("sereca.bus")

#: subscriptions buffer this many messages before nats-py reports a slow consumer
PENDING_MSGS = 512 * 1024
PENDING_BYTES = 512 * 1024 * 1024


def client_tls_context(ca_pem: str, cert_chain_pem: str | None = None, key_pem: str | bytes | Any = None,
                       *, check_hostname: bool = False) -> ssl.SSLContext:
    """TLS 1.3 context that pins ``ca_pem`` and, with a certificate and key, presents them (mutual TLS).

    ``key_pem`` may be PEM text or a private key object (``activation.private_key``).
    Hostnames are not checked by default: the deployment CA is pinned and the
    broker's certificate is issued by it for the broker's role, not for a DNS name.
    """
    if key_pem is not None and hasattr(key_pem, "private_bytes"):
        from cryptography.hazmat.primitives import serialization

        key_pem = key_pem.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                        serialization.NoEncryption())
    ctx = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cadata=ca_pem)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_3
    ctx.check_hostname = check_hostname
    if cert_chain_pem is not None:
        if key_pem is None:
            raise BusConfigError("a client certificate for NATS needs its private key")
        if isinstance(key_pem, str):
            key_pem = key_pem.encode()
        with tempfile.TemporaryDirectory(prefix="sereca-tls-") as d:  # ssl only loads files
            cert_path, key_path = os.path.join(d, "cert.pem"), os.path.join(d, "key.pem")
            fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(key_pem)
            with open(cert_path, "w") as f:
                f.write(cert_chain_pem)
            ctx.load_cert_chain(cert_path, key_path)
    return ctx


from sereca.bus.transports.nats_fast import LEAN_OK as _LEAN_OK
from sereca.bus.transports.nats_fast import Direct as _Direct
from sereca.bus.transports.nats_fast import DispatchingClient as _DispatchingClient

class _NatsSub(Subscription):
    def __init__(self, sub: Any, client: Any = None, direct: _Direct | None = None) -> None:
        self._sub = sub
        self._client = client
        self._direct = direct

    async def unsubscribe(self) -> None:
        if self._direct is not None:
            self._client.sereca_direct.pop(self._sub._id, None)
            self._direct.task.cancel()
        with contextlib.suppress(nats.errors.Error, BusError):
            await self._sub.unsubscribe()


class _DurableSub(Subscription):
    def __init__(self, psub: Any, task: asyncio.Task[None]) -> None:
        self._psub = psub
        self._task = task

    async def unsubscribe(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await self._task
        with contextlib.suppress(Exception):
            await self._psub.unsubscribe()


class NatsTransport(Transport):
    """Join a NATS server or cluster.

    ``servers``: URL or list of URLs; ``tls``: an :class:`ssl.SSLContext` (see
    :func:`client_tls_context`); ``reconnect_s``: how long, once connected, to
    keep retrying a lost broker before giving up (the first connect fails fast);
    other keyword arguments go to ``nats.connect``.
    """

    def __init__(self, servers: str | list[str] = "nats://127.0.0.1:4222", *, tls: ssl.SSLContext | None = None,
                 name: str | None = None, connect_timeout: float = 5.0, stream_replicas: int = 1,
                 fast_dispatch: bool = True, reconnect_s: float = 60.0, **connect_options: Any) -> None:
        self.servers = servers
        self._reconnect_s = reconnect_s
        self._tls = tls
        self._name = name
        self._connect_timeout = connect_timeout
        self._options = connect_options
        self._replicas = stream_replicas
        self._fast = fast_dispatch and _LEAN_OK
        self._nc: Any = None
        self._js: Any = None
        self._streams: set[str] = set()
        self._subs: list[Subscription] = []
        self.errors: list[str] = []  # asynchronous errors reported by the server (e.g. permission violations)

    @property
    def nc(self) -> Any:
        if self._nc is None or self._nc.is_closed:
            raise BusClosed("NATS transport is not connected; call `await bus.start()` first")
        return self._nc

    async def _error_cb(self, exc: Exception) -> None:
        self.errors.append(str(exc))
        del self.errors[:-100]

    async def start(self) -> None:
        if self._nc is not None and not self._nc.is_closed:
            return
        opts: dict[str, Any] = {"error_cb": self._error_cb, "connect_timeout": self._connect_timeout,
                                "max_reconnect_attempts": 10, "reconnect_time_wait": 0.5,
                                "pending_size": 8 * 1024 * 1024}
        if self._tls is not None:
            opts["tls"] = self._tls
        if self._name:
            opts["name"] = self._name
        opts.update(self._options)
        try:
            nc = _DispatchingClient() if self._fast else _NatsClient()
            await asyncio.wait_for(nc.connect(self.servers, allow_reconnect=True, **opts),
                                   self._connect_timeout * 2 + 1)
            # Fail fast on the first connect (few attempts, above), but ride out a broker
            # restart once connected: retry for reconnect_s before giving up.
            if "max_reconnect_attempts" not in self._options:
                wait = nc.options["reconnect_time_wait"]
                nc.options["max_reconnect_attempts"] = max(1, round(self._reconnect_s / wait))
            self._nc = nc
        except (nats.errors.Error, OSError, asyncio.TimeoutError, ssl.SSLError) as exc:
            raise BusError(f"cannot connect to NATS at {self.servers}: {exc!r}; check the URL, that the server "
                           f"runs, and (with TLS) that its CA and this service's certificate match") from exc
        self._js = self._nc.jetstream()

    async def close(self) -> None:
        nc, self._nc = self._nc, None
        for s in self._subs:
            await s.unsubscribe()
        self._subs.clear()
        if nc is not None and not nc.is_closed:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.flush(), 2)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), 5)

    async def publish(self, subject: str, data: bytes, reply: str = "") -> None:
        try:
            await self.nc.publish(subject, data, reply)
        except nats.errors.Error as exc:
            raise BusError(f"NATS publish failed: {exc!r}") from exc

    def publisher(self) -> Any:
        """The hot-path publish: nats-py's own, or the lean one of the dispatching client."""
        nc = self.nc
        return nc.sereca_publish if isinstance(nc, _DispatchingClient) else nc.publish

    async def subscribe(self, subject: str, cb: Callback, queue: str = "") -> Subscription:
        async def on_msg(msg: Any) -> None:
            await cb(msg.data, msg.reply)

        nc = self.nc
        sub = await nc.subscribe(subject, queue=queue, cb=on_msg, pending_msgs_limit=PENDING_MSGS,
                                 pending_bytes_limit=PENDING_BYTES)
        if isinstance(nc, _DispatchingClient):
            direct = _Direct(cb, PENDING_MSGS)
            nc.sereca_direct[sub._id] = direct
            handle = _NatsSub(sub, nc, direct)
        else:
            handle = _NatsSub(sub)
        self._subs.append(handle)
        return handle

    async def request(self, subject: str, data: bytes, timeout: float) -> bytes:
        try:
            msg = await self.nc.request(subject, data, timeout=timeout)
        except nats.errors.NoRespondersError:
            raise TransportNoResponders(subject) from None
        except nats.errors.TimeoutError:
            raise TransportTimeout(subject) from None
        return msg.data

    async def flush(self, timeout: float = 5.0) -> None:
        nc = self.nc
        try:
            await nc.flush(timeout=timeout)
            if not isinstance(nc, _DispatchingClient):
                await nc.flush(timeout=timeout)  # see _DispatchingClient._send_ping: the first PONG may be early
        except nats.errors.TimeoutError:
            raise TransportTimeout("flush") from None

    async def _ensure_stream(self, stream: str, subjects: list[str], timeout: float) -> None:
        if stream in self._streams:
            return
        try:
            await asyncio.wait_for(self._js.stream_info(stream), timeout)
        except nats.js.errors.NotFoundError:
            config = js_api.StreamConfig(name=stream, subjects=subjects, storage=js_api.StorageType.FILE,
                                         retention=js_api.RetentionPolicy.LIMITS, duplicate_window=120.0,
                                         num_replicas=self._replicas)
            try:
                await asyncio.wait_for(self._js.add_stream(config), timeout)
            except nats.js.errors.BadRequestError:
                await asyncio.wait_for(self._js.stream_info(stream), timeout)  # created concurrently
        except (nats.errors.Error, asyncio.TimeoutError) as exc:
            raise BusError(f"JetStream unavailable for durable address (stream {stream}): {exc!r}; "
                           f"is JetStream enabled on the NATS server?") from exc
        self._streams.add(stream)

    async def publish_durable(self, stream: str, stream_subjects: list[str], subject: str, data: bytes,
                              msg_id: str, timeout: float = 5.0) -> None:
        await self._ensure_stream(stream, stream_subjects, timeout)
        try:
            await self._js.publish(subject, data, timeout=timeout, stream=stream,
                                   headers={"Nats-Msg-Id": msg_id})
        except nats.errors.TimeoutError:
            raise TransportTimeout(f"JetStream ack for {subject}") from None
        except nats.errors.Error as exc:
            raise BusError(f"JetStream publish failed: {exc!r}") from exc

    async def subscribe_durable(self, stream: str, stream_subjects: list[str], filter_subject: str,
                                durable_name: str, cb: Callback, *, ack_wait: float = 30.0,
                                max_deliver: int = -1) -> Subscription:
        await self._ensure_stream(stream, stream_subjects, 5.0)
        config = js_api.ConsumerConfig(durable_name=durable_name, ack_policy=js_api.AckPolicy.EXPLICIT,
                                       ack_wait=ack_wait, max_deliver=max_deliver,
                                       deliver_policy=js_api.DeliverPolicy.ALL, filter_subject=filter_subject)
        try:
            psub = await asyncio.wait_for(
                self._js.pull_subscribe(filter_subject, durable=durable_name, stream=stream, config=config), 10.0)
        except (nats.errors.Error, asyncio.TimeoutError) as exc:
            raise BusError(f"cannot create durable consumer {durable_name} on stream {stream}: {exc!r}") from exc
        where = f"durable consumer {durable_name} (stream {stream})"

        async def recreate() -> None:
            # the broker lost the consumer (or the stream): make them again under the same names
            self._streams.discard(stream)
            await self._ensure_stream(stream, stream_subjects, 5.0)
            await asyncio.wait_for(self._js.add_consumer(stream, config=config), 5.0)
            log.warning("%s was missing on the broker; created it again", where)

        async def pump() -> None:
            failures = 0
            while True:
                try:
                    msgs = await psub.fetch(batch=256, timeout=1.0)
                except asyncio.TimeoutError:
                    # Nothing to fetch.  nats-py raises its own TimeoutError (a subclass), and also a
                    # plain asyncio.TimeoutError when the server's 408 for the idle pull request arrives
                    # just before the client's deadline: both are "no messages", never fatal.
                    continue
                except (nats.errors.ConnectionClosedError, nats.errors.ConnectionDrainingError):
                    log.info("%s stops: the NATS connection is closed", where)
                    return
                except Exception as exc:  # anything else: say so and keep fetching; never die silently
                    failures += 1
                    if failures == 1 or failures % 50 == 0:
                        log.warning("%s: fetch failed (%r, %d in a row); retrying", where, exc, failures)
                    if isinstance(exc, nats.js.errors.NotFoundError):
                        with contextlib.suppress(Exception):
                            await recreate()
                    await asyncio.sleep(min(2.0, 0.1 * failures))
                    continue
                failures = 0
                for msg in msgs:
                    try:
                        ok = await cb(msg.data, "")
                    except Exception as exc:
                        log.warning("%s: consuming a message raised %r; it will be redelivered", where, exc)
                        ok = False
                    try:
                        if ok:
                            await msg.ack()
                        else:
                            await msg.nak(delay=0.2)
                    except nats.errors.Error as exc:
                        log.warning("%s: %s failed (%r); the broker redelivers after ack_wait", where,
                                    "ack" if ok else "nak", exc)

        task = asyncio.get_running_loop().create_task(pump(), name=f"sereca-durable-{durable_name}")
        task.add_done_callback(lambda t: _pump_ended(t, where))
        handle = _DurableSub(psub, task)
        self._subs.append(handle)
        return handle


def _pump_ended(task: asyncio.Task[None], where: str) -> None:
    """A fetch loop ends only on cancellation or a closed connection; anything else is a bug: say so."""
    if not task.cancelled() and task.exception() is not None:
        log.error("%s stopped: %r; durable messages are no longer delivered", where, task.exception(),
                  exc_info=task.exception())
