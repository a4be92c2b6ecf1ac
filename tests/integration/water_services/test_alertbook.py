"""The alert list's rules and the replay's pacing (no servers needed)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from sereca.apps.water.services.alertbook import CRITICAL, WARNING, AlertBook, default_radius
from sereca.apps.water.services.messages import AlarmMessage
from sereca.apps.water.services.replay import Replay


def alarm(i: str, pipe: str = "p1", node: str = "n1", x: float = 0.0, y: float = 0.0, t: float = 100.0,
          score: float = 1.2) -> AlarmMessage:
    return AlarmMessage(id=i, time=t, pipe=pipe, node=node, score=score, confidence=0.9, x=x, y=y, reading_sent=1.0)


def test_same_place_merges_and_escalates() -> None:
    book = AlertBook(radius=10.0, escalate_count=2)
    first = book.add(alarm("a"))
    assert first is not None and first.level == WARNING and first.count == 1
    second = book.add(alarm("b", pipe="p2", node="n2", x=3.0, y=4.0, t=400.0))  # 5 map units away
    assert second is not None and second.id == first.id and second.count == 2 and second.level == CRITICAL
    assert second.pipe == "p2" and second.time == 100.0 and second.last_time == 400.0
    assert len(book) == 1


def test_far_or_late_alarms_open_new_alerts() -> None:
    book = AlertBook(radius=10.0, window=3600.0)
    book.add(alarm("a"))
    far = book.add(alarm("b", pipe="p9", node="n9", x=100.0))
    late = book.add(alarm("c", t=100.0 + 7200.0))
    assert far is not None and late is not None and len({far.id, late.id, "a"}) == 3
    assert book.alerts()[0].id == "c"  # newest first


def test_redelivered_alarm_is_ignored_and_high_score_is_critical() -> None:
    book = AlertBook(radius=1.0, critical_score=3.0)
    assert book.add(alarm("a", score=3.5)).level == CRITICAL  # type: ignore[union-attr]
    assert book.add(alarm("a", score=3.5)) is None
    assert book.alerts()[0].count == 1


def test_list_stays_bounded() -> None:
    book = AlertBook(radius=0.0, max_alerts=3)
    for i in range(5):
        book.add(alarm(str(i), pipe=f"p{i}", node=f"n{i}", x=float(i * 100)))
    assert sorted(a.id for a in book.alerts()) == ["2", "3", "4"]


def test_default_radius_scales_with_the_network() -> None:
    assert default_radius([0, 0, 3000, 4000]) == pytest.approx(250.0)


async def test_replay_paces_by_speed_and_skips_missing_values() -> None:
    times = np.array([0.0, 300.0, 600.0])
    values = np.array([[1.0, np.nan], [2.0, 3.0], [4.0, 5.0]])
    replay = Replay(times, ["a", "b"], values)
    got: list[tuple[float, dict[str, float], float]] = []
    loop = asyncio.get_running_loop()

    async def emit(step) -> None:  # type: ignore[no-untyped-def]
        got.append((step.t, step.values, loop.time()))

    start = loop.time()
    assert await replay.run(emit, speed=3000.0) == 3  # 300 s of simulation = 0.1 s
    assert [g[1] for g in got] == [{"a": 1.0}, {"a": 2.0, "b": 3.0}, {"a": 4.0, "b": 5.0}]
    assert got[2][2] - start == pytest.approx(0.2, abs=0.08)
    got.clear()
    await replay.run(emit, speed=0)
    assert len(got) == 3 and got[-1][2] - got[0][2] < 0.05


def test_replay_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError):
        Replay(np.array([0.0]), ["a", "b"], np.zeros((2, 2)))


def test_mqtt_url_becomes_settings() -> None:
    from sereca.apps.water.errors import WaterConfigError
    from sereca.apps.water.services.mqtt_source import settings_from_url

    s = settings_from_url("mqtts://gw:s%40cret@broker/plant/a")
    assert (s.host, s.port, s.prefix, s.username, s.password, s.tls) == ("broker", 8883, "plant/a", "gw", "s@cret", True)
    assert settings_from_url("mqtt://broker").prefix == "sereca/water"
    assert settings_from_url("mqtt://broker:1884").port == 1884
    for bad in ("http://x/y", "mqtt:///topic", "mqtt://h/sensors/#", "mqtt://h/a/+/b", "mqtt://h:99999"):
        with pytest.raises(WaterConfigError):
            settings_from_url(bad)


def test_detector_schedule_is_one_of_two_names() -> None:
    from sereca.apps.water.errors import WaterConfigError
    from sereca.apps.water.services import config
    from sereca.cli.demo import Schedule

    schedules, name = config.DETECTOR_SCHEDULES, config.DETECTOR_SCHEDULE
    assert config.choice({}, name, schedules) == "idle"
    assert config.choice({name: "steps"}, name, schedules) == "steps"
    with pytest.raises(WaterConfigError, match="WATER_DETECTOR_SCHEDULE='fast' must be one of: idle, steps"):
        config.choice({name: "fast"}, name, schedules)
    assert tuple(s.value for s in Schedule) == schedules  # `sereca demo water --schedule` offers the same
