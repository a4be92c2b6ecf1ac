"""Defence in depth: mutual TLS with CAS-style certificates and broker permissions from the manifest."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from polling import until

from sereca.bus import BusError, EventBus, Keyring, Message, NatsTransport
from sereca.bus.keys import derive_subject_key, stream_name
from sereca.bus.nats_server import EmbeddedNatsServer
from sereca.bus.permissions import nats_permissions
from sereca.bus.testing import TestCA, demo_section
from sereca.bus.transports.nats import client_tls_context


SERVICES = ("gateway", "worker", "auditor", "intruder")


@pytest.fixture
def secured(tmp_path: Path, ca: TestCA, root: bytes) -> Iterator[EmbeddedNatsServer]:
    sk = derive_subject_key(root)
    users = {svc: nats_permissions(demo_section(), svc, sk) for svc in SERVICES}
    server = EmbeddedNatsServer(tls=ca.server_tls(), users=users, workdir=tmp_path / "nats").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def tls_buses(secured: EmbeddedNatsServer, ca: TestCA, root: bytes) -> AsyncIterator[Any]:
    made: list[EventBus] = []

    async def make(service: str, **kw: Any) -> EventBus:
        issued = ca.service(service, "i1")
        ident = ca.identity(service)
        ident = type(ident)(service, "i1", private_key=issued.key, cert_chain_pem=issued.cert_pem)
        tls = client_tls_context(ca.ca_pem, issued.cert_pem, issued.key_pem)
        bus = EventBus(Keyring.for_service(root, demo_section(), service, ca_pem=ca.ca_pem),
                       NatsTransport(secured.url, tls=tls, connect_timeout=3), ident, **kw)
        await asyncio.wait_for(bus.start(), 10)
        made.append(bus)
        return bus

    yield make
    for b in made:
        await asyncio.wait_for(b.close(), 10)


async def raw_client(url: str, tls: Any, connect_timeout: float = 3) -> Any:
    errors: list[str] = []

    async def error_cb(exc: Exception) -> None:
        errors.append(str(exc))

    nc = await asyncio.wait_for(nats.connect(url, tls=tls, error_cb=error_cb, allow_reconnect=False,
                                             connect_timeout=connect_timeout), 10)
    nc.errors_seen = errors
    return nc


async def test_entitled_services_work_under_permissions(tls_buses: Any) -> None:
    gw, w, aud = await tls_buses("gateway"), await tls_buses("worker"), await tls_buses("auditor",
                                                                                          durable_ack_wait=1.0)
    got: list[Message] = []

    async def handler(m: Message) -> None:
        got.append(m)
        if m.is_request:
            await m.reply("pong")

    await w.consumer("orders", handler)
    await w.consumer("sensors.>", handler)
    await aud.consumer("alerts", got.append)  # durable: JetStream API through the generated permissions
    await w.flush()
    await gw.publish("orders", "a")
    await gw.publish("sensors.t.1", "b")
    assert (await gw.request("orders", "ping", timeout=5)).body == "pong"  # needs allow_responses
    await w.send("alerts", "c")
    await until(lambda: sorted(str(m.body) for m in got) == ["a", "b", "c", "ping"], timeout=10)
    assert not w.transport.errors and not gw.transport.errors and not aud.transport.errors


async def test_unentitled_service_is_refused_by_the_broker(tls_buses: Any, secured: EmbeddedNatsServer, ca: TestCA,
                                                           root: bytes) -> None:
    w = await tls_buses("worker")
    got: list[Message] = []
    await w.consumer("orders", got.append)
    await w.flush()
    kr = Keyring.for_service(root, demo_section(), "gateway")
    orders = kr.route(kr.grant_for("orders"), "orders").subjects
    issued = ca.service("intruder", "i1")
    nc = await raw_client(secured.url, client_tls_context(ca.ca_pem, issued.cert_pem, issued.key_pem))
    try:
        stolen: list[Any] = []

        async def cb(msg: Any) -> None:
            stolen.append(msg)

        await nc.subscribe(orders["all"], cb=cb)
        await nc.subscribe(">", cb=cb)
        await nc.publish(orders["all"], os.urandom(300))
        await nc.publish(orders["one"], os.urandom(300))
        with pytest.raises(Exception):
            await nc.request(f"$JS.API.STREAM.INFO.{stream_name(kr.subject_key, 'alerts')}", b"", timeout=1)
        await nc.flush(timeout=2)
        await until(lambda: sum("permissions violation" in e.lower() for e in nc.errors_seen) >= 5)
        errors = " ".join(nc.errors_seen).lower()
        for what in (f'subscription to "{orders["all"]}"', 'subscription to ">"', f'publish to "{orders["all"]}"',
                     f'publish to "{orders["one"]}"', 'publish to "$js.api.stream.info.'):
            assert what in errors, what
        gw = await tls_buses("gateway")
        await gw.publish("orders", "legit")
        await until(lambda: len(got) == 1)
        await asyncio.sleep(0.1)
    finally:
        await asyncio.wait_for(nc.close(), 5)
    assert [m.body for m in got] == ["legit"] and stolen == []
    assert sum(w.metrics.rejected.values()) == 0  # the broker never even delivered the intruder's bytes


async def test_clients_without_a_deployment_certificate_cannot_connect(secured: EmbeddedNatsServer,
                                                                       ca: TestCA) -> None:
    with pytest.raises(Exception):
        await raw_client(secured.url, client_tls_context(ca.ca_pem), 1)  # no client certificate
    stranger = TestCA("another deployment")
    issued = stranger.service("gateway")
    with pytest.raises(Exception):
        await raw_client(secured.url, client_tls_context(ca.ca_pem, issued.cert_pem, issued.key_pem), 1)
    # a certificate from the right CA for a name with no broker user is refused too
    unknown = ca.service("mallory")
    bus_transport = NatsTransport(secured.url, tls=client_tls_context(ca.ca_pem, unknown.cert_pem, unknown.key_pem),
                                  connect_timeout=0.5, max_reconnect_attempts=1)
    with pytest.raises(BusError, match="cannot connect"):
        await bus_transport.start()
    await bus_transport.close()
