"""Secure event bus: Vert.x-style API, end-to-end sealed messages, in-process and NATS transports.

See docs/bus.md.
"""

from sereca.bus.api import Consumer, EventBus, Identity, Message
from sereca.bus.codec import Codec, MsgpackCodec
from sereca.bus.errors import (BusClosed, BusConfigError, BusError, EnvelopeError, NoHandlers, NotEntitled,
                               RecipientFailure, ReplyFailure, ReplyTimeout)
from sereca.bus.keys import Grant, Keyring, grants_for
from sereca.bus.metrics import BusMetrics
from sereca.bus.transports import InProcessBroker, InProcessTransport, NatsTransport, Transport

__all__ = [
    "BusClosed", "BusConfigError", "BusError", "BusMetrics", "Codec", "Consumer", "EnvelopeError", "EventBus",
    "Grant", "Identity", "InProcessBroker", "InProcessTransport", "Keyring", "Message", "MsgpackCodec",
    "NatsTransport", "NoHandlers", "NotEntitled", "RecipientFailure", "ReplyFailure", "ReplyTimeout", "Transport",
    "grants_for",
]
