"""A real CAS (in the test's loop), a real nats-server, and `sereca run` processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import ssl
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from sereca.bus.nats_server import EmbeddedNatsServer
from sereca.tee import get_platform, measure_paths, sim_root_fingerprint

T = 20.0  # generous bound for any single wait; nothing may hang

DETECTOR = '''
from pydantic import BaseModel, Field
from sereca import Service


class Reading(BaseModel):
    sensor: str
    pressure: float = Field(ge=0)


class Verdict(BaseModel):
    sensor: str
    leak: bool


svc = Service("detector")
readings = svc.metrics.counter("detector_readings_total", "Readings received")


@svc.consumer("readings.>")
async def on_reading(reading: Reading) -> None:
    readings.inc()


@svc.consumer("detector.check")
async def check(reading: Reading) -> Verdict:
    threshold = float(svc.params["LEAK_THRESHOLD"])
    return Verdict(sensor=reading.sensor, leak=reading.pressure < threshold)
'''

SENSOR = '''
from pydantic import BaseModel
from sereca import Service


class Verdict(BaseModel):
    sensor: str
    leak: bool


svc = Service("sensor")
verdicts = svc.metrics.counter("sensor_verdicts_total", "Verdicts received", ["leak"])


@svc.every(0.1, at_start=True)
async def tick() -> None:
    reading = {"sensor": "s1", "pressure": 0.5}
    await svc.publish("readings.s1", reading)
    verdict = await svc.request("detector.check", reading, reply_model=Verdict, timeout=2)
    verdicts.labels(str(verdict.leak).lower()).inc()
'''


def manifest(measurements: dict[str, str], fingerprint: str, nats_url: str) -> dict[str, Any]:
    return {
        "packages": {f"{name}-pkg": {"sim": {"measurements": [m]}} for name, m in measurements.items()},
        "services": {
            "sensor": {"package": "sensor-pkg"},
            "detector": {"package": "detector-pkg", "env": {"LEAK_THRESHOLD": "1.5"}},
        },
        "bus": {
            "addresses": {
                "readings.>": {"publish": ["sensor"], "consume": ["detector"]},
                "detector.check": {"request": ["sensor"], "consume": ["detector"], "reply": ["detector"]},
            }
        },
        "config": {"allow_simulation": True, "sim_roots": [fingerprint], "nats": {"url": nats_url, "tls": False}},
    }


@dataclass
class Deployment:
    root: Path
    cas_url: str
    cas_root_file: Path
    nats_url: str
    apps: dict[str, Path]
    procs: list[RunningService] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SERECA_")}
        env["SERECA_HOME"] = os.environ["SERECA_HOME"]  # same simulated root as the CAS trusts
        env["SERECA_CAS_URL"] = self.cas_url
        env["SERECA_CAS_ROOT"] = str(self.cas_root_file)
        env["PYTHONUNBUFFERED"] = "1"
        return env

    async def run(self, spec: str, *args: str, name: str | None = None) -> RunningService:
        name = name or spec.split("/")[0]
        port_file = self.root / f"{name}.port"
        port_file.unlink(missing_ok=True)
        out, err = self.root / f"{name}.out", self.root / f"{name}.err"
        with open(out, "wb") as o, open(err, "wb") as e:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "sereca.cli.main", "run", spec, "--tee", "sim",
                "--port-file", str(port_file), *args,
                cwd=self.root, env=self.env(), stdout=o, stderr=e, stdin=asyncio.subprocess.DEVNULL,
            )
        running = RunningService(name, proc, port_file, out, err)
        self.procs.append(running)
        return running


@dataclass
class RunningService:
    name: str
    proc: asyncio.subprocess.Process
    port_file: Path
    out: Path
    err: Path

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def stdout(self) -> str:
        return self.out.read_text(errors="replace")

    async def wait_exit(self, timeout: float = T) -> int:
        return await asyncio.wait_for(self.proc.wait(), timeout)

    async def http(self, timeout: float = T) -> str:
        """Base URL of the service's HTTP side, once it is ready."""
        loop = asyncio.get_running_loop()
        end = loop.time() + timeout
        while not (self.port_file.exists() and self.port_file.read_text().strip()):
            if self.proc.returncode is not None:
                raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.stderr()}")
            if loop.time() > end:
                raise AssertionError(f"{self.name} did not start:\n{self.stderr()}")
            await asyncio.sleep(0.05)
        return f"http://127.0.0.1:{int(self.port_file.read_text())}"

    def kill(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGKILL)

    def terminate(self) -> None:
        self.proc.send_signal(signal.SIGTERM)


@pytest.fixture
def nats() -> Iterator[EmbeddedNatsServer]:
    server = EmbeddedNatsServer(jetstream=False)
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def _start_cas(state: Path) -> Any:
    from sereca.cas.server import CASServer

    server = CASServer(state, "127.0.0.1:0", platform=get_platform("sim"))
    await asyncio.wait_for(server.start(), T)
    return server


@pytest.fixture
async def deployment(tmp_path: Path, nats: EmbeddedNatsServer) -> AsyncIterator[Deployment]:
    apps = {}
    for name, src in (("detector", DETECTOR), ("sensor", SENSOR)):
        d = tmp_path / name
        d.mkdir()
        (d / "app.py").write_text(textwrap.dedent(src))
        apps[name] = d
    measurements = {name: measure_paths([d]).hex() for name, d in apps.items()}
    cas = await _start_cas(tmp_path / "cas-state")
    try:
        root_pem = cas.root_pem
        root_file = tmp_path / "cas-root.pem"
        root_file.write_text(root_pem)
        doc = manifest(measurements, sim_root_fingerprint(), nats.url)
        ctx = ssl.create_default_context(cadata=root_pem)
        async with httpx.AsyncClient(verify=ctx, timeout=T) as http:
            r = await http.put(f"{cas.url}/api/v1/manifest", content=json.dumps(doc))
            assert r.status_code == 200, r.text
        dep = Deployment(tmp_path, cas.url, root_file, nats.url, apps)
        try:
            yield dep
        finally:
            for p in dep.procs:
                p.kill()
            for p in dep.procs:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(p.proc.wait(), 5)
    finally:
        await asyncio.wait_for(cas.stop(), T)


@pytest.fixture
async def tls_deployment(tmp_path: Path) -> AsyncIterator[Deployment]:
    """Like ``deployment``, but NATS requires mutual TLS with certificates from the deployment CA.

    The broker's own certificate is a manifest secret (cert-ecdsa) that an
    operator (a manifest user with secrets/read) fetches from the CAS.
    """
    from sereca.bus.nats_server import ServerTLS, free_port
    from sereca.cas.client import CASClient
    from sereca.cas.pki import cert_pem, key_pem, self_signed

    apps = {}
    for name, src in (("detector", DETECTOR), ("sensor", SENSOR)):
        d = tmp_path / name
        d.mkdir()
        (d / "app.py").write_text(textwrap.dedent(src))
        apps[name] = d
    measurements = {name: measure_paths([d]).hex() for name, d in apps.items()}
    op_key, op_cert = self_signed(["ops"])
    nats_port = free_port()
    doc = manifest(measurements, sim_root_fingerprint(), f"tls://127.0.0.1:{nats_port}")
    doc["config"]["nats"]["tls"] = True
    doc["secrets"] = {"broker-tls": {"type": "cert-ecdsa", "sans": ["127.0.0.1"]}}
    doc["users"] = {"ops": {"certificate": cert_pem(op_cert).decode(), "roles": ["broker-admin"]}}
    doc["roles"] = {"broker-admin": {"resource": "secrets", "actions": ["read"], "names": ["broker-tls"]}}
    cas = await _start_cas(tmp_path / "cas-state")
    nats: EmbeddedNatsServer | None = None
    dep: Deployment | None = None
    try:
        root_pem = cas.root_pem
        root_file = tmp_path / "cas-root.pem"
        root_file.write_text(root_pem)
        async with CASClient(cas.url, root_pem) as anyone:  # the first manifest needs no role
            await asyncio.wait_for(anyone.set_manifest(json.dumps(doc)), T)
        async with CASClient(cas.url, root_pem, cert_pem=cert_pem(op_cert), key_pem=key_pem(op_key)) as ops:
            broker = await asyncio.wait_for(ops.get_secret("broker-tls"), T)
        nats = EmbeddedNatsServer(port=nats_port, jetstream=False,
                                  tls=ServerTLS(broker["cert_pem"], broker["key_pem"], root_pem))
        await asyncio.wait_for(asyncio.to_thread(nats.start), T)
        dep = Deployment(tmp_path, cas.url, root_file, nats.url, apps)
        yield dep
    finally:
        if dep is not None:
            for p in dep.procs:
                p.kill()
            for p in dep.procs:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(p.proc.wait(), 5)
        if nats is not None:
            await asyncio.to_thread(nats.stop)
        await asyncio.wait_for(cas.stop(), T)
