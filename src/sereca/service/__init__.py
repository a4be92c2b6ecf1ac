"""The service runtime: what an application developer writes against.

    from sereca import Service
    svc = Service("detector")

    @svc.consumer("sensors.>")
    async def on_reading(reading: Reading, msg) -> None: ...

Run it with ``sereca run module:svc`` (attested, on NATS) or, in tests and
single-process apps, ``async with svc.run_local(bus)``.  See docs/services.md.
"""

from sereca.service.app import Publisher, Service
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



def __getattr__(name: str) -> object:
    # The bridge (FastAPI) and runtime load only when used, keeping `import sereca` light.
    if name == "BridgeOptions":
        from sereca.service.bridge import BridgeOptions

        return BridgeOptions
    if name == "Runtime":
        from sereca.service.runtime import Runtime

        return Runtime
    raise AttributeError(f"module 'sereca.service' has no attribute {name!r}")


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
