"""``sereca water``: simulate a water network, detect leaks, score alarms, MQTT input (see docs/water.md)."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sereca.apps.water.errors import WaterConfigError

if TYPE_CHECKING:
    from sereca.apps.water.detector import DetectorParams

water_app = typer.Typer(help="Water-network monitoring: simulation, leak detection, BattLeDIM scoring.",
                        no_args_is_help=True)


def _duration(value: str, what: str) -> float:
    from sereca.apps.water.timeparse import parse_duration

    try:
        return parse_duration(value)
    except ValueError as exc:
        raise WaterConfigError(f"{what}: {exc}") from None


_PARAMS_HELP = ('JSON object of DetectorParams fields, e.g. \'{"realarm_distance": 0, "confirmed_alarms": false}\' '
                '(docs/water.md)')


def _detector_params(raw: str | None, **base: float) -> DetectorParams:
    """``DetectorParams`` from the command's own settings (``base``) and ``--params`` (which wins)."""
    from sereca.apps.water.detector import DetectorParams
    from sereca.apps.water.models import parse_json_object, parse_model

    extra = parse_json_object(raw, "--params") if raw else {}
    return parse_model(DetectorParams, {**base, **extra}, "--params")


@water_app.command("networks")
def networks() -> None:
    """List the bundled networks."""
    from sereca.apps.water.network import bundled_networks

    for name, path in bundled_networks().items():
        typer.echo(f"{name:8s} {path}")


@water_app.command("simulate")
def simulate_cmd(
    out: Annotated[Path, typer.Option("--out", help="readings file to write (.csv or .jsonl)")],
    network: Annotated[str | None, typer.Option("--network", help="bundled name (Net3, L-Town, ...) or INP path")] = None,
    leaks: Annotated[Path | None, typer.Option("--leaks", help="leaks YAML")] = None,
    sensors: Annotated[Path | None, typer.Option("--sensors", help="sensors YAML")] = None,
    days: Annotated[float | None, typer.Option("--days", help="simulated days")] = None,
    step: Annotated[str, typer.Option("--step", help="reading interval, e.g. 5min")] = "5min",
    seed: Annotated[int, typer.Option("--seed", help="noise seed")] = 0,
    demand_noise: Annotated[float, typer.Option("--demand-noise", help="sd of a demand multiplier the detector does not know")] = 0.0,
    scenario: Annotated[Path | None, typer.Option("--scenario", help="scenario YAML (network, days, sensors, leaks in one file)")] = None,
) -> None:
    """Simulate a network with leaks (EPANET, pressure-driven demand) and write noisy sensor readings."""
    from sereca.apps.water.models import LeakSet, load_leaks, load_scenario, load_sensors
    from sereca.apps.water.readings import write_readings
    from sereca.apps.water.simulate import simulate, simulate_scenario

    if scenario is not None:
        sc = load_scenario(scenario)
        updates = {}
        if network is not None:
            updates["network"] = network
        if days is not None:
            updates["days"] = days
        if leaks is not None:
            updates["leaks"] = load_leaks(leaks).leaks
        if sensors is not None:
            updates["sensors"] = load_sensors(sensors)
        sim = simulate_scenario(sc.model_copy(update=updates))
    else:
        missing = [flag for flag, v in (("--network", network), ("--sensors", sensors), ("--days", days)) if v is None]
        if missing:
            raise WaterConfigError(f"give {', '.join(missing)} (or --scenario FILE)")
        leak_set = load_leaks(leaks) if leaks is not None else LeakSet()
        assert network is not None and sensors is not None and days is not None
        sim = simulate(network, leak_set.leaks, load_sensors(sensors), days, _duration(step, "--step"),
                       seed=seed, demand_noise=demand_noise)
    write_readings(sim.readings, out)
    typer.echo(f"{len(sim.readings)} time steps x {sim.readings.shape[1]} sensors -> {out} "
               f"(simulated in {sim.elapsed_s:.1f} s)")


@water_app.command("detect")
def detect_cmd(
    readings: Annotated[Path, typer.Argument(help="readings file (.csv or .jsonl)")],
    network: Annotated[str, typer.Option("--network", help="bundled name or INP path")],
    out: Annotated[Path, typer.Option("--out", help="alarms CSV to write")],
    warmup: Annotated[str, typer.Option("--warmup", help="leak-free period to learn noise from")] = "1d",
    threshold: Annotated[float | None, typer.Option("--threshold", help="CUSUM threshold h (sd)")] = None,
    params_json: Annotated[str | None, typer.Option("--params", help=_PARAMS_HELP)] = None,
) -> None:
    """Run the leak detector over recorded readings; write one row per alarm (time, suspected pipe, ...)."""
    from sereca.apps.water.detector import LeakDetector
    from sereca.apps.water.models import SensorSet
    from sereca.apps.water.readings import read_readings, write_alarms

    frame = read_readings(readings)
    sensors = SensorSet.from_ids([str(c) for c in frame.columns])
    span = float(frame.index.max()) + 86400.0
    step = float(frame.index.to_series().diff().median()) if len(frame) > 1 else 300.0
    extra = {"h": threshold} if threshold is not None else {}
    params = _detector_params(params_json, horizon=span, step=step, warmup=_duration(warmup, "--warmup"), **extra)
    started = time.perf_counter()
    with LeakDetector.from_network(network, sensors, params) as detector:
        alarms = detector.run(frame)
    write_alarms(alarms, out)
    elapsed = time.perf_counter() - started
    typer.echo(f"{len(alarms)} alarm(s) from {frame.size} readings in {elapsed:.1f} s -> {out}")
    for a in alarms:
        typer.echo(f"  t={a.time / 3600:8.2f} h  pipe {a.pipe:8s} confidence {a.confidence:.2f}  ~{a.size_lps:.1f} L/s")


@water_app.command("score")
def score_cmd(
    alarms: Annotated[Path, typer.Argument(help="alarms CSV (time, pipe, ...)")],
    leaks: Annotated[Path, typer.Argument(help="leaks YAML: the truth")],
    network: Annotated[str, typer.Option("--network", help="bundled name or INP path")],
    as_json: Annotated[bool, typer.Option("--json", help="print JSON")] = False,
    max_distance: Annotated[float, typer.Option("--max-distance", help="m of network distance for a hit")] = 300.0,
) -> None:
    """Score alarms against the true leaks with the BattLeDIM rules."""
    from sereca.apps.water.models import load_leaks
    from sereca.apps.water.network import load_network
    from sereca.apps.water.readings import read_alarms
    from sereca.apps.water.scoring import score

    result = score(read_alarms(alarms), load_leaks(leaks).leaks, load_network(network), max_distance)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2))
        return
    delay = "n/a" if result.median_delay_s is None else f"{result.median_delay_s / 3600:.2f} h"
    typer.echo(f"TP {result.true_positives}  FP {result.false_positives}  FN {result.false_negatives}  "
               f"repeats {result.repeats}")
    typer.echo(f"precision {result.precision:.2f}  recall {result.recall:.2f}  median delay {delay}")


@water_app.command("publish")
def publish_cmd(
    readings: Annotated[Path, typer.Argument(help="readings file to replay")],
    host: Annotated[str, typer.Option("--host")] = "localhost",
    port: Annotated[int, typer.Option("--port")] = 1883,
    prefix: Annotated[str, typer.Option("--prefix")] = "sereca/water",
    interval: Annotated[float, typer.Option("--interval", help="wall s between time steps")] = 0.0,
) -> None:
    """Replay a readings file to an MQTT broker as a sensor gateway would."""
    from sereca.apps.water.mqtt import MqttSettings, publish_readings
    from sereca.apps.water.readings import iter_frames, read_readings

    sent = publish_readings(iter_frames(read_readings(readings)), MqttSettings(host=host, port=port, prefix=prefix),
                            interval)
    typer.echo(f"published {sent} messages")


@water_app.command("listen")
def listen_cmd(
    network: Annotated[str, typer.Option("--network", help="bundled name or INP path")],
    sensors: Annotated[Path, typer.Option("--sensors", help="sensors YAML")],
    host: Annotated[str, typer.Option("--host")] = "localhost",
    port: Annotated[int, typer.Option("--port")] = 1883,
    prefix: Annotated[str, typer.Option("--prefix")] = "sereca/water",
    idle_timeout: Annotated[float | None, typer.Option("--idle-timeout", help="stop after s without messages")] = None,
    warmup: Annotated[str, typer.Option("--warmup")] = "1d",
    params_json: Annotated[str | None, typer.Option("--params", help=_PARAMS_HELP)] = None,
) -> None:
    """Detect leaks live from an MQTT broker; print each alarm as a JSON line."""
    from sereca.apps.water.detector import LeakDetector
    from sereca.apps.water.models import load_sensors
    from sereca.apps.water.mqtt import MqttReadings, MqttSettings

    sensor_set = load_sensors(sensors)
    params = _detector_params(params_json, warmup=_duration(warmup, "--warmup"), horizon=31 * 86400.0)
    with LeakDetector.from_network(network, sensor_set, params) as detector, \
            MqttReadings(MqttSettings(host=host, port=port, prefix=prefix), sensor_set.ids()) as source:
        for t, values in source.frames(timeout=idle_timeout):
            for alarm in detector.update(t, values):
                typer.echo(json.dumps(alarm.to_dict()))


def register(app: typer.Typer) -> None:
    """Add this area's commands to the top-level app."""
    app.add_typer(water_app, name="water")
