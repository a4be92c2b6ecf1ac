"""``leak-detector``: finds and localises leaks in the reading stream.

Wraps :class:`sereca.apps.water.LeakDetector`: each ``water.readings``
message (one time step) is one ``update``; every alarm it returns is sent
to ``water.alarms`` (a durable address: alarms survive an alerting restart).
The detector knows the network and the sensors, never the scenario's leaks.

Scheduling (``WATER_DETECTOR_SCHEDULE``): with ``idle`` (the default) a step
does its own EPANET solve, then queued localisation / re-fit work until
``STEP_WORK_SECONDS`` after it began (and ``work_budget`` solves, if set); the rest runs
between steps, a few solves at a time, whenever no reading batch waits.
Readings do not queue behind localisation work, and at real-time speed a
localisation finishes as soon as its readings are in; when readings come
faster than the host can keep up, localisations take more time steps
instead. Alarms then depend on how fast the host is. With ``steps`` every
step does all the queued work its readings allow (``work_budget`` solves,
if set) and none runs between steps: the alarms are exactly those of
``sereca water detect`` on the same readings, whatever the host's speed
(readings queue instead). While the host keeps up, both give those alarms.

Run: ``sereca run sereca.apps.water.services.detector:svc``.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from pathlib import Path

from sereca import Service
from sereca.apps.water.detector import Alarm, DetectorParams, LeakDetector
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

# Each step's share of queued work, so it advances even under a flood of readings. Small: at
# 1,000 readings/s a step arrives every 37 ms, and the host needs headroom for its other work.
STEP_WORK_SECONDS = 0.01
IDLE_CHUNK = 1  # solves per turn between steps: a batch arriving meanwhile waits for one solve at most


class Detector:
    """The detector's state for one run of the service."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self.schedule = "idle"
        self._lock = asyncio.Lock()  # one user of the LeakDetector at a time: a step or an idle turn
        self._idle: asyncio.Task[None] | None = None
        self._last_sent = 0.0
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
        self.idle_solves = m.counter("water_detector_idle_solves_total",
                                     "EPANET solves of queued work done between time steps")
        self.detector: LeakDetector | None = None

    async def start(self) -> None:
        params = self.svc.params
        network = config.network(params)
        sensors = config.sensors(params)
        tuning = parse_model(DetectorParams, config.json_object(params, config.DETECTOR_PARAMS),
                             config.DETECTOR_PARAMS)
        self.schedule = config.choice(params, config.DETECTOR_SCHEDULE, config.DETECTOR_SCHEDULES)
        cache = params.get(config.CACHE_DIR)
        started = time.perf_counter()
        # The leak-free reference model takes seconds to build on first use: keep the loop free.
        self.detector = await asyncio.to_thread(
            LeakDetector.from_network, network, sensors, tuning, cache_dir=Path(cache) if cache else None)
        self.warming.set(1)
        self.svc.logger.info("detector for %s with %d sensors ready in %.1f s (schedule %s)",
                             network, len(sensors.ids()), time.perf_counter() - started, self.schedule)

    async def on_readings(self, batch: ReadingBatch) -> None:
        self.transit.observe(max(0.0, time.time() - batch.sent))
        share = STEP_WORK_SECONDS if self.schedule == "idle" else None
        async with self._lock:
            det = self.detector
            if det is None:
                return
            started = time.perf_counter()
            # One EPANET solve plus the step's share of queued work (idle: ~10 ms; steps: up to
            # ~0.5 s when a window closes): off the loop, so health, metrics and the bus stay
            # responsive. Handlers run one message at a time.
            alarms = await asyncio.to_thread(det.update, batch.t, batch.values, work_seconds=share)
            self.step_seconds.observe(time.perf_counter() - started)
            self.steps.inc()
            self.readings.inc(len(batch.values))
            self.sim_time.set(batch.t)
            self.warming.set(1 if det.status()["warming_up"] else 0)
            self._last_sent = batch.sent
            await self._send(alarms, batch.sent)
        if share is not None and (self._idle is None or self._idle.done()):
            self._idle = asyncio.create_task(self._work_between_steps(), name="detector-idle-work")

    async def _work_between_steps(self) -> None:
        """Advance the queued work while no batch waits (a waiting handler gets the lock first)."""
        while True:
            async with self._lock:
                det = self.detector
                if det is None:
                    return
                try:
                    alarms, solves = await asyncio.to_thread(det.work, IDLE_CHUNK)
                except Exception:  # as a failing handler: logged, and the next batch tries again
                    self.svc.logger.exception("queued detector work between steps failed")
                    return
                self.idle_solves.inc(solves)
                # Timed like the step they complete: the newest readings they used.
                await self._send(alarms, self._last_sent)
            if solves == 0 and not alarms:
                return  # nothing can run before more readings arrive; the next batch restarts this
            await asyncio.sleep(0)

    async def _send(self, alarms: list[Alarm], reading_sent: float) -> None:
        for alarm in alarms:
            body = AlarmMessage(id=uuid.uuid4().hex, reading_sent=reading_sent, **alarm.to_dict())
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
        async with self._lock:  # not while a step or an idle turn is inside EPANET
            if self.detector is not None:
                self.detector.close()
                self.detector = None
        if self._idle is not None:
            await self._idle


def build() -> Service:
    svc = Service("leak-detector", description="Leak detection and localisation on the reading stream")
    detector = Detector(svc)
    svc.on_start(detector.start)
    svc.on_stop(detector.stop)
    svc.consumer(READINGS, description="One time step of sensor readings")(detector.on_readings)
    svc.consumer(DETECTOR_READY, description="Whether the detector is ready for readings")(detector.ready)
    return svc


svc = build()
