"""Live sensor input from an MQTT broker (real sensors and SCADA gateways speak MQTT).

Topic scheme: ``<prefix>/<kind>/<element>``, default prefix ``sereca/water``,
kind one of ``pressure``, ``flow``, ``level``; e.g. ``sereca/water/pressure/n54``
carries sensor ``pressure.n54``. Payload: JSON ``{"t": <time>, "v": <value>}``,
``t`` in seconds since the start of the demand patterns (or an ISO 8601
timestamp), ``v`` in m (pressure, level) or L/s (flow).

The broker is untrusted: a malformed topic or payload is counted and dropped,
never passed on. :class:`MqttReadings` groups single readings into time steps
(``t -> {sensor: value}``): a step is emitted once every expected sensor has
reported for it, or ``flush_after`` seconds (wall clock) after its first reading.
"""

from __future__ import annotations

import asyncio
import json
import math
import queue
import threading
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from sereca.apps.water.errors import SensorMessageError, WaterConfigError
from sereca.apps.water.models import SENSOR_KINDS

DEFAULT_PREFIX = "sereca/water"


@dataclass(frozen=True)
class MqttSettings:
    host: str = "localhost"
    port: int = 1883
    prefix: str = DEFAULT_PREFIX
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False
    ca_file: str | None = None
    client_id: str = ""
    qos: int = 1
    keepalive: int = 30


def topic_for(sensor_id: str, prefix: str = DEFAULT_PREFIX) -> str:
    """``pressure.n54`` -> ``sereca/water/pressure/n54``."""
    kind, _, element = sensor_id.partition(".")
    if kind not in SENSOR_KINDS or not element or any(c in element for c in "/+#"):
        raise WaterConfigError(f"sensor id {sensor_id!r} cannot be an MQTT topic (need <kind>.<element>, no / + #)")
    return f"{prefix}/{kind}/{element}"


def parse_message(topic: str, payload: bytes, prefix: str = DEFAULT_PREFIX) -> tuple[float, str, float]:
    """``(t, sensor id, value)`` of one message; :class:`SensorMessageError` if malformed."""
    from sereca.apps.water.readings import parse_time

    head = prefix + "/"
    if not topic.startswith(head):
        raise SensorMessageError(f"topic {topic!r} is outside {prefix}/")
    kind, _, element = topic[len(head):].partition("/")
    if kind not in SENSOR_KINDS or not element or "/" in element:
        raise SensorMessageError(f"topic {topic!r}: expected {prefix}/<pressure|flow|level>/<element>")
    if len(payload) > 4096:
        raise SensorMessageError(f"topic {topic!r}: payload of {len(payload)} bytes is too large")
    try:
        obj = json.loads(payload)
        t = parse_time(obj["t"])
        v = obj["v"]
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ValueError("'v' must be a finite number")
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, ValueError) as exc:
        raise SensorMessageError(f'topic {topic!r}: payload must be {{"t": <time>, "v": <number>}}: {exc}') from None
    return t, f"{kind}.{element}", float(v)


def _client(settings: MqttSettings) -> Any:
    import paho.mqtt.client as mqtt

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=settings.client_id)
    if settings.username is not None:
        client.username_pw_set(settings.username, settings.password)
    if settings.tls:
        client.tls_set(ca_certs=settings.ca_file)
    return client


class MqttReadings:
    """Subscribe to sensor topics and yield ``(t, {sensor: value})`` time steps.

    Use as a context manager; iterate :meth:`frames` (blocking) or :meth:`aframes` (asyncio).
    """

    def __init__(self, settings: MqttSettings | None = None, sensors: Sequence[str] | None = None,
                 flush_after: float = 1.0) -> None:
        self.settings = settings or MqttSettings()
        self.expected = frozenset(sensors) if sensors else None
        self.flush_after = flush_after
        self.malformed = 0
        self.unknown = 0
        self.late = 0
        self.last_error: str | None = None
        self._queue: queue.Queue[tuple[float, str, float]] = queue.Queue()
        self._connected = threading.Event()
        self._connect_error: str | None = None
        self._client: Any = None
        self._pending: dict[float, dict[str, float]] = {}
        self._first_seen: dict[float, float] = {}
        self._emitted_up_to = -math.inf

    # -- connection ------------------------------------------------------------

    def start(self, timeout: float = 10.0) -> MqttReadings:
        s = self.settings
        client = _client(s)
        client.on_connect = self._on_connect
        client.on_message = self._on_message
        try:
            client.connect(s.host, s.port, keepalive=s.keepalive)
        except OSError as exc:
            raise WaterConfigError(f"cannot reach MQTT broker {s.host}:{s.port}: {exc}") from None
        client.loop_start()
        self._client = client
        if not self._connected.wait(timeout):
            self.stop()
            raise WaterConfigError(self._connect_error or f"MQTT broker {s.host}:{s.port} did not accept the connection")
        return self

    def stop(self) -> None:
        if self._client is not None:
            self._client.loop_stop()
            self._client.disconnect()
            self._client = None

    def __enter__(self) -> MqttReadings:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _on_connect(self, client: Any, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if getattr(reason_code, "is_failure", False):
            self._connect_error = f"MQTT broker refused the connection: {reason_code}"
            return
        client.subscribe(f"{self.settings.prefix}/+/+", qos=self.settings.qos)
        self._connected.set()

    def _on_message(self, client: Any, userdata: Any, msg: Any) -> None:
        try:
            self._queue.put(parse_message(msg.topic, msg.payload, self.settings.prefix))
        except SensorMessageError as exc:
            self.malformed += 1
            self.last_error = str(exc)

    # -- grouping into time steps ------------------------------------------------

    def _add(self, t: float, sensor: str, value: float) -> None:
        if self.expected is not None and sensor not in self.expected:
            self.unknown += 1
            return
        if t <= self._emitted_up_to:
            self.late += 1
            return
        self._pending.setdefault(t, {})[sensor] = value
        self._first_seen.setdefault(t, time.monotonic())

    def _ready(self, final: bool = False) -> list[tuple[float, dict[str, float]]]:
        now = time.monotonic()
        out = []
        for t in sorted(self._pending):
            values = self._pending[t]
            complete = self.expected is not None and len(values) >= len(self.expected)
            stale = now - self._first_seen[t] >= self.flush_after
            if complete or stale or final:
                out.append((t, self._pending.pop(t)))
                self._first_seen.pop(t, None)
                self._emitted_up_to = max(self._emitted_up_to, t)
            else:
                break  # keep time order: later steps wait for this one
        return out

    def frames(self, timeout: float | None = None) -> Iterator[tuple[float, dict[str, float]]]:
        """Blocking iterator of time steps; ends after ``timeout`` s without any message."""
        idle_since = time.monotonic()
        while True:
            try:
                item = self._queue.get(timeout=min(0.1, self.flush_after))
            except queue.Empty:
                item = None
            if item is not None:
                idle_since = time.monotonic()
                self._add(*item)
            yield from self._ready()
            if timeout is not None and item is None and time.monotonic() - idle_since >= timeout:
                yield from self._ready(final=True)
                return

    async def aframes(self, timeout: float | None = None) -> AsyncIterator[tuple[float, dict[str, float]]]:
        """:meth:`frames` for asyncio code (the blocking waits run in a worker thread)."""
        iterator = self.frames(timeout)
        sentinel = object()
        while True:
            item = await asyncio.to_thread(next, iterator, sentinel)
            if item is sentinel:
                return
            yield item  # type: ignore[misc]


def publish_readings(frames: Sequence[tuple[float, dict[str, float]]] | Any, settings: MqttSettings | None = None,
                     interval: float = 0.0) -> int:
    """Publish time steps as single-sensor messages (a gateway simulator); returns messages sent.

    ``interval``: wall seconds to wait between time steps (0 = as fast as possible).
    """
    s = settings or MqttSettings()
    client = _client(s)
    try:
        client.connect(s.host, s.port, keepalive=s.keepalive)
    except OSError as exc:
        raise WaterConfigError(f"cannot reach MQTT broker {s.host}:{s.port}: {exc}") from None
    client.loop_start()
    sent = 0
    try:
        infos = []
        for t, values in frames:
            for sensor, value in values.items():
                payload = json.dumps({"t": t, "v": value})
                infos.append(client.publish(topic_for(sensor, s.prefix), payload, qos=s.qos))
                sent += 1
            if interval:
                time.sleep(interval)
        for info in infos:
            info.wait_for_publish(timeout=10)
    finally:
        client.loop_stop()
        client.disconnect()
    return sent
