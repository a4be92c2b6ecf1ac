"""Step-by-step EPANET runs through the toolkit (wntr's bundled EPANET 2.2 library).

Why the toolkit and not ``wntr.sim.WNTRSimulator`` with ``add_leak``: the
WNTR simulator is the only wntr engine that models leaks, and it needs about
13 s per simulated day of L-Town; EPANET needs about 0.4 s. We model a leak
as an EPANET *emitter* on a node inserted at the middle of the leaking pipe.
Both engines use the same orifice law::

    wntr add_leak:   q = Cd * A * sqrt(2 g p)          (m3/s, A in m2, p in m)
    EPANET emitter:  q = C * p ** 0.5                  (flow units, p in m)
    so               C = Cd * A * sqrt(2 g) * 1000     (q in L/s)

The leak's hole area changes over time (incipient leaks grow), so the
emitter coefficient is set before every hydraulic step.

Models are written with flow units LPS, so EPANET reports pressure and
tank level in m and flow in L/s whatever units the original INP used.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from sereca.apps.water.errors import SimulationError
from sereca.apps.water.models import Hydraulics, SensorSet

GRAVITY = 9.81
# EPANET toolkit codes (EPANET 2.2 epanet2.h).
EN_EMITTER = 3
EN_PRESSURE = 11
EN_FLOW = 8
EN_DURATION = 0
EN_HYDSTEP = 1
EN_PATTERNSTART = 4
EN_REPORTSTEP = 5
EN_TANKLEVEL = 8
EN_INITSTATUS = 4
EN_STATUS = 11

Probe = tuple[str, str, int]  # ("node" | "link", element id, EPANET value code)

EmitterSchedule = Callable[[float], dict[str, float]]


def emitter_coefficient(area_m2: float, discharge_coeff: float) -> float:
    """EPANET emitter coefficient in (L/s)/m**0.5 for an orifice of ``area_m2``."""
    return discharge_coeff * area_m2 * math.sqrt(2.0 * GRAVITY) * 1000.0


def configure(wn: Any, hydraulics: Hydraulics, duration: float, step: float) -> None:
    """Set engine options on a wntr model before writing it (modifies ``wn``)."""
    opts = wn.options
    opts.hydraulic.demand_model = hydraulics.demand_model
    opts.hydraulic.required_pressure = hydraulics.required_pressure
    opts.hydraulic.minimum_pressure = hydraulics.minimum_pressure
    opts.hydraulic.emitter_exponent = 0.5
    # Tight convergence: with loose settings (L-Town ships 0.01) two solves of the same
    # state differ by ~1 % of flow, which the detector would read as a leak.
    opts.hydraulic.accuracy = min(opts.hydraulic.accuracy, 1e-4)
    opts.quality.parameter = "NONE"
    opts.time.duration = int(duration)
    opts.time.hydraulic_timestep = int(step)
    opts.time.report_timestep = int(step)
    opts.time.quality_timestep = int(step)
    opts.time.report_start = 0
    # Rule step must not exceed the hydraulic step.
    opts.time.rule_timestep = min(int(step), int(opts.time.rule_timestep or step))


class EpanetProject:
    """An open EPANET project written from a wntr model (context manager)."""

    def __init__(self, wn: Any, workdir: str | Path | None = None) -> None:
        self._wn = wn
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._workdir = Path(workdir) if workdir else None
        self.en: Any = None

    def __enter__(self) -> EpanetProject:
        from wntr.epanet.toolkit import ENepanet
        from wntr.network.io import write_inpfile

        if self._workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="sereca-water-")
            self._workdir = Path(self._tmp.name)
        inp = self._workdir / "model.inp"
        write_inpfile(self._wn, str(inp), units="LPS")
        self.en = ENepanet()
        try:
            self.en.ENopen(str(inp), str(self._workdir / "model.rpt"), str(self._workdir / "model.bin"))
        except Exception as exc:
            raise SimulationError(f"EPANET rejected the network model: {exc}") from None
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            if self.en is not None:
                self.en.ENclose()
        finally:
            if self._tmp is not None:
                self._tmp.cleanup()

    def node_index(self, name: str) -> int:
        return self.en.ENgetnodeindex(name)

    def link_index(self, name: str) -> int:
        return self.en.ENgetlinkindex(name)

    def reader(self, probes: Sequence[Probe]) -> Callable[[], np.ndarray]:
        """A function returning the current value of every probe, in order."""
        en = self.en
        calls: list[tuple[Callable[[int, int], float], int, int]] = []
        for kind, name, code in probes:
            if kind == "node":
                calls.append((en.ENgetnodevalue, self.node_index(name), code))
            else:
                calls.append((en.ENgetlinkvalue, self.link_index(name), code))

        def read() -> np.ndarray:
            return np.fromiter((f(i, c) for f, i, c in calls), dtype=float, count=len(calls))

        return read

    def sensor_reader(self, sensors: SensorSet) -> Callable[[], np.ndarray]:
        """A function reading all sensors' current values in ``sensors.ids()`` order."""
        return self.reader(sensor_probes(sensors))


def sensor_probes(sensors: SensorSet) -> list[Probe]:
    """What EPANET value each sensor reads (in ``sensors.ids()`` order)."""
    probes: list[Probe] = [("node", name, EN_PRESSURE) for name in sensors.pressure]
    probes += [("link", name, EN_FLOW) for name in sensors.flow]
    # At a tank, EPANET's "pressure" is head minus bottom elevation: the water level.
    probes += [("node", name, EN_PRESSURE) for name in sensors.level]
    return probes


def run_series(
    wn: Any,
    sensors: SensorSet | Sequence[Probe],
    duration: float,
    step: float,
    emitters: EmitterSchedule | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Run an extended-period simulation; return ``(times, values)`` at multiples of ``step``.

    ``values`` has one row per report time and one column per sensor id (or probe).
    ``emitters(t)`` gives the emitter coefficients (node -> (L/s)/m**0.5) to use from time t.
    The model must already be configured with :func:`configure`.
    """
    n_steps = int(duration // step) + 1
    times = np.arange(n_steps, dtype=float) * step
    probes = sensor_probes(sensors) if isinstance(sensors, SensorSet) else list(sensors)
    values = np.full((n_steps, len(probes)), np.nan)
    with EpanetProject(wn) as project:
        en = project.en
        read = project.reader(probes)
        emitter_index: dict[str, int] = {}
        try:
            en.ENopenH()
            en.ENinitH(0)
            t = 0.0
            while True:
                if emitters is not None:
                    for node, coeff in emitters(t).items():
                        idx = emitter_index.get(node) or emitter_index.setdefault(node, project.node_index(node))
                        en.ENsetnodevalue(idx, EN_EMITTER, coeff)
                t = float(en.ENrunH())
                if t % step == 0:
                    k = int(t // step)
                    if k < n_steps:
                        values[k] = read()
                tstep = en.ENnextH()
                if tstep <= 0:
                    break
                t += tstep
            en.ENcloseH()
        except SimulationError:
            raise
        except Exception as exc:
            raise SimulationError(f"EPANET failed at t={t:.0f} s: {exc}") from None
    return times, values


def snapshot_sensitivity(
    wn: Any,
    sensors: SensorSet,
    candidates: Sequence[str],
    coefficient: float,
    at_times: Sequence[float],
) -> np.ndarray:
    """Change of every sensor when an emitter of ``coefficient`` opens at each candidate node.

    Steady-state runs at each time of ``at_times`` (pattern time), averaged.
    Returns shape (len(candidates), n_sensors): value with leak minus value without.
    The model must already be configured (duration is overridden to 0 here).
    """
    n_sensors = len(sensors.ids())
    result = np.zeros((len(candidates), n_sensors))
    with EpanetProject(wn) as project:
        en = project.en
        read = project.sensor_reader(sensors)
        idx = [project.node_index(c) for c in candidates]
        en.ENsettimeparam(EN_DURATION, 0)
        en.ENopenH()
        try:
            for when in at_times:
                en.ENsettimeparam(EN_PATTERNSTART, int(when))
                en.ENinitH(0)
                en.ENrunH()
                base = read()
                for row, node in enumerate(idx):
                    en.ENsetnodevalue(node, EN_EMITTER, coefficient)
                    en.ENinitH(0)
                    en.ENrunH()
                    result[row] += read() - base
                    en.ENsetnodevalue(node, EN_EMITTER, 0.0)
        except Exception as exc:
            raise SimulationError(f"EPANET failed computing leak sensitivities: {exc}") from None
        finally:
            en.ENcloseH()
    return result / max(1, len(at_times))
