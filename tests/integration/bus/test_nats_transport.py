"""NatsTransport against a real nats-server, with and without the lean dispatch path."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pytest

from sereca.bus import EventBus, Identity, Keyring, Message, NatsTransport, NoHandlers
from sereca.bus.nats_server import EmbeddedNatsServer
from sereca.bus.testing import demo_section


@pytest.mark.parametrize("fast", [True, False])
async def test_bus_over_nats(nats_server: EmbeddedNatsServer, fast: bool) -> None:
    root = os.urandom(32)

    def bus(service: str) -> EventBus:
        return EventBus(Keyring.for_service(root, demo_section(), service),
                        NatsTransport(nats_server.url, fast_dispatch=fast), Identity(service))

    async with bus("gateway") as gw, bus("worker") as w:
        got: list[Any] = []

        async def handler(m: Message) -> None:
            got.append(m.body)
            if m.is_request:
                await m.reply(m.body * 2)

        def sync_handler(m: Message) -> None:
            got.append(("sync", m.body))

        with pytest.raises(NoHandlers):
            await asyncio.wait_for(gw.request("orders", 1, timeout=2), 5)
        await w.consumer("orders", handler)
        await w.consumer("sensors.>", sync_handler)
        await w.flush()
        for i in range(50):
            await gw.publish("orders", i)
        await gw.send("orders", "s")
        await gw.publish("sensors.a", "p")
        assert (await asyncio.wait_for(gw.request("orders", 1000, timeout=2), 5)).body == 2000

        async def wait() -> None:
            while len(got) < 53:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(wait(), 5)
        assert [x for x in got if isinstance(x, int) and x < 1000] == list(range(50))  # in order per subscription
        assert "s" in got and ("sync", "p") in got
        assert isinstance(w.transport, NatsTransport) and w.transport.nc.stats["in_msgs"] >= 53


async def test_connect_failure_is_a_clear_error() -> None:
    from sereca.bus import BusError
    from sereca.bus.nats_server import free_port

    t = NatsTransport(f"nats://127.0.0.1:{free_port()}", connect_timeout=0.5, max_reconnect_attempts=1)
    with pytest.raises(BusError, match="cannot connect to NATS"):
        await asyncio.wait_for(t.start(), 10)
    await t.close()


@pytest.mark.parametrize("fast", [True, False])
async def test_consumer_is_registered_when_consumer_returns(nats_server: EmbeddedNatsServer, fast: bool) -> None:
    """nats-py 2.16 can answer flush() before earlier SUBs reach the server; consumer() must not."""
    for _ in range(60):
        root = os.urandom(32)
        gw = EventBus(Keyring.for_service(root, demo_section(), "gateway"),
                      NatsTransport(nats_server.url, fast_dispatch=fast), Identity("gateway"))
        w = EventBus(Keyring.for_service(root, demo_section(), "worker"),
                     NatsTransport(nats_server.url, fast_dispatch=fast), Identity("worker"))
        async with gw, w:

            async def echo(m: Message) -> None:
                await m.reply(m.body)

            await w.consumer("orders", echo)
            assert (await asyncio.wait_for(gw.request("orders", 7, timeout=2), 5)).body == 7


async def test_bus_rides_out_a_broker_restart(tmp_path: Any) -> None:
    """Once connected, a bus survives the broker going away for a few seconds."""
    from sereca.bus.nats_server import free_port

    port = free_port()
    root = os.urandom(32)
    server = EmbeddedNatsServer(port=port, jetstream=False, workdir=tmp_path / "a").start()
    got: list[Any] = []

    def bus(service: str) -> EventBus:
        return EventBus(Keyring.for_service(root, demo_section(), service),
                        NatsTransport(server.url), Identity(service))

    try:
        async with bus("gateway") as gw, bus("worker") as w:
            await w.consumer("orders", lambda m: got.append(m.body))
            server.stop()
            await asyncio.sleep(3)  # longer than the old 10 x 0.5 s reconnect budget would allow after backoff
            server = EmbeddedNatsServer(port=port, jetstream=False, workdir=tmp_path / "b").start()

            async def delivered() -> None:
                while "after" not in got:
                    await gw.publish("orders", "after")
                    await asyncio.sleep(0.2)

            await asyncio.wait_for(delivered(), 20)
            assert not gw.transport.nc.is_closed and not w.transport.nc.is_closed
    finally:
        server.stop()
