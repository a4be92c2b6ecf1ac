"""Bus transports: one abstract base, an in-process broker, and NATS."""

from sereca.bus.transports.base import Callback, Subscription, Transport
from sereca.bus.transports.inprocess import InProcessBroker, InProcessTransport
from sereca.bus.transports.nats import NatsTransport

__all__ = ["Callback", "Subscription", "Transport", "InProcessBroker", "InProcessTransport", "NatsTransport"]
