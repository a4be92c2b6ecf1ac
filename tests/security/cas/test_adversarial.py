"""Attacks on the CAS over real TLS: replay, transplanted evidence, forged certificates, garbage."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.x509.oid import NameOID
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sereca.cas.errors import ActivationError, NonceError, PermissionDenied, TransportError

pytestmark = pytest.mark.asyncio


def _spki(key: ed25519.Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _csr(key: ed25519.Ed25519PrivateKey) -> str:
    csr = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])
    ).sign(key, None)
    return csr.public_bytes(serialization.Encoding.PEM).decode()


def _evidence(platform, key: ed25519.Ed25519PrivateKey, nonce_hex: str) -> str:  # type: ignore[no-untyped-def]
    rd = hashlib.sha256(_spki(key)).digest() + hashlib.sha256(bytes.fromhex(nonce_hex)).digest()
    return base64.b64encode(platform.evidence(rd)).decode()


async def _post(c, service: str, nonce: str, evidence: str, csr: str) -> dict:  # type: ignore[no-untyped-def]
    body = {"service": service, "nonce": nonce, "evidence": evidence, "tee": "sim", "csr": csr}
    return await c._request("POST", "/api/v1/activation", json=body)


async def test_evidence_transplanted_to_another_key(ready, sim, connect) -> None:
    victim, attacker = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    async with connect(ready) as c:
        nonce = await c.nonce()
        stolen = _evidence(sim.app, victim, nonce)  # genuine evidence for the victim's key
        with pytest.raises(ActivationError, match="ReportDataError"):
            await _post(c, "detector", nonce, stolen, _csr(attacker))


async def test_old_evidence_with_a_fresh_nonce(ready, sim, connect) -> None:
    key = ed25519.Ed25519PrivateKey.generate()
    async with connect(ready) as c:
        old_nonce = await c.nonce()
        old = _evidence(sim.app, key, old_nonce)
        await _post(c, "detector", old_nonce, old, _csr(key))  # the genuine activation
        with pytest.raises(NonceError):  # replay as is
            await _post(c, "detector", old_nonce, old, _csr(key))
        fresh = await c.nonce()
        with pytest.raises(ActivationError, match="ReportDataError"):  # replay under a fresh nonce
            await _post(c, "detector", fresh, old, _csr(key))
        with pytest.raises(NonceError):  # a nonce the CAS never issued
            await _post(c, "detector", "00" * 32, old, _csr(key))


async def test_csr_with_a_foreign_key_is_refused(ready, sim, connect) -> None:
    key, other = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    good = x509.load_pem_x509_csr(_csr(key).encode())
    # splice the other key's signature onto this CSR: invalid self-signature
    forged = good.public_bytes(serialization.Encoding.DER)
    forged = forged[:-64] + other.sign(b"x")
    pem = "-----BEGIN CERTIFICATE REQUEST-----\n" + base64.encodebytes(forged).decode() + "-----END CERTIFICATE REQUEST-----\n"
    async with connect(ready) as c:
        nonce = await c.nonce()
        with pytest.raises(ActivationError, match="CSR"):
            await _post(c, "detector", nonce, _evidence(sim.app, key, nonce), pem)


async def test_forged_user_certificate_same_name_other_key(ready, connect, manifest, new_user) -> None:
    mallory_as_alice = new_user("alice")  # same subject, different key: not the manifest's certificate
    async with connect(ready, mallory_as_alice) as c:
        with pytest.raises(TransportError):
            await c.set_manifest(json.dumps(manifest))


async def test_certificate_claiming_the_deployment_ca_as_issuer(ready, connect, manifest) -> None:
    root = x509.load_pem_x509_certificate(ready.root_pem.encode())
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    fake = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "detector")]))
        .issuer_name(root.subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )

    class Fake:
        cert_pem = fake.public_bytes(serialization.Encoding.PEM).decode()
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode()

    async with connect(ready, Fake) as c:
        with pytest.raises(TransportError):
            await c.status()


async def test_service_certificate_is_not_a_user(ready, sim, connect, manifest) -> None:
    async with connect(ready) as c:
        a = await c.activate("detector", sim.app)

    class AsService:
        cert_pem = a.cert_chain_pem
        key_pem = a.private_key_pem().decode()

    async with connect(ready, AsService) as c:
        await c.status()  # TLS works: a deployment certificate
        with pytest.raises(PermissionDenied, match="does not list"):
            await c.set_manifest(json.dumps(manifest))
        with pytest.raises(PermissionDenied):
            await c.get_secret("token")


async def test_user_without_role(ready, connect, manifest, bob) -> None:
    async with connect(ready, bob) as c:
        with pytest.raises(PermissionDenied, match="user 'bob' has no role allowing 'update' on manifest"):
            await c.set_manifest(json.dumps(manifest))
        with pytest.raises(PermissionDenied, match="user 'bob'"):
            await c.set_secret("token", b"x")
        with pytest.raises(PermissionDenied, match="user 'bob'"):
            await c.audit()
    async with connect(ready) as c:  # anonymous
        with pytest.raises(PermissionDenied, match="needs a user"):
            await c.set_manifest(json.dumps(manifest))


async def test_denials_are_audited(ready, connect, bob, alice, sim) -> None:
    async with connect(ready, bob) as c:
        with pytest.raises(PermissionDenied):
            await c.set_secret("token", b"x")
    async with connect(ready) as c:
        with pytest.raises(ActivationError):
            await c.activate("detector", sim.other)
    async with connect(ready, alice) as c:
        log = await c.audit()
    denials = [(e["event"], e["actor"]) for e in log["entries"] if e["decision"] == "deny"]
    assert ("secret.set", "user:bob") in denials
    assert ("activation", "service:detector") in denials


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(
    st.dictionaries(st.sampled_from(["service", "nonce", "evidence", "tee", "csr", "instance"]),
                    st.one_of(st.text(max_size=50), st.integers(), st.none()), max_size=6),
    st.text(max_size=100),
))
async def test_garbage_activation_requests_get_clean_4xx(ready, body) -> None:  # type: ignore[no-untyped-def]
    import ssl

    ctx = ssl.create_default_context(cadata=ready.root_pem)
    async with httpx.AsyncClient(verify=ctx, timeout=10) as h:
        if isinstance(body, str):
            r = await h.post(f"{ready.url}/api/v1/activation", content=body.encode())
        else:
            r = await h.post(f"{ready.url}/api/v1/activation", json=body)
    assert 400 <= r.status_code < 500, r.text
    assert "Traceback" not in r.text


async def test_a_service_certificate_cannot_pose_as_the_cas(ready, sim, connect) -> None:
    import asyncio

    from sereca.cas.client import CASClient

    async with connect(ready) as c:
        a = await c.activate("gateway", sim.app)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b'HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 15\r\n\r\n{"mode":"evil"}')
        await writer.drain()
        writer.close()

    impostor = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=a.ssl_context(server_side=True))
    port = impostor.sockets[0].getsockname()[1]
    try:
        async with CASClient(f"https://127.0.0.1:{port}", ready.root_pem, timeout=10) as c:
            with pytest.raises(TransportError, match="pinned CAS root|certificate"):
                await c.status()
    finally:
        impostor.close()
        await impostor.wait_closed()


async def test_an_instance_cannot_release_another(ready, sim, connect) -> None:
    async with connect(ready) as c:
        a = await c.activate("detector", sim.app)
        b = await c.activate("detector", sim.app)
    from sereca.cas.client import CASClient

    async with CASClient(ready.url, ready.root_pem, cert_pem=a.cert_chain_pem, key_pem=a.private_key_pem(), timeout=10) as c:
        with pytest.raises(PermissionDenied, match=b.instance_id):
            await c._request("DELETE", f"/api/v1/activation/{b.instance_id}")


async def test_service_named_like_the_cas_host_is_refused(server, connect, manifest) -> None:
    from sereca.cas.errors import ManifestError

    server.cas.sans.append("cas-host")  # as if started with --san cas-host
    host = "cas-host"
    manifest["services"][host] = {"package": "app"}
    async with connect(server) as c:
        with pytest.raises(ManifestError, match="host name of the CAS"):
            await c.set_manifest(json.dumps(manifest))
