"""``sereca demo water``: the water monitor on a private, local SERECA deployment.

What :class:`WaterDemo` does, in order:

1. a private temp dir: ``SERECA_HOME`` (the simulated TEE root), CAS state, logs;
2. at once: the CAS in this process (simulated platform), an operator
   certificate, the scenario and its network loaded and checked, the water
   code measured as ``sereca run`` measures it;
3. the application's manifest (``manifest.template.yaml`` filled in) set
   through the CAS client: simulation admitted for this host's root only, the
   operator a user with role ``broker``/``configure``, NATS at ``tls://``;
   then the embedded nats-server (JetStream for the durable alarms) configured
   from the CAS as ``sereca cas broker-config`` does: TLS with the broker
   certificate the CAS issued, client certificates from the deployment CA
   required, and one permission set per service from the manifest's bus section;
4. ``sereca run`` processes with ``SERECA_TEE=sim``, all four at once (the
   gateway starts its replay only when the detector answers on the bus);
5. :meth:`WaterDemo.poll` reads the services' ``/metrics`` and the alert list;
6. :meth:`WaterDemo.stop`: SIGTERM to every service (they drain), CAS and
   NATS stopped, the temp dir removed.

The CLI (``sereca.cli.demo``) renders it; the benchmark and the integration
tests drive the same class.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import secrets
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

from sereca.apps.water.errors import WaterConfigError
from sereca.apps.water.models import Scenario, load_scenario
from sereca.apps.water.services import manifest as water_manifest
from sereca.apps.water.services.alertbook import default_radius
from sereca.cas.pki import user_certificate

DEMO_SCENARIO = Path(__file__).resolve().parent / "demo.scenario.yaml"
DEFAULT_SPEED = 3600.0
STARTUP_TIMEOUT = 90.0  # first run on a fresh machine builds the detector's reference model
STOP_TIMEOUT = 15.0
LOG_TAIL = 12
OPERATOR = "demo-operator"  # the manifest user (role broker-operator) that fetches the broker's config


class DemoError(WaterConfigError):
    """The demo could not start (a port in use, a service that failed, ...): one line says why."""


SHIPPED_SCENARIO = Path(__file__).resolve().parent / "scenarios" / "demo.yaml"


def default_scenario() -> Path:
    """The scenario shipped with the water app (scenarios/demo.yaml), else the demo's own."""
    for path in (SHIPPED_SCENARIO, DEMO_SCENARIO):
        if path.is_file():
            return path
    raise DemoError(f"no demo scenario ({SHIPPED_SCENARIO} is missing); give one with --scenario FILE")


def default_cache_dir() -> Path:
    """The user's cache of detector reference models (kept across demos; the demo's home is temporary)."""
    from sereca.tee.home import sereca_home

    return sereca_home(None) / "cache" / "water"


@dataclass(frozen=True)
class DemoOptions:
    scenario: Path | None = None
    network: str | None = None
    speed: float = DEFAULT_SPEED
    host: str = "127.0.0.1"
    dashboard_port: int = 0
    detector_params: Mapping[str, Any] = field(default_factory=dict)
    # "idle": queued detector work between steps; "steps": per step only, as `sereca water detect`.
    detector_schedule: str = "idle"
    cache_dir: Path | None = None
    log_level: str = "info"
    # Benchmarks and tests: change the manifest (e.g. add a probe service) before it is set.
    customize: Callable[[dict[str, Any]], None] | None = None
    services: Sequence[str] = tuple(water_manifest.SERVICES)


@dataclass
class ServiceProcess:
    name: str
    spec: str
    proc: asyncio.subprocess.Process
    port_file: Path
    log: Path
    host: str = "127.0.0.1"  # where it serves HTTP
    http_url: str | None = None
    port: int | None = None
    health: dict[str, Any] = field(default_factory=dict)
    ready_s: float | None = None

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def running(self) -> bool:
        return self.proc.returncode is None

    def log_tail(self, lines: int = LOG_TAIL) -> str:
        try:
            text = self.log.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-lines:])


@dataclass
class Snapshot:
    """What the services report at one moment (from their /metrics and the alert list)."""

    readings: int = 0
    readings_detected: int = 0
    steps: int = 0
    sim_time: float | None = None
    leaks_active: int = 0
    replay_done: bool = False
    warming_up: bool = True
    alarms: int = 0
    alerts: list[dict[str, Any]] = field(default_factory=list)
    running: dict[str, bool] = field(default_factory=dict)


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text -> {sample name: value} for unlabelled samples (what the demo reads)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#") or "{" in line:
            continue
        name, _, value = line.partition(" ")
        with contextlib.suppress(ValueError):
            out[name] = float(value.split()[0])
    return out


def _free_port(host: str) -> int:
    from sereca.bus.nats_server import free_port

    return free_port(host)


def _local(host: str) -> str:
    """Where this host reaches a service listening on ``host``."""
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def check_port(host: str, port: int) -> None:
    """Fail early, in one line, if a requested port is taken."""
    import socket

    if port == 0:
        return
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            raise DemoError(f"port {port} on {host} is not available ({exc.strerror or exc}): "
                            "choose another --dashboard-port, or 0 for a free one") from None


class WaterDemo:
    """A private deployment of the four water services; ``await start()``, ``poll()``, ``stop()``."""

    def __init__(self, options: DemoOptions, *, on_event: Callable[[str, dict[str, Any]], None] | None = None) -> None:
        self.options = options
        self.on_event = on_event or (lambda kind, data: None)
        self.root: Path | None = None
        self.home: Path | None = None
        self.nats: Any = None
        self.nats_port = 0
        self.broker: Any = None  # sereca.cas.broker.BrokerConfig: what the broker enforces
        self.operator: tuple[str, str] | None = None  # the demo operator's certificate and key (PEM)
        self.cas: Any = None
        self.cas_root_file: Path | None = None
        self.scenario: Scenario | None = None
        self.network_name: str = ""
        self.radius = 0.0
        self.token = secrets.token_urlsafe(24)
        self.manifest: dict[str, Any] = {}
        self.services: dict[str, ServiceProcess] = {}
        self.started_at = time.monotonic()
        self.ready_at: float | None = None
        self.dashboard_url: str | None = None
        self._http = httpx.AsyncClient(timeout=5.0)

    # -- start ----------------------------------------------------------------

    async def start(self) -> None:
        """Everything up to four ready services; raises :class:`DemoError` (after cleaning up) on failure."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        opts = self.options
        check_port(opts.host, opts.dashboard_port)
        self.started_at = time.monotonic()
        self.root = Path(tempfile.mkdtemp(prefix="sereca-demo-"))
        self.home = self.root / "home"
        (self.root / "logs").mkdir()
        self.home.mkdir(mode=0o700)
        self.nats_port = _free_port("127.0.0.1")
        operator_task = asyncio.create_task(asyncio.to_thread(user_certificate, OPERATOR))
        scenario_task = asyncio.create_task(asyncio.to_thread(self._load_scenario))
        measure_task = asyncio.create_task(asyncio.to_thread(
            water_manifest.measurement, water_manifest.SERVICES["leak-detector"]))
        try:
            await self._start_cas()
            await asyncio.gather(operator_task, scenario_task, measure_task)
        finally:
            for task in (operator_task, scenario_task, measure_task):
                if not task.done():
                    task.cancel()
        self.operator = operator_task.result()
        self.manifest = self._render(measure_task.result())
        await self._set_manifest()
        # The broker comes from the manifest: its certificate and the per-service permissions, fetched
        # by the demo's operator exactly as `sereca cas broker-config` does.
        await self._start_nats()
        self.on_event("manifest", {"services": list(opts.services), "network": self.network_name,
                                   "broker": self.broker_info()})
        # All at once: the gateway holds its replay until the detector answers on the bus.
        await asyncio.gather(*(self.launch(name) for name in opts.services))
        self.ready_at = time.monotonic()
        if "dashboard" in self.services:
            port = self.services["dashboard"].port
            host = f"[{opts.host}]" if ":" in opts.host else opts.host
            self.dashboard_url = f"http://{host}:{port}/?token={self.token}"

    async def _start_nats(self) -> None:
        from sereca.cas.broker import fetch_broker_config
        from sereca.cas.client import CASClient

        assert self.root is not None and self.cas is not None and self.operator is not None
        cert_pem, key_pem = self.operator
        async with CASClient(self.cas.url, root_pem=self.cas.root_pem, cert_pem=cert_pem, key_pem=key_pem) as client:
            self.broker = await fetch_broker_config(client)
        server = self.broker.embedded_server(jetstream=True, workdir=self.root / "nats")
        self.nats = server
        await asyncio.to_thread(server.start)

    async def _start_cas(self) -> None:
        from sereca.cas.server import CASServer
        from sereca.tee import get_platform

        assert self.root is not None and self.home is not None
        platform = await asyncio.to_thread(get_platform, "sim", self.home)
        self.cas = CASServer(self.root / "cas", "127.0.0.1:0", platform=platform)
        await asyncio.wait_for(self.cas.start(), 30)
        self.cas_root_file = self.root / "cas-root.pem"
        self.cas_root_file.write_text(self.cas.root_pem)

    def _load_scenario(self) -> None:
        from sereca.apps.water.network import load_network

        from sereca.apps.water.services.autoscenario import scenario_for

        opts = self.options
        scenario = load_scenario(opts.scenario or default_scenario())
        net = None
        if opts.network and opts.network != scenario.network:
            net = load_network(opts.network)
            if opts.scenario is None:  # the shipped scenario is L-Town's: make one for this network
                scenario = scenario_for(net)
            else:
                scenario = scenario.model_copy(update={"network": opts.network})
        net = net or load_network(scenario.network)  # fails early, in one line, on unknown names and elements
        net.validate_sensors(scenario.sensors)
        net.validate_pipes([leak.pipe for leak in scenario.leaks])
        self.scenario = scenario
        self.network_name = scenario.network
        self.radius = default_radius(net.geometry()["bounds"])

    def _render(self, measurement: str) -> dict[str, Any]:
        from sereca.tee import sim_root_fingerprint

        opts, scenario = self.options, self.scenario
        assert scenario is not None and self.operator is not None and self.home is not None
        doc = water_manifest.render({
            "MEASUREMENT": measurement,
            "SPEED": f"{opts.speed:g}",
            "SCENARIO": yaml.safe_dump(scenario.model_dump(mode="json"), sort_keys=False),
            "SENSORS": yaml.safe_dump(scenario.sensors.model_dump(mode="json"), sort_keys=False),
            "NETWORK": scenario.network,
            # The scenario's own detector tuning, then the caller's.
            "DETECTOR_PARAMS": json.dumps({**dict(getattr(scenario, "detector", None) or {}),
                                           **dict(opts.detector_params)}),
            "DETECTOR_SCHEDULE": opts.detector_schedule,
            "CACHE_DIR": str(opts.cache_dir or default_cache_dir()),
            "DEDUP_RADIUS": f"{self.radius:.3f}",
            "DASHBOARD_TOKEN": self.token,
            "SIM_ROOT": sim_root_fingerprint(str(self.home)),
            "NATS_URL": f"tls://127.0.0.1:{self.nats_port}",
            "NATS_HOSTS": ["127.0.0.1", "localhost"],
            "OPERATORS": {OPERATOR: {"certificate": self.operator[0], "roles": ["broker-operator"]}},
        })
        if opts.customize is not None:
            opts.customize(doc)
        return doc

    async def _set_manifest(self) -> None:
        from sereca.cas.client import CASClient

        assert self.cas is not None
        async with CASClient(self.cas.url, root_pem=self.cas.root_pem) as client:
            await asyncio.wait_for(client.set_manifest(json.dumps(self.manifest)), 30)

    def env(self) -> dict[str, str]:
        """The environment of a service process: this deployment's home, CAS and pinned root."""
        assert self.home is not None and self.cas is not None and self.cas_root_file is not None
        env = {k: v for k, v in os.environ.items() if not k.startswith("SERECA_")}
        env.update({
            "SERECA_HOME": str(self.home),
            "SERECA_CAS_URL": self.cas.url,
            "SERECA_CAS_ROOT": str(self.cas_root_file),
            "SERECA_TEE": "sim",
            "PYTHONUNBUFFERED": "1",
        })
        return env

    async def spawn(self, name: str, spec: str, *, measure: Sequence[Path] = (water_manifest.WATER_DIR,),
                    extra_args: Sequence[str] = ()) -> ServiceProcess:
        """Start ``sereca run SPEC`` as service ``name`` (its own session: the demo stops it, not the tty)."""
        assert self.root is not None
        port_file = self.root / f"{name}.port"
        log = self.root / "logs" / f"{name}.log"
        args = [sys.executable, "-m", "sereca.cli.main", "run", spec, "--tee", "sim", "--port-file", str(port_file),
                "--log-level", self.options.log_level]
        for path in measure:
            args += ["--measure", str(path)]
        args += list(extra_args)
        with open(log, "wb") as out:
            proc = await asyncio.create_subprocess_exec(
                *args, cwd=self.root, env=self.env(), stdout=out, stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL, start_new_session=True)
        svc = ServiceProcess(name, spec, proc, port_file, log)
        self.services[name] = svc
        return svc

    async def launch(self, name: str) -> ServiceProcess:
        """Start water service ``name`` (one of SERVICES) and wait until it is ready."""
        extra: list[str] = []
        if name == "dashboard":  # the page is served on the dashboard's HTTP port
            extra = ["--http-host", self.options.host, "--http-port", str(self.options.dashboard_port)]
        svc = await self.spawn(name, water_manifest.SERVICES[name], extra_args=extra)
        if name == "dashboard":
            svc.host = self.options.host
        await self.wait_ready(svc)
        self.on_event("service", {"name": name, "pid": svc.pid, "url": svc.http_url,
                                  "instance": svc.health.get("instance_id")})
        return svc

    async def wait_ready(self, svc: ServiceProcess, timeout: float = STARTUP_TIMEOUT) -> None:
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while True:
            if not svc.running:
                raise DemoError(f"service {svc.name} failed to start (exit status {svc.proc.returncode}); "
                                f"last lines of its log:\n{svc.log_tail()}")
            if loop.time() > end:
                raise DemoError(f"service {svc.name} was not ready after {timeout:g} s; "
                                f"last lines of its log:\n{svc.log_tail()}")
            if svc.http_url is None and svc.port_file.exists() and svc.port_file.read_text().strip():
                svc.port = int(svc.port_file.read_text())
                svc.http_url = f"http://{_local(svc.host)}:{svc.port}"
            if svc.http_url is not None:
                with contextlib.suppress(httpx.HTTPError):
                    r = await self._http.get(f"{svc.http_url}/readyz")
                    if r.status_code == 200:
                        svc.health = (await self._http.get(f"{svc.http_url}/healthz")).json()
                        svc.ready_s = time.monotonic() - self.started_at
                        return
            await asyncio.sleep(0.05)

    # -- while running --------------------------------------------------------

    async def metrics_text(self, name: str) -> str:
        """Service ``name``'s /metrics (Prometheus text), or "" if it does not answer."""
        svc = self.services.get(name)
        if svc is None or svc.http_url is None or not svc.running:
            return ""
        try:
            r = await self._http.get(f"{svc.http_url}/metrics")
        except httpx.HTTPError:
            return ""
        return r.text if r.status_code == 200 else ""

    async def metrics(self, name: str) -> dict[str, float]:
        return parse_metrics(await self.metrics_text(name))

    async def alerts(self) -> list[dict[str, Any]]:
        if self.dashboard_url is None:
            return []
        base = self.dashboard_url.split("/?", 1)[0]
        try:
            r = await self._http.get(f"{base}/api/alerts", headers={"authorization": f"Bearer {self.token}"})
        except httpx.HTTPError:
            return []
        return list(r.json().get("alerts", [])) if r.status_code == 200 else []

    async def poll(self) -> Snapshot:
        gw, det, al = await asyncio.gather(
            self.metrics("sensor-gateway"), self.metrics("leak-detector"), self.metrics("alerting"))
        return Snapshot(
            readings=int(gw.get("water_gateway_readings_total", 0)),
            steps=int(gw.get("water_gateway_batches_total", 0)),
            sim_time=gw.get("water_gateway_sim_time_seconds") if gw else None,
            leaks_active=int(gw.get("water_gateway_leaks_active", 0)),
            replay_done=bool(gw.get("water_gateway_replay_done", 0)),
            readings_detected=int(det.get("water_detector_readings_total", 0)),
            warming_up=bool(det.get("water_detector_warming_up", 1)),
            alarms=int(det.get("water_detector_alarms_total", 0)),
            alerts=await self.alerts(),
            running={name: svc.running for name, svc in self.services.items()},
        )

    def status(self) -> list[dict[str, Any]]:
        """One row per service: name, instance, attestation, pid, URL."""
        rows = []
        for name, svc in self.services.items():
            h = svc.health
            rows.append({
                "name": name,
                "instance": h.get("instance_id"),
                "attested": bool(h.get("instance_id")),
                "platform": h.get("platform"),
                "simulated": bool(h.get("simulated")),
                "pid": svc.pid,
                "running": svc.running,
                "url": svc.http_url,
                "ready_s": round(svc.ready_s, 2) if svc.ready_s is not None else None,
            })
        return rows

    def broker_info(self) -> dict[str, Any] | None:
        """What the demo's broker enforces (None before it runs)."""
        if self.broker is None:
            return None
        return {"url": self.broker.url, "mutual_tls": True, "client_ca": "deployment CA",
                "permissions": sorted(self.broker.users)}

    def failed(self) -> list[ServiceProcess]:
        return [svc for svc in self.services.values() if not svc.running]

    # -- stop -----------------------------------------------------------------

    async def stop(self) -> None:
        """Stop every service (SIGTERM, then SIGKILL after STOP_TIMEOUT), the CAS and NATS; remove the temp dir."""
        procs = list(reversed(self.services.values()))  # the gateway first: no readings into stopping consumers
        for svc in procs:
            if svc.running:
                with contextlib.suppress(ProcessLookupError):
                    svc.proc.send_signal(signal.SIGTERM)
        for svc in procs:
            try:
                await asyncio.wait_for(svc.proc.wait(), STOP_TIMEOUT)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    svc.proc.kill()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(svc.proc.wait(), 5)
        if self.cas is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.cas.stop(), 15)
            self.cas = None
        if self.nats is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.nats.stop)
            self.nats = None
        await self._http.aclose()
        if self.root is not None:
            shutil.rmtree(self.root, ignore_errors=True)
            self.root = None

    def exit_codes(self) -> dict[str, int | None]:
        return {name: svc.proc.returncode for name, svc in self.services.items()}
