from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from sereca.bus.api import EventBus
from sereca.bus.transports import InProcessBroker

from .buses import make_bus


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
