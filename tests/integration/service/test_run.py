"""Two `sereca run` processes, attested at a real CAS, talking over a real nats-server."""

from __future__ import annotations

import asyncio
import re

import httpx
import pytest

from sereca.bus.nats_server import free_port

from typing import Any

T = 20.0

pytestmark = pytest.mark.slow


def metric(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if line.startswith(name) and all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def wait_metric(http: httpx.AsyncClient, name: str, at_least: float, *, logs_of: tuple[Any, ...] = (),
                      **labels: str) -> None:
    loop = asyncio.get_running_loop()
    end = loop.time() + T
    while True:
        text = (await http.get("/metrics")).text
        if metric(text, name, **labels) >= at_least:
            return
        if loop.time() > end:
            logs = "\n".join(f"--- {svc.name}\n{svc.stderr()[-2000:]}" for svc in logs_of)
            raise AssertionError(f"{name}{labels} stayed below {at_least}:\n{text[-2000:]}\n{logs}")
        await asyncio.sleep(0.1)


def assert_one_error_line(svc: Any, rc: int, *fragments: str) -> None:
    err = svc.stderr()
    assert rc == 2, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


async def test_two_services_talk_and_drain_on_sigterm(deployment: Any) -> None:
    detector = await deployment.run("detector/app.py:svc", name="detector")
    sensor = await deployment.run("sensor/app.py:svc", name="sensor")
    det_url, sen_url = await detector.http(), await sensor.http()
    async with httpx.AsyncClient(base_url=det_url, timeout=T) as det, \
            httpx.AsyncClient(base_url=sen_url, timeout=T) as sen:
        health = (await det.get("/healthz")).json()
        assert health["simulated"] is True and health["platform"] == "sim"
        assert re.fullmatch(r"detector-\d+", health["instance_id"])
        assert (await det.get("/readyz")).status_code == 200
        # request/reply: the sensor gets verdicts computed with the CAS-provisioned threshold
        await wait_metric(sen, "sensor_verdicts_total", 3, leak="true", logs_of=(sensor, detector))
        # publish: the detector receives the readings
        await wait_metric(det, "detector_readings_total", 3, logs_of=(sensor, detector))
        det_metrics = (await det.get("/metrics")).text
        assert metric(det_metrics, "sereca_service_info", service="detector", simulated="true") == 1
        assert metric(det_metrics, "sereca_messages_rejected_total") == 0
        doc = (await det.get("/asyncapi.json")).json()
        assert {c["address"] for c in doc["channels"].values()} == {"readings.>", "detector.check"}
    for svc in (sensor, detector):
        svc.terminate()
    for svc in (sensor, detector):
        rc = await svc.wait_exit()
        assert rc == 0, svc.stderr()
        assert "Traceback" not in svc.stderr()
        assert "SIMULATION" in svc.stderr()
        assert f"sereca: {svc.name} ready" in svc.stdout()


async def test_cas_unreachable_is_one_line(deployment: Any) -> None:
    svc = await deployment.run("detector/app.py:svc", "--cas", f"https://127.0.0.1:{free_port()}")
    assert_one_error_line(svc, await svc.wait_exit(), "cannot reach the CAS")


async def test_activation_refused_for_other_code(deployment: Any) -> None:
    # Measure the sensor's code while claiming to be the detector: the CAS must refuse.
    svc = await deployment.run("detector/app.py:svc", "--measure", str(deployment.apps["sensor"]))
    assert_one_error_line(svc, await svc.wait_exit(), "activation of 'detector'", "rejected")


async def test_nats_refused_is_one_line(deployment: Any) -> None:
    svc = await deployment.run("detector/app.py:svc", "--nats", f"nats://127.0.0.1:{free_port()}")
    assert_one_error_line(svc, await svc.wait_exit(), "cannot connect to the bus")


async def test_mutual_tls_with_the_activation_certificate(tls_deployment: Any) -> None:
    # No --nats: the URL (tls://) comes from the manifest; the client certificate from the activation.
    detector = await tls_deployment.run("detector/app.py:svc", name="detector")
    sensor = await tls_deployment.run("sensor/app.py:svc", name="sensor")
    det_url = await detector.http()
    async with httpx.AsyncClient(base_url=det_url, timeout=T) as det:
        await wait_metric(det, "sereca_messages_handled_total", 3, address="detector.check", outcome="ok",
                          logs_of=(sensor, detector))
    for svc in (sensor, detector):
        svc.terminate()
    for svc in (sensor, detector):
        assert await svc.wait_exit() == 0, svc.stderr()


async def test_http_tls_with_the_activation_certificate(deployment: Any) -> None:
    import ssl

    detector = await deployment.run("detector/app.py:svc", "--http-tls", name="detector")
    base = (await detector.http()).replace("http://", "https://")
    ctx = ssl.create_default_context(cadata=deployment.cas_root_file.read_text())
    ctx.check_hostname = False  # the certificate names the service (detector, detector-0), not a host
    async with httpx.AsyncClient(base_url=base, verify=ctx, timeout=T) as http:
        health = (await http.get("/healthz")).json()
    assert health["service"] == "detector"
    detector.terminate()
    assert await detector.wait_exit() == 0, detector.stderr()
    assert "http https://" in detector.stdout()


async def test_lost_broker_stops_the_service_with_status_1(deployment: Any, nats: Any) -> None:
    detector = await deployment.run("detector/app.py:svc", "--nats-reconnect-s", "2", name="detector")
    async with httpx.AsyncClient(base_url=await detector.http(), timeout=T) as http:
        ready = (await http.get("/readyz")).json()
        assert ready["ready"] is True and ready["bus"] == "connected"
    await asyncio.to_thread(nats.stop)
    assert await detector.wait_exit(30) == 1, detector.stderr()
    assert "lost the connection to the message broker" in detector.stderr()
    assert "Traceback" not in detector.stderr()
