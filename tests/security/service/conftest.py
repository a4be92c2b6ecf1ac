"""The in-process buses the service tests run on (shared with the other service tests)."""

from inprocess_buses import broker, bus, peer  # noqa: F401  (pytest fixtures)
