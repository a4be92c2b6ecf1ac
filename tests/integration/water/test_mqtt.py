"""MQTT input against a real mosquitto broker (started here on a free port)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from sereca.apps.water.errors import SensorMessageError, WaterConfigError
from sereca.apps.water.mqtt import MqttReadings, MqttSettings, parse_message, publish_readings, topic_for

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def broker(tmp_path: Path) -> Iterator[MqttSettings]:
    if MOSQUITTO is None:
        pytest.skip("mosquitto binary not installed (apt-get install mosquitto)")
    port = _free_port()
    conf = tmp_path / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
    proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"mosquitto exited: {proc.stdout.read().decode() if proc.stdout else ''}")
                time.sleep(0.05)
        yield MqttSettings(host="127.0.0.1", port=port)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


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
        MqttReadings(MqttSettings(host="127.0.0.1", port=_free_port())).start(timeout=2)


def test_topic_scheme() -> None:
    assert topic_for("pressure.n54") == "sereca/water/pressure/n54"
    assert parse_message("sereca/water/flow/p227", b'{"t": "1d", "v": 3}') == (86400.0, "flow.p227", 3.0)
    with pytest.raises(SensorMessageError):
        parse_message("other/flow/p227", b'{"t": 0, "v": 3}')
    with pytest.raises(WaterConfigError):
        topic_for("pressure.a/b")
