"""The sealed state store of the CAS.

Files in the state directory (which lives on an untrusted disk):

``keys.json``
    The 32-byte data key ``DK``, sealed with the platform's sealing key
    (label ``sereca/cas/state``, bound to the CAS's measurement or signer),
    and encrypted with RSA-OAEP-SHA256 to each recovery key of the manifest.
    Also ``dk_check`` = HMAC-SHA256(DK, "sereca/cas/dk-check") so that a
    recovered key can be told apart from a damaged state file.
``state.enc``
    The whole state (manifest, CA key, root secret, secrets, instances,
    audit head) as JSON, AES-256-GCM under DK; the header (format version,
    generation) is authenticated as associated data.
``audit.log``
    The hash-chained audit log (see :mod:`sereca.cas.audit`).

Every write goes to a temporary file, is fsynced, renamed over the old
file, and the directory is fsynced; only then is the change acknowledged.
A state file that fails to decrypt or parse is refused with
:class:`StateIntegrityError`; it is never reset.  A data key that does not
unseal (new machine, changed CAS code) puts the CAS in recovery mode.

Not covered: rolling the whole directory back to an older consistent copy
needs a hardware monotonic counter, which the simulated and Gramine
platforms do not offer; see docs/cas.md.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from sereca.cas.errors import RecoveryError, StateIntegrityError
from sereca.cas.keys import hkdf
from sereca.errors import ConfigError
from sereca.tee.base import Platform

MAGIC = b"SERECA-CAS-STATE/1\n"
SEAL_LABEL = "sereca/cas/state"
KEYS_FILE, STATE_FILE, AUDIT_FILE = "keys.json", "state.enc", "audit.log"
_OAEP = padding.OAEP(mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=b"sereca-cas-dk")


def dk_check(dk: bytes) -> str:
    return hmac.new(dk, b"sereca/cas/dk-check", hashlib.sha256).hexdigest()


def recovery_fingerprint(public_key: rsa.RSAPublicKey) -> str:
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(der).hexdigest()


def unwrap_recovery(private_key: rsa.RSAPrivateKey, wrapped_b64: str) -> bytes:
    """Run by the owner (``sereca recover``): decrypt the data key with the recovery key."""
    try:
        return private_key.decrypt(base64.b64decode(wrapped_b64), _OAEP)
    except ValueError:
        raise RecoveryError("the recovery key does not decrypt the wrapped data key: it is not this owner's key") from None


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(data)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


@dataclass
class Opened:
    """Result of :meth:`SealedStore.open`."""

    status: Literal["new", "ready", "recovery"]
    dk: bytes | None = None
    state: dict[str, Any] | None = None
    reason: str = ""


class SealedStore:
    """Reads and writes the sealed state of one CAS."""

    def __init__(self, directory: str | os.PathLike[str], platform: Platform) -> None:
        self.dir = Path(directory)
        self.platform = platform
        self.keys_path = self.dir / KEYS_FILE
        self.state_path = self.dir / STATE_FILE
        self.audit_path = self.dir / AUDIT_FILE
        self._generation = 0

    # -- opening ---------------------------------------------------------------------------

    def open(self) -> Opened:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the state directory {self.dir}: {exc}") from None
        has_keys, has_state = self.keys_path.exists(), self.state_path.exists()
        if not has_keys and not has_state:
            if self.audit_path.exists() and self.audit_path.stat().st_size:
                raise StateIntegrityError(
                    f"{self.dir} holds an audit log but no {KEYS_FILE} / {STATE_FILE}: the state was deleted "
                    "or moved; refusing to start a fresh CAS over it (use an empty directory for a new one)"
                )
            return Opened("new")
        if not has_keys or not has_state:
            missing = KEYS_FILE if not has_keys else STATE_FILE
            raise StateIntegrityError(
                f"{self.dir / missing} is missing: the sealed state is incomplete; refusing to start. "
                "Restore the state directory from a backup"
            )
        keys = self._read_keys()
        try:
            sealed = base64.b64decode(keys["sealed"], validate=True)
            dk = AESGCM(self._seal_key(keys["seal_bind"])).decrypt(sealed[:12], sealed[12:], b"sereca/cas/dk")
        except (InvalidTag, ValueError):
            return Opened(
                "recovery",
                reason="the data key does not unseal on this platform (another machine, or the CAS's code changed)",
            )
        if not hmac.compare_digest(dk_check(dk), keys["dk_check"]):
            raise StateIntegrityError(f"{self.keys_path}: the unsealed key fails its check; the file was modified")
        return Opened("ready", dk, self.decrypt_state(dk))

    def _read_keys(self) -> dict[str, Any]:
        try:
            keys = json.loads(self.keys_path.read_bytes())
            if not isinstance(keys, dict) or keys.get("version") != 1:
                raise ValueError("unknown format")
            for field, kind in (("sealed", str), ("seal_bind", str), ("dk_check", str), ("recovery", list)):
                if not isinstance(keys.get(field), kind):
                    raise ValueError(f"field {field!r}")
            if keys["seal_bind"] not in ("measurement", "signer"):
                raise ValueError("seal_bind")
        except (OSError, ValueError) as exc:
            raise StateIntegrityError(
                f"{self.keys_path} is damaged ({exc}); refusing to start. Restore it from a backup"
            ) from None
        return keys

    def _seal_key(self, bind: str) -> bytes:
        return self.platform.sealing_key(SEAL_LABEL, bind=bind)  # type: ignore[arg-type]

    def decrypt_state(self, dk: bytes) -> dict[str, Any]:
        try:
            data = self.state_path.read_bytes()
        except OSError as exc:
            raise StateIntegrityError(f"cannot read {self.state_path}: {exc}") from None
        problem = None
        if not data.startswith(MAGIC):
            problem = "it does not start with the state file header"
        else:
            try:
                hlen = int.from_bytes(data[len(MAGIC) : len(MAGIC) + 4], "big")
                hstart = len(MAGIC) + 4
                header = data[hstart : hstart + hlen]
                body = data[hstart + hlen :]
                meta = json.loads(header)
                plain = AESGCM(dk).decrypt(body[:12], body[12:], MAGIC + header)
                state = json.loads(plain)
                if not isinstance(state, dict) or state.get("generation") != meta.get("generation"):
                    raise ValueError("generation mismatch")
                self._generation = int(meta["generation"])
                return state
            except (InvalidTag, ValueError, KeyError, TypeError):
                problem = "it fails its integrity check (modified or truncated)"
        raise StateIntegrityError(
            f"state file {self.state_path} is unusable: {problem}; refusing to start rather than reset it. "
            "Restore the state directory from a backup"
        )

    # -- writing ---------------------------------------------------------------------------

    def write_keys(self, dk: bytes, seal_bind: str, recovery: dict[str, str]) -> None:
        """Seal ``dk`` to this platform and encrypt it to every recovery key (owner -> PEM)."""
        nonce = os.urandom(12)
        sealed = nonce + AESGCM(self._seal_key(seal_bind)).encrypt(nonce, dk, b"sereca/cas/dk")
        wrapped = []
        for owner, pem in sorted(recovery.items()):
            pub = serialization.load_pem_public_key(pem.encode())
            assert isinstance(pub, rsa.RSAPublicKey)
            wrapped.append(
                {
                    "owner": owner,
                    "fingerprint": recovery_fingerprint(pub),
                    "wrapped": base64.b64encode(pub.encrypt(dk, _OAEP)).decode(),
                }
            )
        doc = {
            "version": 1,
            "seal_bind": seal_bind,
            "sealed": base64.b64encode(sealed).decode(),
            "dk_check": dk_check(dk),
            "recovery": wrapped,
        }
        atomic_write(self.keys_path, json.dumps(doc, indent=1).encode())

    def recovery_entries(self) -> list[dict[str, str]]:
        return list(self._read_keys()["recovery"])

    def check_recovered_key(self, dk: bytes) -> None:
        if len(dk) != 32 or not hmac.compare_digest(dk_check(dk), self._read_keys()["dk_check"]):
            raise RecoveryError(
                "the recovered key is not this state's data key: the recovery key used is not one of the "
                "manifest's recovery keys (or belongs to another deployment)"
            )

    def next_generation(self) -> int:
        return self._generation + 1

    def write_state(self, dk: bytes, payload: bytes, generation: int, audit_lines: list[bytes]) -> None:
        """Append audit lines (fsync), then replace the state file atomically (fsync).

        ``payload`` is the state's JSON, whose ``generation`` field is ``generation``.
        """
        if audit_lines:
            with self.audit_path.open("ab") as f:
                f.write(b"".join(audit_lines))
                f.flush()
                os.fsync(f.fileno())
        header = json.dumps({"generation": generation}).encode()
        nonce = os.urandom(12)
        body = nonce + AESGCM(dk).encrypt(nonce, payload, MAGIC + header)
        atomic_write(self.state_path, MAGIC + len(header).to_bytes(4, "big") + header + body)
        self._generation = generation


def audit_key(dk: bytes) -> bytes:
    return hkdf(dk, "cas/audit")
