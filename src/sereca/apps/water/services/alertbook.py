"""The alert list: alarms merged per place, escalated when they repeat.

An alarm joins an open alert when it names the same pipe or node, or lies
within ``radius`` (map units) of it, and comes within ``window`` simulated
seconds of the alert's last alarm; otherwise it opens a new alert.  An
alert starts as ``warning`` and becomes ``critical`` once ``escalate_count``
alarms have hit it or one alarm's score reaches ``critical_score``.
Redelivered alarms (same id) are ignored.
"""

from __future__ import annotations

import math
from collections import OrderedDict

from sereca.apps.water.services.messages import AlarmMessage, Alert

WARNING, CRITICAL = "warning", "critical"
# Alarms this close together, as a fraction of the network's extent, are one place.
RADIUS_FRACTION = 0.05


def default_radius(bounds: list[float]) -> float:
    """Merge radius for a network with ``bounds`` = [xmin, ymin, xmax, ymax] (map units)."""
    xmin, ymin, xmax, ymax = bounds
    return RADIUS_FRACTION * math.hypot(xmax - xmin, ymax - ymin)


class AlertBook:
    def __init__(self, *, radius: float, window: float = 2 * 86400.0, escalate_count: int = 2,
                 critical_score: float = 3.0, max_alerts: int = 1000, max_seen: int = 10000) -> None:
        if radius < 0 or window <= 0 or escalate_count < 1 or max_alerts < 1:
            raise ValueError("radius >= 0, window > 0, escalate_count >= 1 and max_alerts >= 1")
        self.radius = radius
        self.window = window
        self.escalate_count = escalate_count
        self.critical_score = critical_score
        self.max_alerts = max_alerts
        self._alerts: OrderedDict[str, Alert] = OrderedDict()
        self._seen: OrderedDict[str, None] = OrderedDict()
        self._max_seen = max_seen

    def __len__(self) -> int:
        return len(self._alerts)

    def alerts(self) -> list[Alert]:
        """Newest first."""
        return sorted(self._alerts.values(), key=lambda a: (a.last_time, a.time), reverse=True)

    def add(self, alarm: AlarmMessage) -> Alert | None:
        """Merge ``alarm``; return the new or changed alert, or None for a repeated alarm id."""
        if alarm.id in self._seen:
            return None
        self._seen[alarm.id] = None
        if len(self._seen) > self._max_seen:
            self._seen.popitem(last=False)
        match = self._match(alarm)
        if match is None:
            alert = Alert(id=alarm.id, pipe=alarm.pipe, node=alarm.node, x=alarm.x, y=alarm.y, time=alarm.time,
                          last_time=alarm.time, count=1, level=self._level(1, alarm.score), score=alarm.score,
                          confidence=alarm.confidence, sensors=alarm.sensors, reading_sent=alarm.reading_sent)
            if len(self._alerts) >= self.max_alerts:
                self._alerts.popitem(last=False)  # the oldest goes: the list must stay bounded
        else:
            count = match.count + 1
            score = max(match.score, alarm.score)
            # The place is the latest localisation: later alarms have seen more of the leak.
            alert = match.model_copy(update={
                "pipe": alarm.pipe, "node": alarm.node, "x": alarm.x, "y": alarm.y,
                "last_time": max(match.last_time, alarm.time), "count": count, "score": score,
                "level": self._level(count, score), "confidence": max(match.confidence, alarm.confidence),
                "sensors": alarm.sensors, "reading_sent": alarm.reading_sent,
            })
        self._alerts[alert.id] = alert
        return alert

    def _level(self, count: int, score: float) -> str:
        return CRITICAL if count >= self.escalate_count or score >= self.critical_score else WARNING

    def _match(self, alarm: AlarmMessage) -> Alert | None:
        best, best_d = None, math.inf
        for alert in self._alerts.values():
            if abs(alarm.time - alert.last_time) > self.window:
                continue
            if alarm.pipe == alert.pipe or alarm.node == alert.node:
                return alert
            d = math.hypot(alarm.x - alert.x, alarm.y - alert.y)
            if d <= self.radius and d < best_d:
                best, best_d = alert, d
        return best
