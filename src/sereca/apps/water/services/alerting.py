"""``alerting``: deduplicates and escalates alarms, keeps the alert list.

Consumes ``water.alarms`` (durable: alarms sent while this service was down
are delivered when it is back), publishes every new or changed alert on
``water.alerts`` and answers ``water.alerts.list`` requests with the list.

Run: ``sereca run sereca.apps.water.services.alerting:svc``.
"""

from __future__ import annotations

import asyncio

from sereca import Service
from sereca.apps.water.services import config
from sereca.apps.water.services.alertbook import AlertBook, default_radius
from sereca.apps.water.services.messages import ALARMS, ALERTS, ALERTS_LIST, AlarmMessage, Alert, AlertList, AlertQuery


async def _network_radius(network: str) -> float:
    from sereca.apps.water.network import load_network

    net = await asyncio.to_thread(load_network, network)
    return default_radius(net.geometry()["bounds"])


class Alerting:
    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self.out = svc.publisher(ALERTS, Alert, description="A new or changed alert")
        m = svc.metrics
        self.alarms = m.counter("water_alerting_alarms_total", "Alarms received (duplicates included)")
        self.alerts_total = m.gauge("water_alerting_alerts", "Alerts in the list")
        self.critical = m.gauge("water_alerting_critical", "Critical alerts in the list")
        self.book: AlertBook | None = None

    async def start(self) -> None:
        params = self.svc.params
        radius = params.get(config.DEDUP_RADIUS)
        self.book = AlertBook(
            radius=config.number(params, config.DEDUP_RADIUS, 0.0) if radius else await _network_radius(
                config.network(params)),
            escalate_count=int(config.number(params, config.ESCALATE_COUNT, 2, minimum=1)),
        )
        self.svc.logger.info("alert book ready: merge radius %.1f", self.book.radius)

    async def on_alarm(self, alarm: AlarmMessage) -> None:
        self.alarms.inc()
        if self.book is None:
            return
        alert = self.book.add(alarm)
        if alert is None:
            return
        alerts = self.book.alerts()
        self.alerts_total.set(len(alerts))
        self.critical.set(sum(1 for a in alerts if a.level == "critical"))
        self.svc.logger.warning("alert %s: %s on pipe %s (%d alarm(s))", alert.id[:8], alert.level, alert.pipe,
                                alert.count)
        await self.out.publish(alert)

    async def list_alerts(self, query: AlertQuery) -> AlertList:
        alerts = self.book.alerts() if self.book is not None else []
        return AlertList(alerts=alerts[: query.limit])


def build() -> Service:
    svc = Service("alerting", description="Alert deduplication, escalation and the alert list")
    alerting = Alerting(svc)
    svc.on_start(alerting.start)
    svc.consumer(ALARMS, description="Alarms from the leak detector")(alerting.on_alarm)
    svc.consumer(ALERTS_LIST, description="The alert list, newest first")(alerting.list_alerts)
    return svc


svc = build()
