"""The water-network monitor as four SERECA services (one module each).

    sensor-gateway  gateway.py    replays a simulation (or forwards MQTT) onto ``water.readings``
    leak-detector   detector.py   LeakDetector over the stream; alarms to ``water.alarms`` (durable)
    alerting        alerting.py   deduplicates and escalates alarms; ``water.alerts``, ``water.alerts.list``
    dashboard       dashboard.py  web page over the bus bridge

Each is run with ``sereca run sereca.apps.water.services.<module>:svc``;
its configuration (network, sensors, scenario, speed) comes from the
manifest's parameters, so the CAS attests and delivers it.  They use only
the platform's public API, as any user's application would.
"""
