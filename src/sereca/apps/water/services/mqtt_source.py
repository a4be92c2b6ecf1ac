"""The gateway's MQTT input: :class:`sereca.apps.water.mqtt.MqttReadings` behind a URL.

``WATER_MQTT_URL`` is ``mqtt://[user:password@]host[:port][/prefix]`` (``mqtts://``
for TLS); the prefix defaults to ``sereca/water``, so sensor ``pressure.n54``
is topic ``sereca/water/pressure/n54`` with payload ``{"t": ..., "v": ...}``
(docs/water.md, "Connecting real sensors over MQTT").  The broker is
untrusted: ``MqttReadings`` drops and counts malformed messages; single
readings are grouped into time steps before they go on the bus.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import unquote, urlsplit

from sereca.apps.water.errors import WaterConfigError
from sereca.apps.water.mqtt import DEFAULT_PREFIX, MqttReadings, MqttSettings
from sereca.apps.water.services.replay import Step

# frames() blocks in a worker thread; ending each pass after this idle time lets a stop finish promptly.
IDLE_PASS = 1.0


def settings_from_url(url: str) -> MqttSettings:
    # MQTT wildcards cannot be part of a topic prefix.
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname or "#" in url or "+" in parts.path:
        raise WaterConfigError(
            f"WATER_MQTT_URL {url!r}: use mqtt://[user:password@]host[:port][/prefix] (mqtts:// for TLS)")
    prefix = parts.path.strip("/") or DEFAULT_PREFIX
    try:
        port = parts.port or (8883 if parts.scheme == "mqtts" else 1883)
    except ValueError:
        raise WaterConfigError(f"WATER_MQTT_URL {url!r}: bad port") from None
    return MqttSettings(host=parts.hostname, port=port, prefix=prefix,
                        username=unquote(parts.username) if parts.username else None,
                        password=unquote(parts.password) if parts.password else None,
                        tls=parts.scheme == "mqtts")


async def forward(url: str, emit: Callable[[Step], Awaitable[None]], *, sensors: Sequence[str] | None = None,
                  on_dropped: Callable[[int], None] | None = None) -> None:
    """Subscribe and ``emit`` every time step until cancelled; ``on_dropped(n)`` gets the malformed count."""
    readings = MqttReadings(settings_from_url(url), sensors)
    await asyncio.to_thread(readings.start)
    try:
        while True:
            async for t, values in readings.aframes(timeout=IDLE_PASS):
                await emit(Step(float(t), dict(values)))
                if on_dropped is not None:
                    on_dropped(readings.malformed)
            if on_dropped is not None:
                on_dropped(readings.malformed)
    finally:
        await asyncio.to_thread(readings.stop)
