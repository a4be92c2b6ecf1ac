"""``sensor-gateway``: puts sensor readings on the bus, one message per time step.

Sources (parameter ``WATER_SOURCE``):

* ``simulation`` (default): simulates the provisioned scenario (network,
  sensors, leaks) once at start and replays it at ``WATER_SPEED`` simulated
  seconds per real second (0 = as fast as the bus takes it);
* ``mqtt``: forwards readings from an MQTT broker (``WATER_MQTT_URL``,
  topics as in docs/water.md); with a provisioned sensor list, a time step
  goes out as soon as every sensor has reported.

Run: ``sereca run sereca.apps.water.services.gateway:svc``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from sereca import Service
from sereca.apps.water.errors import WaterConfigError
from sereca.apps.water.services import config
from sereca.apps.water.services.messages import DETECTOR_READY, READINGS, DetectorStatus, ReadingBatch
from sereca.apps.water.services.replay import Replay, Step
from sereca.errors import SerecaError

DEFAULT_SPEED = 3600.0
WAIT_LOG_EVERY = 10.0


class Gateway:
    """The gateway's state for one run of the service."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self.out = svc.publisher(READINGS, ReadingBatch, description="All sensor values of one time step")
        m = svc.metrics
        self.readings = m.counter("water_gateway_readings_total", "Sensor values published")
        self.batches = m.counter("water_gateway_batches_total", "Reading messages (time steps) published")
        self.sim_time = m.gauge("water_gateway_sim_time_seconds", "Simulated time of the last published step")
        self.leaks_active = m.gauge("water_gateway_leaks_active", "Scenario leaks active at the simulated time")
        self.done = m.gauge("water_gateway_replay_done", "1 once the whole simulation has been replayed")
        self.steps_total = m.gauge("water_gateway_steps", "Time steps in the replayed simulation")
        self.rejected = m.counter("water_gateway_rejected_total", "Malformed MQTT sensor messages dropped")
        self.task: asyncio.Task[None] | None = None
        self.seq = 0
        self._dropped_seen = 0
        self.leaks: list = []

    async def start(self) -> None:
        self.seq = 0
        params = self.svc.params
        source = params.get(config.SOURCE) or "simulation"
        if source == "simulation":
            await self._start_simulation()
        elif source == "mqtt":
            from sereca.apps.water.services.mqtt_source import settings_from_url

            url = params.get(config.MQTT_URL) or ""
            settings_from_url(url)  # a bad URL fails the start, in one line
            sensors = config.sensors(params).ids() if config.SENSORS_FILE in params.files else None
            self.task = asyncio.create_task(self._forward(url, sensors), name="mqtt")
        else:
            raise WaterConfigError(f"parameter {config.SOURCE}={source!r}: use 'simulation' or 'mqtt'")

    async def _start_simulation(self) -> None:
        from sereca.apps.water.simulate import simulate_scenario

        params = self.svc.params
        scenario = config.scenario(params)
        speed = config.number(params, config.SPEED, DEFAULT_SPEED)
        sim = await asyncio.to_thread(simulate_scenario, scenario)
        replay = Replay.from_frame(sim.readings)
        self.leaks = list(scenario.leaks)
        self.steps_total.set(len(replay))
        self.svc.logger.info(
            "replaying %s: %d steps of %d sensors (%g days) at %s, leaks on %s",
            scenario.name, len(replay), len(replay.ids), scenario.days,
            f"{speed:g}x" if speed > 0 else "full speed", ", ".join(leak.pipe for leak in self.leaks) or "no pipe",
        )
        wait = (params.get(config.WAIT_FOR_DETECTOR) or "1").lower() not in ("0", "false", "no")
        self.task = asyncio.create_task(self._replay(replay, speed, wait), name="replay")

    async def _wait_for_detector(self) -> None:
        """Replaying into a bus nobody listens to loses the readings: wait for the detector to answer."""
        loop = asyncio.get_running_loop()
        started = last_log = loop.time()
        while True:
            try:
                status = await self.svc.request(DETECTOR_READY, {}, reply_model=DetectorStatus, timeout=1.0)
                if status.ready:
                    self.svc.logger.info("leak detector ready after %.1f s: replay starts", loop.time() - started)
                    return
            except SerecaError:
                pass  # no detector yet (no handlers, timeout): ask again
            if loop.time() - last_log > WAIT_LOG_EVERY:
                last_log = loop.time()
                self.svc.logger.warning("waiting for the leak detector on %s (%.0f s)", DETECTOR_READY,
                                        loop.time() - started)
            await asyncio.sleep(0.1)

    async def _replay(self, replay: Replay, speed: float, wait: bool) -> None:
        try:
            if wait:
                await self._wait_for_detector()
            await replay.run(self.emit, speed)
        except asyncio.CancelledError:
            raise
        except Exception:
            self.svc.logger.exception("replay stopped")
            return
        self.done.set(1)
        self.svc.logger.info("replay finished: %d steps published", self.seq)

    async def _forward(self, url: str, sensors: list[str] | None) -> None:
        from sereca.apps.water.services.mqtt_source import forward

        try:
            await forward(url, self.emit, sensors=sensors, on_dropped=self._dropped)
        except asyncio.CancelledError:
            raise
        except SerecaError as exc:
            self.svc.logger.error("MQTT source stopped: %s", exc)
        except Exception:
            self.svc.logger.exception("MQTT source stopped")

    def _dropped(self, total: int) -> None:
        self.rejected.inc(max(0, total - self._dropped_seen))
        self._dropped_seen = max(total, self._dropped_seen)

    async def emit(self, step: Step) -> None:
        batch = ReadingBatch(t=step.t, seq=self.seq, sent=time.time(), values=step.values)
        await self.out.publish(batch)
        self.seq += 1
        self.batches.inc()
        self.readings.inc(len(step.values))
        self.sim_time.set(step.t)
        if self.leaks:
            self.leaks_active.set(sum(1 for leak in self.leaks if leak.active(step.t)))

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(BaseException):
                await self.task


def build() -> Service:
    svc = Service("sensor-gateway", description="Sensor readings (simulated or MQTT) onto the secure bus")
    gateway = Gateway(svc)
    svc.on_start(gateway.start)
    svc.on_stop(gateway.stop)
    return svc


svc = build()
