"""`sereca demo water` as a user runs it: a subprocess, signals, its JSON line, one-line errors."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

T = 120.0


def _demo(*args: str, home: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERECA_")}
    env["SERECA_HOME"] = str(home)  # the demo's own home is a temp dir; this one only holds the model cache
    env["PYTHONUNBUFFERED"] = "1"
    return subprocess.Popen([sys.executable, "-m", "sereca.cli.main", "demo", "water", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_line(proc: subprocess.Popen[str], pattern: str, seen: list[str], timeout: float = T) -> None:
    assert proc.stderr is not None
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        line = proc.stderr.readline()
        if not line:
            raise AssertionError(f"demo exited ({proc.wait()}) before {pattern!r}:\n{''.join(seen)}")
        seen.append(line)
        if re.search(pattern, line):
            return
    proc.kill()
    raise AssertionError(f"no {pattern!r} in {timeout:g} s:\n{''.join(seen)}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_ctrl_c_stops_everything_and_prints_the_json_line(tmp_path: Path) -> None:
    proc = _demo("--speed", "0", "--json", home=tmp_path)
    seen: list[str] = []
    try:
        _wait_line(proc, r"all services ready", seen)
        _wait_line(proc, r"ALERT", seen)
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    log = "".join(seen) + err
    assert proc.returncode == 0, log
    assert "SIMULATION" in log and "stopped cleanly" in log and "Traceback" not in log
    result = json.loads(out.strip().splitlines()[-1])
    assert result["simulated_tee"] is True
    assert [s["name"] for s in result["services"]] == ["leak-detector", "alerting", "dashboard", "sensor-gateway"]
    assert all(s["simulated"] and s["attested"] for s in result["services"])
    assert result["readings"] > 0 and result["readings_detected"] > 0
    assert len(result["alerts"]) >= 1 and result["alert_count"] == len(result["alerts"])
    assert result["dashboard_url"].startswith("http://127.0.0.1:")
    assert all(code == 0 for code in result["exit_codes"].values()), result["exit_codes"]
    pids = [s["pid"] for s in result["services"]]
    assert not any(_alive(pid) for pid in pids)


def test_dashboard_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = _demo("--dashboard-port", str(port), "--for", "5", home=tmp_path)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"port {port}" in errors[0], err
    assert "Traceback" not in err


def test_unknown_network_is_one_line(tmp_path: Path) -> None:
    proc = _demo("--network", "Atlantis", "--for", "5", home=tmp_path)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 2, err
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Atlantis" in errors[0], err
    assert "Traceback" not in err
