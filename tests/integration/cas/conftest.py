"""Fixtures for CAS tests: simulated platforms, users, manifests, a real CAS over TLS."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from sereca.cas.client import CASClient
from sereca.cas.server import CASServer
from sereca.tee import get_platform
from sereca.tee.base import Platform


@dataclass
class Sim:
    home: Path
    cas: Platform  # the CAS's own (simulated) platform
    app: Platform  # the admitted service code
    other: Platform  # code the manifest does not admit
    root: str  # simulated root fingerprint


@dataclass
class User:
    cert_pem: str
    key_pem: str


def make_user(name: str) -> User:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=30))
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    return User(
        cert.public_bytes(serialization.Encoding.PEM).decode(),
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
    )


def make_recovery_key() -> tuple[bytes, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    priv = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return priv, pub.decode()


@pytest.fixture
def sim(tmp_path: Path) -> Sim:
    home = tmp_path / "home"
    dirs = {}
    for name in ("cas-code", "app-code", "other-code"):
        d = tmp_path / name
        d.mkdir()
        (d / "main.py").write_text(f"# {name}\n")
        dirs[name] = d
    cas = get_platform("sim", home=home, measured_paths=[dirs["cas-code"]])
    app = get_platform("sim", home=home, measured_paths=[dirs["app-code"]])
    other = get_platform("sim", home=home, measured_paths=[dirs["other-code"]])
    return Sim(home, cas, app, other, app.root_fingerprint)  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def alice() -> User:
    return make_user("alice")


@pytest.fixture(scope="session")
def bob() -> User:
    return make_user("bob")


@pytest.fixture(scope="session")
def owner_key() -> tuple[bytes, str]:
    return make_recovery_key()


def base_manifest(sim: Sim, alice: User, bob: User, owner_pub: str, **config: Any) -> dict[str, Any]:
    return {
        "packages": {"app": {"sim": {"measurements": [sim.app.measurement().hex()]}}},
        "services": {
            "detector": {
                "package": "app",
                "max_instances": 2,
                "env": {
                    "SHARED": "{{ secrets.shared_key }}",
                    "MINE": "{{ secrets.instance_key | base64 }}",
                    "ME": "{{ service.instance }}",
                    "CAS": "{{ cas.address }}",
                    "TOKEN": "{{ secrets.token }}",
                },
                "files": {
                    "/etc/sereca/key.pem": "{{ service.key }}",
                    "/etc/sereca/cert.pem": "{{ service.cert }}",
                    "/etc/sereca/ca.pem": "{{ ca.cert }}",
                    "/etc/sereca/db.pem": "{{ secrets.db.cert }}{{ secrets.db.key }}",
                },
                "argv": ["--name", "{{ service.name }}"],
            },
            "gateway": {"package": "app", "max_instances": 1},
        },
        "secrets": {
            "shared_key": {"type": "symmetric-key", "size": 128},
            "instance_key": {"type": "symmetric-key", "size": 256, "shared": False},
            "db": {"type": "cert-ecdsa", "sans": ["db.internal"], "validity": "30d"},
            "token": {"type": "user-defined"},
        },
        "bus": {
            "addresses": {
                "sensors.>": {"publish": ["gateway"], "consume": ["detector"], "authenticity": "sender"},
                "alerts": {"send": ["detector"], "consume": ["gateway"], "durable": True, "epoch": 3},
            }
        },
        "users": {
            "alice": {"certificate": alice.cert_pem, "roles": ["admin", "secrets", "auditor", "broker"]},
            "bob": {"certificate": bob.cert_pem, "roles": []},
        },
        "roles": {
            "admin": {"resource": "manifest", "actions": ["update"]},
            "secrets": {"resource": "secrets", "actions": ["read", "write"]},
            "auditor": {"resource": "audit", "actions": ["read"]},
            "broker": {"resource": "broker", "actions": ["configure"]},
        },
        "recovery": {"owner": owner_pub},
        "config": {"allow_simulation": True, "sim_roots": [sim.root], **config},
    }


@pytest.fixture
def manifest(sim: Sim, alice: User, bob: User, owner_key: tuple[bytes, str]) -> dict[str, Any]:
    return base_manifest(sim, alice, bob, owner_key[1])


@pytest.fixture
async def server(tmp_path: Path, sim: Sim) -> AsyncIterator[CASServer]:
    srv = CASServer(tmp_path / "state", "127.0.0.1:0", platform=sim.cas)
    await srv.start(timeout=20)
    try:
        yield srv
    finally:
        await srv.stop()


@pytest.fixture
async def ready(server: CASServer, manifest: dict[str, Any], alice: User) -> AsyncIterator[CASServer]:
    """A CAS with the base manifest set and the user-defined token uploaded."""
    async with CASClient(server.url, server.root_pem, timeout=10) as c:
        await c.set_manifest(json.dumps(manifest))
    async with CASClient(server.url, server.root_pem, cert_pem=alice.cert_pem, key_pem=alice.key_pem, timeout=10) as c:
        await c.set_secret("token", b"hunter2")
    yield server


def client(srv: CASServer, user: User | None = None) -> CASClient:
    if user is None:
        return CASClient(srv.url, srv.root_pem, timeout=10)
    return CASClient(srv.url, srv.root_pem, cert_pem=user.cert_pem, key_pem=user.key_pem, timeout=10)


@pytest.fixture
def connect():  # type: ignore[no-untyped-def]
    """connect(server, user=None) -> CASClient (pinned to the server's root)."""
    return client


@pytest.fixture
def new_user():  # type: ignore[no-untyped-def]
    return make_user
