"""Every row of ../shared/vectors/README.md gives exactly its expected verdict,
through the Python API and through `sereca evidence verify`."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from sereca.tee import (
    CollateralExpiredError,
    CollateralNotYetValidError,
    DebugError,
    MeasurementError,
    Policy,
    ReportDataError,
    SignatureError,
    TcbStatusError,
    verify,
)

SGX_MRENCLAVE = "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb"
SGX_MRSIGNER = "815f42f11cf64430c30bab7816ba596a1da0130c3b028b673133a66cf9a3e0e6"
HELLO = b"Hello, world!".ljust(64, b"\x00")


@dataclass(frozen=True)
class Row:
    name: str
    evidence: str
    args: tuple[str, ...]
    at: int | None
    error: type[Exception] | None
    message: str = ""


ROWS = [
    Row("sgx-ok", "sgx/quote.bin", ("--collateral", "sgx/collateral.json"), 1752919277, None),
    Row("sgx-qe-expired", "sgx/quote.bin", ("--collateral", "sgx/collateral.json"), 1752919287,
        CollateralExpiredError, "QE Identity expired"),
    Row("sgx-tcbinfo-future", "sgx/quote.bin", ("--collateral", "sgx/collateral.json"), 1700000000,
        CollateralNotYetValidError, "in the future"),
    Row("tdx-v4-ok", "tdx/quote-v4.bin", ("--collateral", "tdx/quote-v4.collateral.json"), 1752919234, None),
    Row("tdx-v4-crl-expired", "tdx/quote-v4.bin", ("--collateral", "tdx/quote-v4.collateral.json"), 1752919244,
        CollateralExpiredError, "CrlExpired"),
    Row("tdx-v5-no-tcb", "tdx/quote-v5-no-tcb-match.bin", ("--collateral", "tdx/quote-v5-no-tcb-match.collateral.json"),
        1774003274, TcbStatusError, "No matching TCB level"),
    Row("snp-ok", "sev-snp/report-milan.hex", ("--vcek", "sev-snp/vcek-milan.der", "--chain", "sev-snp/ask-ark-milan.pem"),
        1800000000, None),
    Row("snp-ok-default-time", "sev-snp/report-milan.hex",
        ("--vcek", "sev-snp/vcek-milan.der", "--chain", "sev-snp/ask-ark-milan.pem"), None, None),
    Row("snp-before-vcek", "sev-snp/report-milan.hex",
        ("--vcek", "sev-snp/vcek-milan.der", "--chain", "sev-snp/ask-ark-milan.pem"), 1680000000,
        CollateralNotYetValidError, "VCEK"),
    Row("snp-after-vcek", "sev-snp/report-milan.hex",
        ("--vcek", "sev-snp/vcek-milan.der", "--chain", "sev-snp/ask-ark-milan.pem"), 1920000000,
        CollateralExpiredError, "VCEK"),
]


def api_kwargs(row: Row, vectors: Path) -> dict[str, object]:
    args = dict(zip(row.args[::2], row.args[1::2], strict=True))
    kw: dict[str, object] = {"now": row.at}
    if "--collateral" in args:
        kw["collateral"] = vectors / args["--collateral"]
    if "--vcek" in args:
        kw["vcek"] = (vectors / args["--vcek"]).read_bytes()
        kw["chain"] = (vectors / args["--chain"]).read_bytes()
    return kw


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_row_python_api(row: Row, vectors: Path) -> None:
    evidence = (vectors / row.evidence).read_bytes()
    kw = api_kwargs(row, vectors)
    if row.error is None:
        claims = verify(evidence, None, Policy.patched_platform(), **kw)  # type: ignore[arg-type]
        assert not claims.simulated
    else:
        with pytest.raises(row.error, match=row.message):
            verify(evidence, None, Policy.patched_platform(), **kw)  # type: ignore[arg-type]


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "sereca.cli.main", *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("row", ROWS, ids=lambda r: r.name)
def test_row_cli(row: Row, vectors: Path) -> None:
    args = [str(vectors / a) if not a.startswith("--") else a for a in row.args]
    at = ["--at", str(row.at)] if row.at is not None else []
    proc = run_cli("evidence", "verify", str(vectors / row.evidence), *args, *at, "--json")
    verdict = json.loads(proc.stdout.strip().splitlines()[-1])
    assert "Traceback" not in proc.stderr
    if row.error is None:
        assert proc.returncode == 0, proc.stderr
        assert verdict["verified"] is True
    else:
        assert proc.returncode == 1, proc.stderr
        assert verdict["verified"] is False and row.message in verdict["error"]
        assert verdict["check"] == row.error.check  # type: ignore[attr-defined]


def test_sgx_claims_match_readme(vectors: Path) -> None:
    claims = verify((vectors / "sgx/quote.bin").read_bytes(), HELLO,
                    Policy.patched_platform(measurements=[SGX_MRENCLAVE], signer=SGX_MRSIGNER),
                    collateral=vectors / "sgx/collateral.json", now=1752919277)
    assert claims.tee == "sgx"
    assert claims.tcb_status == "ConfigurationAndSWHardeningNeeded"
    assert claims.advisories == ("INTEL-SA-00289", "INTEL-SA-00615")
    assert claims.debug is False
    assert claims.report_data == HELLO


def test_sgx_cli_json_fields(vectors: Path) -> None:
    proc = run_cli("evidence", "verify", str(vectors / "sgx/quote.bin"), "--collateral",
                   str(vectors / "sgx/collateral.json"), "--at", "1752919277", "--json",
                   "--report-data", b"Hello, world!".hex())
    assert proc.returncode == 0, proc.stderr
    v = json.loads(proc.stdout.strip().splitlines()[-1])
    assert v["tee"] == "sgx" and v["measurement"] == SGX_MRENCLAVE and v["report_data"] == HELLO.hex()
    assert v["tcb_status"] == "ConfigurationAndSWHardeningNeeded"
    assert v["advisories"] == ["INTEL-SA-00289", "INTEL-SA-00615"]


def test_tdx_claims(vectors: Path) -> None:
    claims = verify((vectors / "tdx/quote-v4.bin").read_bytes(), None, Policy(),
                    collateral=vectors / "tdx/quote-v4.collateral.json", now=1752919234)
    assert claims.tcb_status == "UpToDate" and claims.advisories == ()
    assert claims.measurement.hex().startswith("91eb2b44d141d4ec")


# Policy-level rejections: the signatures are good, the policy does not match.

def test_default_policy_rejects_configuration_needed(vectors: Path) -> None:
    with pytest.raises(TcbStatusError, match="ConfigurationAndSWHardeningNeeded"):
        verify((vectors / "sgx/quote.bin").read_bytes(), None, Policy(),
               collateral=vectors / "sgx/collateral.json", now=1752919277)


@pytest.mark.parametrize(
    "policy, rd, error",
    [
        (Policy.patched_platform(measurements=["00" * 32]), None, MeasurementError),
        (Policy.patched_platform(signer="11" * 32), None, Exception),
        (Policy.patched_platform(advisories=["INTEL-SA-00289"]), None, TcbStatusError),
        (Policy.patched_platform(), bytes(64), ReportDataError),
    ],
)
def test_sgx_policy_rejections(vectors: Path, policy: Policy, rd: bytes | None, error: type[Exception]) -> None:
    with pytest.raises(error):
        verify((vectors / "sgx/quote.bin").read_bytes(), rd, policy,
               collateral=vectors / "sgx/collateral.json", now=1752919277)


def test_policy_file_through_cli(vectors: Path, tmp_path: Path) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"measurements: ['{'00' * 32}']\ntcb_statuses: [UpToDate, ConfigurationAndSWHardeningNeeded]\n")
    proc = run_cli("evidence", "verify", str(vectors / "sgx/quote.bin"), "--collateral",
                   str(vectors / "sgx/collateral.json"), "--at", "1752919277", "--policy", str(policy), "--json")
    assert proc.returncode == 1
    assert json.loads(proc.stdout.splitlines()[-1])["check"] == "measurement"
    policy.write_text("tcb_statuses: [UpToDate]\n")
    proc = run_cli("evidence", "verify", str(vectors / "sgx/quote.bin"), "--collateral",
                   str(vectors / "sgx/collateral.json"), "--at", "1752919277", "--policy", str(policy), "--json")
    assert proc.returncode == 1
    assert json.loads(proc.stdout.splitlines()[-1])["check"] == "tcb_status"


def test_snp_debug_bit_is_a_policy_rejection(vectors: Path) -> None:
    # The vector's guest policy has DEBUG clear; an unsigned edit to set it must fail the signature,
    # so check the debug decision on parsed claims instead.
    from sereca.tee.checks import apply_policy
    from sereca.tee.snp import verify_snp

    report = bytes.fromhex((vectors / "sev-snp/report-milan.hex").read_text())
    claims = verify_snp(report, (vectors / "sev-snp/vcek-milan.der").read_bytes(),
                        (vectors / "sev-snp/ask-ark-milan.pem").read_bytes(), 1800000000)
    from dataclasses import replace

    with pytest.raises(DebugError):
        apply_policy(replace(claims, debug=True), Policy(), None, 1800000000)


def test_snp_ark_pinning(vectors: Path) -> None:
    kw = {"vcek": (vectors / "sev-snp/vcek-milan.der").read_bytes(),
          "chain": (vectors / "sev-snp/ask-ark-milan.pem").read_bytes(), "now": 1800000000}
    report = (vectors / "sev-snp/report-milan.hex").read_bytes()
    fp = verify(report, None, Policy(), **kw).extra["ark_fingerprint"]  # type: ignore[arg-type]
    verify(report, None, Policy(snp_ark_fingerprints=[fp]), **kw)  # type: ignore[arg-type]
    with pytest.raises(SignatureError, match="not among the pinned"):
        verify(report, None, Policy(snp_ark_fingerprints=["00" * 32]), **kw)  # type: ignore[arg-type]
