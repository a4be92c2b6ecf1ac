"""Scenario, leak and sensor files (YAML), as pydantic v2 models.

A leak follows the BattLeDIM leak specification: a pipe, a start and an end
(repair) time, a hole diameter in metres, and a type: ``abrupt`` (full size
at once) or ``incipient`` (the diameter grows linearly from 0 at ``start`` to
full size at ``peak``, then stays until ``end``).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator

from sereca.apps.water.errors import WaterConfigError
from sereca.apps.water.timeparse import parse_duration

Seconds = Annotated[float, BeforeValidator(parse_duration)]
SENSOR_KINDS = ("pressure", "flow", "level")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Leak(_Strict):
    """One leak on one pipe."""

    pipe: str = Field(min_length=1)
    start: Seconds
    end: Seconds | None = None
    diameter: float = Field(gt=0, le=1.0, description="hole diameter in metres")
    type: Literal["abrupt", "incipient"] = "abrupt"
    peak: Seconds | None = Field(default=None, description="incipient: time the hole reaches full size")

    @model_validator(mode="after")
    def _times_in_order(self) -> Leak:
        if self.end is not None and self.end <= self.start:
            raise ValueError(f"leak on {self.pipe}: end ({self.end:g} s) must be after start ({self.start:g} s)")
        if self.type == "incipient":
            peak = self.peak_time
            if peak is None:
                raise ValueError(f"incipient leak on {self.pipe}: give 'peak' (time of full size) or 'end'")
            if peak <= self.start:
                raise ValueError(f"incipient leak on {self.pipe}: peak must be after start")
        return self

    @property
    def peak_time(self) -> float | None:
        return self.peak if self.peak is not None else self.end

    def diameter_at(self, t: float) -> float:
        """Hole diameter (m) at time ``t`` (s): 0 outside [start, end)."""
        if t < self.start or (self.end is not None and t >= self.end):
            return 0.0
        if self.type == "abrupt":
            return self.diameter
        peak = self.peak_time or self.start
        return self.diameter * min(1.0, (t - self.start) / (peak - self.start))

    def area_at(self, t: float) -> float:
        return math.pi * self.diameter_at(t) ** 2 / 4.0

    def active(self, t: float) -> bool:
        return t >= self.start and (self.end is None or t < self.end)


class LeakSet(_Strict):
    """A leaks file: ``leaks: [...]``."""

    leaks: list[Leak] = Field(default_factory=list)


class Noise(_Strict):
    """Measurement noise (standard deviations, Gaussian, independent per reading)."""

    pressure: float = Field(default=0.02, ge=0, description="m")
    flow: float = Field(default=0.005, ge=0, description="fraction of the value (0.005 = 0.5 %)")
    flow_floor: float = Field(default=0.01, ge=0, description="L/s, added to the relative flow noise")
    level: float = Field(default=0.002, ge=0, description="m")


class SensorSet(_Strict):
    """A sensors file: which junction pressures, link flows and tank levels are measured."""

    pressure: list[str] = Field(default_factory=list)
    flow: list[str] = Field(default_factory=list)
    level: list[str] = Field(default_factory=list)
    noise: Noise = Field(default_factory=Noise)

    @model_validator(mode="after")
    def _not_empty(self) -> SensorSet:
        if not (self.pressure or self.flow or self.level):
            raise ValueError("no sensors: list at least one of pressure, flow, level")
        for kind in SENSOR_KINDS:
            names = getattr(self, kind)
            if len(set(names)) != len(names):
                raise ValueError(f"{kind}: a sensor is listed twice")
        return self

    def ids(self) -> list[str]:
        """Sensor ids in a fixed order: ``pressure.<junction>``, ``flow.<link>``, ``level.<tank>``."""
        return [f"{kind}.{name}" for kind in SENSOR_KINDS for name in getattr(self, kind)]

    @classmethod
    def from_ids(cls, ids: list[str], noise: Noise | None = None) -> SensorSet:
        groups: dict[str, list[str]] = {kind: [] for kind in SENSOR_KINDS}
        for sid in ids:
            kind, _, element = sid.partition(".")
            if kind not in groups or not element:
                raise WaterConfigError(
                    f"sensor id {sid!r}: expected '<kind>.<element>' with kind one of {', '.join(SENSOR_KINDS)}"
                )
            groups[kind].append(element)
        return cls(**groups, noise=noise or Noise())


class Hydraulics(_Strict):
    """How the hydraulic engine is run (shared by the simulator and the detector's reference model)."""

    demand_model: Literal["PDD", "DDA"] = "PDD"
    required_pressure: float = Field(default=10.0, gt=0, description="m: full demand at or above this")
    minimum_pressure: float = Field(default=0.0, ge=0, description="m: no demand below this")
    discharge_coeff: float = Field(default=0.75, gt=0, le=1, description="leak orifice coefficient")


class Scenario(_Strict):
    """A self-contained scenario: network, horizon, sensors, leaks."""

    name: str = "scenario"
    description: str = ""
    network: str
    days: float = Field(gt=0, le=400)
    step: Seconds = 300.0
    seed: int = 0
    demand_noise: float = Field(
        default=0.0, ge=0, le=0.5,
        description="sd of a global AR(1) demand multiplier (1 h correlation) the detector's model does not know",
    )
    hydraulics: Hydraulics = Field(default_factory=Hydraulics)
    sensors: SensorSet
    leaks: list[Leak] = Field(default_factory=list)
    detector: dict[str, Any] = Field(
        default_factory=dict, description="detector parameters for this scenario (see DetectorParams)")

    @model_validator(mode="after")
    def _step_fits(self) -> Scenario:
        if self.step < 1 or self.step > 3600 or self.step != int(self.step):
            raise ValueError("step must be a whole number of seconds between 1 s and 1 h")
        return self


M = TypeVar("M", bound=BaseModel)


def describe_validation_error(exc: ValidationError, source: str) -> str:
    """One readable line per problem, naming the field path (``leaks.2.diameter``)."""
    lines = []
    for err in exc.errors():
        where = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"].removeprefix("Value error, ")
        lines.append(f"{where}: {msg}")
    return f"{source}: " + "; ".join(lines)


def parse_model(cls: type[M], data: Any, source: str) -> M:
    """Validate ``data`` as ``cls``; raise :class:`WaterConfigError` naming the field on failure."""
    try:
        return cls.model_validate(data)
    except ValidationError as exc:
        raise WaterConfigError(describe_validation_error(exc, source)) from None


def parse_json_object(raw: str, what: str) -> dict[str, Any]:
    """``raw`` as a JSON object (e.g. DetectorParams overrides); :class:`WaterConfigError` naming ``what``."""
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise WaterConfigError(f"{what} is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise WaterConfigError(f'{what} must be a JSON object, e.g. {{"confirmed_alarms": false}}')
    return value


def read_yaml(path: str | Path) -> Any:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise WaterConfigError(f"cannot read {path}: {exc.strerror or exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise WaterConfigError(f"{path}: not valid YAML: {exc}") from None


def load_leaks(path: str | Path) -> LeakSet:
    """A leaks file; a bare list of leaks is accepted too."""
    data = read_yaml(path)
    if isinstance(data, list):
        data = {"leaks": data}
    return parse_model(LeakSet, data if data is not None else {}, str(path))


def load_sensors(path: str | Path) -> SensorSet:
    return parse_model(SensorSet, read_yaml(path), str(path))


def load_scenario(path: str | Path) -> Scenario:
    return parse_model(Scenario, read_yaml(path), str(path))


def shipped_scenario(name: str = "demo") -> Scenario:
    """A scenario shipped with the package (``src/sereca/apps/water/scenarios/<name>.yaml``)."""
    from importlib.resources import files

    resource = files("sereca.apps.water") / "scenarios" / f"{name}.yaml"
    if not resource.is_file():
        raise WaterConfigError(f"no shipped scenario named {name!r}")
    return parse_model(Scenario, yaml.safe_load(resource.read_text(encoding="utf-8")), f"scenario {name}")
