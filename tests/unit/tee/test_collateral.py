"""Collateral loading and the PCCS cache (served until the collateral's next update)."""

from __future__ import annotations

import json
from pathlib import Path

import dcap_qvl
import pytest

from sereca.tee import CollateralUnavailableError, Policy, TeeConfigError, verify
from sereca.tee.collateral import Pccs, load_collateral, next_update

SGX_AT = 1752919277
# An address where nothing listens: a fetch fails at once, without touching the internet.
DEAD_PCCS = "http://127.0.0.1:9"


@pytest.fixture
def sgx(vectors: Path) -> tuple[bytes, Path]:
    return (vectors / "sgx" / "quote.bin").read_bytes(), vectors / "sgx" / "collateral.json"


def test_load_forms(sgx: tuple[bytes, Path]) -> None:
    _, path = sgx
    text = path.read_text()
    for form in (path, str(path), text, text.encode(), json.loads(text), dcap_qvl.QuoteCollateralV3.from_json(text)):
        assert load_collateral(form).tcb_info == json.loads(text)["tcb_info"]


@pytest.mark.parametrize("bad, message", [("{}", "lacks"), ("{not json", "not JSON"), ("/no/such/file", "cannot read"),
                                          (b"\xff\xfe", "UTF-8"), (42, "unusable")])
def test_load_bad(bad: object, message: str) -> None:
    with pytest.raises(TeeConfigError, match=message):
        load_collateral(bad)


def test_next_update_is_earliest(sgx: tuple[bytes, Path]) -> None:
    # QE identity's nextUpdate (2025-07-19T10:01:18Z) is the earliest; the README's expiry row is 9 s later.
    assert next_update(load_collateral(sgx[1])) == 1752919278


def test_cached_collateral_served_until_next_update(sgx: tuple[bytes, Path], tmp_path: Path) -> None:
    quote, path = sgx
    pccs = Pccs(DEAD_PCCS, tmp_path / "cache")
    cache_file = pccs._cache_path(quote)
    assert cache_file is not None
    cache_file.parent.mkdir(parents=True)
    cache_file.write_text(json.dumps({"next_update": 1752919278, "collateral": json.loads(path.read_text())}))
    claims = verify(quote, None, Policy.patched_platform(), collateral=pccs, now=SGX_AT)
    assert claims.tcb_status == "ConfigurationAndSWHardeningNeeded"
    # After the next-update time the cache is stale: a fresh fetch is attempted (and fails here).
    with pytest.raises(CollateralUnavailableError, match="cannot fetch"):
        verify(quote, None, Policy.patched_platform(), collateral=pccs, now=1752919279)


def test_no_collateral_is_a_usage_error(sgx: tuple[bytes, Path], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SERECA_PCCS_URL", raising=False)
    with pytest.raises(CollateralUnavailableError, match="--collateral"):
        verify(sgx[0], None, Policy(), now=SGX_AT)


def test_pccs_from_env(monkeypatch: pytest.MonkeyPatch, sgx: tuple[bytes, Path]) -> None:
    monkeypatch.setenv("SERECA_PCCS_URL", DEAD_PCCS)
    with pytest.raises(CollateralUnavailableError, match="127.0.0.1:9"):
        verify(sgx[0], None, Policy(), now=SGX_AT)
