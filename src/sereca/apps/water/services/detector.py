"""``leak-detector``: finds and localises leaks in the reading stream.

Wraps :class:`sereca.apps.water.LeakDetector`: each ``water.readings``
message (one time step) is one ``update``; every alarm it returns is sent
to ``water.alarms`` (a durable address: alarms survive an alerting restart).
The detector knows the network and the sensors, never the scenario's leaks.

Run: ``sereca run sereca.apps.water.services.detector:svc``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path
from typing import Any

from sereca import Service
from sereca.apps.water.detector import DetectorParams, LeakDetector
from sereca.apps.water.models import parse_model
from sereca.apps.water.services import config
from sereca.apps.water.services.messages import (
    ALARMS,
    DETECTOR_READY,
    READINGS,
    AlarmMessage,
    DetectorStatus,
    ReadingBatch,
)


class Detector:
    """The detector's state for one run of the service."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self.out = svc.publisher(ALARMS, AlarmMessage, description="A suspected leak, localised to a pipe")
        m = svc.metrics
        self.readings = m.counter("water_detector_readings_total", "Sensor values processed")
        self.steps = m.counter("water_detector_steps_total", "Time steps processed")
        self.alarms = m.counter("water_detector_alarms_total", "Alarms raised")
        self.warming = m.gauge("water_detector_warming_up", "1 while the detector learns the sensors' noise")
        self.sim_time = m.gauge("water_detector_sim_time_seconds", "Simulated time of the last processed step")
        self.step_seconds = m.histogram("water_detector_step_seconds", "Time to process one time step")
        self.transit = m.histogram("water_detector_transit_seconds",
                                   "From the gateway sending a reading batch to its arrival here (same host clock)")
        self.detector: LeakDetector | None = None

    async def start(self) -> None:
        params = self.svc.params
        network = config.network(params)
        sensors = config.sensors(params)
        tuning = parse_model(DetectorParams, config.json_object(params, config.DETECTOR_PARAMS),
                             config.DETECTOR_PARAMS)
        cache = params.get(config.CACHE_DIR)
        started = time.perf_counter()
        # The leak-free reference model takes seconds to build on first use: keep the loop free.
        self.detector = await asyncio.to_thread(
            LeakDetector.from_network, network, sensors, tuning, cache_dir=Path(cache) if cache else None)
        self.warming.set(1)
        self.svc.logger.info("detector for %s with %d sensors ready in %.1f s",
                             network, len(sensors.ids()), time.perf_counter() - started)

    async def on_readings(self, batch: ReadingBatch) -> None:
        det = self.detector
        if det is None:
            return
        self.transit.observe(max(0.0, time.time() - batch.sent))
        started = time.perf_counter()
        # One EPANET solve plus at most work_budget (16) solves of queued localisation / re-fit
        # work, ~1-30 ms: off the loop anyway, so health, metrics and the bus stay responsive.
        # Handlers run one message at a time, so the order is kept.
        alarms = await asyncio.to_thread(det.update, batch.t, batch.values)
        self.step_seconds.observe(time.perf_counter() - started)
        self.steps.inc()
        self.readings.inc(len(batch.values))
        self.sim_time.set(batch.t)
        status: dict[str, Any] = det.status()
        self.warming.set(1 if status["warming_up"] else 0)
        for alarm in alarms:
            body = AlarmMessage(id=uuid.uuid4().hex, reading_sent=batch.sent, **alarm.to_dict())
            self.alarms.inc()
            self.svc.logger.warning("ALARM at t=%.0f s: pipe %s (node %s), score %.2f, confidence %.2f",
                                    alarm.time, alarm.pipe, alarm.node, alarm.score, alarm.confidence)
            await self.out.send(body)

    async def ready(self) -> DetectorStatus:
        if self.detector is None:
            return DetectorStatus(ready=False)
        status = self.detector.status()
        return DetectorStatus(ready=True, steps=status["steps"], warming_up=status["warming_up"])

    async def stop(self) -> None:
        if self.detector is not None:
            self.detector.close()
            self.detector = None


def build() -> Service:
    svc = Service("leak-detector", description="Leak detection and localisation on the reading stream")
    detector = Detector(svc)
    svc.on_start(detector.start)
    svc.on_stop(detector.stop)
    svc.consumer(READINGS, description="One time step of sensor readings")(detector.on_readings)
    svc.consumer(DETECTOR_READY, description="Whether the detector is ready for readings")(detector.ready)
    return svc


svc = build()
