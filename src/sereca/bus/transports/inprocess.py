"""In-process transport: a tiny NATS-like broker living in the event loop (tests, single-process apps)."""

from __future__ import annotations

import asyncio
import itertools
import os
from dataclasses import dataclass, field

from sereca.bus.errors import BusClosed
from sereca.bus.keys import matches
from sereca.bus.transports.base import (Callback, Subscription, Transport, TransportNoResponders,
                                        TransportTimeout)


def _subject_matches(pattern: str, subject: str) -> bool:
    return pattern == subject or matches(pattern, subject)


@dataclass(eq=False)
class _Sub:
    subject: str
    queue: str
    cb: Callback
    inbox: asyncio.Queue[tuple[bytes, str]] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None


@dataclass(eq=False)
class _Durable:
    name: str
    filter_subject: str
    cursor: int = 0
    members: list[tuple[Callback, float]] = field(default_factory=list)
    pending: dict[int, float] = field(default_factory=dict)  # stream index -> redeliver-at
    done: set[int] = field(default_factory=set)
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None


@dataclass(eq=False)
class _Stream:
    subjects: list[str]
    log: list[tuple[str, bytes]] = field(default_factory=list)
    ids: set[str] = field(default_factory=set)
    consumers: dict[str, _Durable] = field(default_factory=dict)


class InProcessBroker:
    """Shared by the transports of every bus in one process."""

    def __init__(self) -> None:
        self._subs: list[_Sub] = []
        self._rr: dict[tuple[str, str], itertools.count[int]] = {}
        self._streams: dict[str, _Stream] = {}

    # core pub/sub ---------------------------------------------------------
    def add(self, sub: _Sub) -> None:
        self._subs.append(sub)
        sub.task = asyncio.get_running_loop().create_task(self._pump(sub))

    def remove(self, sub: _Sub) -> None:
        if sub in self._subs:
            self._subs.remove(sub)
        if sub.task is not None:
            sub.task.cancel()

    @staticmethod
    async def _pump(sub: _Sub) -> None:
        while True:
            data, reply = await sub.inbox.get()
            try:
                await sub.cb(data, reply)
            except Exception:  # a failing callback must not stop the subscription
                pass

    def route(self, subject: str, data: bytes, reply: str) -> int:
        """Deliver to every plain subscriber and one member per queue group; returns the count."""
        groups: dict[str, list[_Sub]] = {}
        n = 0
        for sub in self._subs:
            if not _subject_matches(sub.subject, subject):
                continue
            if sub.queue:
                groups.setdefault(sub.queue, []).append(sub)
            else:
                sub.inbox.put_nowait((data, reply))
                n += 1
        for queue, members in groups.items():
            counter = self._rr.setdefault((subject, queue), itertools.count())
            members[next(counter) % len(members)].inbox.put_nowait((data, reply))
            n += 1
        for stream in self._streams.values():
            if any(_subject_matches(s, subject) for s in stream.subjects) and not reply:
                self._append(stream, subject, data, None)
        return n

    # durable ---------------------------------------------------------------
    def stream(self, name: str, subjects: list[str]) -> _Stream:
        st = self._streams.get(name)
        if st is None:
            st = self._streams[name] = _Stream(list(subjects))
        return st

    def _append(self, st: _Stream, subject: str, data: bytes, msg_id: str | None) -> None:
        if msg_id is not None:
            if msg_id in st.ids:
                return
            st.ids.add(msg_id)
        st.log.append((subject, data))
        for d in st.consumers.values():
            d.wake.set()

    def publish_durable(self, name: str, subjects: list[str], subject: str, data: bytes, msg_id: str) -> None:
        self._append(self.stream(name, subjects), subject, data, msg_id)

    def durable(self, name: str, subjects: list[str], filter_subject: str, durable_name: str,
                cb: Callback, ack_wait: float) -> _Durable:
        st = self.stream(name, subjects)
        d = st.consumers.get(durable_name)
        if d is None:
            d = st.consumers[durable_name] = _Durable(durable_name, filter_subject)
        d.members.append((cb, ack_wait))
        if d.task is None or d.task.done():
            d.task = asyncio.get_running_loop().create_task(self._durable_pump(st, d))
        d.wake.set()
        return d

    @staticmethod
    async def _durable_pump(st: _Stream, d: _Durable) -> None:
        rr = itertools.count()
        loop = asyncio.get_running_loop()
        while d.members:
            d.wake.clear()
            now = loop.time()
            due = [i for i, t in d.pending.items() if t <= now]
            while d.cursor < len(st.log):
                due.append(d.cursor)
                d.cursor += 1
            for i in due:
                subject, data = st.log[i]
                if i in d.done or not _subject_matches(d.filter_subject, subject) or not d.members:
                    continue
                cb, ack_wait = d.members[next(rr) % len(d.members)]
                d.pending[i] = loop.time() + ack_wait
                try:
                    ok = await cb(data, "")
                except Exception:
                    ok = False
                if ok:
                    d.pending.pop(i, None)
                    d.done.add(i)
                else:
                    d.pending[i] = loop.time() + 0.05
            timeout = min((t for t in d.pending.values()), default=now + 3600) - loop.time()
            try:
                await asyncio.wait_for(d.wake.wait(), max(timeout, 0.01))
            except asyncio.TimeoutError:
                pass


class _InProcSub(Subscription):
    def __init__(self, broker: InProcessBroker, sub: _Sub) -> None:
        self._broker = broker
        self._sub = sub

    async def unsubscribe(self) -> None:
        self._broker.remove(self._sub)


class _InProcDurableSub(Subscription):
    def __init__(self, d: _Durable, member: tuple[Callback, float]) -> None:
        self._d = d
        self._member = member

    async def unsubscribe(self) -> None:
        if self._member in self._d.members:
            self._d.members.remove(self._member)
        if not self._d.members and self._d.task is not None:
            self._d.task.cancel()
            self._d.task = None


class InProcessTransport(Transport):
    """Connects a bus to an :class:`InProcessBroker` (a private one if none is given)."""

    def __init__(self, broker: InProcessBroker | None = None) -> None:
        self.broker = broker or InProcessBroker()
        self._open = False
        self._subs: list[Subscription] = []

    async def start(self) -> None:
        self._open = True

    async def close(self) -> None:
        self._open = False
        for s in self._subs:
            await s.unsubscribe()
        self._subs.clear()

    def _check(self) -> None:
        if not self._open:
            raise BusClosed("in-process transport is not started; call `await bus.start()` first")

    async def publish(self, subject: str, data: bytes, reply: str = "") -> None:
        self._check()
        self.broker.route(subject, data, reply)

    async def subscribe(self, subject: str, cb: Callback, queue: str = "") -> Subscription:
        self._check()
        sub = _Sub(subject, queue, cb)
        self.broker.add(sub)
        handle = _InProcSub(self.broker, sub)
        self._subs.append(handle)
        return handle

    async def request(self, subject: str, data: bytes, timeout: float) -> bytes:
        self._check()
        inbox = "_INBOX." + os.urandom(8).hex()
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        async def on_reply(reply_data: bytes, _reply: str) -> bool:
            if not fut.done():
                fut.set_result(reply_data)
            return True

        sub = _Sub(inbox, "", on_reply)
        self.broker.add(sub)
        try:
            if self.broker.route(subject, data, inbox) == 0:
                raise TransportNoResponders(subject)
            try:
                return await asyncio.wait_for(fut, timeout)
            except asyncio.TimeoutError:
                raise TransportTimeout(subject) from None
        finally:
            self.broker.remove(sub)

    async def flush(self, timeout: float = 5.0) -> None:
        self._check()
        await asyncio.sleep(0)

    async def publish_durable(self, stream: str, stream_subjects: list[str], subject: str, data: bytes,
                              msg_id: str, timeout: float = 5.0) -> None:
        self._check()
        self.broker.publish_durable(stream, stream_subjects, subject, data, msg_id)

    async def subscribe_durable(self, stream: str, stream_subjects: list[str], filter_subject: str,
                                durable_name: str, cb: Callback, *, ack_wait: float = 30.0,
                                max_deliver: int = -1) -> Subscription:
        self._check()
        d = self.broker.durable(stream, stream_subjects, filter_subject, durable_name, cb, ack_wait)
        handle = _InProcDurableSub(d, d.members[-1])
        self._subs.append(handle)
        return handle
