"""The detector's leak-free model of the network, computed once and cached on disk.

Two parts:

* a leak-free EPANET run over ``horizon`` (tank levels and pump states over
  time), used for the boundary conditions no sensor measures;
* a leak sensitivity matrix: for every candidate junction, how much each
  sensor changes when an emitter (a leak of ``leak_diameter``) opens there,
  from steady-state runs at a few times of day.

At run time :class:`ConditionedModel` gives the expected (leak-free) value of
every sensor at time ``t`` from one EPANET steady-state solve with the demand
patterns at ``t`` and the *measured* tank levels and pump states where those
are measured. Conditioning on measured boundaries is what keeps a tank that
drains faster because of a leak (and the pump cycles it shifts) from
swamping every residual downstream of it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from sereca.apps.water.hydraulics import (
    EN_EMITTER,
    EN_FLOW,
    EN_INITSTATUS,
    EN_PATTERNSTART,
    EN_PRESSURE,
    EN_STATUS,
    EN_TANKLEVEL,
    EpanetProject,
    configure,
    emitter_coefficient,
    run_series,
    snapshot_sensitivity,
)
from sereca.apps.water.models import Hydraulics, SensorSet
from sereca.apps.water.network import Network

CACHE_FORMAT = 1


def default_cache_dir() -> Path:
    home = os.environ.get("SERECA_HOME")
    return (Path(home) if home else Path.home() / ".sereca") / "cache" / "water"


@dataclass(frozen=True)
class ReferenceData:
    """Arrays of the leak-free model (what is cached)."""

    step: float
    tanks: list[str]
    tank_levels: np.ndarray  # (n_ref, n_tanks) m
    pumps: list[str]
    pump_on: np.ndarray  # (n_ref, n_pumps) bool
    pump_on_flow: np.ndarray  # (n_pumps,) typical flow when running, L/s
    candidates: list[str]  # junctions a leak may be at
    sensitivity: np.ndarray  # (n_candidates, n_sensors): change per leak of `coefficient`
    coefficient: float

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(
            tmp, step=self.step, tanks=np.array(self.tanks, dtype=str), tank_levels=self.tank_levels,
            pumps=np.array(self.pumps, dtype=str), pump_on=self.pump_on, pump_on_flow=self.pump_on_flow,
            candidates=np.array(self.candidates, dtype=str), sensitivity=self.sensitivity,
            coefficient=self.coefficient,
        )
        os.replace(tmp, path)  # atomic: a concurrent reader never sees half a file

    @classmethod
    def load(cls, path: Path) -> ReferenceData:
        with np.load(path, allow_pickle=False) as data:
            return cls(
                step=float(data["step"]), tanks=[str(x) for x in data["tanks"]],
                tank_levels=data["tank_levels"], pumps=[str(x) for x in data["pumps"]],
                pump_on=data["pump_on"].astype(bool), pump_on_flow=data["pump_on_flow"],
                candidates=[str(x) for x in data["candidates"]], sensitivity=data["sensitivity"],
                coefficient=float(data["coefficient"]),
            )


def cache_key(network: Network, sensors: SensorSet, hydraulics: Hydraulics, horizon: float,
              step: float, leak_diameter: float, at_times: tuple[float, ...]) -> str:
    blob = json.dumps({
        "format": CACHE_FORMAT, "network": network.digest, "sensors": sensors.ids(),
        "hydraulics": hydraulics.model_dump(), "horizon": horizon, "step": step,
        "leak_diameter": leak_diameter, "at_times": list(at_times),
    }, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def build_reference(network: Network, sensors: SensorSet, hydraulics: Hydraulics, horizon: float,
                    step: float, leak_diameter: float, at_times: tuple[float, ...]) -> ReferenceData:
    wn = network.fresh_model()
    configure(wn, hydraulics, horizon, step)
    tanks = list(wn.tank_name_list)
    pumps = list(wn.pump_name_list)
    probes = [("node", t, EN_PRESSURE) for t in tanks] + [("link", p, EN_FLOW) for p in pumps]
    probes += [("link", p, EN_STATUS) for p in pumps]
    if probes:
        _, values = run_series(wn, probes, horizon, step)
    else:
        values = np.zeros((int(horizon // step) + 1, 0))
    n_t, n_p = len(tanks), len(pumps)
    levels = values[:, :n_t]
    flows = values[:, n_t:n_t + n_p]
    pump_on = values[:, n_t + n_p:] > 0.5
    on_flow = np.array([
        float(np.median(np.abs(flows[pump_on[:, i], i]))) if pump_on[:, i].any() else 1.0
        for i in range(n_p)
    ])
    candidates = list(wn.junction_name_list)
    coefficient = emitter_coefficient(math.pi * leak_diameter**2 / 4.0, hydraulics.discharge_coeff)
    sensitivity = snapshot_sensitivity(wn, sensors, candidates, coefficient, at_times)
    return ReferenceData(step=step, tanks=tanks, tank_levels=levels, pumps=pumps, pump_on=pump_on,
                         pump_on_flow=on_flow, candidates=candidates, sensitivity=sensitivity,
                         coefficient=coefficient)


def load_or_build_reference(network: Network, sensors: SensorSet, hydraulics: Hydraulics, horizon: float,
                            step: float, leak_diameter: float, at_times: tuple[float, ...],
                            cache_dir: Path | None) -> ReferenceData:
    """The cached reference for these inputs, computing (and caching) it when missing or unreadable."""
    key = cache_key(network, sensors, hydraulics, horizon, step, leak_diameter, at_times)
    path = (cache_dir or default_cache_dir()) / f"reference-{key}.npz"
    if path.is_file():
        try:
            return ReferenceData.load(path)
        except (OSError, ValueError, KeyError):
            pass  # a corrupt cache file is rebuilt, never trusted
    data = build_reference(network, sensors, hydraulics, horizon, step, leak_diameter, at_times)
    try:
        data.save(path)
    except OSError:
        pass  # a read-only home only costs recomputation
    return data


class ConditionedModel:
    """Leak-free expected sensor values at time t, conditioned on measured tank levels and pump states."""

    def __init__(self, network: Network, sensors: SensorSet, hydraulics: Hydraulics, ref: ReferenceData) -> None:
        self._ref = ref
        wn = network.fresh_model()
        configure(wn, hydraulics, 0, ref.step)
        self._project = EpanetProject(wn).__enter__()
        en = self._project.en
        self._read = self._project.sensor_reader(sensors)
        ids = sensors.ids()
        col = {sid: i for i, sid in enumerate(ids)}
        self._tank_idx = [self._project.node_index(t) for t in ref.tanks]
        # EPANET rejects a level outside the tank's range; measured noise can overshoot.
        self._tank_range = [(wn.get_node(t).min_level, wn.get_node(t).max_level) for t in ref.tanks]
        self._tank_col = [col.get(f"level.{t}", -1) for t in ref.tanks]
        self._pump_idx = [self._project.link_index(p) for p in ref.pumps]
        self._candidate_idx = [self._project.node_index(c) for c in ref.candidates]
        self._emitting: set[int] = set()
        self._pump_col = [col.get(f"flow.{p}", -1) for p in ref.pumps]
        # Sensors that set boundary conditions are inputs of the model, not evidence of leaks.
        self.boundary = np.zeros(len(ids), dtype=bool)
        for c in self._tank_col + self._pump_col:
            if c >= 0:
                self.boundary[c] = True
        en.ENopenH()
        self._open = True

    def _ref_row(self, t: float) -> int:
        n = self._ref.tank_levels.shape[0]
        return int(round(t / self._ref.step)) % max(1, n - 1)  # beyond the horizon: wrap around

    def expected(self, t: float, measured: np.ndarray,
                 leaks: Sequence[tuple[int, float]] = ()) -> np.ndarray:
        """Expected value of every sensor (``sensors.ids()`` order) at time ``t``.

        ``leaks``: known leaks to include, as (candidate row, emitter coefficient).
        """
        en = self._project.en
        active = set()
        for row_c, coeff in leaks:
            idx = self._candidate_idx[row_c]
            en.ENsetnodevalue(idx, EN_EMITTER, float(coeff))
            active.add(idx)
        for idx in self._emitting - active:
            en.ENsetnodevalue(idx, EN_EMITTER, 0.0)
        self._emitting = active
        row = self._ref_row(t)
        for i, (idx, c) in enumerate(zip(self._tank_idx, self._tank_col, strict=True)):
            level = measured[c] if c >= 0 and np.isfinite(measured[c]) else self._ref.tank_levels[row, i]
            low, high = self._tank_range[i]
            en.ENsetnodevalue(idx, EN_TANKLEVEL, float(min(max(level, low), high)))
        for i, (idx, c) in enumerate(zip(self._pump_idx, self._pump_col, strict=True)):
            if c >= 0 and np.isfinite(measured[c]):
                on = abs(measured[c]) > 0.3 * self._ref.pump_on_flow[i]
            else:
                on = bool(self._ref.pump_on[row, i])
            en.ENsetlinkvalue(idx, EN_INITSTATUS, 1.0 if on else 0.0)
        en.ENsettimeparam(EN_PATTERNSTART, int(t))
        en.ENinitH(0)
        en.ENrunH()
        return self._read()

    def close(self) -> None:
        if self._open:
            self._open = False
            try:
                self._project.en.ENcloseH()
            finally:
                self._project.__exit__(None, None, None)

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:  # interpreter shutdown: the library may already be gone
            pass

