"""benchmarks/attest.py prints one JSON line, and our DCAP wrapper keeps >= 70% of raw dcap-qvl's rate."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[3] / "benchmarks" / "attest.py"


def test_attest_benchmark_json() -> None:
    proc = subprocess.run([sys.executable, str(BENCH), "--json", "--seconds", "0.3", "--rounds", "2"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 1
    result = json.loads(lines[0])
    for key in ("dcap_verify_per_s", "sim_verify_per_s", "dcap_qvl_raw_per_s", "dcap_ratio"):
        assert result[key] > 0
    assert result["dcap_ratio"] >= 0.7, result
    assert result["sim_verify_per_s"] >= 100  # the CAS needs 100 activations/s including everything else
