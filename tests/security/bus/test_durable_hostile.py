"""Durable addresses under a hostile broker: duplicates are suppressed, forgeries rejected."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import nats
from polling import until

from sereca.bus import Message, NatsTransport
from sereca.bus.keys import Keyring, stream_name
from sereca.bus.testing import demo_section


async def test_broker_duplicates_and_forgeries_on_a_durable_address(buses: Any, open_server: Any, root: bytes) -> None:
    w = await buses("worker")
    aud = await buses("auditor", durable_ack_wait=1.0)
    got: list[Message] = []
    await aud.consumer("alerts", got.append)
    for i in range(3):
        await w.send("alerts", i)
    await until(lambda: len(got) == 3)
    kr = Keyring.for_service(root, demo_section(), "worker")
    stream = stream_name(kr.subject_key, "alerts")
    nc = await asyncio.wait_for(nats.connect(open_server.url), 5)
    try:
        js = nc.jetstream()
        stored = [await js.get_msg(stream, seq) for seq in (1, 2, 3)]
        # the broker re-injects a stored message (new stream sequence, no msg id): handled once only
        await js.publish(stored[0].subject, stored[0].data)
        # ...and one with its duplicate-suppression id: the stream itself drops it
        ack = await js.publish(stored[1].subject, stored[1].data, headers=stored[1].headers)
        assert ack.duplicate
        # ...and a forgery on the stream subject
        await js.publish(stored[2].subject, os.urandom(len(stored[2].data)))
        await until(lambda: aud.metrics.duplicates == 1 and sum(aud.metrics.rejected.values()) == 1)
    finally:
        await asyncio.wait_for(nc.close(), 5)
    await asyncio.sleep(0.2)
    assert sorted(m.body for m in got) == [0, 1, 2]
    assert isinstance(aud.transport, NatsTransport)
