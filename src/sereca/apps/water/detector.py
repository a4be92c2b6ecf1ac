"""Streaming leak detection and localisation.

Method (details, parameters and measured quality in docs/water.md):

1. **Residuals against a leak-free model.** For each time step the
   :class:`~sereca.apps.water.reference.ConditionedModel` gives every sensor's
   expected value (EPANET steady state with the demand patterns at that time
   and the *measured* tank levels and pump states). residual = reading -
   expected.
2. **Adapted to noise and to slow change.** During ``warmup`` the detector
   learns each sensor's noise (1.4826 x MAD of the residual) and bias
   (median). Afterwards the bias follows the residual slowly (exponential
   average, time constant ``baseline_tau``), which absorbs slow model drift
   and what a known leak's model leaves unexplained, but not the step a new
   leak causes. ``z = (residual - bias) / sigma``, clipped to ``+-z_clip`` for
   the CUSUMs so that single outliers cannot raise an alarm. That adapted bias
   is for detection only: localisation and re-fits (steps 4 and 6) measure the
   misfit against the warm-up bias, in which a slowly growing leak has not been
   partly absorbed.
3. **CUSUM per leak hypothesis** (``statistic="signature"``, default): for
   every candidate junction the standardised residual vector is projected on
   that junction's standardised leak signature (a matched filter pooling all
   sensors, from the sensitivity matrix), and a one-sided CUSUM
   ``C = max(0, C + projection - k)`` runs on it; an alarm when some ``C > h``.
   ``statistic="sensor"`` runs one CUSUM per sensor instead (pressure down,
   flow magnitude up).
4. **Localisation by pressure sensitivity.** After a crossing the detector
   keeps collecting for ``localise_delay``; the mean standardised residual
   over the CUSUM run plus that delay is compared (cosine similarity) with
   every junction's leak signature; a detection matching no signature better
   than ``min_confidence`` is dropped as noise. The location is refined by
   re-solving the network with a leak at the ``refine_candidates`` junctions
   that best match the mean residual *when the first re-solved time step
   arrives* (half-way through the window), at a few time steps of the later
   half of the window (its last sixth left out), each as soon as it arrives:
   per time step one solve without the new leak and one with it at each
   candidate; the residual is taken as linear in the leak's size between the
   two, so each candidate's misfit is a quadratic in its size and the leak is
   sized where it is least; when the window closes the ``refine_exact`` best
   are re-solved exactly at those sizes, and the ``refine_resize`` best by the
   secant through those re-solves once more at the secant's size. The alarm
   names the best junction's shortest pipe. With ``denoise_steps`` (off by
   default) each of those time steps reads the pressures denoised: the model's
   value there plus the residual averaged over that many steps either side
   (measurement noise, not the model, is what places a lone small leak
   hundreds of metres off). With ``float_known`` (on by default) the modelled
   leaks are re-sized with each candidate (per time step and set of modelled
   leaks the candidates are solved with, one more solve per modelled leak: the
   residual is taken as linear in each size too, down to zero for a repaired
   one), so what they leave unexplained does not pull the new leak towards them;
   a modelled leak that grew is then also re-solved grown alone, and its own
   junction is named when that fits within ``growth_margin`` of the best.
5. **Known leaks join the model.** A localised leak becomes an EPANET emitter
   at its junction, sized from the residual, so the model predicts how its
   effect swings with demand over the day; CUSUMs are frozen for ``holdoff``
   while the bias settles (with the faster time constant ``holdoff_tau``).
   A later detection that localises within ``merge_distance`` of a known leak
   is the same leak growing (incipient): its size is increased, no new alarm
   unless it adds ``merged_alarm_lps`` (``merged_elsewhere_lps`` when it localised
   away from where that leak was alarmed), and never when it is sized
   ``merged_alarm_max_lps`` or more (a big leak's own model error). No alarm
   within ``repeat_radius`` of one raised in the last ``repeat_window``. A new
   leak smaller than ``confirm_below_lps`` is modelled at once but alarmed only
   after ``relocalise_after``, localised again from scratch on the last
   ``refit_window`` of readings with itself left out of the model, where that
   puts it; not at all when that is more than ``relocalise_jump`` from where it
   was modelled (``relocalise_after`` 0: when the next periodic re-fit keeps it,
   where the re-fit puts it).
6. **Joint re-fit of the modelled leaks** (:mod:`~sereca.apps.water.localise_joint`),
   every ``refit_interval`` and before alarming on a detection: positions and sizes
   of all modelled leaks are re-fitted together; leaks that explain nothing any more
   are dropped (repairs); a detection the re-fitted known leaks explain as well is
   not alarmed; a leak the re-fits move more than ``realarm_distance`` from where it
   was alarmed (``realarm_confirm`` times in a row, and halving the objective
   there, ``realarm_min_relative``) is alarmed again at its new place. The explain re-fits use
   ``explain_samples`` time steps of the detection. With ``explain_before_alarm=False``
   the detection is alarmed without that check and the re-fit (new leak included)
   runs after the alarm.
7. **Work as jobs.** Steps 4 and 6 (hundreds of EPANET solves each) are
   jobs: generators that yield before every solve (``yield from`` through the
   joint re-fit). :meth:`LeakDetector.update` does the step's own solve, then
   advances the queued jobs (by at most ``work_budget`` solves if set),
   localisations first (an alarm waits for them), periodic and deferred re-fits
   after them; a job waits for the readings it needs, and its result (an alarm,
   new leak positions and sizes with the bias shift) is applied at the step it
   finishes. Nothing depends on wall-clock time: offline runs give exactly what
   a live stream gives. A background re-fit overtaken by a localisation that
   changed the modelled leaks is dropped. A live service may instead cap each
   step's share in wall-clock time (``update(..., work_seconds=S)``) and advance
   the jobs between steps with :meth:`LeakDetector.work` while no readings wait:
   the leak-detector service does (docs/water.md, "Scheduling").
"""

from __future__ import annotations

import bisect
import math
import time
from collections import deque
from collections.abc import Callable, Generator, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from sereca.apps.water.errors import WaterConfigError
from sereca.apps.water.localise_joint import FitResult, joint_refit_steps, secant_scale
from sereca.apps.water.models import Hydraulics, Seconds, SensorSet
from sereca.apps.water.network import Network, load_network
from sereca.apps.water.reference import (
    ConditionedModel,
    ReferenceData,
    load_or_build_reference,
)

_KNOWN_LEAK_MAX = 32


def _lps(coefficient: float) -> float:
    """An emitter coefficient ((L/s)/m**0.5) as the leak's flow at 40 m of pressure: the unit of
    every size threshold in :class:`DetectorParams` and of ``Alarm.size_lps``."""
    return coefficient * math.sqrt(40.0)


def _bounded_least_squares(gram: np.ndarray, target: np.ndarray, low: np.ndarray) -> np.ndarray:
    """Minimise x G x - 2 b x subject to x >= low, for a batch of tiny convex problems at once.

    ``gram`` (m, n, n), ``target`` (m, n), ``low`` (n,); returns x (m, n). Projected coordinate
    descent, all m problems in step (one numpy call per coordinate, not per problem: a
    localisation ranks ~80 candidates and per-problem Python loops cost it ~1 ms each). Stops
    after a sweep that moves nothing by more than 1e-12, or after 200 sweeps (near-collinear
    columns converge slowly).
    """
    m, n = target.shape
    x = np.zeros((m, n))
    for _ in range(200):
        moved = np.zeros(m)
        for i in range(n):
            diagonal = gram[:, i, i]
            usable = diagonal > 0
            step = (target[:, i] - np.einsum("mj,mj->m", gram[:, i, :], x)) / np.where(usable, diagonal, 1.0)
            new = np.where(usable, np.maximum(low[i], x[:, i] + step), x[:, i])
            moved = np.maximum(moved, np.abs(new - x[:, i]))
            x[:, i] = new
        if not m or moved.max() <= 1e-12:
            break
    return x


# What a job yields: SOLVE before each EPANET solve (one unit of work_budget); WAIT when it
# needs readings that have not arrived yet (it is resumed on a later step).
SOLVE = "solve"
WAIT = "wait"
Steps = Generator[str, None, Any]
# A localisation candidate as _refine_pick ranks it: (linearised misfit, row, total size, the modelled
# leaks it is solved with, its residual before it per sample: None unless float_known re-sized them).
_Ranked = tuple[float, int, float, list[tuple[int, float]], np.ndarray | None]


class DetectorParams(BaseModel):
    """Tuning of the detector (all optional; defaults tuned on L-Town, see docs/water.md)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    step: Seconds = Field(default=300.0, description="s, reading interval the reference is computed at")
    horizon: Seconds = Field(default=7 * 86400.0, description="s of leak-free run for unmeasured tanks/pumps")
    warmup: Seconds = Field(default=86400.0, description="s of leak-free readings to learn bias and noise")
    statistic: Literal["signature", "sensor"] = Field(
        default="signature", description="CUSUM per junction's matched leak signature, or per sensor")
    k: float = Field(default=1.0, ge=0, description="CUSUM allowance, in standard deviations")
    h: float = Field(default=12.0, gt=0, description="CUSUM alarm threshold, in standard deviations")
    z_clip: float = Field(default=4.0, gt=0, description="standardised residuals are clipped to +-z_clip")
    baseline_tau: Seconds = Field(default=12 * 3600.0, gt=0, description="s, time constant of the bias")
    localise_delay: Seconds = Field(default=3 * 3600.0, description="s of data collected after detection")
    holdoff: Seconds = Field(default=4 * 3600.0, description="s after a detection with CUSUMs frozen")
    holdoff_tau: Seconds = Field(default=3600.0, gt=0, description="s, time constant of the bias in holdoff")
    known_uncertainty_pressure: float = Field(
        default=0.1, ge=0, description="relative error of a known leak's modelled effect on pressures")
    known_uncertainty_flow: float = Field(
        default=0.2, ge=0, description="relative error of a known leak's modelled effect on flows")
    model_known: bool = Field(default=True, description="add localised leaks to the model as emitters")
    detect_repairs: bool = Field(
        default=False, description="experimental: drop known leaks the readings contradict (reverse CUSUM)")
    min_confidence: float = Field(default=0.5, ge=0, le=1,
                                  description="detections matching no leak signature this well are dropped")
    merge_distance: float = Field(default=300.0, ge=0,
                                  description="m: a detection this close to a known leak is that leak growing")
    refit_interval: Seconds = Field(
        default=6 * 3600.0, ge=0, description="s between joint re-fits of all modelled leaks (0: never)")
    refit_window: Seconds = Field(default=12 * 3600.0, gt=0, description="s of readings a periodic re-fit uses")
    refit_samples: int = Field(default=6, ge=1, description="time steps (spread over the window) a re-fit solves")
    explain_samples: int = Field(
        default=4, ge=1, description="time steps (spread over the detection's window) the explain re-fits solve")
    refit_min_gain: float = Field(
        default=4.0, ge=0, description="per sample: a modelled leak explaining less than this is dropped")
    refit_radius: float = Field(
        default=500.0, gt=0, description="m: how far one re-fit may move a modelled leak")
    refit_move_relative: float = Field(
        default=0.2, ge=0, description="a re-fit moves a leak only when that lowers the objective by this fraction")
    explain_radius: float = Field(
        default=200.0, gt=0, description="m: how far modelled leaks may move when explaining a detection")
    explain_min_relative: float = Field(
        default=0.1, ge=0, le=1, description="a new leak must lower the re-fit objective by this fraction")
    explain_max_growth: float = Field(
        default=1e9, gt=0, description=("a leak may grow at most this factor in either explain re-fit (default: no "
                                         "limit; docs/water-stages.md, 'how a big leak gets lost')"))
    explain_check: bool = Field(
        default=True, description="no alarm when re-fitting the modelled leaks explains a detection as well")
    explain_before_alarm: bool = Field(
        default=True,
        description=("run explain_check's two joint re-fits before alarming (the figures in docs/water.md); "
                     "False: alarm right after localisation and re-fit the modelled leaks, new one included, "
                     "afterwards as a background job (the alarm comes up to ~2 h of simulated time sooner; the "
                     "check cannot withhold it, a re-fit moving the leak > realarm_distance alarms again; "
                     "quality not measured)"))
    realarm_distance: float = Field(
        default=300.0, ge=0, description="m: a re-fit moving a leak this far raises a new alarm there (0: never)")
    realarm_confirm: int = Field(
        default=3, ge=1, description="re-fits in a row that must put a leak at its new place before it is re-alarmed")
    realarm_min_relative: float = Field(
        default=0.5, ge=0, le=1,
        description=("a relocation is alarmed only when the leak at its new place lowers the re-fit objective "
                     "by this fraction compared with the leak back where it was alarmed (0: no such test)"))
    realarm_min_lps: float = Field(
        default=5.0, ge=0, description="L/s at 40 m: smaller leaks are not alarmed again where the re-fits move them")
    merged_alarm_lps: float = Field(
        default=5.0, ge=0, description=("L/s at 40 m: a detection that joins the modelled leaks (near a known one, "
                                        "or explained by re-fitting them) is still alarmed when it adds this much "
                                        "(at a known leak's junction: that leak's growth; 0: never)"))
    merged_alarm_max_lps: float = Field(
        default=20.0, ge=0, description=("L/s at 40 m: a detection that joins the modelled leaks and is sized this much or "
                                         "more (with the known leak at its junction) is never alarmed: near a leak this "
                                         "big, the model's own error (not linear over its size) is what gets detected; "
                                         "37 of 41 such alarms were false (docs/water-stages.md, 'Stage O'; 0: no limit)"))
    merged_elsewhere_lps: float = Field(
        default=1.0, ge=0, description=("L/s at 40 m: a detection merged into a known leak but localised more than "
                                        "repeat_radius from where that leak was alarmed is alarmed when it adds "
                                        "this much (a second leak beside the first, or the first found better; "
                                        "0: never)"))
    confirm_below_lps: float = Field(
        default=2.0, ge=0, description=("L/s at 40 m: a new leak estimated smaller is modelled at once but alarmed only "
                                        "once localised again (relocalise_after), or when the next periodic re-fit "
                                        "keeps it, where that re-fit puts it (0: never)"))
    confirm_sensor_distance: float = Field(
        default=100.0, ge=0, description=("m: a small new leak (confirm_below_lps) modelled farther than this from "
                                          "every pressure sensor is alarmed only once a re-fit sizes it at "
                                          "confirm_below_lps or more, when it is not localised again "
                                          "(relocalise_after 0; 0: no such wait)"))
    relocalise_after: Seconds = Field(
        default=12 * 3600.0, ge=0, description=("s: a small new leak (confirm_below_lps) is localised again this long after "
                                        "it was modelled, on the last refit_window of readings with itself left out "
                                        "of the model, and alarmed where that puts it (0: it is alarmed where the "
                                        "next periodic re-fit keeps it)"))
    relocalise_jump: float = Field(
        default=600.0, ge=0, description=("m: a small leak localised again farther than this from where it was "
                                          "modelled is moved there but never alarmed: the readings do not place it "
                                          "(0: always alarmed)"))
    confirmed_alarms: bool = Field(
        default=True, description=("False: a small new leak (confirm_below_lps) is modelled but never alarmed, also "
                                   "when a re-fit keeps it (its place then counts as alarmed for merged detections "
                                   "and relocations): precision before recall (docs/water-stages.md, 'After stage I')"))
    absorb_radius: float = Field(
        default=800.0, ge=0, description=("m: a new leak localised this close to a young small modelled leak replaces "
                                        "it (a growing leak first placed off, found again bigger; 0: never)"))
    absorb_below_lps: float = Field(
        default=2.0, ge=0, description="L/s at 40 m: only modelled leaks smaller than this are replaced (absorb_radius)")
    absorb_age: Seconds = Field(
        default=48 * 3600.0, ge=0, description="s: only leaks modelled this recently are replaced (absorb_radius)")
    repeat_radius: float = Field(
        default=200.0, ge=0, description="m: no new alarm this close to an alarm raised in the last repeat_window")
    repeat_window: Seconds = Field(default=24 * 3600.0, ge=0, description="s, see repeat_radius")
    refine_candidates: int = Field(default=80, ge=1, description="junctions re-simulated to pick the location")
    refine_exact: int = Field(
        default=10, ge=1, description=("of those, the best (by the linearised misfit) re-solved at the size that "
                                       "misfit predicts, when the localisation window closes"))
    refine_resize: int = Field(
        default=3, ge=0, description=("of those, the best (by the misfit the secant through that re-solve predicts) "
                                      "re-solved again at the secant's size; the best of all re-solves is the location"))
    work_budget: int | None = Field(
        default=None, ge=1,
        description=("at most this many EPANET solves per time step for the heavy work (localisation re-solves, "
                     "joint re-fits), besides the step's own solve; the rest waits for the following steps, "
                     "so no update() costs more than ~(1 + work_budget) solves. None (the default since "
                     "stage P; 24 before): every job runs as far as the readings allow, which can take ~1 s "
                     "in the step a localisation window closes and alarms ~1 h sooner in stream time"))
    signature_steps: int = Field(default=24, ge=1, description="max steps of CUSUM run used to localise")
    denoise_steps: int = Field(
        default=0, ge=0, description=("localisation reads each pressure at a time step as the model's value there plus "
                                      "the residual averaged over this many steps either side (the same modelled "
                                      "leaks): the leak's effect hardly changes in minutes, the noise averages out; "
                                      "localising a small leak again averages up to half-way to the next time step. "
                                      "3 found slightly fewer leaks for as many false alarms (docs/water-stages.md, "
                                      "'Stage M'; 0: single readings everywhere)"))
    float_known: bool = Field(
        default=True, description=("localisation re-sizes the modelled leaks with each candidate (linearised, from "
                                    "zero: repaired, to any size: grown), so what they leave unexplained does not "
                                    "pull the new leak (a leak that grew: see growth_margin); costs "
                                    "one solve per modelled leak and time step for each set of them the candidates "
                                    "are solved with (docs/water-stages.md, 'After stage M')"))
    growth_margin: float = Field(
        default=4.0, ge=0, description=("float_known: a modelled leak's own junction is named when its exact misfit is "
                                        "within this much (squared standardised residuals) of the best: a new leak "
                                        "elsewhere must explain the readings better than that leak's growth does"))
    min_sigma_pressure: float = Field(default=0.005, gt=0, description="m")
    min_sigma_flow: float = Field(default=0.001, gt=0, description="relative (flow residuals are relative)")
    flow_scale_floor: float = Field(default=1.0, gt=0, description="L/s added to |flow| when scaling residuals")
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
    sensors: tuple[str, ...]  # sensors that deviated most when the leak was detected
    x: float
    y: float
    size_lps: float = 0.0  # estimated leak flow at 40 m pressure, L/s

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["sensors"] = list(self.sensors)
        return data


@dataclass
class _KnownLeak:
    node_row: int
    coefficient: float  # emitter coefficient, (L/s)/m**0.5
    alarm_time: float
    alarm_row: int = -1  # where it was last alarmed
    moves: list[int] = field(default_factory=list)  # re-fitted rows far from alarm_row, in a row
    pending: tuple[float, float, tuple[str, ...]] | None = None  # (score, confidence, sensors): alarm to come
    repair_cusum: float = 0.0  # evidence that the leak's effect has gone (repaired)
    relocalise_at: float = math.inf  # when it is localised again (relocalise_after)


@dataclass
class _Detection:
    """A CUSUM crossing under analysis: localised after localise_delay, over after holdoff."""

    t: float
    score: float
    sensors: tuple[str, ...]
    z_rows: list[np.ndarray]
    readings: list[tuple[float, np.ndarray]]
    localised: bool = False  # the localisation job has finished (alarmed, merged or dropped)
    localised_at: float = math.inf
    closed: bool = False  # localise_delay has passed: z_rows and readings are complete
    samples: list[int] = field(default_factory=list)  # indices in readings the refine job re-solves
    started: bool = False  # the localisation job is queued
    # candidate row -> the modelled leaks a leak there replaces (the one at that junction, young small ones near)
    absorbed: dict[int, list[_KnownLeak]] = field(default_factory=dict)
    replaces: _KnownLeak | None = None  # localising again a modelled leak: left out of every candidate's solve
    # candidate row -> sample index -> standardised residual the new leak there must explain
    unexplained: dict[int, dict[int, np.ndarray]] = field(default_factory=dict)
    # float_known: base (modelled leaks solved with) -> sample index -> (K, sensors) effect of doubling each;
    # candidate row -> sample index -> the effect of the candidate's leak at its probe size
    effects: dict[tuple[tuple[int, float], ...], dict[int, np.ndarray]] = field(default_factory=dict)
    probe_effects: dict[int, dict[int, np.ndarray]] = field(default_factory=dict)


@dataclass
class _Job:
    """Heavy work spread over time steps: a generator yielding SOLVE / WAIT, then returning its result."""

    kind: str
    steps: Steps
    done: Callable[[float, Any], list[Alarm]]  # applies the result; returns alarms (no solves)
    urgent: bool = False  # localisation (an alarm waits for it): runs before the background re-fits
    pending: bool = False  # it yielded SOLVE: the next resumption does one solve


@dataclass
class _State:
    t0: float | None = None
    last_t: float = -math.inf
    warm: list[np.ndarray] = field(default_factory=list)
    warm_scale: list[np.ndarray] = field(default_factory=list)
    typical_scale: np.ndarray | None = None  # of each sensor's residual unit, for the signatures
    bias: np.ndarray | None = None
    bias0: np.ndarray | None = None  # leak-free bias from warm-up (the re-fit objective's reference)
    history: deque[tuple[float, np.ndarray]] = field(default_factory=lambda: deque(maxlen=4096))
    # Aligned with history, kept only with denoise_steps: (time, reading - model, the modelled leaks then).
    residuals: deque[tuple[float, np.ndarray, tuple[tuple[int, float], ...]]] = field(default_factory=deque)
    last_refit: float = -math.inf
    refits: int = 0
    moved: int = 0
    deferred_refits: int = 0
    jobs: list[_Job] = field(default_factory=list)  # urgent ones first, else in order
    job_solves: dict[str, int] = field(default_factory=dict)  # per job kind
    sigma: np.ndarray | None = None
    cusum: np.ndarray = field(default_factory=lambda: np.zeros(0))  # per sensor
    bank: np.ndarray = field(default_factory=lambda: np.zeros(0))  # per candidate junction
    bank_run: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    run: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=int))
    detection: _Detection | None = None
    alarmed: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=64))  # (time, row) raised
    repeats: int = 0
    deferred_alarms: int = 0
    known: list[_KnownLeak] = field(default_factory=list)
    recent: deque[np.ndarray] = field(default_factory=deque)
    readings: deque[tuple[float, np.ndarray]] = field(default_factory=deque)  # (t, y) for localisation
    steps: int = 0
    ignored: int = 0
    merged: int = 0
    absorbed: int = 0  # small modelled leaks replaced by a later localisation (absorb_radius)
    repaired: int = 0
    dropped: int = 0


class LeakDetector:
    """Feed it readings with :meth:`update`; it returns the alarms raised at that time step.

    Not thread-safe: one detector per stream (it holds an open EPANET project).
    """

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
        self._near: dict[int, np.ndarray] = {}
        self._log: deque[tuple[float, str, str, float]] = deque(maxlen=256)  # recent decisions, for diagnosis
        self._row = {c: i for i, c in enumerate(reference.candidates)}
        self._cand_net = np.array([network.node_index[c] for c in reference.candidates], dtype=int)
        window = params.signature_steps + int(params.localise_delay // params.step) + 2
        kept = max(2, int(params.refit_window // params.step) + 1)
        self._s = _State(recent=deque(maxlen=window), readings=deque(maxlen=window),
                         history=deque(maxlen=kept), residuals=deque(maxlen=kept))
        if not self._detect.any():
            raise WaterConfigError("no pressure sensor and no flow sensor outside pumps: nothing to detect leaks with")

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

    def update(self, timestamp: float, readings: Mapping[str, float], *,
               work_seconds: float | None = None) -> list[Alarm]:
        """Process all readings of one time step (``sensor id -> value``); return new alarms.

        Unknown sensor ids, non-numeric values and time steps not after the last one are
        ignored and counted in :meth:`status` (the stream is untrusted input). The step
        advances the queued jobs (at most ``work_budget`` solves); with ``work_seconds`` it starts
        no solve of theirs after that much wall-clock time (for :meth:`work` to go on).
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
        return self.update_vector(float(timestamp), y, work_seconds=work_seconds)

    def update_vector(self, t: float, y: np.ndarray, *, work_seconds: float | None = None) -> list[Alarm]:
        """:meth:`update` with readings already in ``sensor_ids`` order (NaN = missing)."""
        s, p = self._s, self.params
        if not math.isfinite(t) or t <= s.last_t:
            s.ignored += 1
            return []
        y = np.where(np.isfinite(y), y, np.nan)
        if not np.isfinite(y).any():
            return []
        s.last_t = t
        s.steps += 1
        if s.t0 is None:
            s.t0 = t
        deadline = None if work_seconds is None else time.perf_counter() + work_seconds
        alarms = self._not_repeated(self._step(t, y) + self._work(t, p.work_budget, deadline)[0])
        d = s.detection
        if (d is not None and d.localised and t - d.t >= p.holdoff
                and t - d.localised_at >= p.holdoff - p.localise_delay):
            s.detection = None  # the bias has settled on the newly modelled leak
            self._reset_cusums()
        return alarms

    def _not_repeated(self, alarms: list[Alarm]) -> list[Alarm]:
        """Alarms not within ``repeat_radius`` of one raised in the last ``repeat_window``.

        A second alarm at a place the utility was sent to hours ago tells it nothing new (BattLeDIM
        scores it zero at best), and a place alarmed by mistake stays wrong. The detector's model is
        updated all the same: only the alarm is withheld (counted in ``status()``).
        """
        s, p = self._s, self.params
        kept = []
        for alarm in alarms:
            row = self._row[alarm.node]
            recent = [r for t, r in s.alarmed if alarm.time - t <= p.repeat_window]
            if p.repeat_radius > 0 and recent and self._distances(row)[recent].min() <= p.repeat_radius:
                s.repeats += 1
                continue
            s.alarmed.append((alarm.time, row))
            kept.append(alarm)
        return kept

    def work(self, solves: int) -> tuple[list[Alarm], int]:
        """Advance the queued jobs between time steps by at most ``solves`` EPANET solves.

        Returns the alarms of the jobs that finished (timed at the last step) and the solves
        done: 0 means nothing can run until more readings arrive.
        """
        alarms, done = self._work(self._s.last_t, solves)  # no jobs before the first step
        return self._not_repeated(alarms), done

    def _work(self, t: float, budget: int | None, deadline: float | None = None) -> tuple[list[Alarm], int]:
        """Advance the queued jobs by at most ``budget`` EPANET solves; apply those that finish.

        Urgent jobs (localisations) go first; a job waiting for readings lets the next one run.
        No solve starts after ``deadline`` (``time.perf_counter()``). Returns the alarms and
        the solves done.
        """
        s = self._s
        limit = math.inf if budget is None else budget
        done = 0
        alarms: list[Alarm] = []
        waiting: set[int] = set()
        while True:
            ready = [job for job in s.jobs if id(job) not in waiting]
            if not ready:
                break
            job = min(ready, key=lambda j: not j.urgent)  # the first urgent one, else the first
            if job.pending:
                if done >= limit or (deadline is not None and time.perf_counter() >= deadline):
                    break
                done += 1
                s.job_solves[job.kind] = s.job_solves.get(job.kind, 0) + 1
            try:
                token = next(job.steps)
            except StopIteration as stop:
                s.jobs.remove(job)
                alarms += job.done(t, stop.value)
                continue
            job.pending = token == SOLVE
            if token == WAIT:
                waiting.add(id(job))
        return alarms, done

    def _solve(self, t: float, y: np.ndarray, leaks: Sequence[tuple[int, float]]) -> Generator[str, None, np.ndarray]:
        """One EPANET solve inside a job (one unit of ``work_budget``)."""
        yield SOLVE
        return self._model.expected(t, y, leaks)

    def _step(self, t: float, y: np.ndarray) -> list[Alarm]:
        """The streaming part of a time step: residuals, bias, CUSUMs (one EPANET solve)."""
        s, p = self._s, self.params
        leaks = [(k.node_row, k.coefficient) for k in s.known] if p.model_known else []
        expected = self._model.expected(t, y, leaks)
        scale = self._flow_scale(expected)
        r = (y - expected) / scale
        if s.bias is None:
            s.warm.append(r)
            s.warm_scale.append(scale)
            if t - s.t0 >= p.warmup and len(s.warm) >= 3:
                self._finish_warmup()
            return []
        assert s.sigma is not None
        d = r - s.bias
        seen = np.isfinite(d)
        # The bias stands still while a detection is being localised (the residual step is
        # the evidence), then quickly absorbs what the new leak leaves unexplained.
        if s.detection is None:
            rate = min(1.0, p.step / p.baseline_tau)
        else:
            rate = min(1.0, p.step / p.holdoff_tau) if s.detection.localised else 0.0
        s.bias = np.where(seen, s.bias + rate * np.nan_to_num(d), s.bias)
        sigma = s.sigma
        if s.known:
            # A known leak's modelled effect is only roughly right (it sits at a junction,
            # not at its true spot, and its size is an estimate) and the error swings with
            # demand: widen the noise of the sensors it affects, in proportion.
            sizes = np.array([k.coefficient for k in s.known]) / self._ref.coefficient
            effect = np.abs(sizes @ self._ref.sensitivity[[k.node_row for k in s.known]]) / scale
            sigma = np.sqrt(sigma**2 + (self._known_rel * effect) ** 2)
        z = np.where(seen & self._detect, np.nan_to_num(d) / sigma, 0.0)
        s.recent.append(z)
        s.readings.append((t, y))
        s.history.append((t, y))
        if p.denoise_steps:  # kept only for denoising (_denoised)
            s.residuals.append((t, y - expected, tuple(leaks)))
        if s.detection is not None:
            self._analyse(t, z)
            return []
        due = [] if s.jobs else [k for k in s.known if k.pending is not None and k.relocalise_at <= t]
        if due:
            due[0].relocalise_at = math.inf
            s.jobs.append(_Job("relocalise", self._relocalise(due[0]), self._applied))
        if (p.refit_interval > 0 and s.known and p.model_known and not s.jobs
                and t - max(s.last_refit, s.known[-1].alarm_time) >= p.refit_interval):
            s.last_refit = t
            self._refit_known(self._spread(list(s.history), p.refit_samples))
        zc = np.clip(z, -p.z_clip, p.z_clip)
        if s.known and p.model_known and p.detect_repairs:
            self._check_repairs(zc)
        direction = np.where(self._is_pressure, -1.0, np.where(expected < 0, -1.0, 1.0))
        s.cusum = np.maximum(0.0, s.cusum + direction * zc - p.k)
        s.run = np.where(s.cusum > 0, s.run + 1, 0)
        if p.statistic == "signature":
            proj = self._signatures() @ zc[self._detect]
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
        d = _Detection(t=t, score=value / p.h, sensors=tuple(self.sensor_ids[i] for i in triggered),
                       z_rows=list(s.recent)[-steps:], readings=list(s.readings)[-steps:])
        # The refine job re-solves the later half of the readings up to localise_delay (every
        # few steps): the indices are fixed now, so it can start as soon as the first arrives.
        # The last sixth of the window is left out, so these re-solves are done when it closes.
        delay_steps = math.ceil(p.localise_delay / p.step - 1e-9)
        n = steps + delay_steps - delay_steps // 6
        half = n - n // 2
        d.samples = list(range(n // 2, n, max(1, half // 4)))
        s.detection = d
        self._reset_cusums()
        self._analyse(t, None)
        return []

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
            "merged_detections": s.merged,
            "replaced_small_leaks": s.absorbed,
            "dropped_detections": s.dropped,
            "repairs_seen": s.repaired,
            "refits": s.refits,
            "relocated_alarms": s.moved,
            "repeat_alarms_withheld": s.repeats,
            "deferred_alarms": s.deferred_alarms,
            "deferred_refits": s.deferred_refits,
            "jobs_queued": [job.kind for job in s.jobs],
            "job_solves": dict(s.job_solves),
            "cusum_max": float(s.bank.max()) if s.bank.size else 0.0,
        }

    def close(self) -> None:
        self._model.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -------------------------------------------------------------

    def _signatures(self) -> np.ndarray:
        """Unit-norm standardised leak signature of every candidate junction (rows)."""
        if self._sig is None:
            unit = self._unit()
            g = self._ref.sensitivity[:, self._detect] / unit[self._detect]
            self._sig = g / np.maximum(np.linalg.norm(g, axis=1, keepdims=True), 1e-12)
        return self._sig

    _sig: np.ndarray | None = None

    def _unit(self) -> np.ndarray:
        """What one standard deviation of each sensor is, in the sensor's own units."""
        assert self._s.sigma is not None and self._s.typical_scale is not None
        return self._s.sigma * self._s.typical_scale

    def _finish_warmup(self) -> None:
        s = self._s
        warm = np.vstack(s.warm)
        s.warm = []
        with np.errstate(all="ignore"):
            bias = np.nanmedian(warm, axis=0)
            mad = np.nanmedian(np.abs(warm - bias), axis=0) * 1.4826
        s.bias = np.nan_to_num(bias, nan=0.0)
        s.bias0 = s.bias.copy()
        s.sigma = np.maximum(np.nan_to_num(mad, nan=1.0), self._min_sigma)
        s.typical_scale = np.median(np.vstack(s.warm_scale), axis=0)
        s.warm_scale = []
        n = len(self.sensor_ids)
        s.cusum = np.zeros(n)
        s.run = np.zeros(n, dtype=int)
        s.bank = np.zeros(len(self._ref.candidates))
        s.bank_run = np.zeros(len(self._ref.candidates), dtype=int)

    def _reset_cusums(self) -> None:
        s = self._s
        s.cusum[:] = 0.0
        s.run[:] = 0
        s.bank[:] = 0.0
        s.bank_run[:] = 0

    def _analyse(self, t: float, z: np.ndarray | None) -> None:
        """Collect the detection's evidence; queue its localisation job once the first sample is in."""
        s, p = self._s, self.params
        d = s.detection
        assert d is not None
        if z is not None and not d.closed:
            d.z_rows.append(z)
            d.readings.append(s.readings[-1])
        if not d.closed and t - d.t >= p.localise_delay:
            d.closed = True
        if not d.started and (d.closed or not d.samples or len(d.readings) > d.samples[0]):
            d.started = True
            # The candidate junctions are ranked (and their leaks sized) on the mean residual so
            # far, so their re-solves can run while the rest of the window arrives.
            partial = np.mean(d.z_rows, axis=0)[self._detect]

            def localised(t_done: float, alarms: list[Alarm]) -> list[Alarm]:
                d.localised, d.localised_at = True, t_done
                self._log.append((t_done, "localised", f"{(t_done - d.t) / 3600:.2f} h after detection", 0.0))
                return alarms

            s.jobs.append(_Job("localise", self._localise(d, partial), localised, urgent=True))

    def _localise(self, d: _Detection, partial: np.ndarray) -> Steps:
        """Job: name the junction whose leak best explains the residuals; add it to the model.

        Returns the alarms (none when the detection is dropped, merged or explained).
        """
        s, p = self._s, self.params
        fits = yield from self._refine(d, partial)
        while not d.closed:
            yield WAIT
        t = s.last_t
        signature = np.mean(d.z_rows, axis=0)[self._detect]
        unit = self._signatures()
        norm = float(np.linalg.norm(signature))
        if norm == 0.0:
            s.dropped += 1
            return []
        cos = unit @ signature / norm
        if cos[int(np.argmax(cos))] < p.min_confidence:
            s.dropped += 1
            return []
        row, coefficient = yield from self._refine_pick(d, fits)
        if coefficient <= 0:  # the modelled leaks, resized (float_known), explain it all
            s.dropped += 1
            return []
        node = self._ref.candidates[row]
        for k in d.absorbed.get(row, []):
            if k.node_row != row and any(x is k for x in s.known):
                s.known = [x for x in s.known if x is not k]  # one leak, localised better: the earlier emitter was it
                s.absorbed += 1
                self._log.append((t, "absorbed", self._ref.candidates[k.node_row], k.coefficient))
        near = self._known_near(row)
        self._log.append((t, "refined", node, coefficient))
        confidence = float(cos[row])

        # What the detection adds: at a known leak's junction, the growth of that leak.
        added = coefficient - sum(k.coefficient for k in s.known if k.node_row == row)

        def merged(moved: list[Alarm], elsewhere: bool = False) -> list[Alarm]:
            """The detection joined the modelled leaks: alarmed only when it is a big step, or a
            smaller one at a place not alarmed yet."""
            s.merged += 1
            lps = _lps(added)
            if 0 < p.merged_alarm_max_lps <= _lps(coefficient):
                return moved
            if 0 < p.merged_alarm_lps <= lps or (elsewhere and 0 < p.merged_elsewhere_lps <= lps):
                return [*moved, self._alarm(s.last_t, row, coefficient, d.score, confidence, d.sensors)]  # now
            return moved

        if near is not None:
            self._log.append((t, "merged-near", self._ref.candidates[near.node_row], near.coefficient))
            # Within merge_distance but away from where the known leak was alarmed: a second leak beside
            # it (the model cannot tell two emitters this close apart) or the first one found better.
            elsewhere = near.alarm_row >= 0 and self._distances(near.alarm_row)[row] > p.repeat_radius
            if near.node_row == row:
                near.coefficient = coefficient  # refined as the known leak, grown to this size
            else:
                near.coefficient += coefficient  # the same leak, grown
            return merged([], elsewhere)
        if p.explain_check and p.model_known and s.known and not p.explain_before_alarm:
            # Alarm now; the joint re-fit (new leak included) is queued behind.
            samples = self._spread(d.readings, p.explain_samples)
            alarms = self._add_and_alarm(t, d, row, coefficient, confidence)
            s.jobs.append(_Job("explain-deferred", self._deferred_explain(samples), self._applied))
            return alarms
        if p.explain_check and p.model_known and s.known:
            # Is this a new leak, or what the modelled ones (misplaced, mis-sized, repaired)
            # leave unexplained? Re-fit them jointly with and without the new one.
            samples = self._spread(d.readings, p.explain_samples)
            existing = [(k.node_row, k.coefficient) for k in s.known]
            without = yield from self._joint(samples, existing, p.explain_radius, p.explain_max_growth)
            with_new = yield from self._joint(samples, [*existing, (row, coefficient)], p.explain_radius,
                                              p.explain_max_growth)
            t = s.last_t
            new_kept = len(existing) in with_new.kept
            note = f"without={without.sse:.0f} with={with_new.sse:.0f} start={without.sse_start:.0f} kept={new_kept}"
            self._log.append((t, "explain", note, 0.0))
            gain = without.sse - with_new.sse
            if (not new_kept or gain < p.refit_min_gain * len(samples)
                    or gain < p.explain_min_relative * without.sse):
                return merged((yield from self._apply_fit(t, samples, without, list(s.known))))
            fitted_row = with_new.leaks[with_new.kept.index(len(existing))][0]
            if self._known_near(fitted_row) is not None:
                self._log.append((t, "merged-fitted", self._ref.candidates[fitted_row], 0))
                # The same leak, better described by two emitters (e.g. it grew, or lies between two
                # junctions): model it so, without an alarm.
                old = [*s.known, _KnownLeak(node_row=row, coefficient=coefficient, alarm_time=t)]
                return merged((yield from self._apply_fit(t, samples, with_new, old)))
            new = _KnownLeak(node_row=row, coefficient=coefficient, alarm_time=t, alarm_row=row)
            moved = yield from self._apply_fit(t, samples, with_new, [*s.known, new])
            new.alarm_row = new.node_row
            new.moves = []
            if len(s.known) > _KNOWN_LEAK_MAX:
                s.known.pop(0)
            return [*moved, *self._new_leak_alarms(s.last_t, new, d, confidence)]
        return self._add_and_alarm(t, d, row, coefficient, confidence)

    def _add_and_alarm(self, t: float, d: _Detection, row: int, coefficient: float,
                       confidence: float) -> list[Alarm]:
        """Model a new leak; its alarm, unless it waits for a re-fit (:meth:`_new_leak_alarms`)."""
        s = self._s
        if len(s.known) >= _KNOWN_LEAK_MAX:
            s.known.pop(0)
        new = _KnownLeak(node_row=row, coefficient=coefficient, alarm_time=t, alarm_row=row)
        s.known.append(new)
        return self._new_leak_alarms(t, new, d, confidence)

    def _new_leak_alarms(self, t: float, leak: _KnownLeak, d: _Detection, confidence: float) -> list[Alarm]:
        """The alarm of a newly modelled leak, raised at ``t`` where it is modelled; none yet for a
        small one (``confirm_below_lps``), which waits to be localised again (``relocalise_after``,
        :meth:`_relocalise`) or, with that 0, for the next periodic re-fit: localised from a faint
        residual (a leak just detectable, often an incipient one still growing), it is often
        hundreds of metres off; half a day of readings places it better, when it may be bigger."""
        p = self.params
        if not self._small(leak) or not (p.refit_interval and p.model_known):
            # big enough, or no periodic re-fit to wait for
            return [self._alarm(t, leak.node_row, leak.coefficient, d.score, confidence, d.sensors)]
        leak.pending, leak.alarm_row = (d.score, confidence, d.sensors), -1
        if p.relocalise_after > 0:
            leak.relocalise_at = t + p.relocalise_after
        self._s.deferred_alarms += 1
        return []

    def _relocalise(self, leak: _KnownLeak) -> Steps:
        """Job (``relocalise_after``): localise a small pending leak again, from scratch, on the last
        ``refit_window`` of readings at 8 time steps (half a day of demand swings tells apart places a
        few hours cannot), with itself left out of the model; move it there, and alarm it there,
        unless that is more than ``relocalise_jump`` from where it was: two localisations that far
        apart say the readings cannot place it (all 12 such alarms in the runs the rule was read
        from were false: docs/water-stages.md, "Stage L").

        Dropped if the modelled leaks changed meanwhile (the periodic re-fit then confirms it).
        """
        s = self._s
        history, n = list(s.history), 8
        # each sample stands for the readings up to half-way to the next one
        samples = self._denoised(self._spread(history, n), len(history) // (2 * n) if self.params.denoise_steps else 0)
        before = [(k.node_row, k.coefficient) for k in s.known]
        without = [(k.node_row, k.coefficient) for k in s.known if k is not leak]
        d = _Detection(t=s.last_t, score=1.0, sensors=(), z_rows=[], readings=samples, closed=True,
                       samples=list(range(len(samples))), replaces=leak)
        partial = (yield from self._residuals(samples, without)).mean(axis=0)
        fits = yield from self._refine(d, partial)
        row, coefficient = yield from self._refine_pick(d, fits)
        after = [*without, (row, coefficient)]
        shift = (yield from self._raw_mean(samples, after)) - (yield from self._raw_mean(samples, before))
        if leak.pending is None or before != [(k.node_row, k.coefficient) for k in s.known]:
            self._log.append((s.last_t, "relocalise-stale", "", 0.0))
            return []
        self._log.append((s.last_t, "relocalised", self._ref.candidates[row], coefficient))
        assert s.bias is not None
        s.bias = s.bias + shift
        if coefficient <= 0:  # the other modelled leaks, resized (float_known), explain it all: no leak
            s.known = [k for k in s.known if k is not leak]
            return []
        jump = float(self._distances(leak.node_row)[row])
        leak.node_row, leak.coefficient = row, coefficient
        (score, confidence, sensors), leak.pending = leak.pending, None
        if 0 < self.params.relocalise_jump < jump:
            self._log.append((s.last_t, "relocalise-jump", f"{jump:.0f} m", 0.0))
            return []  # the readings do not place it: modelled where they put it now, never alarmed
        leak.alarm_row = row
        if not self.params.confirmed_alarms:
            return []
        return [self._alarm(s.last_t, row, coefficient, score, confidence, sensors)]

    def _confirmed(self, kept: list[_KnownLeak]) -> list[Alarm]:
        """Alarms of the small new leaks a periodic re-fit kept (``kept``), where it put them.

        One still small and far from every pressure sensor (``confirm_sensor_distance``) waits
        for a re-fit that finds it bigger: out there the sensors cannot place a leak that small
        (half of such alarms were hundreds of metres off), and one that grows is alarmed then.
        """
        s, p = self._s, self.params
        alarms = []
        for k in kept:
            if k.pending is None or k.relocalise_at < math.inf:
                continue  # not waiting, or waiting to be localised again
            if self._small(k) and 0 < p.confirm_sensor_distance < self._sensor_distance[k.node_row]:
                continue  # waits for a re-fit that finds it bigger
            (score, confidence, sensors), k.pending = k.pending, None
            k.alarm_row = k.node_row  # its place counts as known: a detection well away from it is news
            if not p.confirmed_alarms:
                continue  # modelled, never alarmed
            alarms.append(self._alarm(s.last_t, k.node_row, k.coefficient, score, confidence, sensors))
        return alarms

    def _small(self, leak: _KnownLeak) -> bool:
        """Below ``confirm_below_lps``: its alarm waits (:meth:`_new_leak_alarms`)."""
        return _lps(leak.coefficient) < self.params.confirm_below_lps

    def _refine(self, d: _Detection, partial: np.ndarray) -> Steps:
        """Job part: re-solve the network with a leak at each of the best-matching junctions (non-linear).

        The sensitivity matrix is a linearisation averaged over a few times of day; the
        final choice re-solves the network with an emitter at each of the
        ``refine_candidates`` junctions best matching ``partial`` (the mean residual when
        the first sample arrived), at the detection's sample time steps (``d.samples``,
        each as soon as it arrives). Per sample: one solve of the model without the new
        leak and one with it at each candidate (sized from ``partial``); the standardised
        residual is taken as linear in the emitter size between the two, so each candidate's
        misfit is a quadratic in its size, evaluated later at any size (:meth:`_refine_pick`).
        Returns ``{row: (probe, offset, A, B, C)}``: misfit = A - 2 B l + C l**2 with
        l = total coefficient / (offset + probe); ``offset`` is the coefficient of a known leak
        already modelled at that junction (left out of the solve "without"), else 0.
        """
        s, p = self._s, self.params
        assert s.sigma is not None and s.bias is not None
        unit_sd = self._unit()
        det = self._detect
        cos = self._signatures() @ partial / max(float(np.linalg.norm(partial)), 1e-12)
        order = [int(r) for r in np.argsort(-cos)[: p.refine_candidates]]
        # A known leak that grew (incipient) must be able to win against a new leak nearby.
        order += [k.node_row for k in s.known if k.node_row not in order]
        fits: dict[int, list[float]] = {}
        plan = []
        for row in order:
            g = self._ref.sensitivity[row, det] / unit_sd[det]
            size = max(0.0, float(g @ partial) / float(g @ g)) if g.any() else 0.0
            probe = size * self._ref.coefficient if size > 0 else self._ref.coefficient
            if d.replaces is None:
                d.absorbed[row] = self._absorbable(row, d.t)
            else:  # localised again: that leak is left out everywhere, the others stay
                d.absorbed[row] = [d.replaces, *(k for k in s.known if k.node_row == row and k is not d.replaces)]
            grown = sum(k.coefficient for k in d.absorbed[row] if k is not d.replaces)
            base = self._solved_with(d, row)
            plan.append((row, probe, grown, base))
            fits[row] = [probe, grown, 0.0, 0.0, 0.0]
        for index in d.samples:
            while len(d.readings) <= index + p.denoise_steps and not d.closed:
                yield WAIT  # the sample and the steps after it, for denoising
            if len(d.readings) <= index:
                continue  # readings missing from the window: fewer samples
            t, y = self._denoised([d.readings[index]])[0]
            cache: dict[tuple[tuple[int, float], ...], np.ndarray] = {}
            for row, probe, grown, base in plan:
                key = tuple(base)
                if key not in cache:
                    cache[key] = yield from self._solve(t, y, base)
                    if p.float_known:
                        d.effects.setdefault(key, {})[index] = yield from self._known_effects(t, y, base, cache[key])
                e0 = cache[key]
                e1 = yield from self._solve(t, y, [*base, (row, grown + probe)])
                scale = self._flow_scale(e1)
                u = np.nan_to_num(((y - e0) / scale - s.bias0) / s.sigma)[det]
                v = self._effect(e1, e0, scale)
                d.unexplained.setdefault(row, {})[index] = u
                if p.float_known:
                    d.probe_effects.setdefault(row, {})[index] = v
                f = fits[row]
                f[2] += float(u @ u)
                f[3] += float(u @ v)
                f[4] += float(v @ v)
        return fits

    def _refine_pick(self, d: _Detection, fits: dict[int, list[float]]) -> Steps:
        """The junction (and size) that explains the readings best: ``(row, coefficient)``.

        Each candidate's leak is sized where its linearised misfit (:meth:`_refine`) is
        least and ranked by that misfit; the ``refine_exact`` best are re-solved at that size
        (non-linear, at the same time steps). The secant between each such re-solve and the
        solve without the leak predicts a better size and its misfit; the ``refine_resize``
        best by that prediction are re-solved at it. The best of all re-solves is kept.
        """
        p = self.params
        indices = [i for i in d.samples if i < len(d.readings)]
        ranked: list[_Ranked] = []
        floating: dict[tuple[tuple[int, float], ...], list[tuple[int, int, float]]] = {}
        for row, (probe, grown, a, b, c) in fits.items():
            # The misfit is a quadratic in l = total / (grown + probe): the solve it was linearised
            # on had the leak at its full size (a known leak's emitter included), so l scales all
            # of it. The total is taken where that misfit is least, not at the sensitivity
            # matrix's estimate: for a big leak that is far off (the network is not linear over
            # a few L/s), and the true junction lost to a neighbour sized better.
            unit = grown + probe
            base = self._solved_with(d, row)
            if p.float_known and base and indices and set(indices) <= d.effects.get(tuple(base), {}).keys():
                # sized below, together with the other candidates solved with the same modelled leaks
                floating.setdefault(tuple(base), []).append((len(ranked), row, unit))
                ranked.append((math.inf, row, 0.0, base, None))
                continue
            least = max(0.0, b / c) if c > 0 else 0.0
            ranked.append((a - 2.0 * b * least + c * least**2, row, least * unit, base, None))
        for key, group in floating.items():
            rows = [row for _, row, _ in group]
            floated = self._floated(d, rows, list(key), indices, [unit for _, _, unit in group])
            for (position, row, _), (linear, total, resized, before) in zip(group, floated, strict=True):
                ranked[position] = (linear, row, total, resized, before)
        ranked.sort(key=lambda item: item[0])
        samples = self._denoised([d.readings[i] for i in indices])
        grown = self._grown_by(d, ranked)  # now: other jobs may change the modelled leaks meanwhile
        exact: dict[int, tuple[float, float]] = {}  # row -> (least exact misfit, total there)

        def misfit(row: int, total: float, base: list[tuple[int, float]]) -> Generator[str, None, np.ndarray]:
            out = yield from self._residuals(samples, [*base, (row, total)])
            sse = float(np.sum(out**2))
            if sse < exact.get(row, (math.inf, 0.0))[0]:
                exact[row] = (sse, total)
            return out

        resize = []
        for _, row, total, base, before in ranked[: p.refine_exact]:
            if total <= 0:
                continue
            solved = yield from misfit(row, total, base)
            # Secant between no new leak and this size: the size that fits best, predicted.
            if before is None:
                before = np.array([d.unexplained[row][i] for i in indices])
            lam = secant_scale(before, solved)
            if lam is None:
                continue
            lam = max(0.05, lam)
            if abs(lam - 1.0) > 0.02:
                predicted = float(np.sum((before + lam * (solved - before)) ** 2))
                resize.append((predicted, row, lam * total, base))
        resize.sort(key=lambda item: item[0])
        for _, row, total, base in resize[: p.refine_resize]:
            yield from misfit(row, total, base)
        for row, total, base in grown:
            yield from misfit(row, total, base)
        if not exact:
            return ranked[0][1], ranked[0][2]
        best = min(exact, key=lambda row: exact[row][0])
        if p.float_known:
            # A near-zero leak anywhere plus a modelled leak's growth fits as well as that growth
            # alone (and a little noise better): a modelled leak's own junction wins such ties.
            known_rows = {k.node_row for k in self._s.known}
            own = [row for row in exact if row in known_rows and exact[row][0] <= exact[best][0] + p.growth_margin]
            best = min(own, key=lambda row: exact[row][0], default=best)
        return best, exact[best][1]

    def _grown_by(self, d: _Detection, ranked: list[_Ranked]) -> list[tuple[int, float, list[tuple[int, float]]]]:
        """``float_known``: each modelled leak the best candidate's fit grew, as a candidate of its own:
        ``(its junction, its grown size, the other modelled leaks as that fit sized them)``, so that
        its growth alone is re-solved exactly beside the candidates."""
        if not self.params.float_known or not ranked or ranked[0][4] is None:
            return []
        _, row, _, resized, _ = ranked[0]
        return [(r, c, resized[:j] + resized[j + 1:])
                for j, ((r, c), (_, c0)) in enumerate(zip(resized, self._solved_with(d, row), strict=True)) if c > c0]

    def _solved_with(self, d: _Detection, row: int) -> list[tuple[int, float]]:
        """The modelled leaks a candidate leak at ``row`` is solved with (in :meth:`_refine` and
        :meth:`_refine_pick` alike): all of them, less those it replaces (``d.absorbed``)."""
        if not self.params.model_known:
            return []
        gone = {id(k) for k in d.absorbed.get(row, [])}
        return [(k.node_row, k.coefficient) for k in self._s.known if id(k) not in gone]

    def _known_effects(self, t: float, y: np.ndarray, base: list[tuple[int, float]],
                       e0: np.ndarray) -> Generator[str, None, np.ndarray]:
        """``float_known``: the standardised effect on the readings of doubling each of the modelled
        leaks ``base`` (one solve each), rows in ``base`` order."""
        out = np.zeros((len(base), int(self._detect.sum())))
        for j, (row, coefficient) in enumerate(base):
            grown = [*base[:j], (row, 2.0 * coefficient), *base[j + 1:]]
            out[j] = self._effect((yield from self._solve(t, y, grown)), e0)
        return out

    def _effect(self, e: np.ndarray, e0: np.ndarray, scale: np.ndarray | None = None) -> np.ndarray:
        """The standardised change of the detecting sensors' readings from solve ``e0`` to solve ``e``
        (``scale``: ``_flow_scale(e)``, when the caller has it already)."""
        assert self._s.sigma is not None
        scale = self._flow_scale(e) if scale is None else scale
        return np.nan_to_num((e - e0) / scale / self._s.sigma)[self._detect]

    def _floated(self, d: _Detection, rows: list[int], base: list[tuple[int, float]], indices: list[int],
                 probe_totals: list[float]) -> list[tuple[float, float, list[tuple[int, float]], np.ndarray]]:
        """``float_known``: each candidate leak (at ``rows``, all solved with the modelled leaks ``base``)
        and those modelled leaks sized together where the linearised misfit is least (the candidate
        >= 0, each modelled leak >= 0).

        Returns per candidate ``(misfit, total, base resized, residual before the candidate)``, the
        residual per sample.
        """
        u = np.array([[d.unexplained[row][i] for i in indices] for row in rows])  # (m, samples, sensors)
        v = np.array([[d.probe_effects[row][i] for i in indices] for row in rows])
        w = np.array([d.effects[tuple(base)][i] for i in indices])  # (samples, K, sensors)
        m, k = len(rows), w.shape[1]
        # minimise |u - x0 v - sum_j xj w_j|**2 with x0 >= 0 (the candidate, in probes) and
        # xj >= -1 (a modelled leak, in its own size: -1 is gone). A modelled leak that grew is
        # explained as well by a near-zero leak anywhere plus that growth: _refine_pick re-solves
        # the growth alone too and names the leak's own junction on a near tie (growth_margin).
        uf, vf, wf = u.reshape(m, -1), v.reshape(m, -1), w.transpose(1, 0, 2).reshape(k, -1)
        gram = np.empty((m, k + 1, k + 1))
        gram[:, 0, 0] = np.einsum("mi,mi->m", vf, vf)
        gram[:, 0, 1:] = gram[:, 1:, 0] = vf @ wf.T
        gram[:, 1:, 1:] = wf @ wf.T
        target = np.concatenate([np.einsum("mi,mi->m", vf, uf)[:, None], uf @ wf.T], axis=1)
        x = _bounded_least_squares(gram, target, np.array([0.0] + [-1.0] * k))
        misfit = np.einsum("mi,mi->m", uf, uf) - 2 * np.einsum("mi,mi->m", target, x) \
            + np.einsum("mi,mij,mj->m", x, gram, x)
        return [(float(misfit[r]), float(x[r, 0] * probe_totals[r]),
                 [(row, c * (1.0 + xj)) for (row, c), xj in zip(base, x[r, 1:], strict=True)],
                 u[r] - np.einsum("j,sjn->sn", x[r, 1:], w))
                for r in range(m)]

    def _absorbable(self, row: int, t: float) -> list[_KnownLeak]:
        """The modelled leaks a new leak at ``row`` replaces: the one at that junction (it grew),
        and young small ones within ``absorb_radius`` (the same growing leak, first placed off)."""
        p = self.params
        dist = self._distances(row)
        return [k for k in self._s.known if k.node_row == row or (
            p.absorb_radius > 0 and dist[k.node_row] <= p.absorb_radius
            and _lps(k.coefficient) < p.absorb_below_lps and t - k.alarm_time <= p.absorb_age)]

    # -- joint re-fit of the modelled leaks ------------------------------------------

    @staticmethod
    def _spread(samples: list[tuple[float, np.ndarray]], n: int) -> list[tuple[float, np.ndarray]]:
        if len(samples) <= n:
            return samples
        idx = np.linspace(0, len(samples) - 1, n).round().astype(int)
        return [samples[i] for i in idx]

    def _denoised(self, samples: list[tuple[float, np.ndarray]], k: int | None = None) -> list[tuple[float, np.ndarray]]:
        """``samples`` with each pressure read as the model's value plus the residual averaged over
        ``k`` (default ``denoise_steps``) steps either side that had the same modelled leaks.

        The leak's effect hardly changes within minutes; the 2 cm noise of a single reading is
        what places a small leak hundreds of metres off (docs/water-stages.md, "Stage M"). Pressures
        only: levels and pump flows are the model's boundary conditions, not evidence. A sample
        no longer in the recent history is left as it is.
        """
        k = self.params.denoise_steps if k is None else k
        recent = self._s.residuals
        if k == 0 or not recent:
            return samples
        times = [t for t, _, _ in recent]
        assert self._s.sigma is not None
        sigma = self._s.sigma
        out = []
        for t, y in samples:
            i = bisect.bisect_left(times, t)
            if i == len(times) or times[i] != t:
                out.append((t, y))
                continue
            _, here, leaks = recent[i]
            near = np.array([recent[j][1] for j in range(max(0, i - k), min(len(recent), i + k + 1))
                             if recent[j][2] == leaks])
            # Around the median: a pump or valve switching in the window shifts every residual
            # (a modelled state not quite right); the steps on the other side of it are left out.
            with np.errstate(invalid="ignore"):
                median = np.median(near, axis=0)
                close = np.abs(near - median) <= 3.0 * sigma
                mean = np.sum(np.where(close, near, 0.0), axis=0) / np.maximum(1, close.sum(axis=0))
            out.append((t, np.where(self._is_pressure & np.isfinite(median), y - here + mean, y)))
        return out

    def _residuals(self, samples: Sequence[tuple[float, np.ndarray]],
                   leaks: Sequence[tuple[int, float]]) -> Generator[str, None, np.ndarray]:
        """Standardised residuals (detecting sensors) against the leak-free bias, per sample."""
        s = self._s
        assert s.bias0 is not None and s.sigma is not None
        out = np.empty((len(samples), int(self._detect.sum())))
        for i, (t, y) in enumerate(samples):
            e = yield from self._solve(t, y, leaks)
            scale = self._flow_scale(e)
            res = ((y - e) / scale - s.bias0) / s.sigma
            out[i] = np.nan_to_num(res[self._detect])
        return out

    def _raw_mean(self, samples: Sequence[tuple[float, np.ndarray]],
                  leaks: Sequence[tuple[int, float]]) -> Generator[str, None, np.ndarray]:
        acc = np.zeros(len(self.sensor_ids))
        for t, y in samples:
            e = yield from self._solve(t, y, leaks)
            scale = self._flow_scale(e)
            acc += np.nan_to_num((y - e) / scale)
        return acc / max(1, len(samples))

    def _flow_scale(self, expected: np.ndarray) -> np.ndarray:
        """Each sensor's residual unit: flow meters err in proportion to the flow, so flow residuals
        are measured in units of the expected flow (plus a floor) and a busy hour is not a leak."""
        return np.where(self._is_flow, np.abs(expected) + self.params.flow_scale_floor, 1.0)

    def _fit_signatures(self) -> np.ndarray:
        """Change of the standardised residual per reference emitter at each junction (not normalised)."""
        return self._ref.sensitivity[:, self._detect] / self._unit()[self._detect]

    def _joint(self, samples: Sequence[tuple[float, np.ndarray]], leaks: Sequence[tuple[int, float]],
               radius: float | None = None, max_growth: float = math.inf) -> Generator[str, None, FitResult]:
        r = self.params.refit_radius if radius is None else radius
        return joint_refit_steps(self._residuals, samples, leaks, self._fit_signatures(), self._ref.coefficient,
                           self.params.refit_min_gain, near=lambda row: self._near_mask(row, r),
                           move_relative=self.params.refit_move_relative, max_growth=max_growth)

    def _near_mask(self, row: int, radius: float) -> np.ndarray:
        """Candidates within ``radius`` m of candidate ``row``."""
        return self._distances(row) <= radius

    @cached_property
    def _sensor_distance(self) -> np.ndarray:
        """Network distance (m) from every candidate to the nearest pressure sensor."""
        nodes = self.sensors.pressure  # validated against the network by from_network
        if not nodes:
            return np.full(len(self._cand_net), np.inf)  # no pressure sensor: all far
        return self.network.node_distances(nodes)[:, self._cand_net].min(axis=0)

    def _distances(self, row: int) -> np.ndarray:
        """Network distance (m) from candidate ``row`` to every candidate (cached)."""
        dist = self._near.get(row)
        if dist is None:
            dist = self.network.node_distances([self._ref.candidates[row]])[0][self._cand_net]
            self._near[row] = dist
        return dist

    def _apply_fit(self, t: float, samples: Sequence[tuple[float, np.ndarray]], fit: FitResult,
                   old: list[_KnownLeak], before: list[tuple[int, float]] | None = None,
                   confirm: bool = False) -> Generator[str, None, list[Alarm]]:
        """Adopt a re-fit of the leaks ``old``: new positions and sizes, dropped leaks removed, the
        bias shifted by the model change. The solves come first, the state changes at once at the end.

        ``before``: the leaks as they were when a background re-fit started; if a localisation
        has changed them since, the re-fit is stale and dropped.
        ``confirm``: also alarm the small new leaks of ``old`` that wait for a re-fit
        (:meth:`_confirmed`), if this one is adopted and keeps them.
        """
        s, p = self._s, self.params
        stale_check = before is not None
        before = before if before is not None else [(k.node_row, k.coefficient) for k in old]
        kept = [old[i] for i in fit.kept]
        after = list(fit.leaks)
        trails: list[list[int]] = []  # each kept leak's moves after this re-fit
        moves = []
        for j, (k, (row, coefficient)) in enumerate(zip(kept, after, strict=True)):
            trail = list(k.moves)
            if p.realarm_distance > 0 and k.alarm_row >= 0:
                if self._distances(k.alarm_row)[row] <= p.realarm_distance:
                    trail = []
                else:
                    # A re-fit can wander while the readings are ambiguous: alarm the new place only
                    # once realarm_confirm re-fits in a row put the leak there (within realarm_distance).
                    trail.append(row)
                    recent = trail[-p.realarm_confirm:]
                    if len(recent) == p.realarm_confirm and all(
                            self._distances(row)[other] <= p.realarm_distance for other in recent):
                        trail = []
                        others = after[:j] + after[j + 1:]
                        big = _lps(coefficient) >= p.realarm_min_lps
                        if big and (yield from self._fits_clearly_better(samples, after, j, k.alarm_row)):
                            mean = (yield from self._residuals(samples, others)).mean(axis=0)
                            moves.append((k, row, coefficient, mean))
            trails.append(trail)
        shift = None
        if after != before:
            shift = (yield from self._raw_mean(samples, after)) - (yield from self._raw_mean(samples, before))
        t = s.last_t  # the step this job finishes at (its solves may have taken several)
        ids = {id(k) for k in old}
        if stale_check and (not ids <= {id(k) for k in s.known} or before != [(k.node_row, k.coefficient) for k in old]):
            self._log.append((t, "refit-stale", "", 0.0))
            return []
        # Leaks added since the job started stay.
        s.repaired += len(old) - len(kept)
        s.known = kept + [k for k in s.known if id(k) not in ids]
        for k, (row, coefficient), trail in zip(kept, after, trails, strict=True):
            k.node_row, k.coefficient, k.moves = row, coefficient, trail
        alarms: list[Alarm] = []
        for k, row, coefficient, mean in moves:
            k.alarm_row = row
            s.moved += 1
            g = self._signatures()[row]
            cos = float(g @ mean / max(float(np.linalg.norm(mean)), 1e-12))
            worst = np.argsort(-np.abs(mean))[:8]
            names = tuple(np.array(self.sensor_ids)[self._detect][worst])
            alarms.append(self._alarm(t, row, coefficient, 1.0, max(0.0, cos), names))
        if shift is not None:
            assert s.bias is not None
            s.bias = s.bias + shift
        return [*alarms, *self._confirmed(kept)] if confirm else alarms

    def _fits_clearly_better(self, samples: Sequence[tuple[float, np.ndarray]], leaks: list[tuple[int, float]],
                             j: int, alarmed_row: int) -> Generator[str, None, bool]:
        """Does leak ``j`` of ``leaks`` explain ``samples`` clearly better where it is than back at
        ``alarmed_row`` (its size there re-tried x0.7, 1, 1.4)? ``realarm_min_relative`` of the objective.

        A re-fit moves a leak as soon as that lowers the objective by ``refit_move_relative``; over
        an area the sensors cannot tell apart, that lets a modelled leak wander without the readings
        ever pointing clearly elsewhere. A relocation *alarm* needs more.
        """
        p = self.params
        if p.realarm_min_relative <= 0:
            return True
        new = float(np.sum((yield from self._residuals(samples, leaks)) ** 2))
        coefficient = leaks[j][1]
        old = math.inf
        for factor in (0.7, 1.0, 1.4):
            back = [*leaks[:j], (alarmed_row, coefficient * factor), *leaks[j + 1:]]
            old = min(old, float(np.sum((yield from self._residuals(samples, back)) ** 2)))
        self._log.append((self._s.last_t, "realarm-test", f"alarmed={old:.0f} new={new:.0f}", 0.0))
        return old - new >= p.realarm_min_relative * old

    def _applied(self, t: float, alarms: list[Alarm]) -> list[Alarm]:
        return alarms

    def _deferred_explain(self, samples: list[tuple[float, np.ndarray]]) -> Steps:
        """Job (explain_before_alarm=False): re-fit all modelled leaks (the just-alarmed one included).

        The alarm cannot be withdrawn; the re-fit may move, resize or drop modelled leaks, and
        a leak it moves more than ``realarm_distance`` from its alarm is alarmed again.
        """
        s, p = self._s, self.params
        if not s.known or not p.model_known:
            return []
        s.deferred_refits += 1
        old = list(s.known)
        before = [(k.node_row, k.coefficient) for k in old]
        fit = yield from self._joint(samples, before, p.explain_radius)
        note = f"sse={fit.sse:.0f} start={fit.sse_start:.0f} kept={len(fit.kept)}/{len(old)}"
        self._log.append((s.last_t, "explain-deferred", note, 0.0))
        return (yield from self._apply_fit(s.last_t, samples, fit, old, before))

    def _refit_known(self, samples: list[tuple[float, np.ndarray]]) -> None:
        """Queue a periodic joint re-fit of the modelled leaks; it is adopted when it finishes."""
        s = self._s
        s.refits += 1

        def steps() -> Steps:
            old = list(s.known)
            before = [(k.node_row, k.coefficient) for k in old]
            fit = yield from self._joint(samples, before)
            return (yield from self._apply_fit(s.last_t, samples, fit, old, before, confirm=True))

        s.jobs.append(_Job("refit", steps(), self._applied))

    def _alarm(self, t: float, row: int, coefficient: float, score: float, confidence: float,
               sensors: tuple[str, ...]) -> Alarm:
        node = self._ref.candidates[row]
        pipe = self._pipe_for(row)
        x, y = self.network.element_xy("node", node)
        return Alarm(time=t, pipe=pipe or node, node=node, score=score, confidence=confidence,
                     sensors=sensors, x=x, y=y, size_lps=_lps(coefficient))

    def _check_repairs(self, zc: np.ndarray) -> None:
        """Drop known leaks whose modelled effect the readings persistently contradict.

        After a repair the model still predicts the leak: pressures read higher and flows
        lower than expected, i.e. the residual projects *negatively* on that leak's signature.
        """
        s, p = self._s, self.params
        unit = self._signatures()
        keep = []
        for k in s.known:
            proj = float(unit[k.node_row] @ zc[self._detect])
            k.repair_cusum = max(0.0, k.repair_cusum - proj - p.k)
            if k.repair_cusum > p.h:
                s.repaired += 1
            else:
                keep.append(k)
        s.known = keep

    def _known_near(self, row: int) -> _KnownLeak | None:
        """The modelled leak nearest to candidate ``row``, if within ``merge_distance``."""
        if not self._s.known or self.params.merge_distance <= 0:
            return None
        dist = self._distances(row)
        best = min(self._s.known, key=lambda k: dist[k.node_row])
        return best if dist[best.node_row] <= self.params.merge_distance else None

    def _pipe_for(self, row: int) -> str | None:
        if row not in self._pipes:
            self._pipes[row] = self.network.adjacent_pipe(self._ref.candidates[row])
        return self._pipes[row]
