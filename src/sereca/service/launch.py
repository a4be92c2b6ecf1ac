"""The production lifecycle behind ``sereca run``.

platform (measure) -> import -> CAS activation (evidence, certificate,
params, bus keys) -> NATS (mutual TLS with the activation certificate) ->
:class:`~sereca.service.runtime.Runtime` -> wait for SIGTERM/SIGINT ->
drain -> close the bus.

Every startup failure becomes a :class:`ServiceStartupError` (or another
:class:`~sereca.errors.SerecaError`) with one line a user can act on; the
CLI prints it without a traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sereca.errors import SerecaError
from sereca.service.app import Service
from sereca.service.context import Params
from sereca.service.errors import ServiceStartupError
from sereca.service.loader import Target, load, locate
from sereca.service.runtime import Runtime

log = logging.getLogger("sereca.service")

BROKER_POLL_S = 0.5


@dataclass(frozen=True)
class LaunchOptions:
    """What ``sereca run`` was asked to do (flags and SERECA_* variables, already merged)."""

    target: str
    cas_url: str | None = None
    cas_root: Path | None = None
    nats_url: str | None = None
    nats_reconnect_s: float = 60.0
    tee: str | None = None
    http_port: int | None = 0
    http_host: str = "127.0.0.1"
    port_file: Path | None = None
    measure: Sequence[Path] = field(default_factory=tuple)
    drain_timeout: float = 10.0
    activation_timeout: float = 30.0
    instance: str | None = None
    http_tls: bool = False


@dataclass
class Started:
    """What a started service looks like to the CLI (for its ready line)."""

    service: Service
    runtime: Runtime
    measured: list[Path]
    activation: Any = None


def measured_paths(options: LaunchOptions, target: Target) -> list[Path]:
    """``--measure`` paths, else the directory of the service's module."""
    paths = [Path(p).resolve() for p in options.measure] or [target.directory]
    for p in paths:
        if not p.exists():
            raise ServiceStartupError(f"--measure {p}: no such file or directory")
    return paths


def cas_settings(options: LaunchOptions) -> tuple[str | None, Path | None]:
    """The CAS URL and pinned root: flags/env, else what `sereca cas verify` saved in $SERECA_HOME/cas."""
    from sereca.tee.home import sereca_home

    pins = sereca_home(None) / "cas"
    url = options.cas_url
    if not url and (pins / "url").is_file():
        url = (pins / "url").read_text().strip() or None
    root = options.cas_root
    if root is None and (pins / "root.pem").is_file():
        root = pins / "root.pem"
    return url, root


def _platform(options: LaunchOptions, paths: list[Path]) -> Any:
    from sereca.tee import get_platform

    platform = get_platform(options.tee, measured_paths=paths)
    # Hash now, before the module is imported: what runs is what was measured.
    platform.measurement()
    return platform


async def _activate(options: LaunchOptions, service: Service, platform: Any) -> Any:
    cas_url, cas_root = cas_settings(options)
    if not cas_url:
        raise ServiceStartupError(
            "no CAS to activate at: give --cas URL, set SERECA_CAS_URL, or run `sereca cas verify --url URL` first"
        )
    if cas_root is None:
        raise ServiceStartupError(
            "no pinned CAS root: give --cas-root FILE, set SERECA_CAS_ROOT, or run `sereca cas verify` first "
            "(it pins the root in $SERECA_HOME/cas/root.pem)"
        )
    try:
        root_pem = cas_root.read_text()
    except OSError as exc:
        raise ServiceStartupError(f"cannot read the CAS root {cas_root}: {exc.strerror or exc}") from None
    from sereca.cas.client import CASClient
    from sereca.cas.errors import TransportError

    client = CASClient(cas_url, root_pem=root_pem)
    try:
        return await asyncio.wait_for(
            client.activate(service.name, platform, instance=options.instance), options.activation_timeout
        )
    except TransportError as exc:
        raise ServiceStartupError(f"cannot reach the CAS: {exc}") from None
    except SerecaError as exc:
        raise ServiceStartupError(f"activation of {service.name!r} at {cas_url} failed: {exc}") from None
    except TimeoutError:
        raise ServiceStartupError(
            f"activation of {service.name!r} at {cas_url} did not finish in {options.activation_timeout:g} s"
        ) from None
    except Exception as exc:  # httpx / ssl / OS errors the client did not translate
        raise ServiceStartupError(
            f"cannot reach the CAS at {cas_url}: {_describe(exc)}; check --cas and that the CAS runs"
        ) from None
    finally:
        with contextlib.suppress(Exception):
            await client.aclose()


async def _release(options: LaunchOptions, activation: Any) -> None:
    """Free this instance's slot at the CAS, so a restart can activate again."""
    from sereca.cas.client import CASClient

    cas_url, cas_root = cas_settings(options)
    if not cas_url or cas_root is None:
        return
    try:
        client = CASClient(cas_url, root_pem=cas_root.read_text())
        try:
            await asyncio.wait_for(client.release(activation), 5.0)
        finally:
            await client.aclose()
    except Exception as exc:
        log.warning("could not release instance %s at the CAS: %s", activation.instance_id, _describe(exc))


def _connect_bus(options: LaunchOptions, service: Service, activation: Any) -> Any:
    import ssl

    from sereca.bus.api import EventBus, Identity
    from sereca.bus.keys import Keyring
    from sereca.bus.transports.nats import NatsTransport, client_tls_context

    keys = (getattr(activation, "keys", None) or {}).get("bus")
    if not keys:
        raise ServiceStartupError(
            f"the CAS gave {service.name!r} no bus keys: add it to addresses in the manifest's bus section"
        )
    keyring = Keyring.from_activation(keys)
    nats_info = getattr(activation, "nats", None) or {}
    url = options.nats_url or nats_info.get("url")
    if not url:
        raise ServiceStartupError("no NATS URL: give --nats URL, set SERECA_NATS_URL, or set it in the manifest")
    tls: ssl.SSLContext | None = None
    if url.startswith("tls://") or nats_info.get("tls"):
        tls = client_tls_context(activation.ca_pem, activation.cert_chain_pem, activation.private_key_pem())
    transport = NatsTransport(url, tls=tls, name=f"{service.name}/{activation.instance_id}",
                              reconnect_s=options.nats_reconnect_s)
    return EventBus(keyring, transport, Identity.from_activation(service.name, activation))


def _http_tls(activation: Any) -> Any:
    """Serve HTTP with the activation certificate; verify client certificates against the deployment CA.

    Optional, not required: scrapers of /metrics need no certificate; the
    bridge decides per connection (``client_cert_names``).
    """
    import ssl

    ctx = activation.ssl_context(server_side=True)
    ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


async def start(options: LaunchOptions) -> Started:
    """Everything up to a ready service; raises a one-line :class:`SerecaError` on failure."""
    target = locate(options.target)
    paths = measured_paths(options, target)
    platform = _platform(options, paths)
    service = load(target)
    activation = await _activate(options, service, platform)
    bus = _connect_bus(options, service, activation)
    with contextlib.suppress(ValueError):  # already registered (a second start in one process)
        # sereca_bus_*_total in /metrics: rejected messages by reason, duplicates, handler errors
        bus.metrics.register(service.metrics.registry)
    try:
        await bus.start()
    except SerecaError as exc:
        raise ServiceStartupError(f"cannot connect to the bus: {exc}") from None
    try:
        runtime = Runtime(
            service,
            bus,
            params=Params.from_activation(getattr(activation, "params", None)),
            instance_id=str(activation.instance_id),
            simulated=bool(getattr(activation, "simulated", False)) or platform.name == "sim",
            platform=platform.name,
            tee=platform.tee_type,
            drain_timeout=options.drain_timeout,
        )
        await runtime.start(
            http_port=options.http_port,
            http_host=options.http_host,
            port_file=options.port_file,
            http_tls=_http_tls(activation) if options.http_tls else None,
        )
    except BaseException as exc:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(bus.close(), 10)
        if isinstance(exc, Exception) and not isinstance(exc, SerecaError):
            log.debug("startup failed", exc_info=True)
            raise ServiceStartupError(f"service {service.name!r} failed to start: {_describe(exc)}") from None
        raise
    return Started(service, runtime, paths, activation)


async def stop(started: Started, options: LaunchOptions) -> None:
    """Drain the service, close its bus, release its instance at the CAS."""
    try:
        await started.runtime.stop()
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(started.runtime.bus.close(), 10)
        if started.activation is not None:
            await _release(options, started.activation)


async def run(options: LaunchOptions, *, on_ready: Callable[[Started], None] | None = None) -> int:
    """Start, serve until SIGTERM/SIGINT (exit status 0) or a lost broker (1), drain, stop."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    status = 0

    def on_signal(signum: int) -> None:
        if stopping.is_set():
            log.warning("second %s: still draining (bounded by --drain-timeout)", signal.Signals(signum).name)
            return
        log.info("%s: draining", signal.Signals(signum).name)
        stopping.set()

    async def watch_broker(started: Started) -> None:
        # The transport reconnects by itself; once it gives up the service is useless, so say so and
        # exit non-zero: the orchestrator restarts it, with a fresh activation.
        nonlocal status
        while not stopping.is_set():
            await asyncio.sleep(BROKER_POLL_S)
            if not stopping.is_set() and started.runtime.bus_connection() == "closed":
                log.error("lost the connection to the message broker for good; stopping")
                status = 1
                stopping.set()

    installed = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, on_signal, sig)
            installed.append(sig)
    startup = asyncio.create_task(start(options))
    stop_wait = asyncio.create_task(stopping.wait())
    watcher: asyncio.Task[None] | None = None
    try:
        done, _ = await asyncio.wait({startup, stop_wait}, return_when=asyncio.FIRST_COMPLETED)
        if startup not in done:
            # Signalled while starting: give up cleanly.
            startup.cancel()
            with contextlib.suppress(BaseException):
                await startup
            return status
        started = startup.result()
        if on_ready is not None:
            on_ready(started)
        watcher = asyncio.create_task(watch_broker(started))
        await stop_wait
        watcher.cancel()  # our own shutdown closes the bus: not a lost broker
        await stop(started, options)
        return status
    finally:
        stop_wait.cancel()
        if watcher is not None:
            watcher.cancel()
        for sig in installed:
            loop.remove_signal_handler(sig)


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
