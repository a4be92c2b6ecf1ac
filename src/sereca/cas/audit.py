"""Append-only, hash-chained audit log.

Each decision of the CAS is one entry::

    {"seq": 7, "time": "2026-...Z", "event": "activation", "decision": "allow",
     "actor": "service:detector", "detail": {...}, "prev": "<hash of entry 6>",
     "hash": "<SHA-256 over the canonical JSON of this entry without 'hash'>"}

On disk (``audit.log`` in the state directory, an untrusted place) every
entry is one line: base64 of nonce || AES-256-GCM(audit key, entry JSON),
with the sequence number as associated data.  The sealed state records the
number of committed entries and the head hash, so a deleted, reordered,
edited or truncated log is detected on start.  An export is the plain JSON
lines; :func:`verify_entries` re-checks the chain anywhere.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sereca.cas.errors import StateIntegrityError
from sereca.errors import IntegrityError

GENESIS = "0" * 64


def entry_hash(entry: dict[str, Any]) -> str:
    body = {k: v for k, v in entry.items() if k != "hash"}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def verify_entries(entries: Iterable[dict[str, Any]], expected_head: str | None = None) -> tuple[int, str]:
    """Check the chain of exported entries; return (count, head).  Raises IntegrityError."""
    prev, count = GENESIS, 0
    for i, e in enumerate(entries):
        if not isinstance(e, dict) or e.get("seq") != i:
            raise IntegrityError(f"audit entry {i}: sequence number {e.get('seq') if isinstance(e, dict) else e!r} "
                                 f"is not {i} (an entry was removed, inserted or reordered)")
        if e.get("prev") != prev:
            raise IntegrityError(f"audit entry {i}: 'prev' does not match the hash of entry {i - 1} (chain broken)")
        if e.get("hash") != entry_hash(e):
            raise IntegrityError(f"audit entry {i}: hash does not match its content (the entry was modified)")
        prev, count = e["hash"], i + 1
    if expected_head is not None and prev != expected_head:
        raise IntegrityError(
            f"the audit log ends at {prev[:16]}… but the CAS's head is {expected_head[:16]}… "
            "(entries are missing at the end)"
        )
    return count, prev


class AuditLog:
    """Builds entries in memory; the state store writes them before committing the head."""

    def __init__(self, path: Path, key: bytes, count: int = 0, head: str = GENESIS) -> None:
        self.path = path
        self._aead = AESGCM(key)
        self.count = count
        self.head = head
        self.pending: list[bytes] = []

    def record(self, event: str, decision: str, actor: str, **detail: Any) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "seq": self.count,
            "time": dt.datetime.now(dt.timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "event": event,
            "decision": decision,
            "actor": actor,
            "detail": detail,
            "prev": self.head,
        }
        entry["hash"] = entry_hash(entry)
        self.pending.append(self._encrypt(entry))
        self.count += 1
        self.head = entry["hash"]
        return entry

    def take_pending(self) -> tuple[list[bytes], int, str]:
        lines, self.pending = self.pending, []
        return lines, self.count, self.head

    def _encrypt(self, entry: dict[str, Any]) -> bytes:
        nonce = os.urandom(12)
        ct = self._aead.encrypt(nonce, json.dumps(entry, sort_keys=True).encode(), f"audit/{entry['seq']}".encode())
        return base64.b64encode(nonce + ct) + b"\n"

    def _decrypt(self, line: bytes, seq: int) -> dict[str, Any]:
        raw = base64.b64decode(line, validate=True)
        entry = json.loads(self._aead.decrypt(raw[:12], raw[12:], f"audit/{seq}".encode()))
        if not isinstance(entry, dict):
            raise ValueError("not an entry")
        return entry

    def read(self) -> Iterator[dict[str, Any]]:
        """Decrypt every entry on disk (no chain check: see :meth:`load`)."""
        if not self.path.exists():
            return
        with self.path.open("rb") as f:
            for seq, line in enumerate(f):
                yield self._decrypt(line.strip(), seq)

    def load(self, committed_count: int, committed_head: str) -> None:
        """Check the file against the committed (count, head); adopt later valid entries.

        A torn last line *after* the committed entries is what a crash
        during an append leaves; it is cut off (it was never acknowledged).
        Anything wrong within the committed entries is tampering.
        """
        entries: list[dict[str, Any]] = []
        ends: list[int] = []
        if self.path.exists():
            data = self.path.read_bytes()
            pos = 0
            for seq, line in enumerate(data.splitlines(keepends=True)):
                try:
                    if not line.endswith(b"\n"):
                        raise ValueError("torn line")
                    entries.append(self._decrypt(line.strip(), seq))
                except (ValueError, InvalidTag, json.JSONDecodeError) as exc:
                    if seq < committed_count:
                        raise StateIntegrityError(
                            f"audit log {self.path}: entry {seq} cannot be decrypted ({type(exc).__name__}): "
                            "the file was modified or truncated; refusing to start. Restore the state "
                            "directory from a backup"
                        ) from None
                    break
                pos += len(line)
                ends.append(pos)
        if len(entries) < committed_count:
            raise StateIntegrityError(
                f"audit log {self.path} has {len(entries)} entries but the sealed state committed "
                f"{committed_count}: the log was truncated or replaced; refusing to start. Restore the "
                "state directory from a backup"
            )
        try:
            count, head = verify_entries(entries[:committed_count], committed_head)
            if len(entries) > committed_count:
                count, head = _continue_chain(entries, committed_count, head)
        except IntegrityError as exc:
            raise StateIntegrityError(f"audit log {self.path}: {exc}; refusing to start") from None
        good_bytes = ends[count - 1] if count else 0
        if self.path.exists() and good_bytes != self.path.stat().st_size:
            with self.path.open("r+b") as f:  # drop a torn, never-acknowledged tail
                f.truncate(good_bytes)
                f.flush()
                os.fsync(f.fileno())
        self.count, self.head = count, head


def _continue_chain(entries: list[dict[str, Any]], start: int, prev: str) -> tuple[int, str]:
    count = start
    for e in entries[start:]:
        if e.get("seq") != count or e.get("prev") != prev or e.get("hash") != entry_hash(e):
            break
        prev, count = e["hash"], count + 1
    return count, prev
