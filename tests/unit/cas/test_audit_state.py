"""Audit chain and sealed store, without a server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sereca.cas.audit import AuditLog, verify_entries
from sereca.cas.errors import StateIntegrityError
from sereca.cas.state import SealedStore
from sereca.errors import IntegrityError
from sereca.tee import get_platform


def _entries(tmp_path: Path, n: int = 5) -> list[dict]:
    log = AuditLog(tmp_path / "audit.log", b"k" * 32)
    return [log.record("e", "allow", "me", i=i) for i in range(n)]


def test_chain_verifies(tmp_path: Path) -> None:
    entries = _entries(tmp_path)
    assert verify_entries(entries, entries[-1]["hash"]) == (5, entries[-1]["hash"])


@pytest.mark.parametrize("attack", ["edit", "remove", "swap", "drop-tail"])
def test_chain_detects(tmp_path: Path, attack: str) -> None:
    entries = _entries(tmp_path)
    head = entries[-1]["hash"]
    if attack == "edit":
        entries[2]["detail"]["i"] = 99
    elif attack == "remove":
        del entries[2]
    elif attack == "swap":
        entries[1], entries[2] = entries[2], entries[1]
    else:
        entries = entries[:-1]
    with pytest.raises(IntegrityError):
        verify_entries(entries, head)


def _platform(tmp_path: Path, code: str):  # type: ignore[no-untyped-def]
    d = tmp_path / code
    d.mkdir(exist_ok=True)
    (d / "x").write_text(code)
    return get_platform("sim", home=tmp_path / "home", measured_paths=[d])


def test_store_roundtrip_and_unseal_elsewhere(tmp_path: Path) -> None:
    store = SealedStore(tmp_path / "s", _platform(tmp_path, "a"))
    assert store.open().status == "new"
    dk = b"d" * 32
    store.write_keys(dk, "measurement", {})
    log = AuditLog(store.audit_path, b"a" * 32)
    log.record("x", "allow", "me")
    lines, count, head = log.take_pending()
    store.write_state(dk, json.dumps({"generation": 1, "v": 42}).encode(), 1, lines)
    opened = store.open()
    assert opened.status == "ready" and opened.state == {"generation": 1, "v": 42}
    other = SealedStore(tmp_path / "s", _platform(tmp_path, "b")).open()
    assert other.status == "recovery"
    # a torn, uncommitted audit tail is cut; committed entries stay
    with store.audit_path.open("ab") as f:
        f.write(b"garbage-without-newline")
    again = AuditLog(store.audit_path, b"a" * 32)
    again.load(count, head)
    assert again.count == 1 and store.audit_path.read_bytes().endswith(b"\n")
    # a state file from another generation slot swapped into place is refused
    data = bytearray(store.state_path.read_bytes())
    data[25] ^= 1
    store.state_path.write_bytes(bytes(data))
    with pytest.raises(StateIntegrityError, match="refusing to start"):
        store.open()
