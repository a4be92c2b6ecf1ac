"""Bus addresses and message bodies of the water services.

One reading message carries one time step: every sensor's value at that
simulated time (batching keeps the per-message cost of sealing low).
``sent`` is the gateway's wall clock (Unix seconds) when the batch went out;
it travels along to the alert so the latency from reading to alert can be
measured end to end.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

READINGS = "water.readings"
ALARMS = "water.alarms"
ALERTS = "water.alerts"
ALERTS_LIST = "water.alerts.list"
DETECTOR_READY = "water.detector.ready"


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class ReadingBatch(_Body):
    """All sensor values of one time step."""

    t: float = Field(description="simulated time, s since the start of the demand patterns")
    seq: int = Field(ge=0, description="gateway sequence number of this batch")
    sent: float = Field(description="gateway wall clock when sent (Unix s)")
    values: dict[str, float] = Field(description="sensor id -> value (m for pressure and level, L/s for flow)")


class AlarmMessage(_Body):
    """One detection by the leak detector (see sereca.apps.water.Alarm)."""

    id: str
    time: float
    pipe: str
    node: str
    score: float
    confidence: float
    sensors: list[str] = Field(default_factory=list)
    x: float
    y: float
    reading_sent: float = Field(description="'sent' of the reading batch that raised the alarm")


class Alert(_Body):
    """An alert as the alerting service keeps it: alarms on one place merged."""

    id: str
    pipe: str
    node: str
    x: float
    y: float
    time: float = Field(description="simulated time of the first alarm")
    last_time: float = Field(description="simulated time of the latest alarm")
    count: int = Field(ge=1, description="alarms merged into this alert")
    level: str = Field(description="warning, then critical when escalated")
    score: float
    confidence: float
    sensors: list[str] = Field(default_factory=list)
    reading_sent: float = Field(description="'sent' of the reading batch behind the latest alarm")


class AlertQuery(_Body):
    """Body of a ``water.alerts.list`` request (empty: all alerts)."""

    limit: int = Field(default=1000, ge=1, le=10000)


class AlertList(_Body):
    alerts: list[Alert]


class DetectorStatus(_Body):
    """Reply to ``water.detector.ready``: the gateway replays only once a detector listens."""

    ready: bool
    steps: int = 0
    warming_up: bool = True
