from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sereca.bus.api import EventBus, Identity
from sereca.bus.keys import Keyring
from sereca.bus.transports import InProcessBroker, InProcessTransport

ROOT_SECRET = bytes(range(32))
ALL_ACTIONS = ("publish", "send", "consume", "request", "reply")
# The bridging service and a peer may do everything here; the bridge narrows what browsers may.
SECTION = {"addresses": {p: {a: ["svc", "peer"] for a in ALL_ACTIONS}
                         for p in ("sensors.>", "alerts.>", "ui.>", "commands.>", "admin.>")}}


def make_bus(broker: InProcessBroker, service: str) -> EventBus:
    return EventBus(Keyring.for_service(ROOT_SECRET, SECTION, service), InProcessTransport(broker), Identity(service))


@pytest.fixture
def broker() -> InProcessBroker:
    return InProcessBroker()


@pytest.fixture
async def bus(broker: InProcessBroker) -> AsyncIterator[EventBus]:
    async with make_bus(broker, "svc") as b:
        yield b


@pytest.fixture
async def peer(broker: InProcessBroker) -> AsyncIterator[EventBus]:
    async with make_bus(broker, "peer") as b:
        yield b
