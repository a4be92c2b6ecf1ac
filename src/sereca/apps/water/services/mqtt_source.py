"""Sensor readings from an MQTT broker, grouped into time steps for the bus.

``WATER_MQTT_URL`` is ``mqtt://host:port/topic`` (the topic may use MQTT
wildcards, e.g. ``mqtt://broker:1883/sensors/#``).  Each MQTT message is JSON,
either one time step::

    {"t": 93600, "values": {"pressure.n1": 29.3, "flow.p227": 12.1}}

or one sensor value::

    {"t": 93600, "sensor": "pressure.n1", "value": 29.3}

Single values are collected per ``t`` and forwarded as one batch when a later
``t`` arrives or nothing has come for ``FLUSH_AFTER`` seconds.  The broker is
outside the trust boundary: a malformed message is counted and logged, never
forwarded and never fatal.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from sereca.apps.water.errors import SensorMessageError, WaterConfigError
from sereca.apps.water.services.replay import Step

FLUSH_AFTER = 0.5
MAX_BATCH = 10_000
log = logging.getLogger("sereca.service.sensor-gateway.mqtt")


def parse_url(url: str) -> tuple[str, int, str]:
    # Not urlsplit alone: the MQTT wildcard '#' would be read as a URL fragment.
    _, _, rest = url.partition("://")
    topic = rest.partition("/")[2]
    parts = urlsplit(url.partition("#")[0])
    if parts.scheme != "mqtt" or not parts.hostname or not topic:
        raise WaterConfigError(f"WATER_MQTT_URL {url!r}: use mqtt://host:port/topic (e.g. mqtt://broker:1883/sensors/#)")
    return parts.hostname, parts.port or 1883, topic


def _number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise SensorMessageError(f"{what} must be a finite number, got {value!r}")
    return float(value)


def parse_message(payload: bytes) -> tuple[float, dict[str, float]]:
    """(t, {sensor: value}) from one MQTT payload; :class:`SensorMessageError` if malformed."""
    try:
        doc = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as exc:
        raise SensorMessageError(f"sensor message is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise SensorMessageError("sensor message must be a JSON object")
    t = _number(doc.get("t"), "'t'")
    if "values" in doc:
        values = doc["values"]
        if not isinstance(values, dict) or len(values) > MAX_BATCH:
            raise SensorMessageError("'values' must be an object of at most 10000 sensor values")
        return t, {str(k): _number(v, f"value of {k!r}") for k, v in values.items()}
    sensor = doc.get("sensor")
    if not isinstance(sensor, str) or not sensor:
        raise SensorMessageError("sensor message needs 'values' or 'sensor' and 'value'")
    return t, {sensor: _number(doc.get("value"), f"value of {sensor!r}")}


class _Batcher:
    """Single values of one time step, collected until the step is over."""

    def __init__(self) -> None:
        self.t: float | None = None
        self.values: dict[str, float] = {}

    def add(self, t: float, values: dict[str, float]) -> Step | None:
        """Add values; return the previous step if ``t`` starts a new one."""
        done = None
        if self.t is not None and t != self.t:
            done = self.take()
        self.t = t
        self.values.update(values)
        return done

    def take(self) -> Step | None:
        if self.t is None or not self.values:
            return None
        step = Step(self.t, self.values)
        self.t, self.values = None, {}
        return step


async def forward(url: str, emit: Callable[[Step], Awaitable[None]], *,
                  on_error: Callable[[Exception], None] | None = None) -> None:
    """Subscribe to the broker and ``emit`` every time step until cancelled."""
    import paho.mqtt.client as mqtt

    host, port, topic = parse_url(url)
    loop = asyncio.get_running_loop()
    inbox: asyncio.Queue[bytes] = asyncio.Queue(maxsize=100_000)

    def on_message(_client: Any, _userdata: Any, message: Any) -> None:  # paho's network thread
        loop.call_soon_threadsafe(_offer, inbox, bytes(message.payload))

    def on_connect(client: Any, _userdata: Any, _flags: Any, reason: Any, _props: Any = None) -> None:
        if not getattr(reason, "is_failure", False):
            client.subscribe(topic, qos=0)
            log.info("MQTT: subscribed to %s on %s:%d", topic, host, port)

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_message = on_message
    client.on_connect = on_connect
    try:
        await asyncio.to_thread(client.connect, host, port, 30)
    except OSError as exc:
        raise WaterConfigError(f"cannot connect to the MQTT broker at {host}:{port}: {exc.strerror or exc}") from None
    client.loop_start()
    batcher = _Batcher()
    try:
        while True:
            try:
                payload = await asyncio.wait_for(inbox.get(), FLUSH_AFTER)
            except TimeoutError:
                if (step := batcher.take()) is not None:
                    await emit(step)
                continue
            try:
                t, values = parse_message(payload)
            except SensorMessageError as exc:
                if on_error is not None:
                    on_error(exc)
                log.warning("MQTT: dropped a message: %s", exc)
                continue
            if (step := batcher.add(t, values)) is not None:
                await emit(step)
    finally:
        client.loop_stop()
        client.disconnect()


def _offer(inbox: asyncio.Queue[bytes], payload: bytes) -> None:
    try:
        inbox.put_nowait(payload)
    except asyncio.QueueFull:
        log.warning("MQTT: gateway too slow, a message was dropped")
