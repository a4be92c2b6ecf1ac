"""The simulated platform and its verifier."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest

from sereca.tee import (
    Claims,
    DebugError,
    EvidenceAgeError,
    MeasurementError,
    Policy,
    ReportDataError,
    SignerError,
    TeeConfigError,
    UntrustedRootError,
    get_platform,
    sim_root_fingerprint,
    verify,
)
from sereca.tee.sim.platform import SimPlatform

RD = bytes(range(64))


@pytest.fixture
def app(tmp_path: Path) -> Path:
    d = tmp_path / "app"
    d.mkdir()
    (d / "main.py").write_text("print('svc')\n")
    return d


@pytest.fixture
def platform(app: Path) -> SimPlatform:
    p = get_platform("sim", measured_paths=[app])
    assert isinstance(p, SimPlatform)
    return p


def test_round_trip(platform: SimPlatform) -> None:
    ev = platform.evidence(RD)
    claims = verify(ev, RD, Policy(measurements=[platform.measurement().hex()], max_age_s=60),
                    sim_roots=[sim_root_fingerprint()])
    assert isinstance(claims, Claims)
    assert claims.simulated is True and claims.tee == "sim"
    assert claims.to_dict()["simulated"] is True
    assert claims.measurement == platform.measurement()
    assert claims.report_data == RD
    assert claims.debug is False and claims.tcb_status is None
    assert abs(claims.timestamp - time.time()) < 5
    assert platform.name == "sim" and platform.tee_type == "sim"


def test_key_files_private_and_stable(platform: SimPlatform, _isolated_sereca_home: Path) -> None:
    fp = platform.root_fingerprint
    sim_dir = _isolated_sereca_home / "sim"
    assert stat.S_IMODE(sim_dir.stat().st_mode) == 0o700
    for f in sim_dir.iterdir():
        assert stat.S_IMODE(f.stat().st_mode) == 0o600, f
    assert get_platform("sim").root_fingerprint == fp == sim_root_fingerprint()


def test_world_readable_key_refused(platform: SimPlatform, _isolated_sereca_home: Path) -> None:
    platform.evidence(RD)
    (_isolated_sereca_home / "sim" / "platform.key").chmod(0o644)
    with pytest.raises(TeeConfigError, match="chmod 600"):
        get_platform("sim").evidence(RD)


def test_other_report_data_rejected(platform: SimPlatform) -> None:
    ev = platform.evidence(RD)
    with pytest.raises(ReportDataError) as err:
        verify(ev, bytes(64), Policy(), sim_roots=[platform.root_fingerprint])
    assert err.value.check == "report_data"


def test_unpinned_root_rejected(platform: SimPlatform, tmp_path: Path) -> None:
    ev = platform.evidence(RD)
    with pytest.raises(UntrustedRootError, match="pinned"):
        verify(ev, RD, Policy())
    other = get_platform("sim", home=tmp_path / "other-host", measured_paths=[tmp_path / "app"])
    assert other.root_fingerprint != platform.root_fingerprint
    with pytest.raises(UntrustedRootError, match="not pinned"):
        verify(ev, RD, Policy(), sim_roots=[other.root_fingerprint])
    # Evidence from the other installation, same code, is rejected under our pin.
    with pytest.raises(UntrustedRootError):
        verify(other.evidence(RD), RD, Policy(), sim_roots=[platform.root_fingerprint])


def test_too_old_and_future_rejected(platform: SimPlatform) -> None:
    ev = platform.evidence(RD)
    pin = [platform.root_fingerprint]
    verify(ev, RD, Policy(max_age_s=30), sim_roots=pin, now=time.time() + 20)
    with pytest.raises(EvidenceAgeError, match="older than"):
        verify(ev, RD, Policy(max_age_s=30), sim_roots=pin, now=time.time() + 31)
    with pytest.raises(EvidenceAgeError, match="future"):
        verify(ev, RD, Policy(), sim_roots=pin, now=time.time() - 400)


def test_changed_measurement_rejected(platform: SimPlatform, app: Path) -> None:
    accepted = platform.measurement().hex()
    (app / "main.py").write_text("print('evil')\n")
    changed = get_platform("sim", measured_paths=[app])
    assert changed.measurement().hex() != accepted
    with pytest.raises(MeasurementError) as err:
        verify(changed.evidence(RD), RD, Policy(measurements=[accepted]), sim_roots=[platform.root_fingerprint])
    assert err.value.check == "measurement"
    with pytest.raises(MeasurementError):
        verify(platform.evidence(RD), RD, Policy(measurements=[]), sim_roots=[platform.root_fingerprint])


def test_signer_product_svn_debug(tmp_path: Path, app: Path) -> None:
    signer = bytes([7]) * 32
    p = SimPlatform(tmp_path / "h", [app], signer=signer, product_id=3, svn=5, debug=True)
    ev = p.evidence(RD)
    pin = [p.root_fingerprint]
    ok = Policy(signer=signer.hex(), product_id=3, min_svn=5, allow_debug=True)
    assert verify(ev, RD, ok, sim_roots=pin).svn == 5
    for bad in (ok.model_copy(update={"signer": "00" * 32}), ok.model_copy(update={"product_id": 4}),
                ok.model_copy(update={"min_svn": 6})):
        with pytest.raises(SignerError):
            verify(ev, RD, bad, sim_roots=pin)
    with pytest.raises(DebugError):
        verify(ev, RD, Policy(), sim_roots=pin)


def test_sealing_keys(platform: SimPlatform, app: Path, tmp_path: Path) -> None:
    k = platform.sealing_key("store/state")
    assert len(k) == 32 and k == platform.sealing_key("store/state")
    assert platform.sealing_key("store/other") != k
    assert platform.sealing_key("store/state", bind="signer") != k
    (app / "main.py").write_text("v2\n")
    v2 = get_platform("sim", measured_paths=[app])
    assert v2.sealing_key("store/state") != k  # new code cannot unseal the old code's data...
    assert v2.sealing_key("store/state", "signer") == platform.sealing_key("store/state", "signer")  # ...its signer can
    other_host = get_platform("sim", home=tmp_path / "h2", measured_paths=[app])
    assert other_host.sealing_key("store/state", "signer") != platform.sealing_key("store/state", "signer")
    with pytest.raises(TeeConfigError):
        platform.sealing_key("x", bind="nothing")  # type: ignore[arg-type]
    with pytest.raises(TeeConfigError):
        platform.sealing_key("")


@pytest.mark.parametrize("size", [0, 32, 63, 65])
def test_report_data_must_be_64_bytes(platform: SimPlatform, size: int) -> None:
    with pytest.raises(TeeConfigError, match="64 bytes"):
        platform.evidence(bytes(size))
    with pytest.raises(TeeConfigError, match="64 bytes"):
        verify(platform.evidence(RD), bytes(size), Policy(), sim_roots=[platform.root_fingerprint])


def test_verify_is_fast(platform: SimPlatform) -> None:
    ev = platform.evidence(RD)
    pin = [platform.root_fingerprint]
    start = time.perf_counter()
    for _ in range(200):
        verify(ev, RD, Policy(), sim_roots=pin)
    assert (time.perf_counter() - start) / 200 < 0.005  # CAS budget: 100 activations/s on 2 cores
