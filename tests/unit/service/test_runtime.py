"""The lifecycle on an in-process bus: hooks, consumers, replies, validation, periodic tasks, drain."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from polling import until
from pydantic import BaseModel, Field

from sereca.service import Service


class Reading(BaseModel):
    sensor: str
    pressure: float = Field(ge=0)


class Verdict(BaseModel):
    sensor: str
    leak: bool

T = 5.0  # no await in these tests may take longer


def _value(metric: Any, **labels: str) -> float:
    return metric.labels(**labels)._value.get() if labels else metric._value.get()


async def test_request_reply_with_typed_handler(bus: Any, peer: Any) -> None:
    svc = Service("detector")
    seen: list[Reading] = []

    @svc.consumer("sensors.check")
    async def check(reading: Reading, msg) -> Verdict:  # type: ignore[no-untyped-def]
        seen.append(reading)
        assert msg.address == "sensors.check"
        return Verdict(sensor=reading.sensor, leak=reading.pressure < 1)

    async with svc.run_local(bus):
        reply = await asyncio.wait_for(peer.request("sensors.check", {"sensor": "s1", "pressure": 0.5}), T)
        assert reply.body == {"sensor": "s1", "leak": True}
        typed = await asyncio.wait_for(
            svc.request("sensors.check", Reading(sensor="s2", pressure=3), reply_model=Verdict), T
        )
        assert typed == Verdict(sensor="s2", leak=False)
    assert [r.sensor for r in seen] == ["s1", "s2"]
    assert _value(svc.metrics.handled, address="sensors.check", outcome="ok") == 2


async def test_invalid_body_is_rejected_with_a_clear_error_and_counted(bus: Any, peer: Any, caplog: Any) -> None:
    svc = Service("detector")
    called = asyncio.Event()

    @svc.consumer("sensors.check")
    async def check(reading: Reading) -> Verdict:
        called.set()
        return Verdict(sensor=reading.sensor, leak=False)

    async with svc.run_local(bus):
        with pytest.raises(Exception) as info:
            await asyncio.wait_for(peer.request("sensors.check", {"sensor": "s1", "pressure": -2}), T)
        assert getattr(info.value, "code", None) == 400
        text = str(info.value)
        assert "sensors.check" in text and "Reading" in text and "pressure" in text and "greater than or equal" in text
        # A published (no reply) bad message is dropped and counted too.
        await peer.publish("sensors.check", {"pressure": "high"})
        await asyncio.sleep(0.05)
    assert not called.is_set()
    assert _value(svc.metrics.rejected, address="sensors.check", reason="validation") == 2
    assert _value(svc.metrics.handled, address="sensors.check", outcome="rejected") == 2
    assert any("rejected" in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


async def test_handler_exception_fails_the_request_without_leaking_details(bus: Any, peer: Any) -> None:
    svc = Service("s")

    @svc.consumer("t.boom")
    async def boom(msg) -> None:  # type: ignore[no-untyped-def]
        raise KeyError("internal-secret-detail")

    async with svc.run_local(bus):
        with pytest.raises(Exception) as info:
            await asyncio.wait_for(peer.request("t.boom", 1), T)
    assert info.value.code == 500  # type: ignore[attr-defined]
    assert "KeyError" in str(info.value) and "internal-secret-detail" not in str(info.value)
    assert _value(svc.metrics.handled, address="t.boom", outcome="error") == 1


async def test_hooks_order_and_context(bus: Any, peer: Any) -> None:
    svc = Service("s")
    events: list[str] = []

    @svc.on_start
    async def start() -> None:
        events.append(f"start:{svc.instance_id}:{svc.params['GREETING']}:{svc.simulated}")

    @svc.on_stop
    def stop() -> None:
        events.append("stop")

    @svc.consumer("t.hello")
    async def hello(name: str) -> str:
        events.append("t.hello")
        return f"{svc.params.get('GREETING')}, {name}"

    async with svc.run_local(bus, params={"env": {"GREETING": "hi"}}, instance_id="i-1", simulated=True):
        assert svc.running
        reply = await asyncio.wait_for(peer.request("t.hello", "ann"), T)
        assert reply.body == "hi, ann"
    assert events == ["start:i-1:hi:True", "t.hello", "stop"]
    assert not svc.running and bus._consumers == []


async def test_periodic_task_runs_and_survives_errors(bus: Any, peer: Any) -> None:
    svc = Service("s")
    runs: list[int] = []

    @svc.every(0.02, at_start=True)
    async def tick() -> None:
        runs.append(len(runs))
        if len(runs) == 2:
            raise RuntimeError("one bad run")

    async with svc.run_local(bus):
        for _ in range(100):
            if len(runs) >= 4:
                break
            await asyncio.sleep(0.01)
    assert len(runs) >= 4
    assert _value(svc.metrics.periodic, task="tick", outcome="error") == 1
    count = len(runs)
    await asyncio.sleep(0.06)
    assert len(runs) == count  # stopped with the service


async def test_drain_waits_for_in_flight_handlers(bus: Any, peer: Any) -> None:
    svc = Service("s")
    started, finished = asyncio.Event(), asyncio.Event()

    @svc.consumer("t.slow")
    async def slow(msg) -> str:  # type: ignore[no-untyped-def]
        started.set()
        await asyncio.sleep(0.2)
        finished.set()
        return "done"

    async with svc.run_local(bus, drain_timeout=3):
        pending = asyncio.create_task(peer.request("t.slow", None))
        await asyncio.wait_for(started.wait(), T)
    # Leaving the block drained: the handler finished and its reply went out.
    assert finished.is_set()
    assert (await asyncio.wait_for(pending, T)).body == "done"


async def test_drain_is_bounded(bus: Any, peer: Any) -> None:
    svc = Service("s")
    started = asyncio.Event()
    stopped: list[bool] = []

    @svc.consumer("t.stuck")
    async def stuck(msg) -> None:  # type: ignore[no-untyped-def]
        started.set()
        await asyncio.sleep(3600)

    svc.on_stop(lambda: stopped.append(True))
    loop = asyncio.get_running_loop()
    async with svc.run_local(bus, drain_timeout=0.2):
        pending = asyncio.create_task(peer.request("t.stuck", None))
        await asyncio.wait_for(started.wait(), T)
        t0 = loop.time()
    assert loop.time() - t0 < 2.0
    assert stopped == [True]
    with pytest.raises(Exception) as info:
        await asyncio.wait_for(pending, T)
    assert info.value.code == 503  # type: ignore[attr-defined]


async def test_failed_on_start_leaves_nothing_running(bus: Any, peer: Any) -> None:
    svc = Service("s")
    svc.consumer("t.a")(lambda msg: None)

    @svc.on_start
    async def bad() -> None:
        raise RuntimeError("no database")

    with pytest.raises(RuntimeError, match="no database"):
        async with svc.run_local(bus):
            raise AssertionError("must not get here")
    assert not svc.running and bus._consumers == []


async def test_publisher_validates_before_sending(bus: Any, peer: Any) -> None:
    svc = Service("s")
    out = svc.publisher("alerts.leak", Verdict)
    got: list[Any] = []

    async def sink(msg: Any) -> None:
        got.append(msg.body)

    await peer.consumer("alerts.leak", sink)
    async with svc.run_local(bus):
        await out.publish({"sensor": "a", "leak": True})
        await out.publish(Verdict(sensor="b", leak=False))
        with pytest.raises(Exception, match="not a valid Verdict"):
            await out.publish({"sensor": "c"})
        await asyncio.sleep(0.02)
    assert got == [{"sensor": "a", "leak": True}, {"sensor": "b", "leak": False}]


async def test_unsendable_return_value_fails_the_request(bus: Any, peer: Any) -> None:
    svc = Service("s")

    class Opaque:
        pass

    @svc.consumer("t.odd")
    async def odd(msg) -> Any:  # type: ignore[no-untyped-def]
        return Opaque()

    async with svc.run_local(bus):
        with pytest.raises(Exception) as info:
            await asyncio.wait_for(peer.request("t.odd", None), T)
    assert info.value.code == 500 and "unsendable" in str(info.value)  # type: ignore[attr-defined]
    assert _value(svc.metrics.handled, address="t.odd", outcome="error") == 1


async def test_simulation_is_logged_loudly_at_start(bus: Any, caplog: Any) -> None:
    async with Service("s").run_local(bus, simulated=True, platform="sim"):
        pass
    assert any(r.levelname == "WARNING" and "*** SIMULATION ***" in r.getMessage() for r in caplog.records)


async def test_durable_message_arriving_while_draining_is_redelivered_not_acked(broker: Any) -> None:
    """A stored message reaching a draining service must not be acknowledged unhandled (it would be lost)."""
    from sereca.bus.api import EventBus, Identity
    from sereca.bus.keys import Keyring
    from sereca.bus.transports import InProcessTransport

    section = {"addresses": {"jobs": {"send": ["peer"], "consume": ["svc"], "durable": True}}}

    def bus_for(service: str) -> EventBus:
        return EventBus(Keyring.for_service(bytes(32), section, service), InProcessTransport(broker),
                        Identity(service), durable_ack_wait=1.0)

    svc = Service("svc")
    got: list[str] = []

    @svc.consumer("jobs")
    async def on_job(body: str) -> None:
        got.append(body)

    async with bus_for("svc") as bus, bus_for("peer") as peer:
        async with svc.run_local(bus) as rt:
            rt.state = "draining"  # as between SIGTERM and the consumers' unregistration
            try:
                await asyncio.wait_for(peer.send("jobs", "j1"), T)
                await asyncio.sleep(0.1)
                assert got == [] and bus.metrics.handler_errors >= 1
            finally:
                rt.state = "ready"  # (stop() waits for a drain it did not start)
            await until(lambda: got == ["j1"], T)  # redelivered, not lost
