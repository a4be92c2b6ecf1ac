"""The gateway forwards MQTT readings (a real mosquitto) onto the bus to the detector."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from mosquitto_broker import mosquitto  # noqa: F401  (pytest fixture)

from sereca.apps.water.demo import DemoOptions, WaterDemo, default_scenario
from sereca.apps.water.models import load_scenario

pytestmark = pytest.mark.slow


async def test_mqtt_readings_reach_the_detector(mosquitto: int, water_cache: Path) -> None:
    import paho.mqtt.client as mqtt

    def mqtt_source(doc: dict) -> None:  # type: ignore[type-arg]
        env = doc["services"]["sensor-gateway"]["env"]
        env["WATER_SOURCE"] = "mqtt"
        env["WATER_MQTT_URL"] = f"mqtt://127.0.0.1:{mosquitto}/plant"
        doc["services"]["sensor-gateway"]["files"]["/sereca/water/sensors.yaml"] = (
            doc["services"]["leak-detector"]["files"]["/sereca/water/sensors.yaml"])

    demo = WaterDemo(DemoOptions(scenario=default_scenario(), customize=mqtt_source, cache_dir=water_cache))
    await asyncio.wait_for(demo.start(), 120)
    try:
        ids = load_scenario(default_scenario()).sensors.ids()
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
        client.connect("127.0.0.1", mosquitto)
        client.loop_start()
        try:
            await asyncio.sleep(0.5)  # the gateway subscribed when it became ready; let the broker settle
            for k in range(5):  # whole steps, one message per sensor (docs/water.md's topic scheme)
                for i in ids:
                    client.publish(f"plant/{i.replace('.', '/', 1)}", json.dumps({"t": k * 300.0, "v": 30.0}))
            # a step with two sensors only: flushed after MqttReadings' flush_after
            client.publish(f"plant/{ids[0].replace('.', '/', 1)}", json.dumps({"t": 1500.0, "v": 31.0}))
            client.publish(f"plant/{ids[1].replace('.', '/', 1)}", json.dumps({"t": 1500.0, "v": 32.0}))
            client.publish("plant/pressure/n1", b"not json")
            loop = asyncio.get_running_loop()
            end = loop.time() + 30
            expected = 5 * len(ids) + 2
            while loop.time() < end:
                det = await demo.metrics("leak-detector")
                gw = await demo.metrics("sensor-gateway")
                if det.get("water_detector_readings_total", 0) >= expected and gw.get("water_gateway_rejected_total"):
                    break
                await asyncio.sleep(0.2)
            assert det.get("water_detector_readings_total") == expected, (det, gw)
            assert det.get("water_detector_steps_total") == 6
            assert gw.get("water_gateway_rejected_total") == 1
        finally:
            client.loop_stop()
            client.disconnect()
    finally:
        await asyncio.wait_for(demo.stop(), 60)
