"""Water services over the secure bus: throughput gateway -> detector, and latency reading -> alert.

    python benchmarks/water.py [--json] [--days 7] [--latency-days 8] [--params '{...}'] [--schedule idle|steps]

Both figures come from real deployments, as ``sereca demo water`` makes
them: an embedded nats-server, a CAS (simulated TEE), and every service a
``sereca run`` process that attested at the CAS and seals its messages.
A reading is one sensor value; the gateway batches one time step's values
(37 for the shipped L-Town scenario) into one message.  The detector runs
with its default parameters (those of ``benchmarks/water_quality.py`` and
the quality figures in docs/water.md) unless ``--params`` overrides some.

1. **Throughput.** The gateway replays ``--days`` of the shipped scenario's
   network and sensors, without its leak, with ``WATER_SPEED=0`` (as fast as
   the bus takes it); the figure is the number of readings the leak detector
   processed (its ``water_detector_readings_total``) divided by the time
   between its first and last one.  The detector does its full work per step
   (an EPANET solve of the leak-free model, CUSUM, and queued localisation /
   re-fit work; the scenario has no leak, so little of that).
2. **Latency.** The gateway replays ``--latency-days`` of the scenario with
   a 30 mm burst every 14 h (each repaired after 8 h) at 1,000 readings/s.
   Each reading batch carries the gateway's send time; the detector copies
   it into every alarm, the alerting service into every alert; a probe
   service (attested like the others, consuming ``water.alerts``) records
   now - sent on arrival.  So each sample spans gateway -> bus -> detector
   (the step that finishes the localisation, and any queue of earlier steps
   in front of it) -> bus (signed) -> alerting -> bus -> probe.  Alerts are
   rare by nature (one per leak, plus false alarms), so ``p99_alert_latency_ms``
   over a handful of samples is their maximum (``alerts_sampled`` says how
   many).  The bus hop alone is measured on every reading: ``p99_transit_ms``
   (gateway send -> detector receipt, upper bound of the detector's histogram
   bucket), and the detector's own time per step: ``p99_detector_step_ms``
   (upper bound of its histogram bucket). What the latency costs in stream
   time: ``median_burst_alarm_delay_h``, from each burst's start to its
   first alarm in simulated hours (``bursts_alarmed`` of the bursts got one).

Both runs use the leak-detector's ``--schedule``: ``idle`` (the service's
default) caps each step's share of localisation work at 10 ms and does the
rest between steps while no readings wait; ``steps`` does it all in the
step (``work_budget`` solves a step if ``--params`` sets it), as ``sereca
water detect`` does, and readings queue behind it when the host cannot keep
up (docs/water.md, "Scheduling").

Prints one JSON line with ``--json``: ``readings_per_s`` and
``p99_alert_latency_ms`` plus what they were measured on.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import platform
import statistics
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

from sereca.apps.water.demo import DemoOptions, WaterDemo, default_scenario
from sereca.apps.water.models import load_scenario
from sereca.apps.water.services import config

TARGET_READINGS_PER_S = 5000
TARGET_P99_MS = 100
LATENCY_RATE = 1000  # readings per second in the latency run
MIN_SAMPLES = 3

PROBE = '''
import time
from fastapi import APIRouter
from sereca import Service


class Probe:
    """Latency of each alert: its arrival here minus the send time of the reading behind it."""

    def __init__(self) -> None:
        self.samples: list[float] = []
        self.alarm_times: list[float] = []

    async def on_alert(self, alert: dict) -> None:
        self.samples.append(time.time() - float(alert["reading_sent"]))
        self.alarm_times.append(float(alert["last_time"]))

    async def get_samples(self) -> dict:
        return {"latency_s": self.samples, "alarm_times": self.alarm_times}


def build() -> Service:
    svc, probe, router = Service("bench-probe"), Probe(), APIRouter()
    svc.consumer("water.alerts")(probe.on_alert)
    router.add_api_route("/samples", probe.get_samples, methods=["GET"])
    svc.include_router(router)
    return svc


svc = build()
'''

# Bursts for the latency run: far-apart pipes of L-Town, one every 14 h from 30 h, each repaired after 8 h.
BURSTS = ["p558", "p379", "p486", "p134", "p607", "p244", "p641", "p619", "p257", "p12"]


def _scenario_file(root: Path, days: float, *, leaks: bool = True) -> Path:
    doc = load_scenario(default_scenario()).model_dump(mode="json")
    doc["days"] = days
    doc["leaks"] = []
    if leaks:
        for i, pipe in enumerate(BURSTS):
            start = 30 * 3600 + i * 14 * 3600
            if start + 8 * 3600 < days * 86400:
                doc["leaks"].append({"pipe": pipe, "start": start, "end": start + 8 * 3600, "diameter": 0.03})
    path = root / f"scenario-{days:g}d{'' if leaks else '-noleak'}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _bucket_p99(text: str, name: str, q: float = 0.99) -> float:
    """Upper bound (s) of the histogram bucket holding the ``q`` quantile."""
    buckets: list[tuple[float, float]] = []
    for line in text.splitlines():
        if line.startswith(f"{name}_bucket{{"):
            le = line.split('le="', 1)[1].split('"', 1)[0]
            buckets.append((float(le), float(line.rsplit(" ", 1)[1])))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0.0
    for bound, count in buckets:
        if count >= q * total:
            return bound
    return float("inf")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1)))))
    return ordered[k]


def _burst_delays_h(scenario: Path, alarm_times: list[float]) -> list[float]:
    """Per burst that got one: hours from its start to the first alarm while it leaked (stream time)."""
    delays = []
    for leak in load_scenario(scenario).leaks:
        during = [t for t in alarm_times if leak.start <= t <= (leak.end or math.inf)]
        if during:
            delays.append((min(during) - leak.start) / 3600)
    return delays


async def throughput(scenario: Path, log: Any, detector_params: dict[str, Any], schedule: str) -> dict[str, Any]:
    demo = WaterDemo(DemoOptions(scenario=scenario, speed=0, detector_params=detector_params,
                                 detector_schedule=schedule,
                                 services=("leak-detector", "alerting", "sensor-gateway")))
    await demo.start()
    try:
        n_sensors = len(demo.scenario.sensors.ids())  # type: ignore[union-attr]
        steps = int(demo.scenario.days * 86400 // demo.scenario.step) + 1  # type: ignore[union-attr]
        total = steps * n_sensors
        first_t = first_n = None
        loop = asyncio.get_running_loop()
        end = loop.time() + 600
        while loop.time() < end:
            det = await demo.metrics("leak-detector")
            n = int(det.get("water_detector_readings_total", 0))
            now = time.perf_counter()
            if n and first_t is None:
                first_t, first_n = now, n
            if n >= total:
                break
            await asyncio.sleep(0.05)
        else:
            raise RuntimeError(f"detector processed {n} of {total} readings in 600 s")
        last_t = time.perf_counter()
        det = await demo.metrics("leak-detector")
        step_s = det.get("water_detector_step_seconds_sum", 0.0) / max(1.0, det.get("water_detector_step_seconds_count", 1.0))
        rate = (total - first_n) / (last_t - first_t)  # type: ignore[operator]
        log(f"throughput: {total:,} readings ({steps} steps x {n_sensors}) at {rate:,.0f} readings/s")
        return {"readings": total, "steps": steps, "sensors_per_step": n_sensors, "readings_per_s": round(rate),
                "detector_step_ms": round(step_s * 1000, 3),
                "throughput_alarms": int(det.get("water_detector_alarms_total", 0)),
                "throughput_detector_params": detector_params}
    finally:
        await demo.stop()


async def latency(scenario: Path, log: Any, detector_params: dict[str, Any], schedule: str) -> dict[str, Any]:
    from sereca.tee import measure_paths

    probe_dir = Path(tempfile.mkdtemp(prefix="sereca-bench-probe-"))
    (probe_dir / "probe.py").write_text(textwrap.dedent(PROBE))

    def add_probe(doc: dict[str, Any]) -> None:
        doc["packages"]["bench-probe"] = {"sim": {"measurements": [measure_paths([probe_dir]).hex()]}}
        doc["services"]["bench-probe"] = {"package": "bench-probe"}
        doc["bus"]["addresses"]["water.alerts"]["consume"].append("bench-probe")

    n_sensors = len(load_scenario(scenario).sensors.ids())
    step = load_scenario(scenario).step
    speed = LATENCY_RATE * step / n_sensors  # simulated s per real s that makes 1,000 readings/s
    demo = WaterDemo(DemoOptions(scenario=scenario, speed=speed, detector_params=detector_params,
                                 detector_schedule=schedule, services=("leak-detector", "alerting"),
                                 customize=add_probe))
    await demo.start()
    try:
        probe = await demo.spawn("bench-probe", str(probe_dir / "probe.py") + ":svc", measure=[probe_dir])
        await demo.wait_ready(probe)
        await demo.launch("sensor-gateway")
        started = time.perf_counter()
        gw0 = int((await demo.metrics("sensor-gateway")).get("water_gateway_readings_total", 0))
        while not (await demo.metrics("sensor-gateway")).get("water_gateway_replay_done"):
            if demo.failed():
                raise RuntimeError(f"{demo.failed()[0].name} stopped:\n{demo.failed()[0].log_tail()}")
            await asyncio.sleep(0.5)
        gw1 = int((await demo.metrics("sensor-gateway")).get("water_gateway_readings_total", 0))
        rate = (gw1 - gw0) / (time.perf_counter() - started)
        await asyncio.sleep(2.0)  # the last steps' alerts
        transit_p50 = _bucket_p99(await demo.metrics_text("leak-detector"), "water_detector_transit_seconds", 0.5)
        transit_p99 = _bucket_p99(await demo.metrics_text("leak-detector"), "water_detector_transit_seconds")
        step_p99 = _bucket_p99(await demo.metrics_text("leak-detector"), "water_detector_step_seconds")
        async with httpx.AsyncClient(timeout=10) as http:
            got = (await http.get(f"{probe.http_url}/samples")).json()
        samples = got["latency_s"]
        idle_solves = int((await demo.metrics("leak-detector")).get("water_detector_idle_solves_total", 0))
        if len(samples) < MIN_SAMPLES:
            raise RuntimeError(f"only {len(samples)} alerts reached the probe; see the services' logs")
        ms = [s * 1000 for s in samples]
        p99 = _percentile(ms, 99)
        delays = _burst_delays_h(scenario, got["alarm_times"])
        log(f"latency: {len(ms)} alerts at {rate:,.0f} readings/s: p50 {statistics.median(ms):.1f} ms, "
            f"p99 {p99:.1f} ms, max {max(ms):.1f} ms; reading transit p99 <= {transit_p99 * 1000:g} ms")
        return {"p99_alert_latency_ms": round(p99, 2), "latency_detector_params": detector_params,
                "p99_transit_ms": transit_p99 * 1000, "p50_transit_ms": transit_p50 * 1000,
                "p99_detector_step_ms": step_p99 * 1000, "latency_leaks": len(load_scenario(scenario).leaks),
                "p50_alert_latency_ms": round(statistics.median(ms), 2),
                "max_alert_latency_ms": round(max(ms), 2), "alerts_sampled": len(ms),
                "latency_readings_per_s": round(rate), "latency_schedule": schedule,
                "detector_idle_solves": idle_solves, "bursts_alarmed": len(delays),
                "median_burst_alarm_delay_h": round(statistics.median(delays), 2) if delays else None}
    finally:
        await demo.stop()
        import shutil

        shutil.rmtree(probe_dir, ignore_errors=True)


async def main(args: argparse.Namespace) -> dict[str, Any]:
    log = (lambda msg: print(msg, file=sys.stderr, flush=True)) if args.json else print
    with tempfile.TemporaryDirectory(prefix="sereca-bench-water-") as d:
        quiet = _scenario_file(Path(d), args.days, leaks=False)
        result: dict[str, Any] = {"benchmark": "water", "network": load_scenario(quiet).network,
                                  "throughput_days": args.days}
        params = json.loads(args.params)
        result.update(await throughput(quiet, log, params, args.schedule))
        bursts = _scenario_file(Path(d), args.latency_days)
        result.update(await latency(bursts, log, params, args.schedule))
    result.update({
        "targets": {"readings_per_s": TARGET_READINGS_PER_S, "p99_alert_latency_ms": TARGET_P99_MS},
        "meets_targets": result["readings_per_s"] >= TARGET_READINGS_PER_S
        and result["p99_alert_latency_ms"] <= TARGET_P99_MS,
        "transport": "nats (embedded nats-server), AES-256-GCM sealed; alarms Ed25519-signed",
        "tee": "sim", "host": platform.node(), "python": platform.python_version(),
    })
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON line")
    parser.add_argument("--days", type=float, default=7.0, help="simulated days in the throughput run")
    parser.add_argument("--params", default="{}",
                        help="JSON object of DetectorParams overrides for both runs (default: none)")
    parser.add_argument("--schedule", choices=config.DETECTOR_SCHEDULES, default=config.DETECTOR_SCHEDULES[0],
                        help="the leak-detector's WATER_DETECTOR_SCHEDULE (default: idle, the service's default)")
    parser.add_argument("--latency-days", type=float, default=8.0,
                        help="simulated days in the latency run (8: all 10 bursts, about 11 alerts)")
    args = parser.parse_args()
    out = asyncio.run(main(args))
    if args.json:
        print(json.dumps(out, separators=(",", ":")))
    else:
        print(json.dumps(out, indent=2))
