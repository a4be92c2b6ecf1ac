"""EmbeddedNatsServer: configuration, start/stop, errors."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import nats
import pytest

from sereca.bus.errors import BusConfigError, BusError
from sereca.bus.nats_server import EmbeddedNatsServer
from sereca.bus.testing import TestCA


async def test_start_connect_stop(tmp_path: Path) -> None:
    server = EmbeddedNatsServer(workdir=tmp_path / "n")
    async with server:
        assert server.running and server.url.startswith("nats://127.0.0.1:")
        nc = await asyncio.wait_for(nats.connect(server.url), 5)
        js = nc.jetstream()
        await asyncio.wait_for(js.add_stream(name="t", subjects=["t.>"]), 5)  # JetStream is on
        await nc.close()
        pid = server.pid
    assert not server.running and pid is not None
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", server.port), timeout=0.5).close()


def test_private_temp_dir_is_removed() -> None:
    server = EmbeddedNatsServer(jetstream=False).start()
    workdir = server.workdir
    assert workdir is not None and (workdir / "nats.conf").exists()
    server.stop()
    assert not workdir.exists()


def test_tls_and_authorization_config(tmp_path: Path) -> None:
    ca = TestCA()
    server = EmbeddedNatsServer(tls=ca.server_tls(), users={"svc": {"publish": {"allow": ["a"]}}})
    conf = server.config(tmp_path)
    assert conf["tls"]["verify_and_map"] is True
    assert conf["authorization"]["users"] == [{"user": "svc", "permissions": {"publish": {"allow": ["a"]}}}]
    assert (tmp_path / "server.key").stat().st_mode & 0o077 == 0
    json.dumps(conf)
    with pytest.raises(BusConfigError, match="tls"):
        EmbeddedNatsServer(users={"svc": {}})


def test_bad_binary_and_busy_port(tmp_path: Path) -> None:
    with pytest.raises(BusError, match="cannot start"):
        EmbeddedNatsServer(binary=str(tmp_path / "missing")).start()
    with EmbeddedNatsServer(jetstream=False) as first:
        with pytest.raises(BusError, match="exited"):
            EmbeddedNatsServer(port=first.port, jetstream=False, startup_timeout=5).start()
