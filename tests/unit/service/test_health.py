"""The HTTP side of a running service: /healthz, /readyz, /metrics, /asyncapi.json."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, Field

from sereca.service import Service, ServiceStartupError



class Reading(BaseModel):
    sensor: str
    pressure: float = Field(ge=0)

T = 5.0


async def test_health_metrics_and_asyncapi_over_http(bus: Any, peer: Any) -> None:
    svc = Service("detector")

    @svc.consumer("sensors.>")
    async def on_reading(reading: Reading) -> None:
        return None

    custom = svc.metrics.counter("detector_leaks_total", "Leaks found", ["zone"])
    custom.labels("north").inc(3)

    async with svc.run_local(bus, http_port=0, simulated=True, platform="sim", tee="sim") as rt:
        assert rt.http_url and rt.http is not None and rt.http.port
        async with httpx.AsyncClient(base_url=rt.http_url, timeout=T) as http:
            health = (await http.get("/healthz")).json()
            assert health["service"] == "detector" and health["simulated"] is True
            assert "SIMULATION" in health["warning"] and health["state"] == "ready"
            ready = await http.get("/readyz")
            assert ready.status_code == 200 and ready.json()["ready"] is True
            await peer.publish("sensors.a", {"sensor": "a"})  # invalid: no pressure
            await asyncio.sleep(0.05)
            metrics = (await http.get("/metrics")).text
            assert 'simulated="true"' in metrics and "sereca_service_simulated 1.0" in metrics
            assert 'sereca_messages_rejected_total{address="sensors.>",reason="validation"} 1.0' in metrics
            assert 'detector_leaks_total{zone="north"} 3.0' in metrics
            doc = (await http.get("/asyncapi.json")).json()
            assert doc["channels"]["sensors_all"]["address"] == "sensors.>"


async def test_readyz_is_503_while_draining(bus: Any, peer: Any) -> None:
    svc = Service("s")
    gate = asyncio.Event()
    entered = asyncio.Event()

    @svc.consumer("t.slow")
    async def slow(msg) -> None:  # type: ignore[no-untyped-def]
        entered.set()
        await gate.wait()

    async with svc.run_local(bus, http_port=0) as rt:
        async with httpx.AsyncClient(base_url=rt.http_url or "", timeout=T) as http:
            await peer.send("t.slow", None)
            await asyncio.wait_for(entered.wait(), T)
            stopping = asyncio.create_task(rt.stop())
            await asyncio.sleep(0.05)
            r = await http.get("/readyz")
            assert r.status_code == 503 and r.json()["state"] == "draining"
            gate.set()
            await asyncio.wait_for(stopping, T)
    assert rt.state == "stopped"


async def test_port_in_use_is_a_clear_startup_error(bus: Any, peer: Any) -> None:
    first, second = Service("a"), Service("b")
    async with first.run_local(bus, http_port=0) as rt:
        assert rt.http is not None
        with pytest.raises(ServiceStartupError, match="cannot serve HTTP"):
            async with second.run_local(bus, http_port=rt.http.port):
                raise AssertionError
    assert not second.running


async def test_application_routes_on_the_service_port(bus: Any) -> None:
    from fastapi import APIRouter
    from fastapi.responses import PlainTextResponse
    from starlette.applications import Starlette
    from starlette.routing import Route

    svc = Service("dash")
    api = APIRouter()

    @api.get("/state")
    async def state() -> dict[str, Any]:
        return {"instance": svc.instance_id}

    shadow = APIRouter()

    @shadow.get("/healthz")  # may not shadow the runtime's own
    async def fake_health() -> dict[str, str]:
        return {"status": "fake"}

    svc.include_router(api, prefix="/api")
    svc.include_router(shadow)
    svc.mount("/", Starlette(routes=[Route("/page", lambda request: PlainTextResponse("hello"))]))
    with pytest.raises(Exception, match="must start with '/'"):
        svc.mount("static", Starlette())
    async with svc.run_local(bus, http_port=0, instance_id="dash-0") as rt:
        async with httpx.AsyncClient(base_url=rt.http_url or "", timeout=T) as http:
            assert (await http.get("/api/state")).json() == {"instance": "dash-0"}
            assert (await http.get("/page")).text == "hello"
            assert (await http.get("/healthz")).json()["service"] == "dash"
            assert (await http.get("/metrics")).status_code == 200
