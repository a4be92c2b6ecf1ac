"""The lean NATS parser gives exactly what nats-py's parser gives, however the stream is chunked."""

from __future__ import annotations

import asyncio
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from sereca.bus.transports.nats_fast import FastParser

DIRECT_SIDS = (1, 2)


class FakeDirect:
    def __init__(self, sid: int, log: list[Any]) -> None:
        self.sid = sid
        self.log = log

    def push(self, data: bytes, reply: bytes) -> None:
        self.log.append(("msg", self.sid, data, reply))


class FakeClient:
    def __init__(self) -> None:
        self.log: list[Any] = []
        self.sereca_direct = {sid: FakeDirect(sid, self.log) for sid in DIRECT_SIDS}
        self.stats = {"in_msgs": 0, "in_bytes": 0}

    async def _process_msg(self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: Any) -> None:
        self.log.append(("hmsg" if headers else "msg", sid, data, reply))

    async def _process_ping(self) -> None:
        self.log.append(("ping",))

    async def _process_pong(self) -> None:
        self.log.append(("pong",))

    async def _process_info(self, info: Any) -> None:
        self.log.append(("info", info))

    async def _process_err(self, err: str) -> None:
        self.log.append(("err", err))


frame = st.one_of(
    st.tuples(st.just("msg"), st.sampled_from([1, 2, 3]), st.binary(max_size=40),
              st.sampled_from([b"", b"_INBOX.abc.1"])),
    st.tuples(st.just("hmsg"), st.sampled_from([1, 3]), st.binary(max_size=20), st.just(b"")),
    st.tuples(st.just("ping")), st.tuples(st.just("pong")),
)


def encode(f: tuple[Any, ...]) -> bytes:
    if f[0] == "msg":
        _, sid, data, reply = f
        r = b" " + reply if reply else b""
        return b"MSG sereca.all.x %d%s %d\r\n%s\r\n" % (sid, r, len(data), data)
    if f[0] == "hmsg":
        _, sid, data, _r = f
        hdr = b"NATS/1.0\r\nA: b\r\n\r\n"
        return b"HMSG s %d %d %d\r\n%s%s\r\n" % (sid, len(hdr), len(hdr) + len(data), hdr, data)
    return b"PING\r\n" if f[0] == "ping" else b"PONG\r\n"


def expected(f: tuple[Any, ...]) -> tuple[Any, ...]:
    return f if f[0] in ("msg", "hmsg") else (f[0],)


@settings(max_examples=200, deadline=None)
@given(st.lists(frame, max_size=12), st.lists(st.integers(1, 30), max_size=40))
def test_any_chunking_gives_the_same_messages(frames: list[tuple[Any, ...]], cuts: list[int]) -> None:
    stream = b"".join(encode(f) for f in frames)
    chunks, pos = [], 0
    for c in cuts:
        chunks.append(stream[pos:pos + c])
        pos += c
    chunks.append(stream[pos:])
    nc = FakeClient()
    parser = FastParser(nc)

    async def run() -> None:
        for chunk in chunks:
            await parser.parse(chunk)

    asyncio.run(run())
    assert nc.log == [expected(f) for f in frames]
    assert not parser.buf


def test_complete_frames_of_bus_subscriptions_take_the_fast_path() -> None:
    frames = [("msg", 1, b"abc", b""), ("msg", 2, b"", b"_INBOX.x"), ("msg", 1, b"\r\n", b"")]
    nc = FakeClient()
    asyncio.run(FastParser(nc).parse(b"".join(encode(f) for f in frames)))
    assert nc.log == frames
    assert nc.stats == {"in_msgs": 3, "in_bytes": 5}  # counted by the fast path, not the fake _process_msg
