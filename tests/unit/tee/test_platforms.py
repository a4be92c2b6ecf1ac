"""Platform selection and the Gramine / configfs-tsm backends over fixture trees.

The fixture trees hold real evidence (the shared vectors) where the device
would put it; what is shown is our file protocol and checks, and that the
evidence they return verifies.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sereca.tee import PlatformError, Policy, TeeConfigError, detect_platform, get_platform, verify
from sereca.tee.gramine import GraminePlatform
from sereca.tee.sim.platform import SimPlatform
from sereca.tee.tsm import TsmPlatform

SGX_RD = b"Hello, world!".ljust(64, b"\x00")
SGX_MRENCLAVE = bytes.fromhex("33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb")


@pytest.fixture
def gramine_root(tmp_path: Path, vectors: Path) -> Path:
    root = tmp_path / "dev-attestation"
    (root / "keys").mkdir(parents=True)
    (root / "attestation_type").write_text("dcap\n")
    (root / "user_report_data").write_bytes(b"")
    (root / "quote").write_bytes((vectors / "sgx" / "quote.bin").read_bytes())
    (root / "my_target_info").write_bytes(SGX_MRENCLAVE + bytes(480))
    (root / "keys" / "_sgx_mrenclave").write_bytes(bytes(range(16)))
    (root / "keys" / "_sgx_mrsigner").write_bytes(bytes(range(16, 32)))
    return root


def tsm_root(tmp_path: Path, provider: str, outblob: bytes) -> Path:
    entry = tmp_path / "tsm" / "report" / "sereca"
    entry.mkdir(parents=True)
    (entry / "provider").write_text(provider + "\n")
    (entry / "generation").write_text("4\n")
    (entry / "inblob").write_bytes(b"")
    (entry / "outblob").write_bytes(outblob)
    return entry.parent


def test_kind_selection(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, gramine_root: Path) -> None:
    empty = tmp_path / "nothing"
    monkeypatch.setenv("SERECA_ATTESTATION_ROOT", str(empty))
    monkeypatch.setenv("SERECA_TSM_ROOT", str(empty))
    monkeypatch.delenv("SERECA_TEE", raising=False)
    assert isinstance(get_platform(), SimPlatform)
    assert "SIMULATION" in detect_platform(empty, empty).reason
    monkeypatch.setenv("SERECA_TEE", "gramine")
    assert isinstance(get_platform(attestation_root=gramine_root), GraminePlatform)
    monkeypatch.setenv("SERECA_TEE", "bogus")
    with pytest.raises(TeeConfigError, match="bogus"):
        get_platform()
    monkeypatch.setenv("SERECA_TEE", "auto")
    assert isinstance(get_platform(attestation_root=gramine_root), GraminePlatform)
    (gramine_root / "attestation_type").write_text("none\n")
    assert isinstance(get_platform(attestation_root=gramine_root), SimPlatform)
    tsm = tmp_path / "cfg"
    tsm.mkdir()
    assert isinstance(get_platform(attestation_root=gramine_root, tsm_root=tsm), TsmPlatform)


def test_gramine_evidence_verifies(gramine_root: Path, vectors: Path) -> None:
    p = GraminePlatform(gramine_root)
    assert p.tee_type == "sgx" and p.measurement() == SGX_MRENCLAVE
    quote = p.evidence(SGX_RD)
    assert (gramine_root / "user_report_data").read_bytes() == SGX_RD
    claims = verify(quote, SGX_RD, Policy.patched_platform(measurements=[SGX_MRENCLAVE.hex()]),
                    collateral=vectors / "sgx" / "collateral.json", now=1752919277)
    assert claims.tee == "sgx" and not claims.simulated


def test_gramine_refuses_other_report_data_and_non_dcap(gramine_root: Path) -> None:
    p = GraminePlatform(gramine_root)
    with pytest.raises(PlatformError, match="other report data"):
        p.evidence(bytes(64))
    (gramine_root / "attestation_type").write_text("epid\n")
    with pytest.raises(PlatformError, match="dcap"):
        p.evidence(SGX_RD)
    with pytest.raises(PlatformError, match="inside Gramine"):
        GraminePlatform(gramine_root / "missing").measurement()


def test_gramine_sealing_keys(gramine_root: Path) -> None:
    p = GraminePlatform(gramine_root)
    k = p.sealing_key("db")
    assert len(k) == 32 and k != p.sealing_key("db", "signer") and k != p.sealing_key("other")
    (gramine_root / "keys" / "_sgx_mrenclave").write_bytes(bytes(16))  # another enclave's hardware key
    assert p.sealing_key("db") != k


def test_tsm_tdx(tmp_path: Path, vectors: Path) -> None:
    quote = (vectors / "tdx" / "quote-v4.bin").read_bytes()
    import dcap_qvl

    rd = bytes(dcap_qvl.parse_quote(quote).report.report_data)
    root = tsm_root(tmp_path, "tdx_guest", quote)
    p = TsmPlatform(root, entry="sereca")
    assert p.tee_type == "tdx"
    assert p.evidence(rd) == quote
    assert (root / "sereca" / "inblob").read_bytes() == rd
    assert p.measurement().hex().startswith("91eb2b44d141d4ec")
    claims = verify(quote, rd, Policy(), collateral=vectors / "tdx" / "quote-v4.collateral.json", now=1752919234)
    assert claims.tee == "tdx"
    with pytest.raises(PlatformError, match="no sealing key"):
        p.sealing_key("x")


def test_tsm_snp_and_foreign_outblob(tmp_path: Path, vectors: Path) -> None:
    report = bytes.fromhex((vectors / "sev-snp" / "report-milan.hex").read_text())
    root = tsm_root(tmp_path, "sev_guest", report)
    p = TsmPlatform(root, entry="sereca")
    assert p.tee_type == "sev-snp"
    assert p.evidence(report[0x50:0x90]) == report
    # The outblob holds someone else's report data: a concurrent writer; never returned.
    with pytest.raises(PlatformError, match="kept changing"):
        p.evidence(bytes(64))


def test_tsm_unknown_provider_and_missing_root(tmp_path: Path) -> None:
    root = tsm_root(tmp_path, "cca_guest", b"")
    with pytest.raises(PlatformError, match="unsupported"):
        TsmPlatform(root, entry="sereca").evidence(bytes(64))
    with pytest.raises(PlatformError, match="cannot create"):
        TsmPlatform(tmp_path / "no" / "such", entry="x").evidence(bytes(64))


@pytest.mark.parametrize("before, written, after, ok", [
    (4, 5, 5, True),    # our write, nobody else
    (4, 4, 4, True),    # counter did not move (fixture): the report-data echo decides
    (4, 6, 6, False),   # someone wrote between our read and our write
    (4, 5, 6, False),   # someone wrote while we read the outblob
    (4, 3, 3, False),   # counter went backwards: entry recreated
])
def test_tsm_generation_check(before: int, written: int, after: int, ok: bool) -> None:
    from sereca.tee.tsm import undisturbed

    assert undisturbed(before, written, after) is ok
