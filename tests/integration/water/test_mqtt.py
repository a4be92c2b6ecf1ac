"""MQTT input against a real mosquitto broker (started here on a free port)."""

from __future__ import annotations

import paho.mqtt.client as mqtt
import pytest
from mosquitto_broker import mosquitto  # noqa: F401  (pytest fixture)

from sereca.apps.water.errors import SensorMessageError, WaterConfigError
from sereca.apps.water.mqtt import (
    MqttReadings,
    MqttSettings,
    parse_message,
    publish_readings,
    topic_for,
)
from sereca.bus.nats_server import free_port


@pytest.fixture()
def broker(mosquitto: int) -> MqttSettings:
    return MqttSettings(host="127.0.0.1", port=mosquitto)


def test_readings_are_grouped_into_time_steps(broker: MqttSettings) -> None:
    sensors = ["pressure.n1", "flow.p227", "level.T1"]
    steps = [(float(t), {s: float(i + t / 300) for i, s in enumerate(sensors)}) for t in (0, 300, 600)]
    with MqttReadings(broker, sensors, flush_after=2.0) as source:
        publish_readings(steps, broker)
        got = list(source.frames(timeout=1.5))
    assert got == steps


def test_malformed_messages_are_dropped_and_counted(broker: MqttSettings) -> None:
    with MqttReadings(broker, ["pressure.n1"], flush_after=0.5) as source:
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        client.connect(broker.host, broker.port)
        client.loop_start()
        for topic, payload in [
            ("sereca/water/pressure/n1", b"not json"),
            ("sereca/water/pressure/n1", b'{"t": 0}'),
            ("sereca/water/pressure/n1", b'{"t": 0, "v": "high"}'),
            ("sereca/water/humidity/n1", b'{"t": 0, "v": 1}'),
            ("sereca/water/pressure/n1", b'{"t": 0, "v": 42.5}'),
        ]:
            client.publish(topic, payload, qos=1).wait_for_publish(5)
        client.loop_stop()
        client.disconnect()
        got = list(source.frames(timeout=1.0))
    assert got == [(0.0, {"pressure.n1": 42.5})]
    assert source.malformed == 4 and source.last_error


def test_unreachable_broker_is_a_clear_error() -> None:
    with pytest.raises(WaterConfigError, match="cannot reach MQTT broker"):
        MqttReadings(MqttSettings(host="127.0.0.1", port=free_port())).start(timeout=2)


def test_topic_scheme() -> None:
    assert topic_for("pressure.n54") == "sereca/water/pressure/n54"
    assert parse_message("sereca/water/flow/p227", b'{"t": "1d", "v": 3}') == (86400.0, "flow.p227", 3.0)
    with pytest.raises(SensorMessageError):
        parse_message("other/flow/p227", b'{"t": 0, "v": 3}')
    with pytest.raises(WaterConfigError):
        topic_for("pressure.a/b")
