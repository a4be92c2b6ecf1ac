"""The broker configured from the CAS: mutual TLS with CAS certificates and per-service permissions.

Real path: a CAS, a nats-server configured from its broker configuration
(fetched by an operator with broker/configure), services activated at the CAS
whose buses connect with their activation certificates.
"""

from __future__ import annotations

import asyncio
import copy
import json
import os
import sys
from typing import Any

import pytest
from polling import until

from sereca.bus import BusError, EventBus, Message, NatsTransport
from sereca.bus.keys import MODE_ALL
from sereca.bus.nats_server import find_nats_server, free_port
from sereca.bus.testing import TestCA
from sereca.bus.transports.nats import client_tls_context
from sereca.cas.broker import INCLUDE_NAME, BrokerConfig, fetch_broker_config
from sereca.cas.errors import ConflictError, PermissionDenied


def with_broker(manifest: dict[str, Any], port: int, **nats: Any) -> dict[str, Any]:
    m = copy.deepcopy(manifest)
    m["secrets"]["broker"] = {"type": "cert-ecdsa", "sans": ["127.0.0.1", "localhost"]}
    m["config"]["nats"] = {"url": f"tls://127.0.0.1:{port}", "tls": True, "server_cert": "broker", **nats}
    return m


async def set_manifest(connect: Any, server: Any, alice: Any, m: dict[str, Any]) -> None:
    async with connect(server) as c:
        await asyncio.wait_for(c.set_manifest(json.dumps(m)), 20)
    async with connect(server, alice) as c:
        await asyncio.wait_for(c.set_secret("token", b"hunter2"), 20)  # the detector's env needs it


async def test_broker_from_the_cas_enforces_the_manifest(server, manifest, connect, alice, bob, sim, tmp_path) -> None:
    port = free_port()
    await set_manifest(connect, server, alice, with_broker(manifest, port))
    for user in (None, bob):
        async with connect(server, user) as c:
            with pytest.raises(PermissionDenied, match="broker"):
                await c.broker_config()
    async with connect(server, alice) as c:
        config = await fetch_broker_config(c)
        gw_act = await asyncio.wait_for(c.activate("gateway", sim.app), 20)
        det_act = await asyncio.wait_for(c.activate("detector", sim.app), 20)
    assert config.url == f"tls://127.0.0.1:{port}" and set(config.users) == {"detector", "gateway"}
    assert gw_act.nats == {"url": config.url, "tls": True, "server_cert": "broker"}
    broker = config.embedded_server(workdir=tmp_path / "nats")
    await asyncio.to_thread(broker.start)
    try:
        # (a) entitled services talk over mutual TLS with their activation certificates
        gw = EventBus.from_activation("gateway", gw_act, durable_ack_wait=2.0)
        det = EventBus.from_activation("detector", det_act, durable_ack_wait=2.0)
        await asyncio.wait_for(gw.start(), 10)
        await asyncio.wait_for(det.start(), 10)
        try:
            readings: list[Message] = []
            alerts: list[Message] = []
            await det.consumer("sensors.>", readings.append)
            await gw.consumer("alerts", alerts.append)  # durable: JetStream through the generated permissions
            await gw.publish("sensors.t1", 21.5)
            await det.send("alerts", "leak")
            await until(lambda: len(readings) == 1 and len(alerts) == 1)
            assert readings[0].sender_verified and readings[0].body == 21.5 and alerts[0].body == "leak"

            # (c) the detector only consumes sensors.>: the broker refuses its publish on that subject,
            # and the gateway's subscription to it (gateway does not consume sensors.>)
            grant = det.keyring.grant_for("sensors.t1")
            assert grant is not None
            subject = det.keyring.route(grant, "sensors.t1").subjects[MODE_ALL]
            det_t, gw_t = det.transport, gw.transport
            assert isinstance(det_t, NatsTransport) and isinstance(gw_t, NatsTransport)
            delivered = det.metrics.delivered
            await det_t.publish(subject, b"\x01" * 200)
            await det_t.flush(5)
            await until(lambda: any(f'permissions violation for publish to "{subject}"' in e.lower() for e in det_t.errors))
            sub = await gw_t.subscribe(subject, _never)
            await gw_t.flush(5)
            await until(lambda: any(f'permissions violation for subscription to "{subject}"' in e.lower()
                                    for e in gw_t.errors))
            await sub.unsubscribe()
            await asyncio.sleep(0.2)
            assert det.metrics.delivered == delivered and sum(det.metrics.rejected.values()) == 0
        finally:
            await asyncio.wait_for(gw.close(), 10)
            await asyncio.wait_for(det.close(), 10)

        # (b) clients without a deployment certificate cannot connect
        no_cert = client_tls_context(config.ca_pem)
        foreign = TestCA().service("gateway")  # right name, wrong CA
        for tls in (no_cert, client_tls_context(config.ca_pem, foreign.cert_pem, foreign.key_pem)):
            t = NatsTransport(config.url, tls=tls, connect_timeout=2, max_reconnect_attempts=1)
            with pytest.raises(BusError, match="cannot connect"):
                await asyncio.wait_for(t.start(), 15)
            await t.close()
        plain = NatsTransport(f"nats://127.0.0.1:{port}", connect_timeout=2, max_reconnect_attempts=1)
        with pytest.raises(BusError):
            await asyncio.wait_for(plain.start(), 15)
        await plain.close()
    finally:
        await asyncio.to_thread(broker.stop)


async def _never(data: bytes, reply: str) -> bool:
    raise AssertionError("the broker delivered on a subject this service may not subscribe to")


@pytest.mark.parametrize("nats, match", [
    (None, "no config.nats section"),
    ({"url": "nats://127.0.0.1:4222", "tls": False}, "config.nats.tls is false"),
    ({"url": "tls://127.0.0.1:4222", "tls": True}, "config.nats.server_cert is not set"),
])
async def test_broker_config_is_refused_without_nats_tls_settings(server, manifest, connect, alice, nats,
                                                                   match) -> None:
    m = copy.deepcopy(manifest)
    if nats is not None:
        m["config"]["nats"] = nats
    async with connect(server) as c:
        await asyncio.wait_for(c.set_manifest(json.dumps(m)), 20)
    async with connect(server, alice) as c:
        with pytest.raises(ConflictError, match=match):
            await fetch_broker_config(c)


async def test_manifest_checks_the_server_cert_reference(server, manifest, connect) -> None:
    from sereca.cas.errors import ManifestError

    m = with_broker(manifest, 4222, server_cert="nope")
    async with connect(server) as c:
        with pytest.raises(ManifestError, match="config.nats.server_cert: unknown secret 'nope'"):
            await c.set_manifest(json.dumps(m))


async def test_cli_writes_an_include_nats_server_accepts(server, manifest, connect, alice, sim, tmp_path) -> None:
    """`sereca cas broker-config --out DIR`, included in a hand-written nats-server config."""
    port = free_port()
    await set_manifest(connect, server, alice, with_broker(manifest, port))
    files = {n: tmp_path / n for n in ("root.pem", "alice.crt", "alice.key")}
    files["root.pem"].write_text(server.root_pem)
    files["alice.crt"].write_text(alice.cert_pem)
    files["alice.key"].write_text(alice.key_pem)
    out = tmp_path / "broker"
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERECA_")}
    env["SERECA_HOME"] = str(tmp_path / "home")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sereca.cli.main", "cas", "broker-config", "--out", str(out), "--url", server.url,
        "--root", str(files["root.pem"]), "--cert", str(files["alice.crt"]), "--key", str(files["alice.key"]),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    stdout, stderr = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, stderr.decode()
    assert (out / "server.key").stat().st_mode & 0o077 == 0
    conf = tmp_path / "nats.conf"
    conf.write_text(f'port: {port}\nhost: "127.0.0.1"\ninclude "broker/{INCLUDE_NAME}"\n')
    log = tmp_path / "nats.log"
    nats = await asyncio.create_subprocess_exec(find_nats_server(), "-c", str(conf), "-l", str(log),
                                                stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL)
    try:
        await until(lambda: log.exists() and "Server is ready" in log.read_text(), 15)
        async with connect(server, alice) as c:
            act = await asyncio.wait_for(c.activate("gateway", sim.app), 20)
        bus = EventBus.from_activation("gateway", act)
        await asyncio.wait_for(bus.start(), 10)  # mutual TLS with its activation certificate
        await asyncio.wait_for(bus.close(), 10)
        bare = NatsTransport(f"tls://127.0.0.1:{port}", tls=client_tls_context(server.root_pem), connect_timeout=2,
                             max_reconnect_attempts=1)
        with pytest.raises(BusError):
            await asyncio.wait_for(bare.start(), 15)
        await bare.close()
    finally:
        nats.terminate()
        await asyncio.wait_for(nats.wait(), 10)


def test_broker_config_refuses_a_url_that_is_not_tls() -> None:
    from sereca.cas.broker import BrokerConfigError

    cfg = BrokerConfig("nats://127.0.0.1:4222", "c", "k", "ca", {"svc": {}})
    with pytest.raises(BrokerConfigError, match="tls://HOST:PORT"):
        cfg.embedded_server()
    with pytest.raises(BrokerConfigError, match="lacks server_key_pem"):
        BrokerConfig.from_response({"url": "tls://h:1", "server_cert_pem": "c", "ca_pem": "x", "users": {"a": {}}})
