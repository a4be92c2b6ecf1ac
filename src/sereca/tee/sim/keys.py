"""The per-installation simulated manufacturer root CA, platform key and secret.

Kept under ``<home>/sim/`` (directory 0700, files 0600), created on first
use.  Creation happens in a private temporary directory that is renamed into
place, so concurrent first uses never see half-written keys.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import secrets
import shutil
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import NameOID

from sereca.tee.errors import PlatformError, TeeConfigError

ROOT_CN = "SERECA Simulated Root CA - NOT A HARDWARE ROOT OF TRUST"
PLATFORM_CN = "SERECA Simulated Platform - NOT A HARDWARE TEE"
_FILES = ("root.key", "root.der", "platform.key", "platform.der", "platform.secret")
_VALIDITY = dt.timedelta(days=3650)


@dataclass(frozen=True)
class SimAuthority:
    """Loaded simulated keys of one installation."""

    root_der: bytes
    platform_der: bytes
    platform_key: Ed25519PrivateKey
    platform_secret: bytes

    @property
    def root_fingerprint(self) -> str:
        """SHA-256 (hex) of the root certificate's DER: what verifiers pin."""
        return hashlib.sha256(self.root_der).hexdigest()


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SERECA simulation"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _create(target: Path) -> None:
    now = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)  # tolerate clock skew
    root_key = Ed25519PrivateKey.generate()
    root_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(ROOT_CN)).issuer_name(_name(ROOT_CN))
        .public_key(root_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .sign(root_key, None)
    )
    platform_key = Ed25519PrivateKey.generate()
    platform_cert = (
        x509.CertificateBuilder()
        .subject_name(_name(PLATFORM_CN)).issuer_name(root_cert.subject)
        .public_key(platform_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now).not_valid_after(now + _VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(root_key, None)
    )
    pkcs8 = serialization.PrivateFormat.PKCS8
    contents = {
        "root.key": root_key.private_bytes(serialization.Encoding.DER, pkcs8, serialization.NoEncryption()),
        "root.der": root_cert.public_bytes(serialization.Encoding.DER),
        "platform.key": platform_key.private_bytes(serialization.Encoding.DER, pkcs8, serialization.NoEncryption()),
        "platform.der": platform_cert.public_bytes(serialization.Encoding.DER),
        "platform.secret": secrets.token_bytes(32),
    }
    for name, data in contents.items():
        fd = os.open(target / name, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)


def _ensure(sim_dir: Path) -> None:
    if sim_dir.is_dir():
        return
    try:
        sim_dir.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = Path(tempfile.mkdtemp(prefix=".sim-", dir=sim_dir.parent))  # created 0700
    except OSError as exc:
        raise PlatformError(f"cannot create simulated TEE keys under {sim_dir.parent}: {exc}") from None
    try:
        _create(tmp)
        os.rename(tmp, sim_dir)
    except OSError:
        # Another process won the race: use its keys.
        shutil.rmtree(tmp, ignore_errors=True)
        if not sim_dir.is_dir():
            raise PlatformError(f"cannot create simulated TEE keys in {sim_dir}") from None


def load_authority(home: Path) -> SimAuthority:
    """Load (creating on first use) the simulated authority under ``home/sim``."""
    sim_dir = home / "sim"
    _ensure(sim_dir)
    data: dict[str, bytes] = {}
    for name in _FILES:
        path = sim_dir / name
        try:
            st = path.stat()
            if st.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
                raise TeeConfigError(
                    f"{path} is readable by other users (mode {stat.S_IMODE(st.st_mode):o}); run: chmod 600 {path}"
                )
            data[name] = path.read_bytes()
        except OSError as exc:
            raise PlatformError(f"cannot read simulated TEE key file {path}: {exc.strerror or exc}") from None
    try:
        key = serialization.load_der_private_key(data["platform.key"], None)
    except ValueError:
        raise PlatformError(f"{sim_dir / 'platform.key'} is corrupt; delete {sim_dir} to start over") from None
    if not isinstance(key, Ed25519PrivateKey) or len(data["platform.secret"]) != 32:
        raise PlatformError(f"simulated TEE keys in {sim_dir} are corrupt; delete {sim_dir} to start over")
    return SimAuthority(data["root.der"], data["platform.der"], key, data["platform.secret"])


def root_fingerprint(home: Path) -> str:
    """Fingerprint of this installation's simulated root (creating it on first use)."""
    return load_authority(home).root_fingerprint
