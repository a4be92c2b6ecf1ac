"""The sensor source: simulate a network with leaks and return noisy sensor readings."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from sereca.apps.water.hydraulics import configure, emitter_coefficient, run_series
from sereca.apps.water.models import Hydraulics, Leak, Noise, Scenario, SensorSet
from sereca.apps.water.network import Network, load_network

DEMAND_NOISE_CORRELATION_S = 3600.0


@dataclass
class Simulation:
    """Noisy readings (index ``time`` in s, one column per sensor id) and how they were made."""

    readings: pd.DataFrame
    clean: pd.DataFrame
    leak_nodes: dict[str, str] = field(default_factory=dict)  # pipe -> inserted leak node
    elapsed_s: float = 0.0


def leak_node_name(pipe: str) -> str:
    return f"{pipe}__leak"


def _insert_leak_nodes(wn: Any, pipes: Sequence[str]) -> dict[str, str]:
    """Split each leaking pipe at its middle; the new node carries the leak emitter."""
    import wntr

    nodes = {}
    for pipe in dict.fromkeys(pipes):
        node = leak_node_name(pipe)
        wntr.morph.split_pipe(wn, pipe, f"{pipe}__b", node, add_pipe_at_end=True,
                              split_at_point=0.5, return_copy=False)
        nodes[pipe] = node
    return nodes


def _apply_demand_noise(wn: Any, n_steps: int, step: float, sd: float, rng: np.random.Generator) -> None:
    """Multiply every demand pattern by one AR(1) factor (1 h correlation) resampled to ``step``.

    This is model error the detector's reference does not know: real demands never
    follow the design patterns exactly.
    """
    phi = float(np.exp(-step / DEMAND_NOISE_CORRELATION_S))
    shocks = rng.normal(0.0, sd * np.sqrt(1.0 - phi**2), n_steps)
    x = np.empty(n_steps)
    x[0] = rng.normal(0.0, sd)
    for k in range(1, n_steps):
        x[k] = phi * x[k - 1] + shocks[k]
    factor = np.clip(1.0 + x, 0.0, None)

    t = np.arange(n_steps) * step + wn.options.time.pattern_start
    pstep = wn.options.time.pattern_timestep
    default = wn.options.hydraulic.pattern
    demand_patterns: set[str] = set()
    for _, junction in wn.junctions():
        for ts in junction.demand_timeseries_list:
            name = ts.pattern_name or default
            if name is not None and name in wn.pattern_name_list:
                demand_patterns.add(name)
    for name in list(wn.pattern_name_list):
        pattern = wn.get_pattern(name)
        mult = np.asarray(pattern.multipliers, dtype=float)
        resampled = mult[((t // pstep).astype(int)) % len(mult)]
        pattern.multipliers = resampled * factor if name in demand_patterns else resampled
    if "__demand_noise" not in wn.pattern_name_list:
        wn.add_pattern("__demand_noise", list(factor))
    for _, junction in wn.junctions():
        for ts in junction.demand_timeseries_list:
            if ts.pattern_name is None and default is None:
                ts.pattern_name = "__demand_noise"  # constant demands get the noise too
    wn.options.time.pattern_timestep = int(step)
    wn.options.time.pattern_start = 0


def add_measurement_noise(values: np.ndarray, sensors: SensorSet, noise: Noise,
                          rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise per reading: absolute for pressure and level, relative (+ floor) for flow."""
    sd = np.concatenate([
        np.full((values.shape[0], len(sensors.pressure)), noise.pressure),
        noise.flow * np.abs(values[:, len(sensors.pressure):len(sensors.pressure) + len(sensors.flow)])
        + noise.flow_floor,
        np.full((values.shape[0], len(sensors.level)), noise.level),
    ], axis=1)
    return values + rng.normal(0.0, 1.0, values.shape) * sd


def simulate(
    network: Network | str,
    leaks: Sequence[Leak],
    sensors: SensorSet,
    days: float,
    step: float = 300.0,
    *,
    seed: int = 0,
    demand_noise: float = 0.0,
    hydraulics: Hydraulics | None = None,
) -> Simulation:
    """Simulate ``days`` of ``network`` with ``leaks``; readings every ``step`` s with sensor noise.

    Pressure-driven demand (by default), EPANET engine, leaks as emitters (see
    :mod:`sereca.apps.water.hydraulics`). Deterministic for a given ``seed``.
    """
    started = time.perf_counter()
    net = network if isinstance(network, Network) else load_network(network)
    hydraulics = hydraulics or Hydraulics()
    net.validate_sensors(sensors)
    net.validate_pipes([leak.pipe for leak in leaks])
    rng = np.random.default_rng(seed)
    duration = float(days) * 86400.0
    n_steps = int(duration // step) + 1

    wn = net.fresh_model()
    leak_nodes = _insert_leak_nodes(wn, [leak.pipe for leak in leaks])
    if demand_noise > 0:
        _apply_demand_noise(wn, n_steps, step, demand_noise, rng)
    configure(wn, hydraulics, duration, step)

    def emitters(t: float) -> dict[str, float]:
        coeffs = dict.fromkeys(leak_nodes.values(), 0.0)
        for leak in leaks:
            coeffs[leak_nodes[leak.pipe]] += emitter_coefficient(leak.area_at(t), hydraulics.discharge_coeff)
        return coeffs

    times, values = run_series(wn, sensors, duration, step, emitters if leaks else None)
    ids = sensors.ids()
    clean = pd.DataFrame(values, index=pd.Index(times, name="time"), columns=ids)
    noisy = add_measurement_noise(values, sensors, sensors.noise, rng)
    readings = pd.DataFrame(noisy, index=pd.Index(times, name="time"), columns=ids)
    return Simulation(readings=readings, clean=clean, leak_nodes=leak_nodes,
                      elapsed_s=time.perf_counter() - started)


def simulate_scenario(scenario: Scenario, network: Network | None = None) -> Simulation:
    """:func:`simulate` with everything taken from a scenario file."""
    return simulate(network or scenario.network, scenario.leaks, scenario.sensors, scenario.days,
                    scenario.step, seed=scenario.seed, demand_noise=scenario.demand_noise,
                    hydraulics=scenario.hydraulics)
