"""``dashboard``: a web page over the bus bridge.

Draws the network from its coordinates, shows live sensor values and places
alerts on the map; a SIMULATION banner when the TEE is simulated.  The page,
its JSON API and the WebSocket bridge (Vert.x frames) share one port of the
dashboard's own (``DASHBOARD_PORT``, 0 = free; reported as the metric
``water_dashboard_http_port``), because the runtime's HTTP app has no hook
for extra routes.  Browsers authenticate with ``DASHBOARD_TOKEN``.

Run: ``sereca run sereca.apps.water.services.dashboard:svc``.
"""

from __future__ import annotations

import asyncio
import contextlib
from types import SimpleNamespace
from typing import Any

from sereca import Service
from sereca.apps.water.dashboard.server import WebServer
from sereca.apps.water.dashboard.web import create_app
from sereca.apps.water.errors import WaterConfigError
from sereca.apps.water.services import config
from sereca.apps.water.services.messages import ALERTS, ALERTS_LIST, READINGS, Alert, AlertList, ReadingBatch
from sereca.errors import SerecaError
from sereca.service.bridge import Bridge, BridgeOptions

BRIDGE_PATH = "/eventbus"


class _BridgeHost:
    """What :class:`sereca.service.bridge.Bridge` uses of a runtime, taken from the running service."""

    def __init__(self, svc: Service) -> None:
        self.service = svc

    @property
    def ready(self) -> bool:
        return self.service.running

    @property
    def bus(self) -> Any:
        return self.service.bus

    @property
    def context(self) -> Any:
        return SimpleNamespace(params=self.service.params)


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
        self.port_gauge = m.gauge("water_dashboard_http_port", "Port of the dashboard page (0 until it serves)")
        self.server: WebServer | None = None
        self.bridge: Bridge | None = None
        self._network: dict[str, Any] = {}
        self.values: dict[str, float] = {}
        self.sim_time: float | None = None
        self.readings = 0
        self._alerts: dict[str, Alert] = {}

    # -- lifecycle -------------------------------------------------------------

    async def start(self) -> None:
        params = self.svc.params
        if not params.get(config.DASHBOARD_TOKEN):
            raise WaterConfigError(f"parameter {config.DASHBOARD_TOKEN} (the browser token) was not provisioned")
        self._network = await asyncio.to_thread(_network_view, config.network(params), config.sensors(params))
        options = BridgeOptions(outbound=(READINGS, ALERTS), inbound=(ALERTS_LIST,),
                                token_param=config.DASHBOARD_TOKEN, path=BRIDGE_PATH)
        self.bridge = Bridge(options, _BridgeHost(self.svc))  # type: ignore[arg-type]
        app = create_app(self, self._tokens, self.bridge.mount)
        port = int(config.number(params, config.DASHBOARD_PORT, 0))
        self.server = WebServer(app, params.get(config.DASHBOARD_HOST) or "127.0.0.1", port)
        await self.server.start()
        self.port_gauge.set(self.server.port or 0)
        self.svc.logger.info("dashboard: %s/?token=...", self.server.url)

    async def stop(self) -> None:
        if self.bridge is not None:
            await self.bridge.close_all()
        if self.server is not None:
            await self.server.stop()
            self.port_gauge.set(0)

    def _tokens(self) -> list[str]:
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
            "network": self._network.get("name"),
            "tee": svc.platform,
            "simulated": svc.simulated,
            "bridge_path": BRIDGE_PATH,
            "addresses": [READINGS, ALERTS],
            "readings_address": READINGS,
            "alerts_address": ALERTS,
            "alerts_list_address": ALERTS_LIST,
        }

    def network(self) -> dict[str, Any]:
        return self._network

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
    svc.on_start(dashboard.start)
    svc.on_stop(dashboard.stop)
    svc.consumer(READINGS, description="Live sensor values")(dashboard.on_readings)
    svc.consumer(ALERTS, description="New and changed alerts")(dashboard.on_alert)
    return svc


svc = build()
