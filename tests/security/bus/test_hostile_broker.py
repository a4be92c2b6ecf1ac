"""A raw NATS client with full broker access plays the hostile broker."""

from __future__ import annotations

import asyncio
import os
import re
from typing import Any

import nats
import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from polling import until

from sereca.bus import Message, NotEntitled
from sereca.bus import envelope as E
from sereca.bus.keys import Keyring
from sereca.bus.testing import demo_section


SUBJECT = re.compile(r"^(sereca\.(all|one|req)\.[a-z2-7]{24}(\.[a-z2-7]{24})?|_INBOX\.[A-Za-z0-9.]+)$")
SECRETS = (b"TOP-SECRET-BODY", b"HEADER-SECRET", b"REPLY-SECRET", b"orders", b"sensors", b"temp")


@pytest.fixture
async def spy(open_server: Any) -> Any:
    nc = await asyncio.wait_for(nats.connect(open_server.url), 5)
    seen: list[Any] = []

    async def cb(msg: Any) -> None:
        seen.append(msg)

    await nc.subscribe(">", cb=cb)
    await nc.flush()
    nc.seen = seen
    yield nc
    await asyncio.wait_for(nc.close(), 5)


async def test_broker_sees_only_ciphertext_and_hashed_subjects(buses: Any, spy: Any) -> None:
    gw, w = await buses("gateway"), await buses("worker")
    got: list[Message] = []

    async def handler(m: Message) -> None:
        got.append(m)
        if m.is_request:
            await m.reply(b"REPLY-SECRET " + m.body)

    await w.consumer("orders", handler)
    await w.consumer("sensors.>", handler)
    await w.flush()
    await gw.publish("orders", b"TOP-SECRET-BODY", headers={"x-secret": "HEADER-SECRET"})
    await gw.send("orders", b"TOP-SECRET-BODY")
    await gw.publish("sensors.temp.1", b"TOP-SECRET-BODY")
    reply = await gw.request("orders", b"TOP-SECRET-BODY", timeout=5)
    assert reply.body.startswith(b"REPLY-SECRET")
    await until(lambda: len(got) == 4 and len(spy.seen) >= 5)
    await asyncio.sleep(0.1)  # let the spy's subscription catch up
    for msg in spy.seen:
        assert SUBJECT.match(msg.subject), msg.subject
        assert not msg.headers, msg.headers
        for secret in SECRETS:
            assert secret not in msg.data, (secret, msg.subject)
    subjects = {m.subject for m in spy.seen if m.subject.startswith("sereca.")}
    assert len(subjects) == 4  # orders all/one/req and one concrete sensor subject


async def test_injected_replayed_modified_truncated_readdressed_are_rejected(buses: Any, spy: Any, root: bytes) -> None:
    gw = await buses("gateway")
    w = await buses("worker", replay_window=4)
    aud = await buses("auditor", max_age=1.5)
    got: dict[str, list[Message]] = {"w": [], "aud": []}
    await w.consumer("orders", got["w"].append)
    await w.consumer("sensors.>", got["w"].append)
    await aud.consumer("sensors.temp.2", got["aud"].append)
    await w.flush()
    await aud.flush()
    for i in range(6):
        await gw.publish("orders", i)
    await gw.publish("sensors.temp.1", "t1")
    await gw.publish("sensors.temp.2", "t2")
    await until(lambda: len(got["w"]) == 8 and len(got["aud"]) == 1)
    await until(lambda: sum(m.subject.startswith("sereca.all.") for m in spy.seen) == 8)  # the spy saw them all
    kr = Keyring.for_service(root, demo_section(), "gateway")
    orders = kr.route(kr.grant_for("orders"), "orders").subjects
    temp1 = kr.route(kr.grant_for("sensors.temp.1"), "sensors.temp.1").subjects
    temp2 = kr.route(kr.grant_for("sensors.temp.2"), "sensors.temp.2").subjects
    captured = {m.subject: [] for m in spy.seen}
    for m in spy.seen:
        captured[m.subject].append(m.data)
    first, last = captured[orders["all"]][0], captured[orders["all"]][-1]
    t1 = captured[temp1["all"]][0]

    async def inject(subject: str, data: bytes) -> None:
        await spy.publish(subject, data)

    before_w, before_aud = len(got["w"]), len(got["aud"])
    # injected: random bytes, and a well-formed envelope sealed under a key the attacker made up
    await inject(orders["all"], os.urandom(200))
    forged = E.seal(AESGCM(os.urandom(32)), E.KIND_PUBLISH, 1, 99, E.FIXED.unpack_from(last)[6], os.urandom(16),
                    b"gateway/i1", E.address_ad("orders"), b"\x00\x00\xa3bad")
    await inject(orders["all"], forged)
    # replayed: the latest message again (inside the window) and the first (beyond the 4-message window)
    await inject(orders["all"], last)
    await inject(orders["all"], first)
    # modified: a ciphertext byte, the sequence number, the sender id
    for pos in (len(last) - 20, 12, 42):
        bad = bytearray(last)
        bad[pos] ^= 0x01
        await inject(orders["all"], bytes(bad))
    # truncated
    await inject(orders["all"], last[:-1])
    await inject(orders["all"], last[:30])
    # re-addressed: orders -> its send subject, orders -> a sensor subject, temp.1 -> temp.2's consumer
    await inject(orders["one"], last)
    await inject(temp1["all"], last)
    await inject(temp2["all"], t1)
    await spy.flush()
    await until(lambda: sum(w.metrics.rejected.values()) >= 11 and sum(aud.metrics.rejected.values()) >= 1)
    await asyncio.sleep(0.1)
    assert len(got["w"]) == before_w and len(got["aud"]) == before_aud
    rw = w.metrics.rejected
    assert rw["tampered"] >= 4  # forged + 3 modified (+ truncated by one byte)
    # "last" replayed, and temp.1's message re-addressed to temp.2 also reaches the worker's sensors.> consumer
    assert rw["replayed"] == 2 and rw["reordered"] == 1, rw
    assert rw["malformed"] + rw["tampered"] >= 8
    assert rw["misaddressed"] >= 1
    assert aud.metrics.rejected["misaddressed"] == 1
    # stale: a captured message replayed after the consumer's max_age (1.5 s)
    t2 = captured[temp2["all"]][0]
    await asyncio.sleep(1.6)
    await inject(temp2["all"], t2)
    await until(lambda: aud.metrics.rejected["stale"] == 1)
    assert len(got["aud"]) == before_aud


async def test_replayed_request_cannot_extract_a_second_reply(buses: Any, spy: Any, root: bytes) -> None:
    gw, w = await buses("gateway"), await buses("worker")
    calls: list[Message] = []

    async def handler(m: Message) -> None:
        calls.append(m)
        await m.reply("ok")

    await w.consumer("orders", handler)
    await w.flush()
    assert (await gw.request("orders", "charge card", timeout=5)).body == "ok"
    await until(lambda: any(m.subject.startswith("sereca.req.") for m in spy.seen))
    req = next(m for m in spy.seen if m.subject.startswith("sereca.req."))
    await spy.publish(req.subject, req.data, reply="_INBOX.attacker")
    await spy.flush()
    await until(lambda: w.metrics.rejected["replayed"] == 1)
    assert len(calls) == 1


async def test_unentitled_service_cannot_produce_an_accepted_message(buses: Any, spy: Any, root: bytes) -> None:
    """Broker permissions disabled: the intruder can publish anywhere, yet nothing it sends is accepted."""
    w = await buses("worker")
    intruder = await buses("intruder")
    got: list[Message] = []
    await w.consumer("orders", got.append)
    await w.consumer("signed.cmd", got.append)
    await w.flush()
    with pytest.raises(NotEntitled):
        await intruder.publish("orders", "x")
    with pytest.raises(NotEntitled):
        await intruder.consumer("orders", got.append)
    # it knows the subject key (every service does) and its own address key, and tries them on orders
    kr = intruder.keyring
    subject = Keyring.for_service(root, demo_section(), "gateway")
    orders = subject.route(subject.grant_for("orders"), "orders")
    own = kr.grant_for("other")
    import time
    now = time.time_ns() // 1_000_000
    for key in (own.key, kr.subject_key):
        for addr in ("orders", "other"):
            env = E.seal(AESGCM(key), E.KIND_PUBLISH, 1, 1, now, os.urandom(16), b"gateway/i1",
                         E.address_ad(addr), b"\x00\x00\xa1x")
            await spy.publish(orders.subjects["all"], env)
    # a holder of the signed.cmd key (worker may publish there) cannot pass as the gateway
    w2_identity_bus = await buses("worker", "i2")
    forged_identity = type(w2_identity_bus.identity)("gateway", "i1", private_key=w2_identity_bus.identity.private_key,
                                                     cert_chain_pem=w2_identity_bus.identity.cert_chain_pem)
    from sereca.bus import EventBus, NatsTransport

    liar = EventBus(w2_identity_bus.keyring, NatsTransport(w2_identity_bus.transport.servers), forged_identity)
    async with liar:
        await liar.publish("signed.cmd", "forged order")
        await liar.flush()
        await until(lambda: w.metrics.rejected["tampered"] == 4 and w.metrics.rejected["unauthenticated"] == 1)
    assert got == []
