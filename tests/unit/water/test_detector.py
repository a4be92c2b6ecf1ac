from __future__ import annotations

import math
import time
from collections import deque
from pathlib import Path

import numpy as np
import pytest

from sereca.apps.water import (
    DetectorParams,
    Leak,
    LeakDetector,
    SensorSet,
    WaterConfigError,
    load_network,
    simulate,
)

NET3_SENSORS = SensorSet(
    pressure=["15", "35", "101", "117", "123", "143", "161", "173", "185", "197", "211", "231", "251", "267", "275"],
    flow=["10", "335", "20", "40", "50"],
    level=["1", "2", "3"],
)
PARAMS = DetectorParams(warmup=86400.0, horizon=2 * 86400.0)
LEAK = Leak(pipe="169", start="1d 6h", diameter=0.05)


@pytest.fixture(scope="module")
def net3():  # type: ignore[no-untyped-def]
    return load_network("Net3")


@pytest.fixture(scope="module")
def leaky(net3):  # type: ignore[no-untyped-def]
    return simulate(net3, [LEAK], NET3_SENSORS, days=2, seed=11).readings


@pytest.fixture(scope="module")
def two_leaks(net3):  # type: ignore[no-untyped-def]
    """Three days with LEAK and a second 5 cm leak far from it, from 2d 2h."""
    second = Leak(pipe="251", start="2d 2h", diameter=0.05)
    return simulate(net3, [LEAK, second], NET3_SENSORS, days=3, seed=11).readings


def test_detects_and_localises_a_leak(net3, leaky, cache_dir: Path) -> None:  # type: ignore[no-untyped-def]
    with LeakDetector.from_network(net3, NET3_SENSORS, PARAMS, cache_dir=cache_dir) as detector:
        alarms = detector.run(leaky)
    assert alarms, "the leak was not detected"
    first = alarms[0]
    # no alarm before it; found within 5 h (the detector localises over localise_delay = 3 h)
    assert LEAK.start < first.time <= LEAK.start + 5 * 3600
    distance = net3.pipe_distance_fn([LEAK.pipe])(LEAK.pipe, first.pipe)
    assert distance < 1000.0  # Net3's pipes are long (median ~300 m)
    assert 0.5 <= first.confidence <= 1.0 and first.sensors
    assert first.to_dict()["pipe"] == first.pipe and isinstance(first.x, float)


def test_no_alarm_without_leak(net3, cache_dir: Path) -> None:  # type: ignore[no-untyped-def]
    readings = simulate(net3, [], NET3_SENSORS, days=2, seed=12).readings
    with LeakDetector.from_network(net3, NET3_SENSORS, PARAMS, cache_dir=cache_dir) as detector:
        alarms = detector.run(readings)
        assert detector.status()["warming_up"] is False
    # Measurement noise alone: at most one false alarm in a day of detection on Net3
    # (its pumps switch between 5-min readings, which the model only approximates).
    assert len(alarms) <= 1


def test_streaming_equals_offline_and_is_fast(net3, leaky, cache_dir: Path) -> None:  # type: ignore[no-untyped-def]
    with LeakDetector.from_network(net3, NET3_SENSORS, PARAMS, cache_dir=cache_dir) as offline:
        expected = offline.run(leaky)
    cols = list(leaky.columns)
    with LeakDetector.from_network(net3, NET3_SENSORS, PARAMS, cache_dir=cache_dir) as streaming:
        started = time.perf_counter()
        got = []
        for t, row in zip(leaky.index, leaky.to_numpy(), strict=True):
            got += streaming.update(float(t), dict(zip(cols, row, strict=True)))
        elapsed = time.perf_counter() - started
    assert [(a.time, a.pipe) for a in got] == [(a.time, a.pipe) for a in expected]
    assert leaky.size / elapsed >= 5000, f"{leaky.size / elapsed:.0f} readings/s"


def test_reference_is_cached_on_disk(net3, cache_dir: Path) -> None:  # type: ignore[no-untyped-def]
    LeakDetector.from_network(net3, NET3_SENSORS, PARAMS, cache_dir=cache_dir).close()
    files = list(cache_dir.glob("reference-*.npz"))
    assert len(files) == 1
    before = files[0].stat().st_mtime_ns
    LeakDetector.from_network(net3, NET3_SENSORS, PARAMS, cache_dir=cache_dir).close()
    assert files[0].stat().st_mtime_ns == before  # reused, not rebuilt
    files[0].write_bytes(b"corrupt")
    LeakDetector.from_network(net3, NET3_SENSORS, PARAMS, cache_dir=cache_dir).close()  # rebuilt silently
    assert files[0].stat().st_size > 100


def test_untrusted_input_is_counted_not_fatal(net3, cache_dir: Path) -> None:  # type: ignore[no-untyped-def]
    with LeakDetector.from_network(net3, NET3_SENSORS, PARAMS, cache_dir=cache_dir) as detector:
        assert detector.update(0.0, {"pressure.15": "nan?", "bogus.sensor": 1.0}) == []  # 2 ignored
        assert detector.update(300.0, {"pressure.15": 30.0}) == []
        assert detector.update(300.0, {"pressure.15": 30.0}) == []  # not after the last step
        assert detector.update(float("nan"), {"pressure.15": 30.0}) == []
        assert detector.status()["ignored"] == 4 and detector.status()["steps"] == 1


def test_bad_sensor_set(net3) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(WaterConfigError, match="no node 'n1'"):
        LeakDetector.from_network(net3, ["pressure.n1"])
    with pytest.raises(WaterConfigError, match="kind one of"):
        LeakDetector.from_network(net3, ["temperature.15"])


def _count_solves(detector: LeakDetector) -> list[int]:
    """Count the detector's EPANET solves (a wrapper around its conditioned model)."""
    count = [0]
    real = detector._model.expected

    def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
        count[0] += 1
        return real(*args, **kwargs)

    detector._model.expected = counting  # type: ignore[method-assign]
    return count


def test_alarm_before_explain_refit_when_option_off(net3, two_leaks, cache_dir: Path) -> None:  # type: ignore[no-untyped-def]
    # Two far-apart leaks: the second detection meets a modelled leak, where the default
    # runs two joint re-fits before alarming; with explain_before_alarm=False it alarms
    # first and queues the re-fit behind (a background job).
    readings = two_leaks
    # A budget per step, so the queued re-fit visibly finishes steps after the alarm.
    params = PARAMS.model_copy(update={"explain_before_alarm": False, "work_budget": 16})
    with LeakDetector.from_network(net3, NET3_SENSORS, params, cache_dir=cache_dir) as detector:
        alarms = detector.run(readings)
        status = detector.status()
        deferred = [t for t, kind, *_ in detector._log if kind == "explain-deferred"]
    assert len(alarms) >= 2, [(a.time, a.pipe) for a in alarms]
    first = alarms[0]
    assert LEAK.start < first.time <= LEAK.start + 5 * 3600
    assert net3.pipe_distance_fn([LEAK.pipe])(LEAK.pipe, first.pipe) < 1000.0
    # Later alarms come while a leak is modelled (where the default re-fits before alarming).
    # This checks the mechanism only: on Net3 the second leak is poorly localised either way.
    assert status["deferred_refits"] >= 1 and deferred
    assert min(deferred) > alarms[1].time  # the re-fit finished after the alarm, not before it


@pytest.mark.parametrize("budget", [4, 16])
def test_no_update_exceeds_the_work_budget(net3, two_leaks, cache_dir: Path, budget: int) -> None:  # type: ignore[no-untyped-def]
    readings = two_leaks
    params = PARAMS.model_copy(update={"work_budget": budget})
    with LeakDetector.from_network(net3, NET3_SENSORS, params, cache_dir=cache_dir) as offline:
        expected = offline.run(readings)
    cols = list(readings.columns)
    with LeakDetector.from_network(net3, NET3_SENSORS, params, cache_dir=cache_dir) as detector:
        count = _count_solves(detector)
        per_step, got = [], []
        for t, row in zip(readings.index, readings.to_numpy(), strict=True):
            before = count[0]
            got += detector.update(float(t), dict(zip(cols, row, strict=True)))
            per_step.append(count[0] - before)
        status = detector.status()
    # One solve for the step itself, at most work_budget for the jobs (localisation, re-fits).
    assert max(per_step) <= 1 + budget
    assert sum(status["job_solves"].values()) > 20 * budget  # the heavy work did run, spread out
    assert expected, "no alarm"
    # Deterministic: what a live stream gets is what the offline run gets.
    assert [(a.time, a.node, a.size_lps) for a in got] == [(a.time, a.node, a.size_lps) for a in expected]


def test_work_between_steps_gives_what_an_unlimited_budget_gives(  # type: ignore[no-untyped-def]
        net3, two_leaks, cache_dir: Path) -> None:
    # The live service's "idle" schedule: each step stops its queued work after a moment,
    # the rest runs between steps in turns of 2 until nothing can run without more readings.
    readings = two_leaks
    unlimited = PARAMS.model_copy(update={"work_budget": None})
    with LeakDetector.from_network(net3, NET3_SENSORS, unlimited, cache_dir=cache_dir) as offline:
        expected = offline.run(readings)
    cols = list(readings.columns)
    with LeakDetector.from_network(net3, NET3_SENSORS, PARAMS, cache_dir=cache_dir) as detector:
        assert detector.work(2) == ([], 0)  # before any readings: nothing to do
        count = _count_solves(detector)
        got, turns = [], []
        for t, row in zip(readings.index, readings.to_numpy(), strict=True):
            before = count[0]
            got += detector.update(float(t), dict(zip(cols, row, strict=True)), work_seconds=0.0)
            assert count[0] - before == 1  # the step's own solve only: its share of queued work is 0 s
            while True:
                before = count[0]
                alarms, solves = detector.work(2)
                assert solves == count[0] - before <= 2
                got += alarms
                turns.append(solves)
                if solves == 0 and not alarms:
                    break
    assert sum(turns) > 100, "the heavy work did not run between steps"
    assert len(expected) >= 2
    assert [(a.time, a.node, a.size_lps) for a in got] == [(a.time, a.node, a.size_lps) for a in expected]


def test_job_result_applied_when_it_finishes(net3, cache_dir: Path) -> None:  # type: ignore[no-untyped-def]
    from sereca.apps.water.detector import _Job

    params = PARAMS.model_copy(update={"work_budget": 3})
    with LeakDetector.from_network(net3, NET3_SENSORS, params, cache_dir=cache_dir) as detector:
        count = _count_solves(detector)
        y = np.zeros(len(detector.sensor_ids))
        applied: list[tuple[float, str]] = []

        def job(name: str, solves: int):  # type: ignore[no-untyped-def]
            for _ in range(solves):
                yield from detector._solve(0.0, y, [])
            return name

        def done(t: float, value: str) -> list:  # type: ignore[type-arg]
            applied.append((t, value))
            return []

        s = detector._s
        s.jobs.append(_Job("background", job("refit", 4), done))
        s.jobs.append(_Job("urgent", job("localise", 2), done, urgent=True))
        for t in (1.0, 2.0, 3.0):
            before = count[0]
            detector._work(t, detector.params.work_budget)[0]
            assert count[0] - before <= 3
        # the urgent job first (2 solves, then 1 of the background one), 3 + 0, then done
        assert applied == [(1.0, "localise"), (2.0, "refit")]
        assert s.jobs == [] and s.job_solves == {"urgent": 2, "background": 4}


def test_detection_joining_modelled_leaks_is_alarmed_from_a_size(net3, cache_dir: Path) -> None:  # type: ignore[no-untyped-def]
    # A second big leak near the first (merge_distance stretched for Net3's long pipes) joins
    # the model; merged_alarm_lps decides whether it is alarmed as well (merged_elsewhere_lps,
    # the smaller step alarmed away from the first leak's alarm, is off to test that alone; so is
    # merged_alarm_max_lps: Net3's 5 cm leaks are far bigger than its L-Town-sized limit).
    second = Leak(pipe="129", start="2d 2h", diameter=0.05)
    readings = simulate(net3, [LEAK, second], NET3_SENSORS, days=3, seed=11).readings
    runs = {}
    for lps in (0.0, 1.5):
        params = PARAMS.model_copy(update={"merge_distance": 1500.0, "merged_alarm_lps": lps,
                                           "merged_elsewhere_lps": 0.0, "merged_alarm_max_lps": 0.0,
                                           "horizon": 3 * 86400.0})
        with LeakDetector.from_network(net3, NET3_SENSORS, params, cache_dir=cache_dir) as detector:
            runs[lps] = (detector.run(readings), detector.status(), list(detector._log))
    silent, loud = runs[0.0], runs[1.5]
    assert silent[1]["merged_detections"] >= 1
    assert loud[1]["merged_detections"] == silent[1]["merged_detections"]  # the model evolves alike
    refined = [(t, node) for t, kind, node, _ in loud[2] if kind == "refined"]
    extra = [a for a in loud[0] if a.time not in {b.time for b in silent[0]}]
    assert extra, "no merged detection was alarmed"
    for alarm in extra:
        # the localisation's pick (its explain re-fits may finish some steps later)
        assert [node for t, node in refined if t <= alarm.time][-1] == alarm.node
        assert alarm.size_lps >= 1.5


@pytest.mark.parametrize("min_lps", [0.0, 5.0])
def test_relocation_alarm_needs_confirming_refits(net3, leaky, cache_dir: Path,  # type: ignore[no-untyped-def]
                                                  min_lps: float) -> None:
    from sereca.apps.water.detector import _KnownLeak
    from sereca.apps.water.localise_joint import FitResult, run_steps

    # realarm_min_relative 0: this is about the confirmation count (leak-free readings here
    # favour no place over another; the evidence test is the next test's subject). The leak
    # is 0.63 L/s: with realarm_min_lps 5 it is too small to be alarmed again anywhere.
    params = PARAMS.model_copy(update={"realarm_confirm": 2, "realarm_distance": 300.0, "realarm_min_relative": 0.0,
                                       "realarm_min_lps": min_lps})
    with LeakDetector.from_network(net3, NET3_SENSORS, params, cache_dir=cache_dir) as detector:
        detector.run(leaky[leaky.index < LEAK.start])
        assert not detector.status()["warming_up"]
        far = detector._distances(0)
        b = int(np.flatnonzero(far > 1000)[0])
        c = int(np.flatnonzero((far > 1000) & (detector._distances(b) > 1000))[0])
        detector._s.known = [_KnownLeak(node_row=0, coefficient=0.1, alarm_time=0.0, alarm_row=0)]
        samples = list(detector._s.history)[-2:]

        def refit_to(row: int) -> list[str]:
            fit = FitResult(leaks=[(row, 0.1)], kept=[0], sse=0.0, sse_start=0.0)
            steps = detector._apply_fit(samples[-1][0], samples, fit, list(detector._s.known))
            return [a.node for a in run_steps(steps)]

        names = detector._ref.candidates
        assert refit_to(b) == []  # first re-fit far away: not yet
        assert refit_to(c) == []  # somewhere else again: wandering
        if min_lps:
            assert refit_to(c) == []  # twice in a row at c, but small
            assert detector.status()["relocated_alarms"] == 0
            return
        assert refit_to(c) == [names[c]]  # twice in a row at c: alarmed there
        assert refit_to(c) == []  # now that is where it was alarmed
        assert detector.status()["relocated_alarms"] == 1


@pytest.mark.parametrize("min_relative", [0.0, 0.5])
def test_relocation_alarm_needs_clearly_better_fit(net3, leaky, cache_dir: Path,  # type: ignore[no-untyped-def]
                                                   min_relative: float) -> None:
    from sereca.apps.water.detector import _KnownLeak
    from sereca.apps.water.hydraulics import emitter_coefficient
    from sereca.apps.water.localise_joint import FitResult, run_steps

    params = PARAMS.model_copy(update={"realarm_confirm": 1, "realarm_distance": 300.0,
                                       "realarm_min_relative": min_relative, "refit_interval": 0.0})
    with LeakDetector.from_network(net3, NET3_SENSORS, params, cache_dir=cache_dir) as detector:
        detector.run(leaky[leaky.index < LEAK.start + 6 * 3600])  # the leak's readings in the history
        names = detector._ref.candidates
        link = net3.wn.get_link(LEAK.pipe)
        true_row = names.index(link.start_node_name if link.start_node_name in names else link.end_node_name)
        far_row = int(np.flatnonzero(detector._distances(true_row) > 2000)[0])
        coefficient = emitter_coefficient(np.pi / 4 * LEAK.diameter**2, params.hydraulics.discharge_coeff)
        samples = list(detector._s.history)[-3:]

        def relocate(alarmed: int, to: int) -> list[str]:
            detector._s.known = [_KnownLeak(node_row=alarmed, coefficient=coefficient, alarm_time=0.0,
                                            alarm_row=alarmed)]
            fit = FitResult(leaks=[(to, coefficient)], kept=[0], sse=0.0, sse_start=0.0)
            steps = detector._apply_fit(samples[-1][0], samples, fit, list(detector._s.known))
            return [a.node for a in run_steps(steps)]

        # Alarmed far off, re-fitted onto the leak: the readings clearly say so, alarmed.
        assert relocate(far_row, true_row) == [names[true_row]]
        # Alarmed at the leak, a re-fit wanders off: alarmed only without the evidence test.
        assert relocate(true_row, far_row) == ([] if min_relative else [names[far_row]])


def _readings_with_leak_at(detector: LeakDetector, readings, node: str, coefficient: float):  # type: ignore[no-untyped-def]
    """Warm the detector on ``readings``; 2 h of readings exactly as its model has them with an
    emitter of ``coefficient`` at ``node`` (bias included): ``(row, samples)``."""
    detector.run(readings)
    s = detector._s
    row = detector._ref.candidates.index(node)
    samples = []
    for t, y0 in zip(readings.index[-24:], readings.to_numpy(dtype=float)[-24:], strict=True):
        e = detector._model.expected(float(t), y0, [(row, coefficient)])
        samples.append((float(t), np.where(detector._model.boundary, y0, e + s.bias0 * detector._flow_scale(e))))
    return row, samples


def _detection(detector: LeakDetector, samples, known: list[tuple[int, float]]):  # type: ignore[no-untyped-def]
    """A closed detection over ``samples`` as the detector sees it with ``known`` leaks modelled."""
    from sereca.apps.water.detector import _Detection, _KnownLeak

    s = detector._s
    s.known = [_KnownLeak(node_row=r, coefficient=c, alarm_time=0.0, alarm_row=r) for r, c in known]
    z_rows = []
    for t, y in samples:
        e = detector._model.expected(t, y, known)
        z_rows.append(np.where(detector._detect, ((y - e) / detector._flow_scale(e) - s.bias) / s.sigma, 0.0))
    return _Detection(t=samples[0][0], score=1.0, sensors=(), z_rows=z_rows, readings=samples, closed=True,
                      samples=[12, 15, 18, 21])


@pytest.mark.parametrize("float_known", [False, True])
def test_known_leak_that_grew_is_sized_as_a_whole(  # type: ignore[no-untyped-def]
        net3, leaky, cache_dir: Path, float_known: bool) -> None:
    # The linearised misfit of a known leak's junction scales the whole emitter (known + probe):
    # its best size is the whole leak, however small the probe the residual suggested. With
    # float_known, a near-zero leak anywhere plus the known leak grown fits as well: the known
    # leak's own junction must still win.
    from sereca.apps.water.localise_joint import run_steps

    full = 1.0  # (L/s)/m**0.5: 6.3 L/s at 40 m
    params = PARAMS.model_copy(update={"float_known": float_known})
    with LeakDetector.from_network(net3, NET3_SENSORS, params, cache_dir=cache_dir) as detector:
        row, samples = _readings_with_leak_at(detector, leaky[leaky.index < LEAK.start], "143", full)
        d = _detection(detector, samples, [(row, 0.5 * full)])
        partial = 0.05 * detector._signatures()[row]  # a faint residual: a small probe
        fits = run_steps(detector._refine(d, partial))
        picked, coefficient = run_steps(detector._refine_pick(d, fits))
    assert picked == row
    assert coefficient == pytest.approx(full, rel=0.05)


def test_floating_pick_survives_the_modelled_leaks_changing_meanwhile(  # type: ignore[no-untyped-def]
        net3, leaky, cache_dir: Path) -> None:
    # Other jobs run between a localisation's solves and may add or drop modelled leaks: the pick
    # works on the modelled leaks as they were when it ranked the candidates.
    from sereca.apps.water.detector import _KnownLeak
    from sereca.apps.water.localise_joint import run_steps

    params = PARAMS.model_copy(update={"float_known": True})
    with LeakDetector.from_network(net3, NET3_SENSORS, params, cache_dir=cache_dir) as detector:
        row, samples = _readings_with_leak_at(detector, leaky[leaky.index < LEAK.start], "143", 1.0)
        d = _detection(detector, samples, [(row, 0.5)])
        fits = run_steps(detector._refine(d, 0.05 * detector._signatures()[row]))
        pick = detector._refine_pick(d, fits)
        next(pick)
        detector._s.known.append(_KnownLeak(node_row=(row + 1) % len(detector._ref.candidates), coefficient=0.2, alarm_time=0.0))
        picked, coefficient = run_steps(pick)
    assert picked == row and coefficient == pytest.approx(1.0, rel=0.05)


@pytest.mark.parametrize("absorb", [False, True])
def test_new_leak_replaces_a_young_small_one_modelled_near_it(  # type: ignore[no-untyped-def]
        net3, leaky, cache_dir: Path, absorb: bool) -> None:
    # A growing leak first localised off (a small emitter at a junction beyond merge_distance)
    # is detected again once bigger: with absorb_radius the new localisation replaces that
    # emitter (one leak, placed better); without it the model keeps both.
    from sereca.apps.water.detector import _KnownLeak
    from sereca.apps.water.localise_joint import run_steps

    full = 1.0  # 6.3 L/s at 40 m
    with LeakDetector.from_network(net3, NET3_SENSORS, PARAMS, cache_dir=cache_dir) as detector:
        row, samples = _readings_with_leak_at(detector, leaky[leaky.index < LEAK.start], "143", full)
        dist = detector._distances(row)
        ghost = int(np.argmin(np.where(dist > PARAMS.merge_distance, dist, np.inf)))
        detector.params = PARAMS.model_copy(update={
            "absorb_radius": float(dist[ghost]) + 1.0 if absorb else 0.0, "explain_check": False})
        d = _detection(detector, samples, [(ghost, 0.1 * full)])  # 0.6 L/s, modelled 30 h ago
        alarms = run_steps(detector._localise(d, np.mean(d.z_rows, axis=0)[detector._detect]))
        known = [(k.node_row, round(k.coefficient, 1)) for k in detector._s.known]
        assert detector.status()["replaced_small_leaks"] == int(absorb)
        if absorb:
            assert known == [(row, full)]  # the whole leak, where it is
            # Only young small ones are replaced: an old or a big one is a leak of its own.
            small = _KnownLeak(node_row=ghost, coefficient=0.1 * full, alarm_time=d.t - 3600.0)
            old = _KnownLeak(node_row=ghost, coefficient=0.1 * full, alarm_time=d.t - 3 * 86400.0)
            big = _KnownLeak(node_row=ghost, coefficient=0.5 * full, alarm_time=d.t - 3600.0)
            detector._s.known = [small, old, big]
            assert [k is small for k in detector._absorbable(row, d.t)] == [True]
        else:
            assert known[0] == (ghost, 0.1) and len(known) == 2
    assert [a.node for a in alarms] == ["143"]


@pytest.mark.parametrize("float_known", [False, True])
@pytest.mark.parametrize("known_fraction, alarmed", [(0.8, False), (0.2, True)])
def test_merged_alarm_counts_what_the_detection_adds(net3, leaky, cache_dir: Path,  # type: ignore[no-untyped-def]
                                                    known_fraction: float, alarmed: bool, float_known: bool) -> None:
    # A modelled leak that grew by a little is its steady growth, not news, even when it is big
    # by now; grown by a lot, it is alarmed.
    from sereca.apps.water.localise_joint import run_steps

    full = 1.0
    params = PARAMS.model_copy(update={"merged_alarm_lps": 0.5 * full * np.sqrt(40.0), "float_known": float_known})
    with LeakDetector.from_network(net3, NET3_SENSORS, params, cache_dir=cache_dir) as detector:
        row, samples = _readings_with_leak_at(detector, leaky[leaky.index < LEAK.start], "143", full)
        d = _detection(detector, samples, [(row, known_fraction * full)])
        alarms = run_steps(detector._localise(d, np.mean(d.z_rows, axis=0)[detector._detect]))
        assert detector.status()["merged_detections"] == 1
        assert [(k.node_row, round(k.coefficient, 1)) for k in detector._s.known] == [(row, full)]  # grown
    assert [a.node for a in alarms] == (["143"] if alarmed else [])


@pytest.mark.parametrize("max_lps, alarmed", [(7.0, True), (6.0, False), (0.0, True)])
def test_merged_detection_sized_big_is_not_alarmed(  # type: ignore[no-untyped-def]
        net3, leaky, cache_dir: Path, max_lps: float, alarmed: bool) -> None:
    # A known leak grown from 1.3 to 6.3 L/s adds 5 L/s (>= merged_alarm_lps): alarmed, unless
    # the leak is merged_alarm_max_lps or bigger (a big leak's model error is what gets detected).
    from sereca.apps.water.localise_joint import run_steps

    params = PARAMS.model_copy(update={"merged_alarm_lps": 3.0, "merged_alarm_max_lps": max_lps})
    with LeakDetector.from_network(net3, NET3_SENSORS, params, cache_dir=cache_dir) as detector:
        row, samples = _readings_with_leak_at(detector, leaky[leaky.index < LEAK.start], "143", 1.0)
        d = _detection(detector, samples, [(row, 0.2)])
        alarms = run_steps(detector._localise(d, np.mean(d.z_rows, axis=0)[detector._detect]))
        assert detector.status()["merged_detections"] == 1
    assert [a.node for a in alarms] == (["143"] if alarmed else [])
    assert all(6.0 < a.size_lps < 7.0 for a in alarms)


@pytest.mark.parametrize("float_known", [False, True])
@pytest.mark.parametrize("alarmed_elsewhere", [False, True])
def test_small_merged_detection_is_alarmed_away_from_the_known_leaks_alarm(  # type: ignore[no-untyped-def]
        net3, leaky, cache_dir: Path, alarmed_elsewhere: bool, float_known: bool) -> None:
    # A detection that grows a known leak by a little is that leak's growth, unless the known
    # leak was alarmed somewhere else: then the place is news (a second leak beside the first).
    from sereca.apps.water.localise_joint import run_steps

    full = 1.0  # 6.3 L/s at 40 m: the detection adds 20 %, 1.3 L/s (< merged_alarm_lps, >= merged_elsewhere_lps)
    with LeakDetector.from_network(net3, NET3_SENSORS, PARAMS, cache_dir=cache_dir) as detector:
        row, samples = _readings_with_leak_at(detector, leaky[leaky.index < LEAK.start], "143", full)
        d = _detection(detector, samples, [(row, 0.8 * full)])
        dist = detector._distances(row)
        neighbour = int(np.argmin(np.where(dist > 0, dist, np.inf)))
        detector.params = PARAMS.model_copy(update={"repeat_radius": float(dist[neighbour]) / 2,
                                                    "float_known": float_known})
        detector._s.known[0].alarm_row = neighbour if alarmed_elsewhere else row
        alarms = run_steps(detector._localise(d, np.mean(d.z_rows, axis=0)[detector._detect]))
        assert detector.status()["merged_detections"] == 1
    assert [a.node for a in alarms] == (["143"] if alarmed_elsewhere else [])


@pytest.mark.parametrize("fraction, still_leaking, at_once, after_refit",
                         [(1.0, True, True, False),  # 6.3 L/s: alarmed at once
                          (0.1, True, False, True),  # 0.6 L/s: alarmed when the re-fit keeps it
                          (0.1, False, False, False)])  # the re-fit drops it: never alarmed
def test_small_new_leak_is_alarmed_after_a_refit_keeps_it(  # type: ignore[no-untyped-def]
        net3, leaky, cache_dir: Path, fraction: float, still_leaking: bool, at_once: bool, after_refit: bool) -> None:
    from sereca.apps.water.localise_joint import run_steps

    full = 1.0  # 6.3 L/s at 40 m
    params = PARAMS.model_copy(update={"confirm_below_lps": 1.0, "relocalise_after": 0.0})  # the re-fit confirms
    with LeakDetector.from_network(net3, NET3_SENSORS, params, cache_dir=cache_dir) as detector:
        _, samples = _readings_with_leak_at(detector, leaky[leaky.index < LEAK.start], "143", fraction * full)
        d = _detection(detector, samples, [])
        alarms = run_steps(detector._localise(d, np.mean(d.z_rows, axis=0)[detector._detect]))
        assert bool(alarms) == at_once
        assert detector.status()["deferred_alarms"] == (0 if at_once else 1)
        # the periodic re-fit, on readings with the leak or (repaired) without it
        model, bias0 = detector._model, detector._s.bias0
        repaired = [(t, np.where(model.boundary, y, e + bias0 * detector._flow_scale(e)))
                    for t, y in samples for e in [model.expected(t, y, [])]]
        detector._refit_known(samples if still_leaking else repaired)
        confirmed = []
        while detector._s.jobs:
            confirmed += detector._work(detector._s.last_t, detector.params.work_budget)[0]
        if after_refit:
            assert [a.node for a in confirmed] == [detector._ref.candidates[detector._s.known[0].node_row]]
            assert detector._s.known[0].pending is None
        else:
            assert confirmed == []


@pytest.mark.parametrize("case", ["placed", "changed meanwhile", "jumped too far"])
def test_small_new_leak_is_localised_again_and_alarmed_there(  # type: ignore[no-untyped-def]
        net3, leaky, cache_dir: Path, case: str) -> None:
    # relocalise_after: a small leak modelled in the wrong place is localised again from scratch on
    # the recent readings, itself left out of the model (so it is sized whole, not as what its
    # misplaced emitter leaves), moved there and alarmed there; the periodic re-fit does not
    # alarm it meanwhile. If the modelled leaks changed while that job ran, it applies nothing.
    # If it lands farther than relocalise_jump from where it was, it is moved but never alarmed.
    from sereca.apps.water.detector import _KnownLeak
    from sereca.apps.water.localise_joint import run_steps

    small = 0.1  # 0.6 L/s at 40 m
    params = PARAMS.model_copy(update={"confirm_below_lps": 1.0, "relocalise_after": 6 * 3600.0,
                                       "absorb_radius": 0.0})  # left out by relocalise_after alone
    with LeakDetector.from_network(net3, NET3_SENSORS, params, cache_dir=cache_dir) as detector:
        row, samples = _readings_with_leak_at(detector, leaky[leaky.index < LEAK.start], "143", small)
        s = detector._s
        dist = detector._distances(row)
        ghost = int(np.argmin(np.where(dist > PARAMS.merge_distance, dist, np.inf)))
        jump_limit = dist[ghost] - 1.0 if case == "jumped too far" else dist[ghost] + 1.0
        detector.params = params.model_copy(update={"relocalise_jump": jump_limit})
        leak = _KnownLeak(node_row=ghost, coefficient=0.5 * small, alarm_time=samples[0][0],
                          pending=(1.0, 0.9, ()), relocalise_at=samples[0][0])
        s.known, s.history = [leak], deque(samples)
        assert detector._confirmed([leak]) == []  # waits to be localised again, not for a re-fit
        job = detector._relocalise(leak)
        if case == "changed meanwhile":
            next(job)
            s.known = [leak, _KnownLeak(node_row=row, coefficient=small, alarm_time=0.0)]
        alarms = run_steps(job)
    if case == "changed meanwhile":
        assert alarms == [] and leak.node_row == ghost and leak.pending is not None
    elif case == "jumped too far":
        assert alarms == [] and (leak.node_row, leak.alarm_row, leak.pending) == (row, -1, None)
    else:
        assert [a.node for a in alarms] == ["143"]
        assert (leak.node_row, leak.alarm_row, leak.pending) == (row, row, None)
        assert leak.coefficient == pytest.approx(small, rel=0.15)  # the whole leak


@pytest.mark.parametrize("phantom", [0.5, 2.0])
def test_floating_known_leaks_localises_past_a_repaired_one(  # type: ignore[no-untyped-def]
        net3, leaky, cache_dir: Path, phantom: float) -> None:
    # A modelled leak that has been repaired (the readings show no leak there) leaves a residual of
    # its own. Localising a new leak against the model as it is, that residual pulls the new leak
    # away; with float_known the modelled leaks are sized afresh with each candidate (to zero here)
    # and the new leak is placed and sized right.
    from sereca.apps.water.localise_joint import run_steps

    new = 0.3  # 1.9 L/s at 40 m
    picks = {}
    for float_known in (False, True):
        with LeakDetector.from_network(net3, NET3_SENSORS, PARAMS, cache_dir=cache_dir) as detector:
            row, samples = _readings_with_leak_at(detector, leaky[leaky.index < LEAK.start], "143", new)
            dist = detector._distances(row)
            repaired = int(np.argmin(np.where(dist >= 600.0, dist, np.inf)))  # about 1 km away
            detector.params = PARAMS.model_copy(update={"float_known": float_known})
            d = _detection(detector, samples, [(repaired, phantom)])
            fits = run_steps(detector._refine(d, np.mean(d.z_rows, axis=0)[detector._detect]))
            picked, coefficient = run_steps(detector._refine_pick(d, fits))
            picks[float_known] = (detector._ref.candidates[picked], coefficient)
    assert picks[False][0] != "143"  # the repaired leak's residual wins without floating
    assert picks[True][0] == "143"
    assert picks[True][1] == pytest.approx(new, rel=0.2)


def test_localisation_reads_denoised_pressures(net3, leaky, cache_dir: Path) -> None:  # type: ignore[no-untyped-def]
    # denoise_steps: a localisation sample's pressures are the model's value plus the residual
    # averaged over the neighbouring steps; levels (boundary conditions) stay as read. Against the
    # noise-free readings, the denoised pressures must be much closer than the raw ones.
    from sereca.apps.water.models import Noise

    quiet = NET3_SENSORS.model_copy(update={"noise": Noise(pressure=0.0, flow=0.0, flow_floor=0.0, level=0.0)})
    truth = simulate(net3, [LEAK], quiet, days=2, seed=11).readings
    params = PARAMS.model_copy(update={"denoise_steps": 3})
    with LeakDetector.from_network(net3, NET3_SENSORS, params, cache_dir=cache_dir) as detector:
        detector.run(leaky)
        history = list(detector._s.history)[-60:-4]  # steps with neighbours on both sides
        denoised = detector._denoised(history)
        pressure, level = detector._is_pressure, detector._model.boundary
        columns = [truth.columns.get_loc(name) for name in detector.sensor_ids]
        exact = truth.to_numpy(dtype=float)[:, columns]
        index = {float(t): i for i, t in enumerate(truth.index)}
        raw_err = [y[pressure] - exact[index[t]][pressure] for t, y in history]
        new_err = [y[pressure] - exact[index[t]][pressure] for t, y in denoised]
        assert float(np.std(new_err)) < 0.6 * float(np.std(raw_err))
        assert all(np.array_equal(a[level], b[level]) for (_, a), (_, b) in zip(history, denoised, strict=True))
        detector.params = PARAMS.model_copy(update={"denoise_steps": 0})
        assert detector._denoised(history) == history


@pytest.mark.parametrize("stale", [True, False])
def test_refit_confirms_only_the_small_leaks_it_saw_and_only_when_adopted(  # type: ignore[no-untyped-def]
        net3, leaky, cache_dir: Path, stale: bool) -> None:
    """A re-fit made stale by a localisation applies nothing and confirms nothing; a small leak
    modelled after the re-fit started waits for a re-fit that saw it."""
    import dataclasses

    from sereca.apps.water.localise_joint import run_steps

    params = PARAMS.model_copy(update={"confirm_below_lps": 1.0, "work_budget": 1,  # a solve per step
                                       "relocalise_after": 0.0})
    with LeakDetector.from_network(net3, NET3_SENSORS, params, cache_dir=cache_dir) as detector:
        _, samples = _readings_with_leak_at(detector, leaky[leaky.index < LEAK.start], "143", 0.1)
        d = _detection(detector, samples, [])
        assert run_steps(detector._localise(d, np.mean(d.z_rows, axis=0)[detector._detect])) == []
        first = detector._s.known[0]
        detector._refit_known(samples)
        detector._work(detector._s.last_t, detector.params.work_budget)  # the re-fit starts: it read the modelled leaks
        far = int(np.argmax(detector._distances(first.node_row)))
        later = dataclasses.replace(first, node_row=far, alarm_row=-1, moves=[])
        detector._s.known.append(later)  # a small leak modelled since, waiting too
        if stale:
            first.coefficient *= 1.5  # a localisation grew the leak the re-fit is fitting
        confirmed = []
        while detector._s.jobs:
            confirmed += detector._work(detector._s.last_t, detector.params.work_budget)[0]
        assert later.pending is not None
        if stale:
            assert confirmed == [] and first.pending is not None
        else:
            assert [a.node for a in confirmed] == [detector._ref.candidates[first.node_row]]
            assert first.pending is None


def test_small_leak_far_from_the_sensors_waits_until_a_refit_finds_it_bigger(  # type: ignore[no-untyped-def]
        net3, cache_dir: Path) -> None:
    from sereca.apps.water.detector import _KnownLeak

    with LeakDetector.from_network(net3, NET3_SENSORS, PARAMS, cache_dir=cache_dir) as detector:
        to_sensor = detector._sensor_distance
        at_sensor, far = int(np.argmin(to_sensor)), int(np.argmax(to_sensor))
        assert to_sensor[at_sensor] == 0.0 and to_sensor[far] > 100.0
        small = 0.5 / math.sqrt(40.0)  # 0.5 L/s at 40 m: below confirm_below_lps (1 L/s)

        def waiting(row: int) -> _KnownLeak:
            return _KnownLeak(node_row=row, coefficient=small, alarm_time=0.0, pending=(1.0, 0.9, ()))

        near_sensor, out_there = waiting(at_sensor), waiting(far)
        assert [a.node for a in detector._confirmed([near_sensor, out_there])] == [detector._ref.candidates[at_sensor]]
        assert out_there.pending is not None and out_there.alarm_row == -1  # waits
        out_there.coefficient = 4 * small  # a later re-fit finds it grown to 2 L/s
        assert [a.node for a in detector._confirmed([out_there])] == [detector._ref.candidates[far]]
        detector.params = PARAMS.model_copy(update={"confirm_sensor_distance": 0.0})  # no such wait
        assert len(detector._confirmed([waiting(far)])) == 1
        detector.params = PARAMS.model_copy(update={"confirmed_alarms": False})  # precision before recall
        kept = waiting(at_sensor)
        assert detector._confirmed([kept]) == []
        assert kept.pending is None and kept.alarm_row == at_sensor  # modelled, done waiting, never alarmed


def test_repeat_alarms_near_a_recent_one_are_withheld(net3, cache_dir: Path) -> None:  # type: ignore[no-untyped-def]
    with LeakDetector.from_network(net3, NET3_SENSORS, PARAMS, cache_dir=cache_dir) as detector:
        dist = detector._distances(0)
        near = int(np.argmin(np.where(dist > 0, dist, np.inf)))
        far = int(np.flatnonzero(dist > 3 * dist[near] + 1)[0])
        detector.params = PARAMS.model_copy(update={"repeat_radius": float(dist[near]) + 1.0,
                                                    "repeat_window": 86400.0})

        def raised(t: float, row: int) -> bool:
            return bool(detector._not_repeated([detector._alarm(t, row, 0.1, 1.0, 1.0, ())]))

        assert raised(0.0, 0)
        assert not raised(3600.0, near)  # next to the first, an hour later
        assert raised(7200.0, far)  # elsewhere
        assert raised(90000.0, near)  # a day on, the place is news again
        assert detector.status()["repeat_alarms_withheld"] == 1


def test_bounded_least_squares_matches_scipy_on_a_batch_with_active_bounds() -> None:
    """The batched coordinate descent that sizes a candidate with the modelled leaks finds each
    problem's constrained minimum, bounds active or not, and leaves a problem with an all-zero
    column at 0 there."""
    from scipy.optimize import lsq_linear

    from sereca.apps.water.detector import _bounded_least_squares

    rng = np.random.default_rng(7)
    low = np.array([0.0, -1.0, -1.0])
    designs = [rng.normal(size=(40, 3)) for _ in range(12)]
    designs[0][:, 2] = 0.0  # a modelled leak the readings do not see
    targets = [a @ np.array([rng.normal(), -3.0 * rng.random(), rng.normal()]) + rng.normal(size=40)
               for a in designs]
    gram = np.array([a.T @ a for a in designs])
    target = np.array([a.T @ c for a, c in zip(designs, targets, strict=True)])
    x = _bounded_least_squares(gram, target, low)
    active = 0
    for a, c, got in zip(designs, targets, x, strict=True):
        best = lsq_linear(a, c, bounds=(low, np.inf), tol=1e-12).x
        if a[:, 2].any():
            np.testing.assert_allclose(got, best, atol=1e-6)
        else:
            assert got[2] == 0.0
            np.testing.assert_allclose(got[:2], best[:2], atol=1e-6)
        active += int(np.isclose(got, low).any())
    assert active >= 3  # the bounds were exercised, not just the unconstrained minimum
