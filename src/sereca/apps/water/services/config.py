"""The water services' configuration, read from the parameters the CAS provisioned.

Everything that changes what a service computes (network, sensors, the
scenario to replay, detector tuning, replay speed) is a manifest parameter,
so it is attested and delivered together with the service's keys; nothing
is read from the untrusted host's disk or environment.
"""

from __future__ import annotations

import math
from typing import Any

import yaml

from sereca.apps.water.errors import WaterConfigError
from sereca.apps.water.models import Scenario, SensorSet, parse_json_object, parse_model

# Paths of the provisioned files (in memory only: Params.files, never written to disk).
SCENARIO_FILE = "/sereca/water/scenario.yaml"
SENSORS_FILE = "/sereca/water/sensors.yaml"

NETWORK = "WATER_NETWORK"
SPEED = "WATER_SPEED"
SOURCE = "WATER_SOURCE"
MQTT_URL = "WATER_MQTT_URL"
WAIT_FOR_DETECTOR = "WATER_WAIT_FOR_DETECTOR"
DETECTOR_PARAMS = "WATER_DETECTOR_PARAMS"
DETECTOR_SCHEDULE = "WATER_DETECTOR_SCHEDULE"
DETECTOR_SCHEDULES = ("idle", "steps")  # the first is the default (docs/water.md, "Scheduling")
CACHE_DIR = "WATER_CACHE_DIR"
DEDUP_RADIUS = "WATER_DEDUP_RADIUS"
ESCALATE_COUNT = "WATER_ESCALATE_COUNT"
DASHBOARD_TOKEN = "DASHBOARD_TOKEN"


def _file(params: Any, path: str, what: str) -> Any:
    try:
        raw = params.file(path)
    except KeyError:
        raise WaterConfigError(f"{what} was not provisioned: add files.{path} to the service in the manifest") from None
    try:
        return yaml.safe_load(raw.decode("utf-8"))
    except (UnicodeDecodeError, yaml.YAMLError) as exc:
        raise WaterConfigError(f"provisioned {path} is not valid YAML: {exc}") from None


def scenario(params: Any) -> Scenario:
    """The scenario the gateway replays (network, horizon, sensors, leaks)."""
    data = _file(params, SCENARIO_FILE, "the scenario")
    return parse_model(Scenario, data, SCENARIO_FILE)


def sensors(params: Any) -> SensorSet:
    """The sensors the detector and the dashboard know about (no leaks: they must find those)."""
    return parse_model(SensorSet, _file(params, SENSORS_FILE, "the sensor list"), SENSORS_FILE)


def network(params: Any) -> str:
    name = params.get(NETWORK)
    if not name:
        raise WaterConfigError(f"parameter {NETWORK} (the network name) was not provisioned")
    return name


def number(params: Any, name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise WaterConfigError(f"parameter {name}={raw!r} is not a number") from None
    if not math.isfinite(value) or value < minimum:
        raise WaterConfigError(f"parameter {name}={raw!r} must be a number >= {minimum:g}")
    return value


def choice(params: Any, name: str, allowed: tuple[str, ...]) -> str:
    """One of ``allowed``; the first when the parameter is unset."""
    raw = params.get(name)
    if raw is None or raw == "":
        return allowed[0]
    if raw not in allowed:
        raise WaterConfigError(f"parameter {name}={raw!r} must be one of: {', '.join(allowed)}")
    return raw


def json_object(params: Any, name: str) -> dict[str, Any]:
    raw = params.get(name)
    return parse_json_object(raw, f"parameter {name}") if raw else {}
