"""Leak-detection quality on generated month-long L-Town scenarios (BattLeDIM scoring).

    python benchmarks/water_quality.py --json              # default: 3 seeds, 31 days, 12 leaks each
    python benchmarks/water_quality.py --seeds 5 --demand-noise 0.02 --json
    python benchmarks/water_quality.py --first-seed 1 --seeds 5      # the tuning seeds
    python benchmarks/water_quality.py --extra-pressure 33           # 66 pressure sensors instead of 33
    python benchmarks/water_quality.py --isolated 20 --diameter 0.01  # 20 single abrupt leaks, one at a time
    python benchmarks/water_quality.py --isolated 20 --incipient --diameter 0.02  # ... growing over 2 days

Each seed draws its own leaks (random pipes, abrupt or incipient, mixed sizes,
start between day 2 and the end, some repaired), simulates them with
pressure-driven demand and the BattLeDIM sensor layout, runs the detector over
the readings and scores the alarms. Prints per-seed and pooled figures.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from typing import Any

import numpy as np

from sereca.apps.water import DetectorParams, LeakDetector, load_network, score, simulate
from sereca.apps.water.models import Leak, SensorSet
from sereca.apps.water.network import Network

LTOWN_PRESSURE = (
    "n1 n4 n31 n54 n105 n114 n163 n188 n215 n229 n288 n296 n332 n342 n410 n415 n429 n458 n469 n495 "
    "n506 n516 n519 n549 n613 n636 n644 n679 n722 n726 n740 n752 n769"
).split()
LTOWN_SENSORS = SensorSet(pressure=LTOWN_PRESSURE, flow=["p227", "p235", "PUMP_1"], level=["T1"])
SIZES = {"small": (0.008, 0.012), "medium": (0.012, 0.02), "large": (0.02, 0.03)}


def denser_sensors(net: Network, extra: int) -> SensorSet:
    """The BattLeDIM layout plus ``extra`` pressure sensors, each at the junction farthest (network
    distance) from every sensor so far (greedy k-centre): how much does sensor density buy?"""
    junctions = net.wn.junction_name_list
    columns = np.array([net.node_index[j] for j in junctions])
    pressure = list(LTOWN_PRESSURE)
    nearest = net.node_distances(pressure)[:, columns].min(axis=0)
    for _ in range(extra):
        farthest = junctions[int(np.argmax(nearest))]
        pressure.append(farthest)
        nearest = np.minimum(nearest, net.node_distances([farthest])[0][columns])
    return LTOWN_SENSORS.model_copy(update={"pressure": pressure})  # flows, levels and noise as they are


def size_class(i: int) -> str:
    """The size class of ``random_leaks``' ``i``-th leak: small, medium and large in turn."""
    return list(SIZES)[i % len(SIZES)]


def random_leaks(net: Network, n: int, days: float, rng: np.random.Generator) -> list[Leak]:
    """``n`` leaks on distinct pipes: abrupt and incipient in turn, small/medium/large in turn.

    Starts are spread over [day 2, end - 1 day] (one random start per equal slot, so
    leaks overlap as they do in practice but do not all pile up); most leaks are
    repaired 2-6 days after they start (a utility repairs what it finds), the rest
    run to the end. Incipient leaks grow to full size over 1-3 days.
    """
    pipes = [p for p in net.wn.pipe_name_list if net.wn.get_link(p).length > 5.0]
    chosen = rng.choice(len(pipes), size=n, replace=False)
    first, last = 2 * 86400.0, days * 86400.0 - 86400.0
    slot = (last - first) / n
    order = rng.permutation(n)
    leaks = []
    for i, idx in enumerate(chosen):
        kind = "abrupt" if i % 2 == 0 else "incipient"
        low, high = SIZES[size_class(i)]
        start = first + (order[i] + float(rng.uniform(0, 1))) * slot
        start = round(start / 300.0) * 300.0
        end = start + float(rng.uniform(2, 6)) * 86400.0 if rng.random() < 0.75 else None
        if end is not None and end >= days * 86400.0:
            end = None
        leak: dict[str, Any] = {"pipe": pipes[idx], "start": start, "end": end,
                                "diameter": round(float(rng.uniform(low, high)), 4), "type": kind}
        if kind == "incipient":
            horizon_end = end if end is not None else days * 86400.0
            leak["peak"] = min(start + float(rng.uniform(1, 3)) * 86400.0, horizon_end)
        leaks.append(Leak(**leak))
    return leaks


def run_seed(net: Network, seed: int, days: float, n_leaks: int, demand_noise: float,
             params: DetectorParams, sensors: SensorSet = LTOWN_SENSORS) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    leaks = random_leaks(net, n_leaks, days, rng)
    t0 = time.perf_counter()
    sim = simulate(net, leaks, sensors, days, 300.0, seed=seed, demand_noise=demand_noise)
    t_sim = time.perf_counter() - t0
    t0 = time.perf_counter()
    detector = LeakDetector.from_network(net, sensors, params)
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    alarms = detector.run(sim.readings)
    t_detect = time.perf_counter() - t0
    detector.close()
    t0 = time.perf_counter()
    result = score(alarms, leaks, net)
    t_score = time.perf_counter() - t0
    return {
        "seed": seed,
        "leaks": len(leaks),
        "alarms": len(alarms),
        "score": result.to_dict(),
        "seconds": {"simulate": round(t_sim, 2), "detector_build": round(t_build, 2),
                    "detect": round(t_detect, 2), "score": round(t_score, 3)},
        "readings_per_s": round(sim.readings.size / t_detect),
    }


def run_isolated(net: Network, n: int, diameter: float, params: DetectorParams,
                 incipient: bool = False) -> dict[str, Any]:
    """One leak at a time on ``n`` random pipes, starting at 1d 6h: abrupt (2.5 days simulated)
    or incipient, growing to ``diameter`` over 2 days (3.5 days simulated)."""
    rng = np.random.default_rng(7)
    pipes = [p for p in net.wn.pipe_name_list if net.wn.get_link(p).length > 5.0]
    found = within = early = extra = near = far = 0
    delays = []
    for i in range(n):
        pipe = pipes[int(rng.integers(len(pipes)))]
        if incipient:
            leak = Leak(pipe=pipe, start="1d 6h", diameter=diameter, type="incipient", peak="3d 6h")
        else:
            leak = Leak(pipe=pipe, start="1d 6h", diameter=diameter)
        sim = simulate(net, [leak], LTOWN_SENSORS, 3.5 if incipient else 2.5, 300.0, seed=i)
        with LeakDetector.from_network(net, LTOWN_SENSORS, params) as detector:
            alarms = detector.run(sim.readings)
        early += sum(1 for a in alarms if a.time < leak.start)
        after = [a for a in alarms if a.time >= leak.start]
        distance = net.pipe_distance_fn([pipe])
        close = [distance(pipe, a.pipe) <= 300.0 for a in after]
        near, far = near + sum(close), far + close.count(False)
        if after:
            found += 1
            extra += len(after) - 1
            delays.append(after[0].time - leak.start)
            within += close[0]
    return {"leaks": n, "type": "incipient" if incipient else "abrupt", "diameter_m": diameter,
            "found": found, "first_alarm_within_300m": within,
            "alarms_before_leak": early, "later_alarms": extra,
            "alarms_within_300m": near, "alarms_farther": far,
            "share_within_300m": round(near / (near + far + early), 3) if near + far + early else None,
            "median_delay_h": round(statistics.median(delays) / 3600, 2) if delays else None}


def recall_by_size(runs: list[dict[str, Any]]) -> dict[str, float | None]:
    """Share of the leaks of each size class (small, medium, large) that were detected."""
    found: dict[str, list[bool]] = {name: [] for name in SIZES}
    for r in runs:
        for i, leak in enumerate(r["score"]["leaks"]):  # in random_leaks' order
            found[size_class(i)].append(bool(leak["detected"]))
    return {name: round(sum(hits) / len(hits), 3) if hits else None for name, hits in found.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3, help="number of scenarios (seeds first-seed..)")
    parser.add_argument("--first-seed", type=int, default=101)
    parser.add_argument("--days", type=float, default=31.0)
    parser.add_argument("--leaks", type=int, default=12)
    parser.add_argument("--demand-noise", type=float, default=0.0)
    parser.add_argument("--params", default="{}", help="JSON object of DetectorParams overrides")
    parser.add_argument("--json", action="store_true", help="print JSON only")
    parser.add_argument("--isolated", type=int, default=0,
                        help="instead: N single leaks (abrupt unless --incipient), one at a time (localisation check)")
    parser.add_argument("--incipient", action="store_true",
                        help="with --isolated: incipient leaks growing to --diameter over 2 days")
    parser.add_argument("--diameter", type=float, default=0.015, help="m, for --isolated")
    parser.add_argument("--extra-pressure", type=int, default=0,
                        help="add N pressure sensors to the BattLeDIM layout (greedy k-centre placement)")
    args = parser.parse_args(argv)

    net = load_network("L-Town")
    if args.isolated:
        params = DetectorParams(**{"horizon": (4 if args.incipient else 3) * 86400.0, **json.loads(args.params)})
        out_iso = run_isolated(net, args.isolated, args.diameter, params, args.incipient)
        print(json.dumps(out_iso, indent=2))
        return 0
    params = DetectorParams(**{"horizon": args.days * 86400.0 + 86400.0, **json.loads(args.params)})
    sensors = denser_sensors(net, args.extra_pressure) if args.extra_pressure else LTOWN_SENSORS
    runs = [run_seed(net, args.first_seed + i, args.days, args.leaks, args.demand_noise, params, sensors)
            for i in range(args.seeds)]
    tp = sum(r["score"]["true_positives"] for r in runs)
    fp = sum(r["score"]["false_positives"] for r in runs)
    n = sum(r["leaks"] for r in runs)
    leaks = [leak for r in runs for leak in r["score"]["leaks"]]
    delays = [lk["delay_s"] for lk in leaks if lk["delay_s"] is not None]
    abrupt = [lk["delay_s"] for lk in leaks if lk["delay_s"] is not None and lk["type"] == "abrupt"]
    incipient = [lk["delay_s"] for lk in leaks if lk["delay_s"] is not None and lk["type"] == "incipient"]
    pooled = {
        "network": "L-Town", "days": args.days, "seeds": args.seeds, "leaks": n,
        "demand_noise": args.demand_noise, "pressure_sensors": len(sensors.pressure),
        "true_positives": tp, "false_positives": fp, "false_negatives": n - tp,
        "precision": round(tp / (tp + fp), 3) if tp + fp else 0.0,
        "recall": round(tp / n, 3) if n else 0.0,
        "median_delay_h": round(statistics.median(delays) / 3600, 2) if delays else None,
        "median_delay_abrupt_h": round(statistics.median(abrupt) / 3600, 2) if abrupt else None,
        "median_delay_incipient_h": round(statistics.median(incipient) / 3600, 2) if incipient else None,
        "recall_by_size": recall_by_size(runs),
        "simulate_s_per_month": round(statistics.mean(r["seconds"]["simulate"] for r in runs) * 31 / args.days, 2),
        "detector_readings_per_s": min(r["readings_per_s"] for r in runs),
        "params": params.model_dump(mode="json"),
    }
    out = {"pooled": pooled, "runs": runs}
    if args.json:
        json.dump(out, sys.stdout, indent=2)
        print()
    else:
        for key, value in pooled.items():
            if key != "params":
                print(f"{key:28s} {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
