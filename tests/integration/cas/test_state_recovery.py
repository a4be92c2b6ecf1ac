"""Sealed state: restart, recovery on another platform, tampered and truncated files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from sereca.cas.client import CASClient, recover, verify_cas
from sereca.cas.errors import RecoveryError, StateIntegrityError, TransportError
from sereca.cas.server import CASServer
from sereca.errors import AttestationError
from sereca.tee import Policy

pytestmark = pytest.mark.asyncio


async def _restart(srv: CASServer, platform) -> CASServer:  # type: ignore[no-untyped-def]
    await srv.stop()
    new = CASServer(srv.state_dir, "127.0.0.1:0", platform=platform)
    await new.start(timeout=20)
    return new


async def test_restart_on_the_same_platform_resumes(ready, sim, connect, alice) -> None:
    async with connect(ready) as c:
        a = await c.activate("detector", sim.app)
    root = ready.root_pem
    again = await _restart(ready, sim.cas)
    try:
        assert again.root_pem == root
        async with connect(again, alice) as c:
            s = await c.status()
            assert s["mode"] == "ready" and s["activations"] == 1
            assert s["services"]["detector"]["live"] == 1
            assert (await c.get_secret("token"))["value"] == "aHVudGVyMg=="
            b = await c.activate("detector", sim.app)
            assert b.instance_id == "detector-1"  # detector-0 is still live
            assert b.params["env"]["SHARED"] == a.params["env"]["SHARED"]
            log = await c.audit()
            assert [e["seq"] for e in log["entries"]] == list(range(log["count"]))
    finally:
        await again.stop()


async def test_recovery_on_a_new_platform(ready, sim, connect, owner_key, alice) -> None:
    async with connect(ready) as c:
        a = await c.activate("detector", sim.app)
    root = ready.root_pem
    # same state, different CAS code (measurement): the data key does not unseal
    moved = await _restart(ready, sim.other)
    try:
        assert moved.root_pem is None
        async with CASClient(moved.url, insecure=True, timeout=10) as c:
            s = await c.status()
            assert s["mode"] == "recovery" and "does not unseal" in s["reason"]
        with pytest.raises(TransportError):  # the old pin does not match the temporary certificate
            async with CASClient(moved.url, root, timeout=10) as c:
                await c.status()
        policy = Policy(measurements=(sim.other.measurement().hex(),))
        # the wrong key: refused before anything is sent
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import rsa

        wrong = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        with pytest.raises(RecoveryError, match="not one of the deployment's recovery keys"):
            await recover(moved.url, wrong, policy=policy, sim_roots=[sim.root])
        # a forged data key sent directly is refused by the CAS
        async with CASClient(moved.url, insecure=True, timeout=10) as c:
            with pytest.raises(RecoveryError, match="not this state's data key"):
                await c._request("POST", "/api/v1/recovery", json={"key": "A" * 43 + "="})
        # attestation with a policy for another measurement fails: nothing is sent
        with pytest.raises(AttestationError):
            await recover(moved.url, owner_key[0], policy=Policy(measurements=("00" * 32,)), sim_roots=[sim.root])
        result = await recover(moved.url, owner_key[0], policy=policy, sim_roots=[sim.root])
        assert result["mode"] == "ready"
        assert moved.root_pem == root
        async with CASClient(moved.url, root, cert_pem=alice.cert_pem, key_pem=alice.key_pem, timeout=10) as c:
            s = await c.status()
            assert s["activations"] == 1 and s["services"]["detector"]["live"] == 1
            b = await c.activate("detector", sim.app)
            assert b.params["env"]["SHARED"] == a.params["env"]["SHARED"]
            assert any(e["event"] == "cas.recovered" for e in (await c.audit())["entries"])
        # resealed for the new platform: the next restart resumes by itself
        again = await _restart(moved, sim.other)
        moved = again
        assert again.root_pem == root
    finally:
        await moved.stop()


async def test_verify_cas_pins_the_root(ready, sim) -> None:
    policy = Policy(measurements=(sim.cas.measurement().hex(),))
    root, claims = await verify_cas(ready.url, policy, sim_roots=[sim.root])
    assert root == ready.root_pem and claims.simulated
    with pytest.raises(AttestationError, match="MeasurementError"):
        await verify_cas(ready.url, Policy(measurements=(sim.app.measurement().hex(),)), sim_roots=[sim.root])
    with pytest.raises(AttestationError, match="UntrustedRootError"):
        await verify_cas(ready.url, policy)  # simulated evidence without a pinned sim root


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "damage, match",
    [
        (lambda d: _flip(d / "state.enc", -20), "integrity check"),
        (lambda d: (d / "state.enc").write_bytes((d / "state.enc").read_bytes()[:-100]), "integrity check"),
        (lambda d: (d / "state.enc").write_bytes(b""), "header"),
        (lambda d: (d / "state.enc").unlink(), "missing"),
        (lambda d: (d / "keys.json").write_text("{"), "damaged"),
        (lambda d: (d / "audit.log").unlink(), "truncated or replaced"),
        (lambda d: (d / "audit.log").write_bytes((d / "audit.log").read_bytes().splitlines(True)[0]), "truncated"),
        (lambda d: _flip(d / "audit.log", 30), "audit log"),
    ],
    ids=["flipped-byte", "truncated", "emptied", "deleted", "keys-damaged", "audit-deleted", "audit-truncated", "audit-flipped"],
)
async def test_tampered_state_is_refused(ready, sim, connect, damage, match) -> None:
    async with connect(ready) as c:
        await c.activate("detector", sim.app)
    await ready.stop()
    damage(ready.state_dir)
    again = CASServer(ready.state_dir, "127.0.0.1:0", platform=sim.cas)
    with pytest.raises(StateIntegrityError, match=match):
        await again.start(timeout=20)
    assert (ready.state_dir / "keys.json").exists() or match == "damaged"


async def test_manifest_update_needs_role_and_is_audited(ready, connect, alice, manifest, sim) -> None:
    manifest["services"]["gateway"]["max_instances"] = 3
    async with connect(ready, alice) as c:
        r = await c.set_manifest(json.dumps(manifest))
        assert r["first"] is False
        for _ in range(3):
            await c.activate("gateway", sim.app)
        log = await c.audit()
    updates = [e for e in log["entries"] if e["event"] == "manifest.update"]
    assert updates and updates[-1]["actor"] == "user:alice" and updates[-1]["detail"]["digest"] == r["digest"]


async def test_raise_min_svn_without_redeploy(ready, connect, alice, sim) -> None:
    async with connect(ready, alice) as c:
        a = await c.activate("detector", sim.app)  # sim svn 0
        r = await c.raise_min_svn("app", "sim", 2)
        assert r["min_svn"] == 2
        from sereca.cas.errors import ActivationError, ConflictError

        with pytest.raises(ActivationError, match="security version 0 is below"):
            await c.renew(a, sim.app)
        with pytest.raises(ConflictError, match="lowering"):
            await c.raise_min_svn("app", "sim", 1)
        assert "min_svn: 2" in (await c.get_manifest())["manifest"]
        assert (await c.status())["services"]["detector"]["live"] == 1  # running instance untouched


async def test_seal_to_signer_survives_a_new_build(server, sim, connect, manifest) -> None:
    manifest["config"]["seal_mode"] = "signer"
    async with connect(server) as c:
        await c.set_manifest(json.dumps(manifest))
    root = server.root_pem
    # sim.other: other code (measurement), same simulated signer
    again = await _restart(server, sim.other)
    try:
        assert again.root_pem == root
        async with connect(again) as c:
            assert (await c.status())["mode"] == "ready"
    finally:
        await again.stop()


async def test_changed_recovery_keys_take_effect_at_once(ready, sim, connect, alice, manifest, owner_key) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    new_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    manifest["recovery"] = {
        "carol": new_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode()
    }
    async with connect(ready, alice) as c:
        await c.set_manifest(json.dumps(manifest))
    moved = await _restart(ready, sim.other)
    try:
        with pytest.raises(RecoveryError, match="carol"):  # the old owner's key no longer works
            await recover(moved.url, owner_key[0], insecure=True)
        pem = new_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                    serialization.NoEncryption())
        assert (await recover(moved.url, pem, insecure=True))["mode"] == "ready"
    finally:
        await moved.stop()


async def test_concurrent_first_manifests_need_a_role_for_the_second(server, connect, manifest) -> None:
    import asyncio

    from sereca.cas.errors import PermissionDenied

    async def put() -> object:
        async with connect(server) as c:
            try:
                return await c.set_manifest(json.dumps(manifest))
            except PermissionDenied as exc:
                return exc

    results = await asyncio.gather(*(put() for _ in range(4)))
    assert sum(isinstance(r, dict) for r in results) == 1
    assert sum(isinstance(r, PermissionDenied) for r in results) == 3
