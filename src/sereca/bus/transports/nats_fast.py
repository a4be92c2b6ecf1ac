"""The lean NATS path of the bus: a nats-py ``Client`` subclass for the bus's own subscriptions and publishes.

nats-py builds a ``Msg`` object, an ``asyncio.Queue`` entry and a coroutine per
message, and validates and formats every PUB; the bus's subjects are hashed and
validated once, and its consumers want raw bytes.  ``DispatchingClient``:

* parses ``MSG`` lines for bus subscriptions itself (``FastParser``) and hands
  raw bytes to a per-subscription deque drained by one task (``Direct``);
  everything else (HMSG, PING, INFO, errors, other subscriptions, split
  buffers) goes through nats-py's own parser and dispatch;
* formats PUB commands for bus subjects directly (``sereca_publish``);
* queues PING behind pending commands (nats-py 2.16 writes it ahead of them).

This relies on nats-py internals (``_process_msg``, ``_ps``, ``_pending``,
``_flush_pending``, ``_send_ping``); ``LEAN_OK`` is False when they are
missing, and ``NatsTransport(fast_dispatch=False)`` uses only public API.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from typing import Any, Awaitable

from nats.aio.client import Client as _NatsClient
from nats.protocol import parser as _parser

from sereca.bus.transports.base import Callback

log = logging.getLogger("sereca.bus.nats")


class Direct:
    """Lean per-subscription delivery: the reader appends raw (data, reply) to a deque, one task drains it.

    This replaces nats-py's per-message ``Msg`` object and ``asyncio.Queue``
    for bus subscriptions (the only other change to the reader's behaviour).
    """

    __slots__ = ("cb", "q", "wake", "task", "limit", "dropped", "idle")

    def __init__(self, cb: Callback, limit: int) -> None:
        self.cb = cb
        self.q: collections.deque[tuple[bytes, bytes]] = collections.deque()
        self.wake = asyncio.Event()
        self.limit = limit
        self.dropped = 0
        self.idle = False
        self.task = asyncio.get_running_loop().create_task(self._run())

    def push(self, data: bytes, reply: bytes) -> None:
        if len(self.q) >= self.limit:
            self.dropped += 1  # slow consumer: like nats-py, drop rather than grow without bound
            if self.dropped == 1 or self.dropped % 10_000 == 0:
                log.warning("bus consumer too slow: %d messages dropped (more than %d waiting)", self.dropped,
                            self.limit)
            return
        self.q.append((data, reply))
        if self.idle:
            self.idle = False
            self.wake.set()

    async def _run(self) -> None:
        q, cb, wake = self.q, self.cb, self.wake
        sync = getattr(cb, "sync_call", None)  # optional: returns None or an awaitable (see EventBus)
        while True:
            if not q:
                self.idle = True
                await wake.wait()
                wake.clear()
            while q:
                data, reply = q.popleft()
                try:
                    if sync is None:
                        await cb(data, reply.decode() if reply else "")
                        continue
                    pending = sync(data, reply.decode() if reply else "")
                    if pending is not None:
                        try:
                            await pending
                        except Exception as exc:
                            await cb.on_error(exc)  # type: ignore[attr-defined]
                except Exception as exc:  # a callback error must not end the subscription
                    log.warning("bus subscription callback raised %r", exc)


_CONNECTED = _NatsClient.CONNECTED
_PING = b"PING\r\n"
LEAN_OK = all(hasattr(_NatsClient, a) for a in ("_process_msg", "_flush_pending", "_send_command", "_send_ping")) \
    and hasattr(_parser, "Parser") and hasattr(_parser, "AWAITING_CONTROL_LINE")


class FastParser(_parser.Parser):
    """nats-py's parser with a fast path for complete ``MSG`` frames of bus subscriptions."""

    async def parse(self, data: bytes = b"") -> None:
        buf = self.buf
        buf.extend(data)
        direct = self.nc.sereca_direct
        stats = self.nc.stats
        base = _parser.Parser.parse
        while buf:
            if self.state == _parser.AWAITING_MSG_PAYLOAD:
                # the rest of a frame split across reads (its control line was consumed earlier)
                d = direct.get(self.msg_arg.get("sid"))
                if d is None or self.header_needed:
                    await base(self)
                    return
                need = self.needed
                if len(buf) < need + 2:
                    return
                payload = bytes(buf[:need])
                del buf[:need + 2]
                self.state = _parser.AWAITING_CONTROL_LINE
                stats["in_msgs"] += 1
                stats["in_bytes"] += need
                d.push(payload, self.msg_arg["reply"])
                continue
            if buf[:4] != b"MSG ":
                await base(self)  # anything else: nats-py's own state machine
                return
            end = buf.find(b"\r\n", 4, 4 + _parser.MAX_CONTROL_LINE_SIZE)
            if end < 0:
                await base(self)  # split control line (or a malformed one): let nats-py decide
                return
            args = bytes(buf[4:end]).split()
            if len(args) == 3:
                subject, sid_b, size_b = args
                reply = b""
            elif len(args) == 4:
                subject, sid_b, reply, size_b = args
            else:
                await base(self)
                return
            try:
                sid = int(sid_b)
                size = int(size_b)
            except ValueError:
                await base(self)
                return
            d = direct.get(sid)
            if d is None:
                await base(self)  # not a bus subscription
                return
            start = end + 2
            stop = start + size
            if len(buf) < stop + 2:
                # wait for the payload, in nats-py's parser state (either parser may finish the frame)
                self.msg_arg["subject"] = subject
                self.msg_arg["sid"] = sid
                self.msg_arg["reply"] = reply
                self.needed = size
                self.header_needed = 0
                del buf[:start]
                self.state = _parser.AWAITING_MSG_PAYLOAD
                return
            payload = bytes(buf[start:stop])
            del buf[:stop + 2]
            stats["in_msgs"] += 1
            stats["in_bytes"] += size
            d.push(payload, reply)


class DispatchingClient(_NatsClient):
    """nats-py client whose bus subscriptions skip the per-message Msg/Queue machinery."""

    def __init__(self) -> None:
        super().__init__()
        self.sereca_direct: dict[int, Direct] = {}
        self._ps = FastParser(self)

    async def _process_msg(self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes) -> None:
        direct = self.sereca_direct.get(sid)
        if direct is None or headers:
            await super()._process_msg(sid, subject, reply, data, headers)
            return
        self.stats["in_msgs"] += 1
        self.stats["in_bytes"] += len(data)
        direct.push(data, reply)

    async def _send_ping(self, future: asyncio.Future[Any] | None = None) -> None:
        """nats-py 2.16 writes PING straight to the socket, ahead of commands still in its pending
        buffer, so ``flush()`` could return before earlier SUBs reached the server; queue it instead."""
        if future is None:
            future = asyncio.get_running_loop().create_future()
        self._pongs.append(future)
        self._pending.append(_PING)
        self._pending_data_size += len(_PING)
        await self._flush_pending()

    def sereca_publish(self, subject: str, payload: bytes) -> Awaitable[None] | None:
        """``publish(subject, payload)`` for the bus's own (pre-validated, hashed) subjects.

        Skips nats-py's per-call subject validation and command formatting, and
        returns None once the command is buffered (an awaitable only when the
        flusher must be kicked); whenever the client is not plainly connected it
        defers to ``publish`` so buffering during reconnects, drain and close
        behave exactly as in nats-py.
        """
        if self._status != _CONNECTED or len(payload) > self._max_payload:
            return self.publish(subject, payload)
        cmd = b"PUB %s %d\r\n%s\r\n" % (subject.encode(), len(payload), payload)
        stats = self.stats
        stats["out_msgs"] += 1
        stats["out_bytes"] += len(payload)
        self._pending.append(cmd)
        self._pending_data_size += len(cmd)
        if self._max_pending_size > 0 and self._pending_data_size > self._max_pending_size:
            return self._flush_pending(force_flush=True)
        if self._flush_queue is not None and self._flush_queue.empty():
            return self._flush_pending()
        return None


