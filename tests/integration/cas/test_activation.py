"""A simulated service activates at a real CAS over TLS and uses its certificate."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from sereca.cas.client import peer_service
from sereca.cas.errors import ActivationError, InstanceLimitError, NonceError, UnknownServiceError

pytestmark = pytest.mark.asyncio


def hkdf_reference(ikm: bytes, info: bytes, length: int = 32) -> bytes:
    """RFC 5869 written out independently of the code under test."""
    prk = hmac.new(b"\x00" * 32, ikm, hashlib.sha256).digest()
    okm, t, i = b"", b"", 1
    while len(okm) < length:
        t = hmac.new(prk, t + info + bytes([i]), hashlib.sha256).digest()
        okm += t
        i += 1
    return okm[:length]


async def test_activation_returns_chain_params_and_keys(ready, sim, connect) -> None:
    async with connect(ready) as c:
        a = await c.activate("detector", sim.app)
    assert a.instance_id == "detector-0"
    assert a.simulated is True
    leaf, ca = x509.load_pem_x509_certificates(a.cert_chain_pem.encode())
    assert ca.public_bytes(Encoding.PEM).decode() == a.ca_pem == ready.root_pem
    leaf.verify_directly_issued_by(ca)
    sans = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(sans.get_values_for_type(x509.DNSName)) == {"detector", "detector-0"}
    assert leaf.public_key() == a.private_key.public_key()
    validity = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert validity.total_seconds() <= 24 * 3600 + 600  # short-lived
    env = a.params["env"]
    assert env["ME"] == "detector-0" and env["CAS"] == ready.url and env["TOKEN"] == "hunter2"
    assert len(bytes.fromhex(env["SHARED"])) == 16
    assert len(base64.b64decode(env["MINE"])) == 32
    assert a.params["argv"] == ["--name", "detector"]
    assert a.file("/etc/sereca/key.pem") == a.private_key_pem()  # filled in locally
    assert a.file("/etc/sereca/cert.pem").decode() in a.cert_chain_pem
    assert a.file("/etc/sereca/ca.pem").decode() == a.ca_pem
    assert b"BEGIN CERTIFICATE" in a.file("/etc/sereca/db.pem") and b"PRIVATE KEY" in a.file("/etc/sereca/db.pem")
    # bus keys: format and derivation from the contract
    bus = a.keys["bus"]
    assert bus["ca_pem"] == a.ca_pem
    grants = {g["address"]: g for g in bus["grants"]}
    assert set(grants) == {"sensors.>", "alerts"}
    assert grants["sensors.>"]["actions"] == ["consume"] and grants["sensors.>"]["authenticity"] == "sender"
    assert grants["alerts"] == {**grants["alerts"], "actions": ["send"], "epoch": 3, "durable": True}
    # two instances see the same address key and subject key
    async with connect(ready) as c:
        b = await c.activate("detector", sim.app)
    assert b.instance_id == "detector-1"
    assert b.keys["bus"] == {**bus, "grants": b.keys["bus"]["grants"]}
    assert b.keys["bus"]["grants"] == bus["grants"]
    assert b.params["env"]["SHARED"] == env["SHARED"]
    assert b.params["env"]["MINE"] != env["MINE"]


async def test_bus_keys_follow_the_contract(ready, sim, connect, alice) -> None:
    # The root secret is sealed; check consistency via two services' views and the info labels
    async with connect(ready) as c:
        det = await c.activate("detector", sim.app)
        gw = await c.activate("gateway", sim.app)
    d = {g["address"]: g for g in det.keys["bus"]["grants"]}
    g = {g["address"]: g for g in gw.keys["bus"]["grants"]}
    assert d["sensors.>"]["key"] == g["sensors.>"]["key"]
    assert g["sensors.>"]["actions"] == ["publish"]
    assert d["alerts"]["key"] != d["sensors.>"]["key"]
    # reproduce from the root secret inside the CAS (white box: derivation labels)
    root = ready.cas._root  # noqa: SLF001 - test of the documented derivation
    assert base64.b64decode(det.keys["bus"]["subject_key"]) == hkdf_reference(root, b"bus/subject")
    assert base64.b64decode(d["alerts"]["key"]) == hkdf_reference(root, b"bus/address/alerts/epoch/3")
    assert base64.b64decode(d["sensors.>"]["key"]) == hkdf_reference(root, b"bus/address/sensors.>/epoch/1")


async def test_service_certificates_work_for_mtls(ready, sim, connect) -> None:
    async with connect(ready) as c:
        server_side = await c.activate("gateway", sim.app)
        client_side = await c.activate("detector", sim.app)
    seen: list[tuple[str, str] | None] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(peer_service(writer.get_extra_info("ssl_object")))
        writer.write(b"hello " + (await reader.readline()))
        await writer.drain()
        writer.close()

    srv = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=server_side.ssl_context(server_side=True))
    port = srv.sockets[0].getsockname()[1]
    try:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, ssl=client_side.ssl_context()), 10
        )
        writer.write(b"detector\n")
        await writer.drain()
        assert await asyncio.wait_for(reader.readline(), 10) == b"hello detector\n"
        assert peer_service(writer.get_extra_info("ssl_object")) == ("gateway", "gateway-0")
        writer.close()
        assert seen == [("detector", "detector-0")]
        # a client without a deployment certificate is refused by the service
        plain = ssl.create_default_context(cadata=client_side.ca_pem)
        plain.check_hostname = False
        with pytest.raises((ssl.SSLError, ConnectionError, asyncio.IncompleteReadError)):
            r2, w2 = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, ssl=plain), 10)
            await asyncio.wait_for(r2.readexactly(1), 10)
    finally:
        srv.close()
        await srv.wait_closed()


async def test_wrong_measurement_is_rejected(ready, sim, connect) -> None:
    async with connect(ready) as c:
        with pytest.raises(ActivationError, match="MeasurementError.*measurement"):
            await c.activate("detector", sim.other)


async def test_unknown_service(ready, sim, connect) -> None:
    async with connect(ready) as c:
        with pytest.raises(UnknownServiceError, match="unknown service 'detector-v2'"):
            await c.activate("detector-v2", sim.app)


async def test_instance_limit(ready, sim, connect) -> None:
    async with connect(ready) as c:
        await c.activate("gateway", sim.app)
        with pytest.raises(InstanceLimitError, match="max_instances = 1"):
            await c.activate("gateway", sim.app)


async def test_release_frees_the_slot_and_restart_keeps_per_instance_values(ready, sim, connect) -> None:
    async with connect(ready) as c:
        first = await c.activate("detector", sim.app)
        await c.release(first)
        again = await c.activate("detector", sim.app)
        assert again.instance_id == first.instance_id
        assert again.params["env"]["MINE"] == first.params["env"]["MINE"]
        assert again.file("/etc/sereca/db.pem") == first.file("/etc/sereca/db.pem")
        renewed = await c.renew(again, sim.app)  # fresh evidence, new key, same instance
        assert renewed.instance_id == again.instance_id
        assert renewed.certificate.serial_number != again.certificate.serial_number
        assert renewed.params["env"]["MINE"] == first.params["env"]["MINE"]


async def test_simulation_not_admitted(server, sim, connect, manifest) -> None:
    import json

    manifest["config"] = {"allow_simulation": False}
    async with connect(server) as c:
        await c.set_manifest(json.dumps(manifest))
        with pytest.raises(ActivationError, match="simulated evidence is not admitted"):
            await c.activate("gateway", sim.app)


async def test_unpinned_sim_root_is_rejected(server, sim, connect, manifest) -> None:
    import json

    manifest["config"]["sim_roots"] = ["ab" * 32]
    async with connect(server) as c:
        await c.set_manifest(json.dumps(manifest))
        with pytest.raises(ActivationError, match="UntrustedRootError"):
            await c.activate("gateway", sim.app)


async def test_nonce_is_single_use(ready, sim, connect) -> None:
    async with connect(ready) as c:
        nonce = await c.nonce()
        c.nonce = lambda: _const(nonce)  # type: ignore[method-assign]
        await c.activate("detector", sim.app)
        with pytest.raises(NonceError, match="already used"):
            await c.activate("detector", sim.app)


async def _const(value: str) -> str:
    return value


async def test_nats_authorization_from_the_manifest(ready, connect, alice, bob) -> None:
    from sereca.cas.errors import PermissionDenied

    for user in (None, bob):  # anonymous, and a user without broker/configure
        async with connect(ready, user) as c:
            with pytest.raises(PermissionDenied, match="broker"):
                await c.nats_authorization()
    async with connect(ready, alice) as c:
        auth = await c.nats_authorization()
    assert set(auth["users"]) == {"detector", "gateway"}
    assert auth["ca_pem"] == ready.root_pem
    assert auth["users"]["gateway"]["publish"]["allow"] != auth["users"]["detector"]["publish"]["allow"]


async def test_openapi_and_malformed_requests(ready, connect) -> None:
    import httpx

    from sereca.errors import ConfigError

    ctx = ssl.create_default_context(cadata=ready.root_pem)
    async with httpx.AsyncClient(verify=ctx, timeout=10) as h:
        spec = (await h.get(f"{ready.url}/openapi.json")).json()
    assert "/api/v1/activation" in spec["paths"]
    async with connect(ready) as c:
        with pytest.raises(ConfigError, match="malformed request: service: Field required"):
            await c._request("POST", "/api/v1/activation", json={"nonce": "x"})
