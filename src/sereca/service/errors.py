"""Errors of the service runtime."""

from __future__ import annotations

from sereca.errors import ConfigError, SerecaError


class ServiceError(SerecaError):
    """Root of the service runtime's errors."""


class ServiceDefinitionError(ServiceError, ConfigError):
    """A service is declared wrongly (bad handler signature, duplicate address, bad interval)."""


class ServiceNotRunningError(ServiceError):
    """The runtime context (bus, params, ...) was used while the service is not running."""


class ServiceStartupError(ServiceError):
    """The service could not start (CAS unreachable, activation refused, broker refused, bad flags)."""


class ServiceLoadError(ServiceStartupError, ConfigError):
    """``MODULE:ATTR`` does not name an importable :class:`sereca.Service`."""


class BodyValidationError(ServiceError):
    """An incoming message body does not match the handler's declared model.

    ``errors`` is pydantic's list of problems, so a requester gets every
    failing field in one reply.
    """

    def __init__(self, address: str, model: str, errors: list[dict[str, object]]) -> None:
        self.address = address
        self.model = model
        self.errors = errors
        parts = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ())) or '<body>'}: {e.get('msg')}" for e in errors
        )
        super().__init__(f"message on {address!r} rejected: body is not a valid {model}: {parts}")


class BridgeConfigError(ServiceDefinitionError):
    """The WebSocket bridge options are unusable."""
