"""EventBus semantics on the in-process transport (the same code path as NATS above the transport)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest
from polling import until

from sereca.bus import (BusConfigError, EventBus, Identity, Message, MsgpackCodec, NoHandlers, NotEntitled,
                        RecipientFailure, ReplyTimeout)
from sereca.bus.errors import BusClosed


async def test_publish_reaches_every_consumer(make_bus: Any) -> None:
    gw, w, a = await make_bus("gateway"), await make_bus("worker"), await make_bus("auditor")
    got: dict[str, list[Message]] = {"w": [], "a": []}
    await w.consumer("orders", got["w"].append)
    await a.consumer("orders", got["a"].append)
    await gw.publish("orders", {"id": 1, "items": ["x"]}, headers={"trace": "t1"})
    await gw.publish("orders", b"\x00raw")
    await until(lambda: len(got["w"]) == 2 and len(got["a"]) == 2)
    m = got["w"][0]
    assert (m.address, m.body, m.headers, m.sender, m.seq) == ("orders", {"id": 1, "items": ["x"]}, {"trace": "t1"},
                                                                "gateway/i1", 1)
    assert got["a"][1].body == b"\x00raw" and isinstance(got["a"][1].body, bytes)
    assert not m.is_request and m.sender_service == "gateway"


async def test_send_is_round_robin(make_bus: Any) -> None:
    gw = await make_bus("gateway")
    w1, w2 = await make_bus("worker", "i1"), await make_bus("worker", "i2")
    got: list[str] = []
    await w1.consumer("orders", lambda m: got.append("w1"))
    await w2.consumer("orders", lambda m: got.append("w2"))
    for i in range(10):
        await gw.send("orders", i)
    await until(lambda: len(got) == 10)
    assert got.count("w1") == 5 and got.count("w2") == 5


async def test_request_reply_and_failures(make_bus: Any) -> None:
    gw, w = await make_bus("gateway"), await make_bus("worker")
    with pytest.raises(NoHandlers):
        await gw.request("orders", 1, timeout=1)

    async def handler(m: Message) -> None:
        if m.body == "fail":
            await m.fail(409, "conflict")
        elif m.body == "raise":
            raise ValueError("boom")
        elif m.body == "silent":
            return
        else:
            await m.reply({"echo": m.body}, headers={"h": "v"})

    await w.consumer("orders", handler)
    reply = await gw.request("orders", [1, 2], timeout=2)
    assert reply.body == {"echo": [1, 2]} and reply.headers == {"h": "v"} and reply.sender == "worker/i1"
    with pytest.raises(RecipientFailure) as err:
        await gw.request("orders", "fail", timeout=2)
    assert (err.value.code, err.value.text) == (409, "conflict")
    with pytest.raises(RecipientFailure, match="ValueError"):
        await gw.request("orders", "raise", timeout=2)
    with pytest.raises(ReplyTimeout):
        await gw.request("orders", "silent", timeout=0.2)
    assert w.metrics.handler_errors == 1


async def test_reply_twice_or_to_a_publish_is_refused(make_bus: Any) -> None:
    gw, w = await make_bus("gateway"), await make_bus("worker")
    errors: list[Exception] = []

    async def handler(m: Message) -> None:
        try:
            await m.reply(1)
            await m.reply(2)
        except BusConfigError as exc:
            errors.append(exc)

    await w.consumer("orders", handler)
    assert (await gw.request("orders", 0, timeout=2)).body == 1
    await gw.publish("orders", 0)
    await until(lambda: len(errors) == 2)
    assert "already answered" in str(errors[0]) and "not sent with request" in str(errors[1])


async def test_entitlement_is_enforced_locally(make_bus: Any) -> None:
    gw, w = await make_bus("gateway"), await make_bus("worker")
    with pytest.raises(NotEntitled, match="may not consume"):
        await gw.consumer("orders", print)
    with pytest.raises(NotEntitled, match="may not publish"):
        await w.publish("orders", 1)
    with pytest.raises(NotEntitled):
        await gw.publish("nowhere", 1)
    with pytest.raises(NotEntitled, match="may not send"):
        await gw.send("sensors.x", 1)
    with pytest.raises(BusConfigError, match="concrete"):
        await gw.publish("sensors.*", 1)
    assert gw.entitled("orders", "publish") and not gw.entitled("orders", "consume")

    refused: list[Exception] = []

    async def reply_without_grant(m: Message) -> None:
        try:
            await m.reply(1)
        except NotEntitled as exc:
            refused.append(exc)

    # a consumer without the "reply" action cannot answer (not even with a failure)
    section = {"addresses": {"q": {"request": ["a"], "consume": ["b"]}}}
    a, b = await make_bus("a", section=section), await make_bus("b", section=section)
    await b.consumer("q", reply_without_grant)
    with pytest.raises(ReplyTimeout):
        await a.request("q", 1, timeout=0.3)
    assert "may not reply" in str(refused[0])


async def test_patterns_and_subpatterns(make_bus: Any) -> None:
    gw, w, a = await make_bus("gateway"), await make_bus("worker"), await make_bus("auditor")
    all_, temps, one = [], [], []
    await w.consumer("sensors.>", lambda m: all_.append(m.address))
    await a.consumer("sensors.temp.*", lambda m: temps.append(m.address))
    await a.consumer("sensors.door", lambda m: one.append(m.address))
    for addr in ("sensors.temp.1", "sensors.door", "sensors.temp.2", "sensors.hum.1"):
        await gw.publish(addr, addr)
    await until(lambda: len(all_) == 4 and len(temps) == 2 and len(one) == 1)
    assert temps == ["sensors.temp.1", "sensors.temp.2"] and one == ["sensors.door"]
    # the sub-pattern consumer filtered the others locally, which counts as misaddressed
    await asyncio.sleep(0.05)
    assert a.metrics.rejected["misaddressed"] == 2
    with pytest.raises(NotEntitled):
        await w.consumer("sensor.>", print)


async def test_sender_authenticity(make_bus: Any, ca: Any) -> None:
    gw, w, aud = await make_bus("gateway"), await make_bus("worker"), await make_bus("auditor")
    got: list[Message] = []

    async def rpc(m: Message) -> None:
        if m.is_request:
            await m.reply(m.sender)

    await w.consumer("signed.cmd", rpc)
    reply = await gw.request("signed.cmd", 1, timeout=2)
    assert reply.sender_verified and reply.body == "gateway/i1" and reply.sender == "worker/i1"
    await aud.consumer("signed.cmd", got.append)
    await gw.publish("signed.cmd", "hello")
    await until(lambda: len(got) == 1)
    assert got[0].sender_verified and got[0].sender == "gateway/i1"
    # a key holder without a private key cannot publish on a sender-authenticated address
    nokey = await make_bus("worker", "i9", identity=Identity("worker", "i9"))
    with pytest.raises(BusConfigError, match="sender authenticity"):
        await nokey.publish("signed.cmd", 1)
    # a worker claiming to be the gateway (its own certificate, forged sender id) is rejected
    forger_cert = ca.service("worker", "i7")
    liar = await make_bus("worker", "i7", identity=Identity("gateway", "i1", private_key=forger_cert.key,
                                                            cert_chain_pem=forger_cert.cert_pem))
    await liar.publish("signed.cmd", "forged")
    await asyncio.sleep(0.05)
    assert len(got) == 1 and aud.metrics.rejected["unauthenticated"] == 1


async def test_durable_redelivers_until_handled(make_bus: Any) -> None:
    w, aud = await make_bus("worker"), await make_bus("auditor", durable_ack_wait=0.2)
    for i in range(5):
        await w.send("alerts", i)  # stored although nobody consumes yet
    seen: list[int] = []
    failed: set[int] = set()

    def handler(m: Message) -> None:
        if m.body == 2 and 2 not in failed:
            failed.add(2)
            raise RuntimeError("transient")
        seen.append(m.body)

    await aud.consumer("alerts", handler)
    await until(lambda: sorted(seen) == [0, 1, 2, 3, 4])
    await w.publish("alerts", 99)
    await until(lambda: 99 in seen)


async def test_codec_hook(make_bus: Any) -> None:
    import msgpack

    class Point:
        def __init__(self, x: int, y: int) -> None:
            self.x, self.y = x, y

    codec = MsgpackCodec(default=lambda p: msgpack.ExtType(1, msgpack.packb([p.x, p.y])),
                         ext_hook=lambda code, data: Point(*msgpack.unpackb(data)))
    gw, w = await make_bus("gateway", codec=codec), await make_bus("worker", codec=codec)
    got: list[Any] = []
    await w.consumer("orders", lambda m: got.append(m.body))
    await gw.publish("orders", Point(3, 4))
    await until(lambda: len(got) == 1)
    assert (got[0].x, got[0].y) == (3, 4)
    with pytest.raises(BusConfigError, match="cannot encode"):
        await w.publish("alerts", object())


async def test_closed_bus_refuses(make_bus: Any) -> None:
    gw = await make_bus("gateway")
    await gw.close()
    with pytest.raises(BusClosed):
        await gw.publish("orders", 1)


async def test_metrics_export(make_bus: Any) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    gw = await make_bus("gateway")
    reg = CollectorRegistry()
    gw.metrics.register(reg)
    await gw.publish("orders", 1)
    text = generate_latest(reg).decode()
    assert "sereca_bus_sent_total 1.0" in text and 'sereca_bus_rejected_total{reason="replayed"} 0.0' in text


def test_identity_from_activation() -> None:
    class Act:
        instance_id = "abc"
        private_key = None
        cert_chain_pem = None

    ident = Identity.from_activation("svc", Act())
    assert ident.sender == "svc/abc"
    assert isinstance(EventBus, type)


async def test_every_bus_has_its_own_session(make_bus: Any) -> None:
    from sereca.bus import InProcessTransport, Keyring
    from sereca.bus.testing import demo_section

    w = await make_bus("worker")
    got: list[Message] = []
    await w.consumer("orders", got.append)
    first = await make_bus("gateway")
    identity = first.identity
    await first.publish("orders", 1)
    await first.close()
    # a new bus for the same identity (a restart, a reconnect) starts its sequence numbers again, safely
    again = EventBus(first.keyring, InProcessTransport(make_bus.broker), identity)
    async with again:
        await again.publish("orders", 2)
        await until(lambda: len(got) == 2)
    assert again.session != first.session and [m.seq for m in got] == [1, 1]
    assert w.metrics.rejected["replayed"] == 0 and Keyring and demo_section
    assert isinstance(EventBus, type)


def test_from_activation(root: bytes, ca: Any) -> None:
    from sereca.bus import Keyring, NatsTransport, grants_for
    from sereca.bus.testing import demo_section

    issued = ca.service("worker", "abc")

    class Act:
        instance_id = "abc"
        private_key = issued.key
        cert_chain_pem = issued.cert_pem
        ca_pem = ca.ca_pem
        keys = {"bus": grants_for(root, demo_section(), "worker", ca_pem=ca.ca_pem)}
        nats = {"url": "tls://127.0.0.1:4222", "tls": True}

    bus = EventBus.from_activation("worker", Act())
    assert bus.identity.sender == "worker/abc" and isinstance(bus.transport, NatsTransport)
    assert isinstance(bus.keyring, Keyring) and bus.entitled("orders", "consume")
    Act.nats = None
    with pytest.raises(BusConfigError, match="no NATS URL"):
        EventBus.from_activation("worker", Act())
    Act.keys = {}
    with pytest.raises(BusConfigError, match="no bus keys"):
        EventBus.from_activation("worker", Act())


async def test_durable_pattern_address(make_bus: Any) -> None:
    section = {"addresses": {"jobs.>": {"send": ["p"], "publish": ["p"], "consume": ["c"], "durable": True}}}
    p = await make_bus("p", section=section)
    await p.send("jobs.a.1", "x")
    await p.publish("jobs.b", "y")
    c = await make_bus("c", section=section)
    got: list[tuple[str, Any]] = []
    await c.consumer("jobs.>", lambda m: got.append((m.address, m.body)))
    await until(lambda: len(got) == 2)
    assert sorted(got) == [("jobs.a.1", "x"), ("jobs.b", "y")]


async def test_route_cache_eviction_keeps_sequence_numbers_fresh(make_bus: Any) -> None:
    gw, w = await make_bus("gateway"), await make_bus("worker")
    got: list[Any] = []
    await w.consumer("orders", lambda m: got.append(m.seq))
    await gw.publish("orders", 1)
    gw._routes.clear()  # what happens when the bounded route cache is full
    await gw.publish("orders", 2)
    await gw.send("orders", 3)
    await until(lambda: len(got) == 3)
    assert got == sorted(set(got)) and w.metrics.rejected["replayed"] == 0


async def test_bytes_bodies_of_every_msgpack_size_class(make_bus: Any) -> None:
    gw, w = await make_bus("gateway"), await make_bus("worker")
    got: list[Any] = []
    await w.consumer("orders", lambda m: got.append(m.body))
    bodies = [b"", b"x", b"y" * 255, b"z" * 256, os.urandom(65535), os.urandom(65536), "text", b"again"]
    for body in bodies:
        await gw.publish("orders", body)
    await until(lambda: len(got) == len(bodies))
    assert got == bodies
