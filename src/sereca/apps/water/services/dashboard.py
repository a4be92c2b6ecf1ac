"""``dashboard``: a web page over the bus bridge.

Draws the network from its coordinates, shows live sensor values and places
alerts on the map; a SIMULATION banner when the TEE is simulated.  The page,
its JSON API (``svc.include_router``) and the WebSocket bridge
(``svc.bridge``, Vert.x frames) are served on the service's own HTTP port,
so the page is one origin.  Browsers authenticate with ``DASHBOARD_TOKEN``.

Run: ``sereca run sereca.apps.water.services.dashboard:svc --http-port 8080``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from sereca import Service
from sereca.apps.water.dashboard.web import create_router
from sereca.apps.water.errors import WaterConfigError
from sereca.apps.water.services import config
from sereca.apps.water.services.messages import ALERTS, ALERTS_LIST, READINGS, Alert, AlertList, ReadingBatch
from sereca.errors import SerecaError

BRIDGE_PATH = "/eventbus"


def _network_view(network: str, sensors: Any) -> dict[str, Any]:
    from sereca.apps.water.network import load_network

    geo = load_network(network).geometry(sensors)
    return {
        "name": geo["name"],
        "bounds": geo["bounds"],
        "links": [{"id": link["id"], "type": link["type"], "path": link["path"]} for link in geo["links"]],
        "sensors": [{k: s[k] for k in ("id", "kind", "element", "x", "y")} for s in geo["sensors"]],
    }


class Dashboard:
    def __init__(self, svc: Service) -> None:
        self.svc = svc
        m = svc.metrics
        self.readings_total = m.counter("water_dashboard_readings_total", "Sensor values received")
        self.alerts_gauge = m.gauge("water_dashboard_alerts", "Alerts known to the dashboard")
        self._network_task: asyncio.Task[dict[str, Any]] | None = None
        self.values: dict[str, float] = {}
        self.sim_time: float | None = None
        self.readings = 0
        self._alerts: dict[str, Alert] = {}

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        params = self.svc.params
        if not params.get(config.DASHBOARD_TOKEN):
            raise WaterConfigError(f"parameter {config.DASHBOARD_TOKEN} (the browser token) was not provisioned")
        # The map loads in the background: the page and the bridge serve at once.
        self._network_task = asyncio.create_task(
            asyncio.to_thread(_network_view, config.network(params), config.sensors(params)), name="network-map")

    async def stop(self) -> None:
        if self._network_task is not None and not self._network_task.done():
            self._network_task.cancel()

    def tokens(self) -> list[str]:
        if not self.svc.running:
            return []
        raw = self.svc.params.get(config.DASHBOARD_TOKEN) or ""
        return [t.strip() for t in raw.split(",") if t.strip()]

    # -- bus -------------------------------------------------------------------

    async def on_readings(self, batch: ReadingBatch) -> None:
        self.values.update(batch.values)
        self.sim_time = batch.t
        self.readings += len(batch.values)
        self.readings_total.inc(len(batch.values))

    async def on_alert(self, alert: Alert) -> None:
        self._alerts[alert.id] = alert
        self.alerts_gauge.set(len(self._alerts))

    # -- what the page asks for ------------------------------------------------

    def info(self) -> dict[str, Any]:
        svc = self.svc
        return {
            "service": svc.name,
            "instance": svc.instance_id,
            "network": config.network(svc.params),
            "tee": svc.platform,
            "simulated": svc.simulated,
            "bridge_path": BRIDGE_PATH,
            "addresses": [READINGS, ALERTS],
            "readings_address": READINGS,
            "alerts_address": ALERTS,
            "alerts_list_address": ALERTS_LIST,
        }

    async def network(self) -> dict[str, Any]:
        if self._network_task is None:
            raise WaterConfigError("the dashboard has not started")
        return await asyncio.wait_for(asyncio.shield(self._network_task), 60)

    def state(self) -> dict[str, Any]:
        return {"readings": self.readings, "sim_time": self.sim_time, "values": self.values,
                "alerts": len(self._alerts)}

    async def alerts(self) -> list[dict[str, Any]]:
        # The alerting service holds the list; what arrived on water.alerts covers its outages.
        with contextlib.suppress(SerecaError, TimeoutError):
            reply = await self.svc.request(ALERTS_LIST, {}, reply_model=AlertList, timeout=2.0)
            for alert in reply.alerts:
                self._alerts.setdefault(alert.id, alert)
                if alert.last_time >= self._alerts[alert.id].last_time:
                    self._alerts[alert.id] = alert
        self.alerts_gauge.set(len(self._alerts))
        ordered = sorted(self._alerts.values(), key=lambda a: a.last_time, reverse=True)
        return [a.model_dump(mode="json") for a in ordered]


def build() -> Service:
    svc = Service("dashboard", description="Web dashboard: network map, live readings, alerts")
    dashboard = Dashboard(svc)
    svc.bridge(outbound=[READINGS, ALERTS], inbound=[ALERTS_LIST], token_param=config.DASHBOARD_TOKEN,
               path=BRIDGE_PATH)
    svc.include_router(create_router(dashboard, dashboard.tokens))
    svc.on_start(dashboard.start)
    svc.on_stop(dashboard.stop)
    svc.consumer(READINGS, description="Live sensor values")(dashboard.on_readings)
    svc.consumer(ALERTS, description="New and changed alerts")(dashboard.on_alert)
    return svc


svc = build()
