"""WebSocket bridge with a real client: permissions, authentication, request/reply, limits."""

from __future__ import annotations

import asyncio
import json
import ssl
from pathlib import Path
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from pydantic import BaseModel, Field
import websockets
from websockets.exceptions import InvalidStatus

from sereca.service import BridgeConfigError, Service



class Reading(BaseModel):
    sensor: str
    pressure: float = Field(ge=0)


class Verdict(BaseModel):
    sensor: str
    leak: bool

T = 5.0
TOKEN = "dashboard-token-0123456789"


def make_service() -> Service:
    svc = Service("gateway")
    svc.bridge(inbound=["sensors.check", "commands.*"], outbound=["alerts.>", "ui.ask"], tokens=[TOKEN])

    @svc.consumer("sensors.check")
    async def check(reading: Reading) -> Verdict:
        return Verdict(sensor=reading.sensor, leak=reading.pressure < 1)

    return svc


@pytest.fixture
async def running(bus: Any) -> AsyncIterator[tuple[Service, Any, str]]:
    svc = make_service()
    async with svc.run_local(bus, http_port=0) as rt:
        assert rt.http is not None
        yield svc, bus, f"ws://127.0.0.1:{rt.http.port}/eventbus"


async def recv(ws: Any) -> dict[str, Any]:
    return json.loads(await asyncio.wait_for(ws.recv(), T))


async def test_permitted_address_delivers_both_ways(running: tuple[Service, Any, str]) -> None:
    svc, bus, url = running
    async with websockets.connect(f"{url}?token={TOKEN}", open_timeout=T) as ws:
        await ws.send(json.dumps({"type": "register", "address": "alerts.>"}))
        await ws.send(json.dumps({"type": "ping"}))
        assert (await recv(ws))["type"] == "pong"  # frames are handled in order: register is done
        await svc.publish("alerts.zone1", Verdict(sensor="s9", leak=True), {"severity": "high"})
        rec = await recv(ws)
        assert rec == {"type": "rec", "address": "alerts.zone1", "body": {"sensor": "s9", "leak": True},
                       "headers": {"severity": "high"}}
        # A request from the browser, answered by a validated handler on the bus.
        await ws.send(json.dumps({"type": "send", "address": "sensors.check",
                                  "body": {"sensor": "s1", "pressure": 0.2}, "replyAddress": "r1"}))
        assert await recv(ws) == {"type": "rec", "address": "r1", "body": {"sensor": "s1", "leak": True},
                                  "headers": {}}
        # A bad body comes back as a failure with the validation message.
        await ws.send(json.dumps({"type": "send", "address": "sensors.check",
                                  "body": {"sensor": "s1"}, "replyAddress": "r2"}))
        err = await recv(ws)
        assert err["type"] == "err" and err["address"] == "r2" and err["failureCode"] == 400
        assert "pressure" in err["message"]


async def test_browser_can_reply_to_a_request_it_received(running: tuple[Service, Any, str], peer: Any) -> None:
    svc, _, url = running
    async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {TOKEN}"},
                                  open_timeout=T) as ws:
        await ws.send(json.dumps({"type": "register", "address": "ui.ask"}))
        await ws.send(json.dumps({"type": "ping"}))
        await recv(ws)
        asking = asyncio.create_task(peer.request("ui.ask", {"q": "valve 3?"}))
        rec = await recv(ws)
        assert rec["body"] == {"q": "valve 3?"} and rec["replyAddress"].startswith("bridge.reply.")
        await ws.send(json.dumps({"type": "send", "address": rec["replyAddress"], "body": "closed"}))
        assert (await asyncio.wait_for(asking, T)).body == "closed"


async def test_non_permitted_addresses_are_refused(running: tuple[Service, Any, str], peer: Any) -> None:
    svc, _, url = running
    delivered: list[Any] = []

    async def spy(msg: Any) -> None:
        delivered.append(msg.body)

    await peer.consumer("admin.shutdown", spy)
    await peer.consumer("alerts.zone1", spy)
    async with websockets.connect(f"{url}?token={TOKEN}", open_timeout=T) as ws:
        for frame in (
            {"type": "publish", "address": "admin.shutdown", "body": 1},
            {"type": "send", "address": "admin.shutdown", "body": 1},
            {"type": "send", "address": "commands.*", "body": 1},  # a pattern is not a destination
            {"type": "publish", "address": "alerts.zone1", "body": 1},  # outbound-only address
            {"type": "register", "address": "admin.>"},
            {"type": "register", "address": ">"},  # wider than alerts.>
        ):
            await ws.send(json.dumps(frame))
            err = await recv(ws)
            assert err == {"type": "err", "message": "access_denied", "address": frame["address"]}
        for junk, why in (("not json", "invalid_json"), ("[1]", "invalid_frame"),
                          ('{"type":"teleport","address":"a"}', "unknown_type"),
                          ('{"type":"publish","address":"commands.go","headers":{"a":1}}', "invalid_frame")):
            await ws.send(junk)
            assert (await recv(ws))["message"] == why
        # Still usable after refusals; a permitted publish goes through.
        await ws.send(json.dumps({"type": "publish", "address": "commands.go", "body": 2}))
    await asyncio.sleep(0.05)
    assert delivered == []
    denied = svc.metrics.bridge_denied.labels("access_denied")._value.get()
    assert denied == 6


@pytest.mark.parametrize("query,headers", [
    ("", {}),
    ("?token=wrong-token-0123456789", {}),
    ("", {"Authorization": "Bearer wrong-token-0123456789"}),
    ("", {"Authorization": f"Basic {TOKEN}"}),
])
async def test_unauthenticated_connections_are_refused(
    running: tuple[Service, Any, str], query: str, headers: dict[str, str]
) -> None:
    svc, _, url = running
    with pytest.raises(InvalidStatus) as info:
        async with websockets.connect(url + query, additional_headers=headers, open_timeout=T):
            raise AssertionError("connected without a valid token")
    assert info.value.response.status_code == 403
    assert svc.metrics.bridge_denied.labels("unauthenticated")._value.get() == 1


async def test_token_from_activation_params(bus: Any) -> None:
    svc = Service("dash")
    svc.bridge(outbound=["alerts.>"], token_param="BRIDGE_TOKEN")
    async with svc.run_local(bus, http_port=0, params={"env": {"BRIDGE_TOKEN": TOKEN}}) as rt:
        url = f"ws://127.0.0.1:{rt.http.port}/eventbus"  # type: ignore[union-attr]
        async with websockets.connect(f"{url}?token={TOKEN}", open_timeout=T) as ws:
            await ws.send(json.dumps({"type": "ping"}))
            assert (await recv(ws))["type"] == "pong"
        with pytest.raises(InvalidStatus):
            async with websockets.connect(f"{url}?token=", open_timeout=T):
                raise AssertionError


async def test_stopping_the_service_closes_bridge_clients(bus: Any) -> None:
    svc = make_service()
    async with svc.run_local(bus, http_port=0) as rt:
        url = f"ws://127.0.0.1:{rt.http.port}/eventbus?token={TOKEN}"  # type: ignore[union-attr]
        ws = await websockets.connect(url, open_timeout=T)
    with pytest.raises(websockets.ConnectionClosed):
        await asyncio.wait_for(ws.recv(), T)
    await ws.close()


@pytest.mark.parametrize("kwargs,match", [
    ({"outbound": ["a"]}, "no way to authenticate"),
    ({"outbound": ["a"], "tokens": ["short"]}, "at least 16"),
    ({"outbound": ["a..b"], "tokens": [TOKEN]}, "bad bus address"),
])
def test_bad_bridge_options(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(BridgeConfigError, match=match):
        Service("x").bridge(**kwargs)


# -- client certificates --------------------------------------------------------------------------


def _tls_files(tmp: Path, name: str, key: Any, cert: Any) -> tuple[Path, Path]:
    from sereca.cas.pki import cert_pem, key_pem

    c, k = tmp / f"{name}.crt", tmp / f"{name}.key"
    c.write_bytes(cert_pem(cert))
    k.write_bytes(key_pem(key))
    return c, k


def _issue(ca: Any, tmp: Path, name: str, sans: list[str]) -> tuple[Path, Path]:
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    return _tls_files(tmp, name, key, ca.issue(key.public_key(), name, sans, 3600))


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Any]:
    from sereca.cas.pki import CA

    ca, other_ca = CA.create(), CA.create("someone else's CA")
    (tmp_path / "ca.pem").write_bytes(ca.cert_pem)
    return {
        "ca": tmp_path / "ca.pem",
        "server": _issue(ca, tmp_path, "gateway", ["127.0.0.1"]),
        "dashboard": _issue(ca, tmp_path, "dashboard", ["dashboard"]),
        "intruder": _issue(ca, tmp_path, "intruder", ["intruder"]),
        "forged": _issue(other_ca, tmp_path, "dashboard-forged", ["dashboard"]),
    }


def _client_ctx(pki: dict[str, Any], who: str | None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(pki["ca"])
    ctx.check_hostname = False
    if who is not None:
        ctx.load_cert_chain(*pki[who])
    return ctx


async def test_client_certificate_authentication(bus: Any, pki: dict[str, Any]) -> None:
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(*pki["server"])
    server.load_verify_locations(pki["ca"])
    server.verify_mode = ssl.CERT_OPTIONAL  # /healthz and /metrics stay open to scrapers without certificates
    svc = Service("gateway")
    svc.bridge(outbound=["alerts.>"], client_cert_names=["dashboard"])
    async with svc.run_local(bus, http_port=0, http_tls=server) as rt:
        assert rt.http_url and rt.http_url.startswith("https://")
        url = rt.http_url.replace("https://", "wss://") + "/eventbus"
        async with websockets.connect(url, ssl=_client_ctx(pki, "dashboard"), open_timeout=T) as ws:
            await ws.send(json.dumps({"type": "register", "address": "alerts.>"}))
            await ws.send(json.dumps({"type": "ping"}))
            assert (await recv(ws))["type"] == "pong"
            await svc.publish("alerts.z", {"leak": True})
            assert (await recv(ws))["body"] == {"leak": True}
        # A valid certificate of the deployment, but not a name the bridge admits.
        for who in ("intruder", None):
            with pytest.raises(InvalidStatus) as info:
                async with websockets.connect(url, ssl=_client_ctx(pki, who), open_timeout=T):
                    raise AssertionError(f"{who} connected")
            assert info.value.response.status_code == 403
        # A certificate from another CA does not even complete the TLS handshake.
        with pytest.raises((ssl.SSLError, ConnectionError, websockets.exceptions.InvalidMessage, EOFError)):
            async with websockets.connect(url, ssl=_client_ctx(pki, "forged"), open_timeout=T):
                raise AssertionError("forged certificate connected")
        async with httpx.AsyncClient(verify=_client_ctx(pki, None), timeout=T) as http:
            assert (await http.get(f"{rt.http_url}/healthz")).json()["service"] == "gateway"
    assert svc.metrics.bridge_denied.labels("unauthenticated")._value.get() == 2


async def test_hostile_frames(running: tuple[Service, Any, str]) -> None:
    svc, _, url = running
    async with websockets.connect(f"{url}?token={TOKEN}", open_timeout=T, max_size=None) as ws:
        await ws.send("[" * 200_000)  # nesting deep enough to blow the JSON parser's recursion
        assert (await recv(ws))["message"] == "invalid_json"
        await ws.send(json.dumps({"type": "register", "address": 7}))
        assert (await recv(ws))["message"] == "invalid_frame"
        await ws.send(json.dumps({"type": "send", "address": "sensors.check", "replyAddress": ["x"]}))
        assert (await recv(ws))["message"] == "invalid_frame"
        await ws.send(b"\xff\xfe binary junk")
        assert (await recv(ws))["message"] == "invalid_json"
        await ws.send(json.dumps({"type": "ping"}))
        assert (await recv(ws))["type"] == "pong"  # still alive
    # A frame over max_frame_bytes closes the connection (1009), nothing else.
    async with websockets.connect(f"{url}?token={TOKEN}", open_timeout=T, max_size=None) as ws:
        await ws.send("x" * (svc.bridge_options.max_frame_bytes + 1))  # type: ignore[union-attr]
        with pytest.raises(websockets.ConnectionClosed) as info:
            await asyncio.wait_for(ws.recv(), T)
        assert info.value.rcvd is not None and info.value.rcvd.code == 1009
    async with websockets.connect(f"{url}?token={TOKEN}", open_timeout=T) as ws:
        await ws.send(json.dumps({"type": "ping"}))
        assert (await recv(ws))["type"] == "pong"  # the service is fine
