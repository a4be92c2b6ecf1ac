from __future__ import annotations

from pathlib import Path

import pytest

from sereca.apps.water import Leak, WaterConfigError, load_leaks, load_scenario, load_sensors, shipped_scenario
from sereca.apps.water.timeparse import parse_duration


@pytest.mark.parametrize(("text", "seconds"), [
    (90, 90.0), ("3600", 3600.0), ("36h", 129600.0), ("2d 3h", 183600.0), ("5min", 300.0),
    ("1d 06:30", 109800.0), ("1.5h", 5400.0),
])
def test_parse_duration(text: object, seconds: float) -> None:
    assert parse_duration(text) == seconds  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", ["", "soon", "3 weeks", "-5", True])
def test_parse_duration_rejects(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration(bad)  # type: ignore[arg-type]


def test_incipient_leak_grows_linearly_to_peak() -> None:
    leak = Leak(pipe="p1", start="1d", peak="3d", end="5d", diameter=0.02, type="incipient")
    assert leak.diameter_at(86400 - 1) == 0.0
    assert leak.diameter_at(2 * 86400) == pytest.approx(0.01)
    assert leak.diameter_at(4 * 86400) == pytest.approx(0.02)
    assert leak.diameter_at(5 * 86400) == 0.0  # repaired


def test_abrupt_leak_is_full_size_at_start() -> None:
    leak = Leak(pipe="p1", start=100, diameter=0.01)
    assert leak.diameter_at(100) == 0.01 and leak.diameter_at(10**9) == 0.01


def test_leak_file_errors_name_the_field(tmp_path: Path) -> None:
    path = tmp_path / "leaks.yaml"
    path.write_text("leaks:\n  - {pipe: p1, start: 1d, diameter: 0.01}\n  - {pipe: p2, start: 1d, diameter: -3}\n")
    with pytest.raises(WaterConfigError, match=r"leaks\.1\.diameter"):
        load_leaks(path)


def test_leak_end_before_start_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "leaks.yaml"
    path.write_text("- {pipe: p1, start: 2d, end: 1d, diameter: 0.01}\n")
    with pytest.raises(WaterConfigError, match="end .* must be after start"):
        load_leaks(path)


def test_incipient_leak_needs_peak_or_end(tmp_path: Path) -> None:
    path = tmp_path / "leaks.yaml"
    path.write_text("- {pipe: p1, start: 2d, diameter: 0.01, type: incipient}\n")
    with pytest.raises(WaterConfigError, match="peak"):
        load_leaks(path)


def test_unknown_field_and_bad_yaml(tmp_path: Path) -> None:
    path = tmp_path / "sensors.yaml"
    path.write_text("pressure: [n1]\npresure: [n2]\n")
    with pytest.raises(WaterConfigError, match="presure"):
        load_sensors(path)
    path.write_text("pressure: [n1\n")
    with pytest.raises(WaterConfigError, match="not valid YAML"):
        load_sensors(path)
    with pytest.raises(WaterConfigError, match="cannot read"):
        load_sensors(tmp_path / "missing.yaml")


def test_shipped_demo_scenario_is_valid() -> None:
    from importlib.resources import files

    scenario = load_scenario(files("sereca.apps.water") / "scenarios" / "demo.yaml")  # type: ignore[arg-type]
    assert shipped_scenario("demo") == scenario
    assert scenario.network == "L-Town" and scenario.leaks and scenario.days <= 2
    assert all(leak.type == "abrupt" for leak in scenario.leaks)
