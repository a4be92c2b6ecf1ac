"""BattLeDIM-style scoring of leak alarms against the true leaks.

Rules (BattLeDIM 2020, detection and localisation part):

* An alarm is a **true positive** when it falls between a leak's start and end
  (end = repair; an unrepaired leak lasts to the end) and its pipe is within
  ``max_distance`` (300 m) of network distance of the leaking pipe.
* Only the first such alarm of a leak counts; **repeat alarms** for a leak
  already found count zero (neither true nor false).
* Every other alarm is a **false positive**.
* **Detection delay** = alarm time - leak start, for true positives.

precision = TP / (TP + FP) (0 when there is no alarm), recall = TP / leaks.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from sereca.apps.water.errors import WaterConfigError
from sereca.apps.water.models import Leak
from sereca.apps.water.network import Network

MAX_DISTANCE_M = 300.0


@dataclass(frozen=True)
class AlarmRecord:
    """What scoring needs of an alarm."""

    time: float
    pipe: str


@dataclass
class LeakOutcome:
    pipe: str
    type: str
    start: float
    end: float | None
    diameter: float
    detected: bool = False
    alarm_time: float | None = None
    alarm_pipe: str | None = None
    distance_m: float | None = None
    delay_s: float | None = None
    repeats: int = 0


@dataclass
class Score:
    true_positives: int
    false_positives: int
    false_negatives: int
    repeats: int
    precision: float
    recall: float
    median_delay_s: float | None
    median_delay_abrupt_s: float | None
    median_delay_incipient_s: float | None
    max_distance_m: float
    leaks: list[LeakOutcome] = field(default_factory=list)
    false_alarms: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _median(values: list[float]) -> float | None:
    return float(statistics.median(values)) if values else None


def score(alarms: Sequence[AlarmRecord | Any], leaks: Sequence[Leak], network: Network,
          max_distance: float = MAX_DISTANCE_M) -> Score:
    """Score ``alarms`` (anything with ``time`` and ``pipe``) against the true ``leaks``."""
    known_links = set(network.wn.link_name_list)
    for i, alarm in enumerate(alarms):
        if alarm.pipe not in known_links:
            raise WaterConfigError(f"alarm {i} (t={alarm.time:g} s): no link {alarm.pipe!r} in network {network.name}")
    network.validate_pipes([leak.pipe for leak in leaks])
    distance = network.pipe_distance_fn(list(dict.fromkeys(leak.pipe for leak in leaks)))
    outcomes = [LeakOutcome(pipe=lk.pipe, type=lk.type, start=lk.start, end=lk.end, diameter=lk.diameter)
                for lk in leaks]
    tp = fp = repeats = 0
    false_alarms: list[dict[str, Any]] = []
    for alarm in sorted(alarms, key=lambda a: a.time):
        matches = []
        for leak, outcome in zip(leaks, outcomes, strict=True):
            if alarm.time < leak.start or (leak.end is not None and alarm.time > leak.end):
                continue
            d = distance(leak.pipe, alarm.pipe)
            if d <= max_distance:
                matches.append((outcome.detected, d, leak.start, outcome))
        if not matches:
            fp += 1
            false_alarms.append({"time": alarm.time, "pipe": alarm.pipe})
            continue
        fresh = [m for m in matches if not m[0]]
        if not fresh:
            repeats += 1
            min(matches, key=lambda m: m[1])[3].repeats += 1
            continue
        # Credit the nearest undetected leak (earliest start on ties).
        _, d, _, outcome = min(fresh, key=lambda m: (m[1], m[2]))
        outcome.detected = True
        outcome.alarm_time = alarm.time
        outcome.alarm_pipe = alarm.pipe
        outcome.distance_m = d
        outcome.delay_s = alarm.time - outcome.start
        tp += 1
    delays = [o.delay_s for o in outcomes if o.delay_s is not None]
    return Score(
        true_positives=tp,
        false_positives=fp,
        false_negatives=sum(1 for o in outcomes if not o.detected),
        repeats=repeats,
        precision=tp / (tp + fp) if tp + fp else 0.0,
        recall=tp / len(outcomes) if outcomes else 0.0,
        median_delay_s=_median(delays),
        median_delay_abrupt_s=_median([o.delay_s for o in outcomes if o.delay_s is not None and o.type == "abrupt"]),
        median_delay_incipient_s=_median(
            [o.delay_s for o in outcomes if o.delay_s is not None and o.type == "incipient"]),
        max_distance_m=max_distance,
        leaks=outcomes,
        false_alarms=false_alarms,
    )
