"""Streaming leak detection and localisation.

Method (details and parameter guidance in docs/water.md):

1. **Residuals against a leak-free model.** For each time step the
   :class:`~sereca.apps.water.reference.ConditionedModel` gives every sensor's
   expected value (EPANET, demand patterns at that time, measured tank levels
   and pump states). residual = reading - expected.
2. **Adapted to noise.** During ``warmup`` the detector learns each sensor's
   bias (median residual) and noise (1.4826 x MAD); afterwards residuals are
   standardised, ``z = (r - bias - explained) / sigma``, and clipped to
   ``+-z_clip`` so single outliers cannot raise an alarm.
3. **CUSUM per sensor**, one-sided in the direction a leak pushes it
   (pressure down, flow magnitude up): ``S = max(0, S + d*z - k)``; an alarm
   when some ``S > h``.
4. **Localisation by pressure sensitivity.** After a CUSUM crosses, the
   detector keeps collecting for ``localise_delay``; the mean standardised
   residual vector over the CUSUM run plus that delay is compared (cosine
   similarity) with each row of the sensitivity matrix (the change of each
   sensor for a leak at each junction); the alarm names the best junction's
   longest pipe.
5. **Known leaks join the model.** A localised leak becomes an EPANET
   emitter at its junction in the reference model; its size is re-estimated
   every step (a least-mean-squares step along the sensitivity rows of the
   known leaks, gain ``size_gain``). The model then predicts how the leak's
   effect swings with demand, so a leak that stays or grows (incipient) does
   not alarm again, while a new leak elsewhere still does. CUSUMs are frozen
   for ``holdoff`` after a detection while the size settles. A repaired
   leak's size falls to zero and it is forgotten after a day.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field
from scipy.optimize import nnls

from sereca.apps.water.errors import WaterConfigError
from sereca.apps.water.models import Hydraulics, Seconds, SensorSet
from sereca.apps.water.network import Network, load_network
from sereca.apps.water.reference import ConditionedModel, ReferenceData, load_or_build_reference

_KNOWN_LEAK_MAX = 16
_KNOWN_LEAK_FORGET_S = 86400.0


class DetectorParams(BaseModel):
    """Tuning of the detector (all optional)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    step: Seconds = Field(default=300.0, description="s, reading interval the reference is computed at")
    horizon: Seconds = Field(default=7 * 86400.0, description="s of leak-free run for unmeasured tanks/pumps")
    warmup: Seconds = Field(default=86400.0, description="s of leak-free readings to learn bias and noise")
    statistic: Literal["signature", "sensor"] = Field(
        default="signature",
        description="CUSUM on each junction's matched leak signature, or on each sensor alone")
    k: float = Field(default=0.5, ge=0, description="CUSUM allowance, in standard deviations")
    h: float = Field(default=12.0, gt=0, description="CUSUM alarm threshold, in standard deviations")
    z_clip: float = Field(default=4.0, gt=0, description="standardised residuals are clipped to +-z_clip")
    localise_delay: Seconds = Field(default=3600.0, description="s of data collected after detection before localising")
    holdoff: Seconds = Field(default=3 * 3600.0, description="s after a detection used to learn the leak's signature")
    size_gain: float = Field(default=0.1, gt=0, le=1, description="per-step gain of known leaks' size tracking")
    known_uncertainty_pressure: float = Field(
        default=0.3, ge=0, description="relative error of a known leak's modelled pressure effect")
    known_uncertainty_flow: float = Field(
        default=0.1, ge=0, description="relative error of a known leak's modelled flow effect")
    min_confidence: float = Field(
        default=0.6, ge=0, le=1,
        description="a detection whose residuals match no leak signature this well is dropped as noise")
    signature_steps: int = Field(default=24, ge=1, description="max steps averaged for localisation")
    min_sigma_pressure: float = Field(default=0.005, gt=0, description="m")
    min_sigma_flow: float = Field(default=0.02, gt=0, description="L/s")
    leak_diameter: float = Field(default=0.01, gt=0, description="m, emitter size for the sensitivity matrix")
    sensitivity_times: tuple[float, ...] = Field(
        default=(0.0, 8 * 3600.0, 14 * 3600.0, 20 * 3600.0),
        description="pattern times (s) of the steady states averaged into the sensitivity matrix",
    )
    hydraulics: Hydraulics = Field(default_factory=Hydraulics)


@dataclass(frozen=True)
class Alarm:
    """A suspected leak."""

    time: float  # s since the start of the patterns
    pipe: str
    node: str  # the candidate junction the residuals point to
    score: float  # CUSUM value / threshold (>= 1)
    confidence: float  # cosine similarity of residuals and the node's leak signature, 0..1
    sensors: tuple[str, ...]  # sensors whose CUSUM was above h/2
    x: float
    y: float

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["sensors"] = list(self.sensors)
        return data


@dataclass
class _KnownLeak:
    node_row: int
    coefficient: float  # emitter coefficient, (L/s)/m**0.5
    last_active: float


@dataclass
class _Detection:
    """A CUSUM crossing being analysed: localised after localise_delay, learnt after holdoff."""

    t: float
    top: int
    score: float
    sensors: tuple[str, ...]
    z_rows: list[np.ndarray]
    sigma: np.ndarray
    node_row: int | None = None


@dataclass
class _State:
    t0: float | None = None
    last_t: float = -math.inf
    warm: list[np.ndarray] = field(default_factory=list)
    bias: np.ndarray | None = None
    sigma: np.ndarray | None = None
    sigma_eff: np.ndarray | None = None  # sigma widened around known leaks, this step
    cusum: np.ndarray | None = None
    run: np.ndarray | None = None
    bank: np.ndarray = field(default_factory=lambda: np.zeros(0))  # CUSUM per candidate junction
    bank_run: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    detection: _Detection | None = None
    known: list[_KnownLeak] = field(default_factory=list)
    recent: deque[np.ndarray] = field(default_factory=deque)
    steps: int = 0
    ignored: int = 0


class LeakDetector:
    """Feed it readings with :meth:`update`; it returns the alarms raised at that time step."""

    def __init__(self, network: Network, sensors: SensorSet, params: DetectorParams,
                 reference: ReferenceData) -> None:
        self.network = network
        self.sensors = sensors
        self.params = params
        self.sensor_ids: list[str] = sensors.ids()
        self._col = {sid: i for i, sid in enumerate(self.sensor_ids)}
        self._ref = reference
        self._model = ConditionedModel(network, sensors, params.hydraulics, reference)
        kinds = [sid.partition(".")[0] for sid in self.sensor_ids]
        self._is_pressure = np.array([k == "pressure" for k in kinds])
        self._is_flow = np.array([k == "flow" for k in kinds])
        self._min_sigma = np.where(self._is_flow, params.min_sigma_flow, params.min_sigma_pressure)
        self._known_rel = np.where(self._is_flow, params.known_uncertainty_flow, params.known_uncertainty_pressure)
        # Level sensors and pump flows are boundary conditions of the model, not evidence.
        self._detect = ~self._model.boundary & (self._is_pressure | self._is_flow)
        self._pipes: dict[int, str | None] = {}
        self._s = _State(recent=deque(maxlen=params.signature_steps))

    @classmethod
    def from_network(cls, network: Network | str, sensors: SensorSet | list[str],
                     params: DetectorParams | None = None, *, cache_dir: str | Path | None = None) -> LeakDetector:
        """Build a detector; the leak-free reference is loaded from the disk cache or computed once.

        ``cache_dir`` defaults to ``$SERECA_HOME/cache/water``; entries are keyed by the
        network's content hash, the sensors and the parameters that affect them.
        """
        net = network if isinstance(network, Network) else load_network(network)
        sensor_set = sensors if isinstance(sensors, SensorSet) else SensorSet.from_ids(list(sensors))
        params = params or DetectorParams()
        net.validate_sensors(sensor_set)
        if not net.wn.junction_name_list:
            raise WaterConfigError(f"network {net.name} has no junctions to localise leaks at")
        ref = load_or_build_reference(
            net, sensor_set, params.hydraulics, params.horizon, params.step, params.leak_diameter,
            tuple(params.sensitivity_times), Path(cache_dir) if cache_dir else None,
        )
        return cls(net, sensor_set, params, ref)

    # -- streaming API -------------------------------------------------------

    def update(self, timestamp: float, readings: Mapping[str, float]) -> list[Alarm]:
        """Process all readings of one time step (``sensor id -> value``); return new alarms.

        Unknown sensor ids, non-numeric values and time steps older than the last one are
        ignored and counted in :meth:`status` (the stream is untrusted input).
        """
        y = np.full(len(self.sensor_ids), np.nan)
        for sid, value in readings.items():
            col = self._col.get(sid)
            if col is None:
                self._s.ignored += 1
                continue
            try:
                y[col] = float(value)
            except (TypeError, ValueError):
                self._s.ignored += 1
        return self.update_vector(float(timestamp), y)

    def update_vector(self, t: float, y: np.ndarray) -> list[Alarm]:
        """:meth:`update` with readings already in ``sensor_ids`` order (NaN = missing)."""
        s, p = self._s, self.params
        if not math.isfinite(t) or t <= s.last_t:
            s.ignored += 1
            return []
        if not np.isfinite(y).any():
            return []
        s.last_t = t
        s.steps += 1
        if s.t0 is None:
            s.t0 = t
        expected = self._model.expected(t, y, [(k.node_row, k.coefficient) for k in s.known])
        r = y - expected
        if s.bias is None:
            s.warm.append(r)
            if t - s.t0 >= p.warmup and len(s.warm) >= 3:
                self._finish_warmup()
            return []
        assert s.sigma is not None and s.cusum is not None and s.run is not None
        r = np.where(np.isfinite(r), r - s.bias, np.nan)
        sigma = s.sigma
        if s.known:
            # The modelled effect of a known leak is only roughly right near it (the leak sits
            # at a junction, not at its true spot on a pipe, and PRVs react non-linearly):
            # widen the noise of the sensors it affects.
            effect = expected - self._model.expected(t, y)
            sigma = np.sqrt(sigma**2 + (self._known_rel * effect) ** 2)
            self._track_known(t, r, sigma)
        s.sigma_eff = sigma
        z = np.nan_to_num(r / sigma, nan=0.0)
        z[~self._detect] = 0.0
        s.recent.append(z)  # unclipped: localisation needs the true shape of the residual
        if s.detection is not None:
            return self._analyse(t, z)
        zc = np.clip(z, -p.z_clip, p.z_clip)
        direction = np.where(self._is_pressure, -1.0, np.where(expected < 0, -1.0, 1.0))
        s.cusum = np.maximum(0.0, s.cusum + direction * zc - p.k)
        s.run = np.where(s.cusum > 0, s.run + 1, 0)
        if p.statistic == "signature":
            # One CUSUM per leak hypothesis: the residual projected on each junction's
            # standardised leak signature (a matched filter pooling all sensors).
            g = self._ref.sensitivity[:, self._detect] / sigma[self._detect]
            proj = (g @ zc[self._detect]) / np.maximum(np.linalg.norm(g, axis=1), 1e-12)
            s.bank = np.maximum(0.0, s.bank + proj - p.k)
            s.bank_run = np.where(s.bank > 0, s.bank_run + 1, 0)
            top = int(np.argmax(s.bank))
            value, run = float(s.bank[top]), int(s.bank_run[top])
        else:
            top = int(np.argmax(s.cusum))
            value, run = float(s.cusum[top]), int(s.run[top])
        if value <= p.h:
            return []
        steps = int(min(max(run, 3), len(s.recent)))
        triggered = np.flatnonzero(s.cusum > p.h / 4)
        triggered = triggered[np.argsort(-s.cusum[triggered])][:8]
        s.detection = _Detection(
            t=t, top=top, score=value / p.h,
            sensors=tuple(self.sensor_ids[i] for i in triggered),
            z_rows=list(s.recent)[-steps:], sigma=sigma,
        )
        s.cusum[:] = 0.0
        s.run[:] = 0
        s.bank[:] = 0.0
        s.bank_run[:] = 0
        return self._analyse(t, None)

    def run(self, frame: Any) -> list[Alarm]:
        """Offline: feed a readings DataFrame (index = time in s, columns = sensor ids)."""
        cols = [self._col.get(str(c)) for c in frame.columns]
        values = frame.to_numpy(dtype=float)
        alarms: list[Alarm] = []
        y = np.full(len(self.sensor_ids), np.nan)
        keep = [(j, c) for j, c in enumerate(cols) if c is not None]
        src = np.array([j for j, _ in keep], dtype=int)
        dst = np.array([c for _, c in keep], dtype=int)
        for t, row in zip(frame.index.to_numpy(dtype=float), values, strict=True):
            y[:] = np.nan
            y[dst] = row[src]
            alarms += self.update_vector(float(t), y)
        return alarms

    def status(self) -> dict[str, Any]:
        """Counters and state for health endpoints and dashboards."""
        s = self._s
        return {
            "steps": s.steps,
            "ignored": s.ignored,
            "warming_up": s.bias is None,
            "last_time": None if s.last_t == -math.inf else s.last_t,
            "known_leaks": [self._ref.candidates[k.node_row] for k in s.known],
            "analysing": s.detection is not None,
            "cusum_max": float(s.cusum.max()) if s.cusum is not None and len(s.cusum) else 0.0,
        }

    def close(self) -> None:
        self._model.close()

    def __enter__(self) -> LeakDetector:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -------------------------------------------------------------

    def _finish_warmup(self) -> None:
        s, p = self._s, self.params
        warm = np.vstack(s.warm)
        s.warm = []
        with np.errstate(all="ignore"):
            bias = np.nanmedian(warm, axis=0)
            mad = np.nanmedian(np.abs(warm - bias), axis=0) * 1.4826
        s.bias = np.nan_to_num(bias, nan=0.0)
        s.sigma = np.maximum(np.nan_to_num(mad, nan=1.0), self._min_sigma)
        n = len(self.sensor_ids)
        s.cusum = np.zeros(n)
        s.run = np.zeros(n, dtype=int)
        s.bank = np.zeros(len(self._ref.candidates))
        s.bank_run = np.zeros(len(self._ref.candidates), dtype=int)

    def _track_known(self, t: float, r: np.ndarray, sigma: np.ndarray) -> None:
        """One least-mean-squares step of the known leaks' sizes towards the current residual."""
        s, p = self._s, self.params
        det = self._detect & np.isfinite(r)
        if not det.any():
            return
        g = self._ref.sensitivity[[k.node_row for k in s.known]][:, det] / sigma[det]  # (m, n)
        delta, *_ = np.linalg.lstsq(g.T, r[det] / sigma[det], rcond=1e-3)
        for k, d in zip(s.known, delta, strict=True):
            k.coefficient = max(0.0, k.coefficient + p.size_gain * float(d) * self._ref.coefficient)
            if k.coefficient > 0.02 * self._ref.coefficient:
                k.last_active = t
        s.known = [k for k in s.known if t - k.last_active < _KNOWN_LEAK_FORGET_S]

    def _analyse(self, t: float, z: np.ndarray | None) -> list[Alarm]:
        """Advance the detection under analysis; return its alarm once localised."""
        s, p = self._s, self.params
        d = s.detection
        assert d is not None
        if z is not None:
            d.z_rows.append(z)
        alarms: list[Alarm] = []
        if d.node_row is None and t - d.t >= p.localise_delay:
            alarm = self._localise(t, d)
            if alarm is None:  # no leak explains these residuals: noise or model error
                s.detection = None
                return []
            alarms.append(alarm)
        if t - d.t >= p.holdoff:
            s.detection = None
        return alarms

    def _localise(self, t: float, d: _Detection) -> Alarm | None:
        """Name the junction whose leak signature best matches the residuals; add it to the model."""
        s = self._s
        assert s.sigma is not None
        signature = np.mean(d.z_rows, axis=0)
        det = self._detect
        g = self._ref.sensitivity[:, det] / d.sigma[det]
        sig = signature[det]
        with np.errstate(all="ignore"):
            cos = (g @ sig) / (np.linalg.norm(g, axis=1) * np.linalg.norm(sig))
        cos = np.nan_to_num(cos, nan=-1.0)
        row = int(np.argmax(cos))
        if cos[row] < self.params.min_confidence:
            return None
        d.node_row = row
        # Initial size: projection of the (clipped) signature on the node's sensitivity row.
        size = float(g[row] @ sig) / float(g[row] @ g[row]) if g[row].any() else 0.0
        if len(s.known) >= _KNOWN_LEAK_MAX:
            s.known.pop(0)
        s.known.append(_KnownLeak(node_row=row, coefficient=max(0.0, size) * self._ref.coefficient,
                                  last_active=t))
        node = self._ref.candidates[row]
        pipe = self._pipe_for(row)
        x, y = self.network.element_xy("node", node)
        return Alarm(time=t, pipe=pipe or node, node=node, score=d.score,
                     confidence=float(max(cos[row], 0.0)), sensors=d.sensors, x=x, y=y)

    def _pipe_for(self, row: int) -> str | None:
        if row not in self._pipes:
            self._pipes[row] = self.network.adjacent_pipe(self._ref.candidates[row])
        return self._pipes[row]
