"""The lifecycle of a service on a connected bus.

start:  context -> HTTP (health, metrics, bridge) -> on_start hooks ->
        consumers -> periodic tasks -> ready
stop:   not ready -> consumers unregistered (no new messages) -> periodic
        tasks stopped -> in-flight handlers drained (bounded, then cancelled)
        -> on_stop hooks -> bridge closed -> HTTP stopped

Getting the bus (platform -> CAS activation -> keys -> NATS) is
:mod:`sereca.service.launch`'s job; this module is the same for a
production process and for ``svc.run_local(bus)`` in a test.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sereca.errors import SerecaError
from sereca.service import busapi
from sereca.service.context import Params, ServiceContext
from sereca.service.errors import BodyValidationError, ServiceError
from sereca.service.handlers import Handler, encode_body

if TYPE_CHECKING:
    from sereca.service.app import Periodic, Service
    from sereca.service.bridge import Bridge
    from sereca.service.health import HttpServer
    from sereca.service.metrics import ServiceMetrics

SIMULATION_BANNER = (
    "*** SIMULATION *** service {name!r} runs on the simulated TEE platform: "
    "no hardware root, NOT protected against this host. Never use it for real data."
)

# Failure codes in replies, after HTTP's: the requester can tell its own fault from ours.
CODE_BAD_BODY = 400
CODE_HANDLER_ERROR = 500
CODE_STOPPING = 503


class Runtime:
    """One run of a :class:`Service` on a bus."""

    def __init__(
        self,
        service: Service,
        bus: Any,
        *,
        params: Params,
        instance_id: str,
        simulated: bool,
        platform: str,
        tee: str,
        drain_timeout: float = 10.0,
    ) -> None:
        self.service = service
        self.bus = bus
        self.context = ServiceContext(
            bus=bus,
            params=params,
            instance_id=instance_id,
            simulated=simulated,
            platform=platform,
            tee=tee,
            logger=service.logger,
            metrics=service.metrics,
        )
        self.drain_timeout = drain_timeout
        self.state = "created"
        self.started_at: float | None = None
        self.http: HttpServer | None = None
        self.bridge: Bridge | None = None
        self._unregister: list[busapi.Unregister] = []
        self._in_flight: set[asyncio.Task[None]] = set()
        self._periodic_tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._stopped = asyncio.Event()

    # -- status ---------------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self.state == "ready" and self.bus_connection() in ("connected", "local")

    def bus_connection(self) -> str:
        return busapi.connection(self.bus)

    @property
    def http_url(self) -> str | None:
        return self.http.url if self.http else None

    def health(self) -> dict[str, Any]:
        ctx = self.context
        doc: dict[str, Any] = {
            "status": "ok" if self.state in ("starting", "ready", "draining") else self.state,
            "state": self.state,
            "service": self.service.name,
            "instance_id": ctx.instance_id,
            "platform": ctx.platform,
            "tee": ctx.tee,
            "simulated": ctx.simulated,
            "uptime_s": round(time.monotonic() - self.started_at, 3) if self.started_at else 0.0,
            "in_flight": len(self._in_flight),
            "bus": self.bus_connection(),
        }
        if ctx.simulated:
            doc["warning"] = "SIMULATION: no hardware TEE; this service is not protected against its host"
        return doc

    # -- start ----------------------------------------------------------------

    async def start(
        self,
        *,
        http_port: int | None = None,
        http_host: str = "127.0.0.1",
        port_file: Path | None = None,
        http_tls: ssl.SSLContext | None = None,
    ) -> None:
        svc, ctx = self.service, self.context
        if svc.running:
            raise ServiceError(f"service {svc.name!r} is already running")
        self.state = "starting"
        self.started_at = time.monotonic()
        svc._context = ctx
        m = svc.metrics
        m.info.labels(svc.name, ctx.instance_id, ctx.platform, ctx.tee, str(ctx.simulated).lower()).set(1)
        m.simulated.set(1 if ctx.simulated else 0)
        if ctx.simulated:
            svc.logger.warning(SIMULATION_BANNER.format(name=svc.name))
        try:
            if svc.bridge_options is not None:
                from sereca.service.bridge import Bridge

                self.bridge = Bridge(svc.bridge_options, self)
            if http_port is not None:
                from sereca.service.health import HttpServer

                self.http = HttpServer(self, host=http_host, port=http_port, tls=http_tls)
                await self.http.start()
                if port_file is not None:
                    port_file.write_text(f"{self.http.port}\n")
                svc.logger.info("http: %s (/healthz /readyz /metrics /asyncapi.json)", self.http.url)
            for hook in svc.start_hooks:
                await _call(hook)
            for handler in svc.handlers.values():
                self._unregister.append(await busapi.register(self.bus, handler.address, self._callback(handler)))
            for task in svc.periodic:
                self._periodic_tasks.append(asyncio.create_task(self._run_periodic(task), name=f"every:{task.name}"))
        except BaseException:
            await self.stop()
            raise
        self.state = "ready"
        m.ready.set(1)
        svc.logger.info(
            "service %s ready: instance %s on %s, consuming %s",
            svc.name,
            ctx.instance_id,
            ctx.platform + (" (SIMULATION)" if ctx.simulated else ""),
            ", ".join(svc.handlers) or "nothing",
        )

    # -- messages -------------------------------------------------------------

    def _callback(self, handler: Handler) -> Callable[[Any], Any]:
        counters = _HandlerMetrics(self.service.metrics, handler.address)
        in_flight = self._in_flight
        create_task = asyncio.get_running_loop().create_task

        async def on_message(msg: Any) -> None:
            # Own task per message, so drain can wait for it and, past the deadline, cancel it
            # without cancelling the bus's delivery task (shield: cancelling that one spares ours).
            task = create_task(self._handle(handler, counters, msg))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
            await asyncio.shield(task)

        return on_message

    async def _handle(self, handler: Handler, c: _HandlerMetrics, msg: Any) -> None:
        log, addr = self.service.logger, handler.address
        wants_reply = busapi.expects_reply(msg)
        # "starting": an earlier consumer may receive while later ones are still registering.
        if self.state not in ("starting", "ready"):
            if wants_reply:
                await self._fail(msg, CODE_STOPPING, f"service {self.service.name!r} is stopping")
            elif getattr(msg, "durable", False):
                # Returning would acknowledge a stored message nobody handled: raise, so the bus
                # leaves it to the broker to redeliver (to another instance, or after a restart).
                raise ServiceError(f"service {self.service.name!r} is stopping: durable message on {addr!r} "
                                   "left for redelivery")
            return
        c.received.inc()
        try:
            kwargs = handler.arguments(busapi.body(msg), msg)
        except BodyValidationError as exc:
            c.invalid.inc()
            c.rejected.inc()
            log.warning("%s", exc)
            if wants_reply:
                await self._fail(msg, CODE_BAD_BODY, str(exc))
            return
        in_flight = self.service.metrics.in_flight
        in_flight.inc()
        started = time.perf_counter()
        try:
            result = await handler.invoke(kwargs)
        except asyncio.CancelledError:
            c.error.inc()
            if wants_reply:
                await self._fail(msg, CODE_STOPPING, f"service {self.service.name!r} stopped before replying")
            raise
        except Exception as exc:
            c.error.inc()
            if isinstance(exc, SerecaError):
                log.warning("handler for %r failed: %s", addr, exc)
            else:
                log.exception("handler for %r failed", addr)
            if wants_reply:
                # Deliberate errors carry a message meant for users; others only their type.
                detail = str(exc) if isinstance(exc, SerecaError) else type(exc).__name__
                await self._fail(msg, CODE_HANDLER_ERROR, f"handler for {addr!r} failed: {detail}")
            return
        finally:
            in_flight.dec()
            c.seconds.observe(time.perf_counter() - started)
        if result is not None and wants_reply:
            try:
                body = encode_body(result)
            except Exception as exc:
                c.error.inc()
                log.error("handler for %r returned a %s, which cannot be sent: %s", addr, type(result).__name__, exc)
                await self._fail(msg, CODE_HANDLER_ERROR, f"handler for {addr!r} returned an unsendable value")
                return
            try:
                await busapi.reply(msg, body)
            except Exception as exc:
                log.warning("reply on %r failed: %s", addr, exc)
        c.ok.inc()

    async def _fail(self, msg: Any, code: int, text: str) -> None:
        try:
            await busapi.fail(msg, code, text)
        except Exception:
            self.service.logger.exception("could not send failure reply")

    # -- periodic -------------------------------------------------------------

    async def _run_periodic(self, task: Periodic) -> None:
        m, log = self.service.metrics, self.service.logger
        loop = asyncio.get_running_loop()
        next_at = loop.time() + (0 if task.at_start else task.seconds)
        while not self._stopping.is_set():
            delay = next_at - loop.time()
            if delay > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), delay)
                if self._stopping.is_set():
                    return
            try:
                await _call(task.func)
                m.periodic.labels(task.name, "ok").inc()
            except asyncio.CancelledError:
                raise
            except SerecaError as exc:
                # Deliberate errors (no consumer yet, reply timeout, ...) explain themselves in one line.
                m.periodic.labels(task.name, "error").inc()
                log.warning("periodic task %r failed: %s", task.name, exc)
            except Exception:
                m.periodic.labels(task.name, "error").inc()
                log.exception("periodic task %r failed", task.name)
            # Fixed rate; a run that overruns skips the missed ticks instead of bunching up.
            next_at += task.seconds
            now = loop.time()
            if next_at < now:
                next_at = now + task.seconds - ((now - next_at) % task.seconds)

    # -- stop -----------------------------------------------------------------

    async def stop(self) -> None:
        """Drain and stop; safe to call twice (the second call waits for the first) and after a failed start."""
        if self.state in ("stopped", "draining"):
            await self._stopped.wait()
            return
        try:
            await self._drain_and_stop()
        finally:
            self._stopped.set()

    async def _drain_and_stop(self) -> None:
        svc, log = self.service, self.service.logger
        self.state = "draining"
        svc.metrics.ready.set(0)
        self._stopping.set()
        deadline = asyncio.get_running_loop().time() + self.drain_timeout
        for unregister in self._unregister:
            try:
                await asyncio.wait_for(unregister(), max(0.1, _left(deadline)))
            except Exception as exc:
                log.warning("could not unregister a consumer: %s", exc)
        self._unregister.clear()
        if self.bridge is not None:
            await self.bridge.close_all()
        pending = [*self._periodic_tasks, *self._in_flight]
        if pending:
            _, late = await asyncio.wait(pending, timeout=_left(deadline))
            if late:
                log.warning("drain: %d handler(s) still running after %.1fs; cancelling", len(late), self.drain_timeout)
                for t in late:
                    t.cancel()
                await asyncio.wait(late, timeout=1.0)
        self._periodic_tasks.clear()
        for hook in svc.stop_hooks:
            try:
                await asyncio.wait_for(_call(hook), max(1.0, _left(deadline)))
            except Exception:
                log.exception("on_stop hook %s failed", getattr(hook, "__name__", hook))
        if self.http is not None:
            await self.http.stop()
        svc._context = None
        self.state = "stopped"
        log.info("service %s stopped", svc.name)


class _HandlerMetrics:
    """The labelled metric children of one consumer, looked up once (labels() costs per call)."""

    __slots__ = ("received", "ok", "rejected", "error", "invalid", "seconds")

    def __init__(self, m: ServiceMetrics, address: str) -> None:
        self.received = m.received.labels(address)
        self.ok = m.handled.labels(address, "ok")
        self.rejected = m.handled.labels(address, "rejected")
        self.error = m.handled.labels(address, "error")
        self.invalid = m.rejected.labels(address, "validation")
        self.seconds = m.handler_seconds.labels(address)


def _left(deadline: float) -> float:
    return max(0.0, deadline - asyncio.get_running_loop().time())


async def _call(func: Callable[[], Any]) -> None:
    result = func()
    if inspect.isawaitable(result):
        await result


__all__ = ["Runtime", "SIMULATION_BANNER"]
