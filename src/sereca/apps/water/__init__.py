"""Water-network monitoring: hydraulic simulation, leak detection, BattLeDIM scoring, MQTT input.

See docs/water.md. The public API::

    from sereca.apps.water import load_network, simulate, LeakDetector, score

    net = load_network("L-Town")                     # or "Net3", or a path to an INP file
    sim = simulate(net, leaks, sensors, days=2)      # sim.readings: DataFrame (time s x sensor id)
    detector = LeakDetector.from_network(net, sensors)
    alarms = detector.update(t, {"pressure.n1": 28.9, ...})
    result = score(alarms, leaks, net)
"""

from sereca.apps.water.detector import Alarm, DetectorParams, LeakDetector
from sereca.apps.water.errors import (
    NetworkNotFoundError,
    ReadingsError,
    SensorMessageError,
    SimulationError,
    WaterConfigError,
)
from sereca.apps.water.models import (
    Hydraulics,
    Leak,
    LeakSet,
    Noise,
    Scenario,
    SensorSet,
    load_leaks,
    load_scenario,
    load_sensors,
    shipped_scenario,
)
from sereca.apps.water.mqtt import MqttReadings, MqttSettings, publish_readings
from sereca.apps.water.network import Network, bundled_networks, load_network
from sereca.apps.water.readings import read_alarms, read_readings, write_alarms, write_readings
from sereca.apps.water.scoring import AlarmRecord, Score, score
from sereca.apps.water.simulate import Simulation, simulate, simulate_scenario

__all__ = [
    "Alarm",
    "AlarmRecord",
    "DetectorParams",
    "Hydraulics",
    "Leak",
    "LeakDetector",
    "LeakSet",
    "MqttReadings",
    "MqttSettings",
    "Network",
    "NetworkNotFoundError",
    "Noise",
    "ReadingsError",
    "Scenario",
    "Score",
    "SensorMessageError",
    "SensorSet",
    "SimulationError",
    "Simulation",
    "WaterConfigError",
    "bundled_networks",
    "load_leaks",
    "load_network",
    "load_scenario",
    "load_sensors",
    "publish_readings",
    "read_alarms",
    "read_readings",
    "score",
    "shipped_scenario",
    "simulate",
    "simulate_scenario",
    "write_alarms",
    "write_readings",
]
