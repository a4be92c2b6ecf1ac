from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from sereca.apps.water import ReadingsError
from sereca.apps.water.readings import read_alarms, read_readings, write_readings
from sereca.cli.main import build_app


def test_csv_and_jsonl_round_trip(tmp_path: Path) -> None:
    frame = pd.DataFrame({"pressure.1": [1.5, 2.5], "flow.2": [3.0, float("nan")]},
                         index=pd.Index([0.0, 300.0], name="time"))
    for name in ("r.csv", "r.jsonl"):
        write_readings(frame, tmp_path / name)
        back = read_readings(tmp_path / name)
        assert list(back.index) == [0.0, 300.0]
        assert back.loc[300.0, "pressure.1"] == 2.5 and pd.isna(back.loc[300.0, "flow.2"])


def test_iso_times_are_seconds_since_midnight(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("time,pressure.1\n2026-01-05T00:05:00,1\n2026-01-05T01:00:00,2\n")
    assert list(read_readings(path).index) == [300.0, 3600.0]


def test_malformed_readings_name_the_line(tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    path.write_text("time,pressure.1\n0,1\n300,abc\n")
    with pytest.raises(ReadingsError, match="line 3, column 'pressure.1'"):
        read_readings(path)
    path.write_text("t,pressure.1\n0,1\n")
    with pytest.raises(ReadingsError, match="no 'time' column"):
        read_readings(path)
    jsonl = tmp_path / "r.jsonl"
    jsonl.write_text('{"t": 0, "values": {"pressure.1": 1}}\n{"t": 300}\n')
    with pytest.raises(ReadingsError, match="line 2"):
        read_readings(jsonl)


def test_cli_simulate_detect_score(tmp_path: Path) -> None:
    (tmp_path / "sensors.yaml").write_text(
        'pressure: ["15", "35", "101", "117", "123", "143", "161", "173", "185", "197", "211", "231", "251"]\n'
        'flow: ["10", "335", "20", "40", "50"]\nlevel: ["1", "2", "3"]\n')
    (tmp_path / "leaks.yaml").write_text('leaks:\n  - {pipe: "169", start: 1d 6h, diameter: 0.05}\n')
    runner = CliRunner()
    app = build_app()
    r = runner.invoke(app, ["water", "simulate", "--network", "Net3", "--leaks", str(tmp_path / "leaks.yaml"),
                            "--sensors", str(tmp_path / "sensors.yaml"), "--days", "2", "--step", "5min",
                            "--out", str(tmp_path / "r.csv")])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["water", "detect", str(tmp_path / "r.csv"), "--network", "Net3", "--warmup", "1d",
                            "--out", str(tmp_path / "a.csv")])
    assert r.exit_code == 0, r.output
    alarms = read_alarms(tmp_path / "a.csv")
    assert alarms and alarms[0].time > 30 * 3600
    # --params reaches the detector: a CUSUM threshold nothing crosses, no alarm
    r = runner.invoke(app, ["water", "detect", str(tmp_path / "r.csv"), "--network", "Net3", "--warmup", "1d",
                            "--out", str(tmp_path / "none.csv"), "--params", '{"h": 1e9}'])
    assert r.exit_code == 0, r.output
    assert read_alarms(tmp_path / "none.csv") == []
    r = runner.invoke(app, ["water", "score", str(tmp_path / "a.csv"), str(tmp_path / "leaks.yaml"),
                            "--network", "Net3", "--json", "--max-distance", "1000"])
    assert r.exit_code == 0, r.output
    assert '"true_positives": 1' in r.output


def test_cli_bad_input_is_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "leaks.yaml").write_text("leaks:\n  - {pipe: p1, start: soon, diameter: 0.01}\n")
    (tmp_path / "a.csv").write_text("time,pipe\n0,p1\n")
    from sereca.errors import SerecaError

    r = CliRunner().invoke(build_app(), ["water", "score", str(tmp_path / "a.csv"), str(tmp_path / "leaks.yaml"),
                                         "--network", "Net1"])
    assert isinstance(r.exception, SerecaError)
    assert "leaks.0.start" in str(r.exception)


@pytest.mark.parametrize("params, message", [
    ('{"confirmed_alarm": false}', "confirmed_alarm"),  # a misspelt field is named, not ignored
    ('{"h": -1}', "h"),
    ("[1]", "must be a JSON object"),
    ("{bad", "not valid JSON"),
])
def test_cli_bad_detector_params_are_one_line_errors(tmp_path: Path, params: str, message: str) -> None:
    from sereca.errors import SerecaError

    (tmp_path / "r.csv").write_text("time,pressure.15\n0,30\n300,30\n")
    r = CliRunner().invoke(build_app(), ["water", "detect", str(tmp_path / "r.csv"), "--network", "Net3",
                                         "--out", str(tmp_path / "a.csv"), "--params", params])
    assert isinstance(r.exception, SerecaError)
    assert message in str(r.exception) and "--params" in str(r.exception)
    assert not (tmp_path / "a.csv").exists()
