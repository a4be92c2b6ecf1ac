from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sereca.bus import EventBus, Keyring, NatsTransport
from sereca.bus.nats_server import EmbeddedNatsServer
from sereca.bus.testing import TestCA, demo_section


@pytest.fixture(scope="module")
def ca() -> TestCA:
    return TestCA()


@pytest.fixture
def root() -> bytes:
    return os.urandom(32)


@pytest.fixture
def open_server(tmp_path: Path) -> Iterator[EmbeddedNatsServer]:
    """A broker without any permissions: the attacker has full access."""
    server = EmbeddedNatsServer(workdir=tmp_path / "nats").start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def buses(open_server: EmbeddedNatsServer, root: bytes, ca: TestCA) -> AsyncIterator[Callable[..., Any]]:
    made: list[EventBus] = []

    async def make(service: str, instance: str = "i1", **kw: Any) -> EventBus:
        keyring = Keyring.for_service(root, demo_section(), service, ca_pem=ca.ca_pem)
        bus = EventBus(keyring, NatsTransport(open_server.url), ca.identity(service, instance), **kw)
        await asyncio.wait_for(bus.start(), 10)
        made.append(bus)
        return bus

    yield make
    for b in made:
        await asyncio.wait_for(b.close(), 10)
