"""The service runtime: what an application developer writes against.

    from sereca import Service
    svc = Service("detector")

    @svc.consumer("sensors.>")
    async def on_reading(reading: Reading, msg) -> None: ...

Run it with ``sereca run module:svc`` (attested, on NATS) or, in tests and
single-process apps, ``async with svc.run_local(bus)``.  See docs/services.md.
"""

from sereca.service.app import Publisher, Service
from sereca.service.bridge import BridgeOptions
from sereca.service.context import Params
from sereca.service.errors import (
    BodyValidationError,
    BridgeConfigError,
    ServiceDefinitionError,
    ServiceError,
    ServiceLoadError,
    ServiceNotRunningError,
    ServiceStartupError,
)
from sereca.service.runtime import Runtime

__all__ = [
    "BodyValidationError",
    "BridgeConfigError",
    "BridgeOptions",
    "Params",
    "Publisher",
    "Runtime",
    "Service",
    "ServiceDefinitionError",
    "ServiceError",
    "ServiceLoadError",
    "ServiceNotRunningError",
    "ServiceStartupError",
]
