"""Policy parsing and the policy-level checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from sereca.tee import DEFAULT_TCB_STATUSES, PATCHED_TCB_STATUSES, Policy, TeeConfigError


def test_defaults() -> None:
    p = Policy()
    assert p.tcb_statuses == DEFAULT_TCB_STATUSES == ("UpToDate", "SWHardeningNeeded")
    assert p.allow_debug is False and p.measurements is None and p.max_age_s is None
    assert Policy.patched_platform().tcb_statuses == PATCHED_TCB_STATUSES


def test_from_yaml_and_json(tmp_path: Path) -> None:
    y = tmp_path / "p.yaml"
    y.write_text("measurements: ['0xAB' ]\nallow_debug: true\nmax_age_s: 60\n")
    p = Policy.from_file(y)
    assert p.measurements == ("ab",) and p.allow_debug and p.max_age_s == 60
    j = tmp_path / "p.json"
    j.write_text('{"tcb_statuses": ["UpToDate"], "advisories": ["INTEL-SA-00289"]}')
    assert Policy.from_file(j).advisories == ("INTEL-SA-00289",)
    empty = tmp_path / "empty.yaml"
    empty.write_text("")
    assert Policy.from_file(empty) == Policy()


@pytest.mark.parametrize(
    "text, message",
    [
        ("tcb_statuses: [Fine]", "unknown TCB status"),
        ("measurements: [zz]", "hex"),
        ("signer: abcd", "32"),
        ("min_svn: -1", ">= 0"),
        ("max_age_s: 0", "> 0"),
        ("colour: blue", "colour"),
        ("- a list", "mapping"),
        ("a: [", "not valid YAML"),
    ],
)
def test_bad_policy_files(tmp_path: Path, text: str, message: str) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text(text)
    with pytest.raises(TeeConfigError, match=message):
        Policy.from_file(f)


def test_missing_policy_file(tmp_path: Path) -> None:
    with pytest.raises(TeeConfigError, match="cannot read"):
        Policy.from_file(tmp_path / "nope.yaml")
