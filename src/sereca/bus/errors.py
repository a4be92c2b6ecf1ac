"""Errors of the secure event bus (all derive from :mod:`sereca.errors`)."""

from __future__ import annotations

from sereca.errors import ConfigError, IntegrityError, SerecaError


class BusError(SerecaError):
    """Root of the event bus errors."""


class BusConfigError(BusError, ConfigError):
    """Grants, addresses or transport settings are unusable."""


class NotEntitled(BusError, ConfigError):
    """This service holds no grant for the address/action it tried to use."""

    def __init__(self, address: str, action: str, service: str) -> None:
        self.address = address
        self.action = action
        super().__init__(
            f"service {service!r} may not {action} on bus address {address!r}: "
            f"no grant covers it; add {service!r} to the address's {action!r} list in the "
            f"manifest's bus section and re-activate"
        )


class BusClosed(BusError):
    """The bus (or its transport) is closed or was never started."""


class ReplyFailure(BusError):
    """Base class of the failures a ``request`` can end with."""


class ReplyTimeout(ReplyFailure):
    """No reply arrived in time."""

    def __init__(self, address: str, timeout: float) -> None:
        self.address = address
        self.timeout = timeout
        super().__init__(
            f"no reply on bus address {address!r} within {timeout:g} s; "
            f"check that the consuming service is healthy or raise the timeout"
        )


class NoHandlers(ReplyFailure):
    """Nobody consumes the address."""

    def __init__(self, address: str) -> None:
        self.address = address
        super().__init__(f"no consumer is registered for bus address {address!r}; start the consuming service first")


class RecipientFailure(ReplyFailure):
    """The consumer answered with ``message.fail(code, text)`` (or its handler raised)."""

    def __init__(self, address: str, code: int, text: str) -> None:
        self.address = address
        self.code = code
        self.text = text
        super().__init__(f"consumer of bus address {address!r} failed the request: [{code}] {text}")


class EnvelopeError(BusError, IntegrityError):
    """A message from the transport was rejected (see ``reason``)."""

    reason = "malformed"

    def __init__(self, detail: str) -> None:
        super().__init__(f"bus message rejected ({self.reason}): {detail}")


class MalformedEnvelope(EnvelopeError):
    reason = "malformed"


class TamperedEnvelope(EnvelopeError):
    reason = "tampered"


class ReplayedEnvelope(EnvelopeError):
    reason = "replayed"


class ReorderedEnvelope(EnvelopeError):
    reason = "reordered"


class StaleEnvelope(EnvelopeError):
    reason = "stale"


class UnauthenticatedSender(EnvelopeError):
    reason = "unauthenticated"
