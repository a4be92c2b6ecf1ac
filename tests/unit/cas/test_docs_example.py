"""The complete example in docs/manifest.md is a valid manifest (with real PEM blocks filled in)."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from sereca.cas.manifest import load_manifest

DOC = Path(__file__).resolve().parents[3] / "docs" / "manifest.md"


def _cert(cn: str) -> str:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
            .sign(key, hashes.SHA256()))
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def test_complete_example_is_valid() -> None:
    text = DOC.read_text()
    example = text.split("## Complete example", 1)[1].split("```yaml", 1)[1].split("```", 1)[0]
    certs = iter([_cert("alice"), _cert("bob")])
    example = re.sub(
        r"-----BEGIN CERTIFICATE-----\n(\s+)MII.*?\n\s+-----END CERTIFICATE-----",
        lambda m: next(certs).strip().replace("\n", "\n" + m.group(1)),
        example, flags=re.S,
    )
    pub = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    example = re.sub(
        r"-----BEGIN PUBLIC KEY-----\n(\s+)MII.*?\n\s+-----END PUBLIC KEY-----",
        lambda m: pub.strip().replace("\n", "\n" + m.group(1)),
        example, flags=re.S,
    )
    m = load_manifest(example)
    assert set(m.services) == {"leak-detector", "sensor-gateway"}
    assert m.packages["detector-v1"].reference("sgx").min_svn == 3  # type: ignore[union-attr]
    assert m.config.allow_simulation is False
