"""The `sereca measure | evidence show | evidence verify | tee info` contracts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sereca.tee import get_platform, measure_paths, sim_root_fingerprint


def sereca(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sereca.cli.main", *args], capture_output=True, text=True,
                          timeout=60, env={**os.environ, **(env or {})})


def test_measure_matches_api(tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "a.py").write_text("a\n")
    (tmp_path / "b.txt").write_text("b\n")
    proc = sereca("measure", str(tmp_path / "app"), str(tmp_path / "b.txt"))
    assert proc.returncode == 0
    assert proc.stdout.strip() == measure_paths([tmp_path / "app", tmp_path / "b.txt"]).hex()
    bad = sereca("measure", str(tmp_path / "missing"))
    assert bad.returncode == 2 and "cannot measure" in bad.stderr and "Traceback" not in bad.stderr


def test_sim_evidence_round_trip_through_cli(tmp_path: Path) -> None:
    platform = get_platform("sim", measured_paths=[__file__])
    rd = bytes(range(64))
    ev = tmp_path / "ev.bin"
    ev.write_bytes(platform.evidence(rd))
    fp = sim_root_fingerprint()
    shown = sereca("evidence", "show", str(ev))
    assert shown.returncode == 0 and "SIMULATION" in shown.stdout and platform.measurement().hex() in shown.stdout
    ok = sereca("evidence", "verify", str(ev), "--sim-root", fp, "--report-data", rd.hex(), "--json")
    assert ok.returncode == 0, ok.stderr
    v = json.loads(ok.stdout.splitlines()[-1])
    assert v["verified"] is True and v["simulated"] is True and v["tee"] == "sim"
    assert v["measurement"] == platform.measurement().hex() and v["report_data"] == rd.hex()
    unpinned = sereca("evidence", "verify", str(ev), "--json")
    assert unpinned.returncode == 1 and json.loads(unpinned.stdout.splitlines()[-1])["check"] == "signature"
    wrong_rd = sereca("evidence", "verify", str(ev), "--sim-root", fp, "--report-data", "00", "--json")
    assert wrong_rd.returncode == 1 and json.loads(wrong_rd.stdout.splitlines()[-1])["check"] == "report_data"
    typed = sereca("evidence", "verify", str(ev), "--sim-root", fp, "--type", "sgx")
    assert typed.returncode == 1 and "evidence is sim" in typed.stderr


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["--type", "nope"], 2, "--type"),
        (["--vcek", "x"], 2, "--vcek and --chain"),
        (["--at", "soon"], 2, ""),
        (["--report-data", "zz"], 2, "hex"),
        (["--policy", "/no/policy.yaml"], 2, "cannot read policy"),
        (["--collateral", "/no/coll.json"], 2, "cannot read collateral"),
        (["--pccs", "http://127.0.0.1:9", "--at", "1752919277"], 2, "cannot fetch collateral"),
        (["--pccs", "http://127.0.0.1:9", "--collateral", "x"], 2, "not both"),
    ],
)
def test_unusable_arguments_exit_2(vectors: Path, args: list[str], code: int, message: str) -> None:
    proc = sereca("evidence", "verify", str(vectors / "sgx/quote.bin"), *args)
    assert proc.returncode == code
    assert message in proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr


def test_garbage_evidence_is_rejected_cleanly(tmp_path: Path) -> None:
    junk = tmp_path / "junk.bin"
    junk.write_bytes(os.urandom(3000))
    proc = sereca("evidence", "verify", str(junk), "--json")
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert json.loads(proc.stdout.splitlines()[-1])["check"] == "format"
    shown = sereca("evidence", "show", str(junk))
    assert shown.returncode == 1 and "Traceback" not in shown.stderr


def test_missing_collateral_exit_2(vectors: Path) -> None:
    proc = sereca("evidence", "verify", str(vectors / "sgx/quote.bin"), "--json", env={"SERECA_PCCS_URL": ""})
    assert proc.returncode == 2 and "collateral" in proc.stderr


def test_tee_info(tmp_path: Path) -> None:
    env = {"SERECA_ATTESTATION_ROOT": str(tmp_path / "none"), "SERECA_TSM_ROOT": str(tmp_path / "none"),
           "SERECA_TEE": "auto"}
    proc = sereca("tee", "info", "--json", env=env)
    assert proc.returncode == 0, proc.stderr
    info = json.loads(proc.stdout)
    assert info["platform"] == "sim" and info["simulated"] is True
    assert info["sim_root_fingerprint"] == sim_root_fingerprint()
    assert "SIMULATION" in info["reason"]
    human = sereca("tee", "info", env=env)
    assert "SIMULATION" in human.stdout and sim_root_fingerprint() in human.stdout


def test_tee_info_rejects_unknown_setting() -> None:
    proc = sereca("tee", "info", env={"SERECA_TEE": "quantum"})
    assert proc.returncode == 2 and "quantum" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("name, expect", [("sgx/quote.bin", "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"),
                                          ("tdx/quote-v4.bin", "91eb2b44d141d4ec"),
                                          ("sev-snp/report-milan.hex", "7a1e5c266c0108db")])
def test_show_hardware_evidence(vectors: Path, name: str, expect: str) -> None:
    proc = sereca("evidence", "show", str(vectors / name), "--json")
    assert proc.returncode == 0, proc.stderr
    fields = json.loads(proc.stdout)
    assert fields["verified"] is False
    assert any(str(v).startswith(expect) for v in fields.values())
