from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable

import pytest

from sereca.bus import EventBus, InProcessBroker, InProcessTransport, Keyring
from sereca.bus.testing import TestCA, demo_section


@pytest.fixture(scope="session")
def ca() -> TestCA:
    return TestCA()


@pytest.fixture
def root() -> bytes:
    return os.urandom(32)


@pytest.fixture
async def make_bus(root: bytes, ca: TestCA) -> AsyncIterator[Callable[..., EventBus]]:
    broker = InProcessBroker()
    buses: list[EventBus] = []

    async def make(service: str, instance: str = "i1", section: dict | None = None, **kw) -> EventBus:  # type: ignore[no-untyped-def]
        keyring = Keyring.for_service(root, section or demo_section(), service, ca_pem=ca.ca_pem)
        identity = kw.pop("identity", None) or ca.identity(service, instance)
        bus = EventBus(keyring, InProcessTransport(broker), identity, **kw)
        await bus.start()
        buses.append(bus)
        return bus

    make.broker = broker  # type: ignore[attr-defined]
    yield make  # type: ignore[misc]
    for b in buses:
        await b.close()
