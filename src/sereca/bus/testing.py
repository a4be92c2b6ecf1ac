"""Helpers for tests and local experiments: a throwaway CA, Ed25519 service certificates, a test manifest.

Not for production: the CAS issues the real certificates and keys.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sereca.bus.api import Identity
from sereca.bus.nats_server import ServerTLS


def _pem(cert: x509.Certificate) -> str:
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def _key_pem(key: Ed25519PrivateKey) -> str:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


@dataclass
class Issued:
    key: Ed25519PrivateKey
    cert_pem: str  # leaf then CA
    key_pem: str


class TestCA:
    """An Ed25519 CA issuing CAS-style certificates (CN = service, SAN DNS service + instance, SAN URI)."""

    __test__ = False  # not a pytest class

    def __init__(self, name: str = "SERECA test CA") -> None:
        self.key = Ed25519PrivateKey.generate()
        now = datetime.datetime.now(datetime.timezone.utc)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                     .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                     .not_valid_before(now - datetime.timedelta(minutes=5))
                     .not_valid_after(now + datetime.timedelta(days=1))
                     .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
                     .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                                    critical=True)
                     .sign(self.key, None))
        self.ca_pem = _pem(self.cert)

    def issue(self, common_name: str, *, dns: list[str] | None = None, uris: list[str] | None = None,
              ips: list[str] | None = None, server: bool = False, days: float = 1.0,
              key: Ed25519PrivateKey | None = None) -> Issued:
        key = key or Ed25519PrivateKey.generate()
        now = datetime.datetime.now(datetime.timezone.utc)
        general: list[x509.GeneralName] = [x509.DNSName(d) for d in (dns or [])]
        general += [x509.UniformResourceIdentifier(u) for u in (uris or [])]
        general += [x509.IPAddress(ipaddress.ip_address(i)) for i in (ips or [])]
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
                   .issuer_name(self.cert.subject).public_key(key.public_key())
                   .serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=days))
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH if server
                                                         else ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
        if general:
            builder = builder.add_extension(x509.SubjectAlternativeName(general), critical=False)
        cert = builder.sign(self.key, None)
        return Issued(key, _pem(cert) + self.ca_pem, _key_pem(key))

    def service(self, service: str, instance: str = "i1") -> Issued:
        return self.issue(service, dns=[service, instance], uris=[f"sereca://service/{service}/{instance}"])

    def identity(self, service: str, instance: str = "i1") -> Identity:
        issued = self.service(service, instance)
        return Identity(service, instance, private_key=issued.key, cert_chain_pem=issued.cert_pem)

    def server_tls(self) -> ServerTLS:
        issued = self.issue("nats", dns=["localhost"], ips=["127.0.0.1"], server=True)
        return ServerTLS(cert_pem=issued.cert_pem, key_pem=issued.key_pem, ca_pem=self.ca_pem)


def demo_section() -> dict[str, Any]:
    """A small manifest ``bus`` section used by the tests."""
    return {"addresses": {
        "orders": {"publish": ["gateway"], "send": ["gateway"], "request": ["gateway"],
                   "consume": ["worker", "auditor"], "reply": ["worker", "auditor"]},
        "sensors.>": {"publish": ["gateway"], "consume": ["worker", "auditor"]},
        "alerts": {"send": ["worker"], "publish": ["worker"], "consume": ["auditor"], "durable": True},
        "signed.cmd": {"publish": ["gateway", "worker"], "request": ["gateway"], "consume": ["worker", "auditor"],
                       "reply": ["worker"], "authenticity": "sender"},
        "other": {"publish": ["intruder"], "consume": ["intruder"]},
    }}
