"""The water application's manifest: the shipped template, filled in.

The template (``sereca/apps/water/manifest.template.yaml``) marks every
deployment-specific value as a string ``<NAME>``; :func:`render` replaces
them and refuses to leave one unfilled.  :func:`measurement` measures the
water code exactly as ``sereca run --measure`` will, so the manifest admits
the code the services really run.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from sereca.apps.water.errors import WaterConfigError

TEMPLATE = Path(__file__).resolve().parent.parent / "manifest.template.yaml"
WATER_DIR = Path(__file__).resolve().parent.parent  # what the services measure: the whole water app
_PLACEHOLDER = re.compile(r"^<([A-Z_]+)>$")

# Manifest service name -> the module `sereca run` loads.
SERVICES: dict[str, str] = {
    "leak-detector": "sereca.apps.water.services.detector:svc",
    "alerting": "sereca.apps.water.services.alerting:svc",
    "dashboard": "sereca.apps.water.services.dashboard:svc",
    "sensor-gateway": "sereca.apps.water.services.gateway:svc",
}


def measured_paths(spec: str, measure: Sequence[Path] = (WATER_DIR,)) -> list[Path]:
    """The paths `sereca run SPEC --measure ...` measures (the runtime's own rule)."""
    from sereca.service.launch import LaunchOptions
    from sereca.service.launch import measured_paths as rule
    from sereca.service.loader import locate

    return rule(LaunchOptions(target=spec, measure=tuple(measure)), locate(spec))


def measurement(spec: str, measure: Sequence[Path] = (WATER_DIR,)) -> str:
    from sereca.tee import measure_paths

    return measure_paths(measured_paths(spec, measure)).hex()


def render(values: Mapping[str, Any], template: Path = TEMPLATE) -> dict[str, Any]:
    """The template with every ``<NAME>`` replaced by ``values[NAME]``."""
    doc = yaml.safe_load(template.read_text(encoding="utf-8"))
    missing: set[str] = set()

    def fill(node: Any) -> Any:
        if isinstance(node, dict):
            return {fill(k): fill(v) for k, v in node.items()}
        if isinstance(node, list):
            return [fill(v) for v in node]
        if isinstance(node, str) and (m := _PLACEHOLDER.match(node)):
            if m.group(1) not in values:
                missing.add(m.group(1))
                return node
            value = values[m.group(1)]
            return value if isinstance(value, (list, dict)) else str(value)
        return node

    out = fill(doc)
    if missing:
        raise WaterConfigError(f"manifest template {template.name}: no value for {', '.join(sorted(missing))}")
    return out
