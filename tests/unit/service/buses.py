"""Real event buses on one in-process broker, with keys derived from a test manifest section."""

from __future__ import annotations

from sereca.bus.api import EventBus, Identity
from sereca.bus.keys import Keyring
from sereca.bus.transports import InProcessBroker, InProcessTransport

ROOT_SECRET = bytes(range(32))
ALL_ACTIONS = ("publish", "send", "consume", "request", "reply")
# Test services and their test peer may do everything on these (disjoint) patterns.
PATTERNS = ("sensors.>", "alerts.>", "ui.>", "commands.>", "admin.>", "t.>")
SERVICES = ("svc", "peer")


def bus_section(patterns: tuple[str, ...] = PATTERNS, services: tuple[str, ...] = SERVICES) -> dict[str, object]:
    return {"addresses": {p: {a: list(services) for a in ALL_ACTIONS} for p in patterns}}


def make_bus(broker: InProcessBroker, service: str, section: dict[str, object] | None = None) -> EventBus:
    keyring = Keyring.for_service(ROOT_SECRET, section or bus_section(), service)
    return EventBus(keyring, InProcessTransport(broker), Identity(service))
