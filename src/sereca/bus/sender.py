"""Sender authenticity (``authenticity: sender``): Ed25519 signatures and CAS-issued certificates."""

from __future__ import annotations

import datetime
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.x509.oid import NameOID

from sereca.bus.errors import BusConfigError, UnauthenticatedSender


def leaf_der(cert_chain_pem: str) -> bytes:
    """DER of the first (leaf) certificate of a PEM chain."""
    from cryptography.hazmat.primitives.serialization import Encoding

    try:
        certs = x509.load_pem_x509_certificates(cert_chain_pem.encode())
    except ValueError as exc:
        raise BusConfigError(f"sender certificate chain is not PEM: {exc}") from exc
    return certs[0].public_bytes(Encoding.DER)


def cert_names(cert: x509.Certificate) -> set[str]:
    """Names a certificate vouches for: subject CN, SAN DNS names, SAN URIs."""
    names = {a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME) if isinstance(a.value, str)}
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names.update(san.get_values_for_type(x509.DNSName))
        names.update(san.get_values_for_type(x509.UniformResourceIdentifier))
    except x509.ExtensionNotFound:
        pass
    return names


def service_of(sender: str) -> str:
    return sender.split("/", 1)[0]


def name_matches(sender: str, names: set[str]) -> bool:
    """A CAS certificate names its service (CN/DNS) and, as ``sereca://service/<svc>/<instance>``, its instance.

    When the certificate carries such a URI the full sender id must match it;
    otherwise the service part must equal the CN or a DNS name.
    """
    uris = {n[len("sereca://service/"):] for n in names if n.startswith("sereca://service/")}
    if uris:
        return sender in uris
    return service_of(sender) in names


class SenderVerifier:
    """Checks certificates against the deployment CA (cached per certificate) and signatures."""

    def __init__(self, ca_pem: str | None, limit: int = 10_000) -> None:
        self._ca: x509.Certificate | None = None
        if ca_pem:
            try:
                self._ca = x509.load_pem_x509_certificate(ca_pem.encode())
            except ValueError as exc:
                raise BusConfigError(f"bus ca_pem is not a PEM certificate: {exc}") from exc
        self._cache: dict[bytes, tuple[Ed25519PublicKey, set[str], datetime.datetime]] = {}
        self._limit = limit

    @property
    def configured(self) -> bool:
        return self._ca is not None

    def _load(self, der: bytes) -> tuple[Ed25519PublicKey, set[str], datetime.datetime]:
        hit = self._cache.get(der)
        if hit is not None:
            return hit
        if self._ca is None:
            raise UnauthenticatedSender("no deployment CA configured to check sender certificates")
        try:
            cert = x509.load_der_x509_certificate(der)
            cert.verify_directly_issued_by(self._ca)
        except (ValueError, TypeError, InvalidSignature) as exc:
            raise UnauthenticatedSender(f"sender certificate is not issued by the deployment CA: {exc}") from exc
        now = datetime.datetime.now(datetime.timezone.utc)
        if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
            raise UnauthenticatedSender("sender certificate is expired or not yet valid")
        key = cert.public_key()
        if not isinstance(key, Ed25519PublicKey):
            raise UnauthenticatedSender("sender certificate does not carry an Ed25519 key")
        entry = (key, cert_names(cert), cert.not_valid_after_utc)
        if len(self._cache) >= self._limit:
            self._cache.clear()
        self._cache[der] = entry
        return entry

    def verify(self, der: bytes, sender: str, message: bytes, signature: bytes) -> None:
        key, names, not_after = self._load(der)
        if not_after < datetime.datetime.now(datetime.timezone.utc):
            raise UnauthenticatedSender("sender certificate expired")
        if not name_matches(sender, names):
            raise UnauthenticatedSender(f"sender {sender!r} does not match its certificate ({sorted(names)})")
        try:
            key.verify(signature, message)
        except InvalidSignature as exc:
            raise UnauthenticatedSender(f"signature of {sender!r} does not verify") from exc


def make_signer(private_key: Any) -> Any:
    if not isinstance(private_key, Ed25519PrivateKey):
        raise BusConfigError("sender authenticity needs the service's Ed25519 private key (activation.private_key)")
    return private_key.sign
