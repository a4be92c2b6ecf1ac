"""Errors of the water-network application."""

from __future__ import annotations

from sereca.errors import ConfigError, IntegrityError


class WaterConfigError(ConfigError):
    """A network, scenario, leak, sensor or parameter given by the user is unusable."""


class NetworkNotFoundError(WaterConfigError):
    """The network name or INP path does not resolve to a readable network."""


class ReadingsError(WaterConfigError):
    """A readings file (CSV / JSON lines) is malformed."""


class SimulationError(WaterConfigError):
    """The hydraulic engine rejected the model or failed to converge."""


class SensorMessageError(IntegrityError):
    """A sensor message received from the broker is malformed."""
