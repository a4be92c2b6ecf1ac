"""Real event buses on one in-process broker, with keys derived from a test manifest section.

Fixtures for the service runtime's unit and security tests; their conftest.py files import them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sereca.bus.api import EventBus, Identity
from sereca.bus.keys import Keyring
from sereca.bus.transports import InProcessBroker, InProcessTransport

ROOT_SECRET = bytes(range(32))
ALL_ACTIONS = ("publish", "send", "consume", "request", "reply")
# The service under test ("svc") and its test peer may do everything on these (disjoint) patterns.
PATTERNS = ("sensors.>", "alerts.>", "ui.>", "commands.>", "admin.>", "t.>")
SECTION = {"addresses": {p: {a: ["svc", "peer"] for a in ALL_ACTIONS} for p in PATTERNS}}


def make_bus(broker: InProcessBroker, service: str) -> EventBus:
    keyring = Keyring.for_service(ROOT_SECRET, SECTION, service)
    return EventBus(keyring, InProcessTransport(broker), Identity(service))


@pytest.fixture
def broker() -> InProcessBroker:
    return InProcessBroker()


@pytest.fixture
async def bus(broker: InProcessBroker) -> AsyncIterator[EventBus]:
    """The bus the service under test runs on."""
    async with make_bus(broker, "svc") as b:
        yield b


@pytest.fixture
async def peer(broker: InProcessBroker) -> AsyncIterator[EventBus]:
    """Another service on the same broker, to talk to the one under test."""
    async with make_bus(broker, "peer") as b:
        yield b
