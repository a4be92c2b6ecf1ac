"""The deployment CA: the CAS's root certificate, its TLS certificate, service
certificates from CSRs, and certificate secrets.

One self-signed ECDSA P-256 root per deployment.  It is at once the root
clients pin (``sereca cas verify``) and the deployment CA that issues
service certificates, so a service's chain is ``leaf, root`` and anyone
holding ``ca_pem`` can check it with a plain TLS stack (no partial chains).
The CAS's own TLS certificate is issued by the root with the CAS's host
names; service certificates never carry IP addresses or ``localhost``, so a
service cannot pose as the CAS to a client that checks the host name.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import secrets as _secrets
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sereca.cas.errors import ActivationError

PrivateKey = ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
_CLOCK_SKEW = dt.timedelta(minutes=5)
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
_P384_ORDER = int(
    "ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973", 16
)


def now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def key_pem(key: PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())


def cert_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def public_pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def spki_der(public_key: object) -> bytes:
    return public_key.public_bytes(  # type: ignore[attr-defined]
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def fingerprint(cert: x509.Certificate) -> str:
    """SHA-256 (hex) of the certificate's DER encoding."""
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def load_cert(pem: bytes | str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem.encode() if isinstance(pem, str) else pem)


def load_key(pem: bytes | str) -> PrivateKey:
    key = serialization.load_pem_private_key(pem.encode() if isinstance(pem, str) else pem, password=None)
    return key  # type: ignore[return-value]


def _name(common_name: str, org: str = "SERECA") -> x509.Name:
    return x509.Name(
        [x509.NameAttribute(NameOID.ORGANIZATION_NAME, org), x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    )


def _sans(names: Iterable[str]) -> list[x509.GeneralName]:
    out: list[x509.GeneralName] = []
    for n in dict.fromkeys(names):
        try:
            out.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            out.append(x509.DNSName(n))
    return out


@dataclass(frozen=True)
class CA:
    """The deployment root CA (key + self-signed certificate)."""

    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate

    @classmethod
    def create(cls, name: str = "SERECA deployment root") -> CA:
        key = ec.generate_private_key(ec.SECP256R1())
        t = now()
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(name))
            .issuer_name(_name(name))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(t - _CLOCK_SKEW)
            .not_valid_after(t + dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .sign(key, hashes.SHA256())
        )
        return cls(key, cert)

    @classmethod
    def from_pem(cls, key: bytes | str, cert: bytes | str) -> CA:
        k = load_key(key)
        if not isinstance(k, ec.EllipticCurvePrivateKey):
            raise ValueError("the CA key must be an ECDSA key")
        return cls(k, load_cert(cert))

    @property
    def cert_pem(self) -> bytes:
        return cert_pem(self.cert)

    @property
    def key_pem(self) -> bytes:
        return key_pem(self.key)

    def issue(
        self,
        public_key: object,
        common_name: str,
        sans: Iterable[str],
        validity_s: int,
        *,
        server: bool = True,
        client: bool = True,
        uris: Iterable[str] = (),
    ) -> x509.Certificate:
        t = now()
        eku = [o for o, on in ((ExtendedKeyUsageOID.SERVER_AUTH, server), (ExtendedKeyUsageOID.CLIENT_AUTH, client)) if on]
        general = _sans(sans) + [x509.UniformResourceIdentifier(u) for u in uris]
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(common_name))
            .issuer_name(self.cert.subject)
            .public_key(public_key)  # type: ignore[arg-type]
            .serial_number(x509.random_serial_number())
            .not_valid_before(t - _CLOCK_SKEW)
            .not_valid_after(t + dt.timedelta(seconds=validity_s))
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage(eku), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), critical=False
            )
        )
        if general:
            builder = builder.add_extension(x509.SubjectAlternativeName(general), critical=False)
        return builder.sign(self.key, hashes.SHA256())

    def issued(self, cert: x509.Certificate) -> bool:
        """True if ``cert`` was signed by this CA and is currently valid."""
        try:
            cert.verify_directly_issued_by(self.cert)
        except (ValueError, TypeError, InvalidSignature):
            return False
        t = now()
        return cert.not_valid_before_utc <= t <= cert.not_valid_after_utc


def default_sans(listen_host: str | None = None) -> list[str]:
    names = ["localhost", "127.0.0.1", "::1"]
    try:
        names.append(socket.gethostname())
    except OSError:
        pass
    if listen_host and listen_host not in ("0.0.0.0", "::", ""):
        names.append(listen_host)
    return list(dict.fromkeys(names))


def _self_signed_builder(key: ec.EllipticCurvePrivateKey, common_name: str, validity_s: int) -> x509.CertificateBuilder:
    """Subject = issuer = ``common_name``, valid from now (less clock skew) for ``validity_s``."""
    t = now()
    name = _name(common_name)
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(t - _CLOCK_SKEW)
        .not_valid_after(t + dt.timedelta(seconds=validity_s))
    )


def self_signed(names: Iterable[str], validity_s: int = 86400) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """An ephemeral TLS certificate (recovery mode, when the root key is sealed away)."""
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _self_signed_builder(key, "SERECA CAS (recovery mode)", validity_s)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(_sans(names)), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def user_certificate(common_name: str, validity_s: int = 86400) -> tuple[str, str]:
    """A self-signed ECDSA client certificate and key (PEM) for a manifest user (an operator).

    The CAS trusts each user certificate listed in the manifest as its own anchor,
    so a user needs no CA; tools and the demo use this to make one.
    """
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        _self_signed_builder(key, common_name, validity_s)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert_pem(cert).decode(), key_pem(key).decode()


def load_csr(pem: str) -> x509.CertificateSigningRequest:
    """A CSR whose self-signature verifies, or ActivationError."""
    try:
        csr = x509.load_pem_x509_csr(pem.encode())
    except (ValueError, TypeError) as exc:
        raise ActivationError(f"the CSR is not a PEM certificate signing request ({exc})") from None
    if not csr.is_signature_valid:
        raise ActivationError("the CSR's signature does not verify: it was not made with the key it carries")
    return csr


def secret_key(kind: str, size: int | None, seed: bytes | None = None) -> PrivateKey:
    """A private key for a certificate secret; deterministic from ``seed`` (32 bytes) except RSA."""
    if kind == "cert-ed25519":
        return ed25519.Ed25519PrivateKey.from_private_bytes(seed) if seed else ed25519.Ed25519PrivateKey.generate()
    if kind == "cert-ecdsa":
        curve: ec.EllipticCurve = ec.SECP384R1() if size == 384 else ec.SECP256R1()
        if seed is None:
            return ec.generate_private_key(curve)
        order = _P384_ORDER if size == 384 else _P256_ORDER
        wide = hashlib.shake_256(b"sereca/cas/ecdsa-seed" + seed).digest(64)
        return ec.derive_private_key(int.from_bytes(wide, "big") % (order - 1) + 1, curve)
    if kind == "cert-rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=size or 3072)
    raise ValueError(f"not a certificate secret type: {kind}")


def random_bytes(n: int) -> bytes:
    return _secrets.token_bytes(n)


def verify_chain_to(ca_cert: x509.Certificate, leaf: x509.Certificate) -> None:
    try:
        leaf.verify_directly_issued_by(ca_cert)
    except (ValueError, TypeError, InvalidSignature):
        raise ActivationError("the certificate was not issued by this deployment's CA") from None
