"""The four water services as attested processes on a real CAS and nats-server."""

from __future__ import annotations

import asyncio
import signal

import httpx
import pytest

from sereca.apps.water.demo import DemoError, DemoOptions, WaterDemo, default_scenario
from sereca.apps.water.network import load_network
from sereca.apps.water.services.manifest import SERVICES

pytestmark = pytest.mark.slow

NEAR_M = 500.0  # an alert "names the leak" if its pipe is this close along the network


async def wait_for(predicate, demo: WaterDemo, timeout: float = 60.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    """Poll the deployment until ``predicate(snapshot)`` holds; fail with the services' log tails."""
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while True:
        snap = await asyncio.wait_for(demo.poll(), 10)
        if predicate(snap):
            return snap
        if loop.time() > end or demo.failed():
            logs = "\n".join(f"--- {s.name}\n{s.log_tail(20)}" for s in demo.services.values())
            raise AssertionError(f"{what} not reached in {timeout:g} s: {snap}\n{logs}")
        await asyncio.sleep(0.2)


async def test_readings_flow_and_the_leak_is_found_near_its_pipe(demo: WaterDemo) -> None:
    scenario = demo.scenario
    assert scenario is not None
    steps = int(scenario.days * 86400 // scenario.step) + 1
    n_sensors = len(scenario.sensors.ids())
    snap = await wait_for(lambda s: s.replay_done and s.readings_detected == s.readings and s.alerts, demo,
                          what="replay done, every reading detected, an alert")
    # every value of every step went gateway -> bus -> detector
    assert snap.readings == steps * n_sensors
    assert snap.readings_detected == snap.readings
    assert snap.alarms >= 1
    # the first alert (the oldest) is the injected leak, named by a pipe near it
    first = min(snap.alerts, key=lambda a: a["time"])
    leak = scenario.leaks[0]
    assert leak.start <= first["time"] <= leak.start + 6 * 3600
    net = load_network(scenario.network)
    distance = net.pipe_distance_fn([leak.pipe])(leak.pipe, first["pipe"])
    assert distance <= NEAR_M, (first, distance)
    assert first["level"] in ("warning", "critical")
    # every service attested at the CAS, on the simulated platform, and says so
    rows = {row["name"]: row for row in demo.status()}
    assert set(rows) == set(SERVICES)
    for name, row in rows.items():
        assert row["running"] and row["simulated"] and row["platform"] == "sim", row
        assert row["instance"] == f"{name}-0"


async def test_dashboard_api_needs_the_token_and_serves_the_map(demo: WaterDemo) -> None:
    assert demo.dashboard_url is not None
    base = demo.dashboard_url.split("/?", 1)[0]
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        assert (await http.get("/api/info")).status_code == 403
        assert (await http.get("/api/info", headers={"authorization": "Bearer wrong-token-wrong"})).status_code == 403
        auth = {"authorization": f"Bearer {demo.token}"}
        info = (await http.get("/api/info", headers=auth)).json()
        assert info["simulated"] is True and info["tee"] == "sim" and info["network"] == "L-Town"
        net = (await http.get("/api/network", headers=auth)).json()
        assert len(net["links"]) > 900 and all(len(link["path"]) >= 2 for link in net["links"])
        assert {s["id"] for s in net["sensors"]} == set(demo.scenario.sensors.ids())  # type: ignore[union-attr]
        page = await http.get("/")
        assert page.status_code == 200 and "plotly.min.js" in page.text
        js = await http.get("/static/plotly.min.js")
        assert js.status_code == 200 and len(js.content) > 1_000_000  # from the plotly wheel, not a CDN
        assert (await http.get("/static/../../demo.py")).status_code == 404
        # the runtime's own endpoints share the port
        health = (await http.get("/healthz")).json()
        assert health["service"] == "dashboard" and health["simulated"] is True


async def test_a_service_that_fails_to_activate_is_named_with_its_log(tmp_path) -> None:  # type: ignore[no-untyped-def]
    def wrong_code(doc: dict) -> None:  # type: ignore[type-arg]
        doc["packages"]["other"] = {"sim": {"measurements": ["00" * 32]}}
        doc["services"]["alerting"]["package"] = "other"

    demo = WaterDemo(DemoOptions(scenario=default_scenario(), speed=0, customize=wrong_code,
                                 services=("alerting",)))
    with pytest.raises(DemoError) as err:
        await asyncio.wait_for(demo.start(), 120)
    message = str(err.value)
    assert message.startswith("service alerting failed to start"), message
    assert "activation of 'alerting'" in message  # the log tail says why
    assert demo.root is None  # cleaned up


async def test_stop_terminates_every_process(tmp_path) -> None:  # type: ignore[no-untyped-def]
    demo = WaterDemo(DemoOptions(scenario=default_scenario(), speed=3600, services=("alerting", "dashboard")))
    await asyncio.wait_for(demo.start(), 120)
    procs = [s.proc for s in demo.services.values()]
    root = demo.root
    await asyncio.wait_for(demo.stop(), 60)
    assert all(p.returncode == 0 for p in procs), demo.exit_codes()
    assert root is not None and not root.exists()
    for p in procs:
        with pytest.raises(ProcessLookupError):
            p.send_signal(signal.SIGCONT)
