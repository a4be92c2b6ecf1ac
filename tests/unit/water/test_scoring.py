"""BattLeDIM scoring rules on hand-built cases (Net1: pipes 11 and 12 share node 12, each 1609 m)."""

from __future__ import annotations

import pytest

from sereca.apps.water import AlarmRecord, Leak, Network, WaterConfigError, score

H = 3600.0


def leaks() -> list[Leak]:
    return [
        Leak(pipe="11", start=10 * H, end=40 * H, diameter=0.01),
        Leak(pipe="122", start=20 * H, diameter=0.02, type="incipient", peak=30 * H),
    ]


def test_true_positive_repeat_and_delay(net1: Network) -> None:
    alarms = [AlarmRecord(12 * H, "11"), AlarmRecord(13 * H, "11"), AlarmRecord(26 * H, "122")]
    result = score(alarms, leaks(), net1)
    assert (result.true_positives, result.false_positives, result.repeats) == (2, 0, 1)
    assert result.precision == 1.0 and result.recall == 1.0
    assert result.leaks[0].delay_s == 2 * H and result.leaks[1].delay_s == 6 * H
    assert result.median_delay_s == 4 * H
    assert result.median_delay_abrupt_s == 2 * H and result.median_delay_incipient_s == 6 * H


def test_alarms_outside_the_leak_window_are_false(net1: Network) -> None:
    alarms = [AlarmRecord(9 * H, "11"), AlarmRecord(41 * H, "11")]  # before start, after repair
    result = score(alarms, leaks(), net1)
    assert (result.true_positives, result.false_positives) == (0, 2)
    assert result.precision == 0.0 and result.recall == 0.0 and result.median_delay_s is None


def test_distance_rule(net1: Network) -> None:
    # Pipe 12 is 1609 m (midpoint to midpoint) from pipe 11: a false alarm at 300 m...
    result = score([AlarmRecord(12 * H, "12")], leaks(), net1)
    assert (result.true_positives, result.false_positives) == (0, 1)
    # ...and a hit when the allowed distance covers it.
    result = score([AlarmRecord(12 * H, "12")], leaks(), net1, max_distance=1700.0)
    assert result.true_positives == 1 and result.leaks[0].distance_m == pytest.approx(1609.3, abs=1)


def test_repeat_of_found_leak_counts_zero_but_far_alarm_counts_false(net1: Network) -> None:
    alarms = [AlarmRecord(11 * H, "11"), AlarmRecord(15 * H, "11"), AlarmRecord(16 * H, "31")]
    result = score(alarms, leaks(), net1)
    assert (result.true_positives, result.false_positives, result.repeats, result.false_negatives) == (1, 1, 1, 1)
    assert result.precision == 0.5 and result.recall == 0.5


def test_no_alarms(net1: Network) -> None:
    result = score([], leaks(), net1)
    assert result.precision == 0.0 and result.recall == 0.0 and result.false_negatives == 2


def test_unknown_pipe_is_a_clear_error(net1: Network) -> None:
    with pytest.raises(WaterConfigError, match="no link 'nope'"):
        score([AlarmRecord(1.0, "nope")], leaks(), net1)
