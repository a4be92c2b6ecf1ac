"""CAS activation throughput: start a CAS, activate N simulated services at once.

    python benchmarks/cas.py --json --services 200

Starts a CAS in a subprocess (``python -m sereca.cas``, simulated TEE, a
fresh state directory, a free port), sets a manifest with 10 services whose
instances get a shared key, a per-instance key, their certificate and a bus
grant, then runs N activations concurrently (each its own client and TLS
connection, as N separate services would).  Every activation is
acknowledged only after the CAS fsynced its state.  Prints one JSON line:
``activations_per_s`` (N / wall time), ``p50_ms`` and ``p99_ms`` (latency of
one activation: nonce, evidence, CSR, verification, issuance, commit).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from sereca.cas.client import CASClient
from sereca.cas.server import wait_ready
from sereca.tee import get_platform

SERVICE_KINDS = 10


def manifest(measurement: str, sim_root: str, per_service: int) -> str:
    services = "\n".join(
        f"""  svc-{i}:
    package: app
    max_instances: {per_service}
    env: {{SHARED: "{{{{ secrets.shared }}}}", MINE: "{{{{ secrets.mine }}}}", ME: "{{{{ service.instance }}}}"}}
    files: {{/run/cert.pem: "{{{{ service.cert }}}}"}}"""
        for i in range(SERVICE_KINDS)
    )
    publishers = ", ".join(f"svc-{i}" for i in range(SERVICE_KINDS))
    return f"""
packages:
  app: {{sim: {{measurements: ["{measurement}"]}}}}
services:
{services}
secrets:
  shared: {{type: symmetric-key, size: 256}}
  mine: {{type: symmetric-key, size: 256, shared: false}}
bus:
  addresses:
    sensors.>: {{publish: [{publishers}], consume: [{publishers}]}}
config: {{allow_simulation: true, sim_roots: ["{sim_root}"]}}
"""


async def run(n: int, concurrency: int) -> dict[str, object]:
    work = Path(tempfile.mkdtemp(prefix="sereca-bench-cas-"))
    env = {**os.environ, "SERECA_HOME": str(work / "home"), "SERECA_TEE": "sim"}
    os.environ["SERECA_HOME"] = env["SERECA_HOME"]
    app_dir = work / "app"
    app_dir.mkdir()
    (app_dir / "main.py").write_text("print('service')\n")
    platform = get_platform("sim", home=work / "home", measured_paths=[app_dir])
    state = work / "state"
    proc = subprocess.Popen(
        [sys.executable, "-m", "sereca.cas", "--state", str(state), "--listen", "127.0.0.1:0", "--log-level", "warning"],
        env=env,
    )
    try:
        for _ in range(300):
            if (state / "cas.url").exists() and (state / "root.pem").exists():
                break
            if proc.poll() is not None:
                raise SystemExit(f"the CAS exited with status {proc.returncode}")
            await asyncio.sleep(0.05)
        url = (state / "cas.url").read_text().strip()
        root = (state / "root.pem").read_text()
        await wait_ready(url, root)
        per_service = -(-n // SERVICE_KINDS)
        async with CASClient(url, root) as admin:
            await admin.set_manifest(manifest(platform.measurement().hex(), platform.root_fingerprint, per_service))
        sem = asyncio.Semaphore(concurrency)
        latencies: list[float] = []

        async def one(i: int) -> None:
            async with sem:
                async with CASClient(url, root) as c:
                    t0 = time.perf_counter()
                    a = await c.activate(f"svc-{i % SERVICE_KINDS}", platform)
                    latencies.append(time.perf_counter() - t0)
                    assert a.params["env"]["ME"] == a.instance_id

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        wall = time.perf_counter() - t0
        async with CASClient(url, root) as admin:
            status = await admin.status()
        assert status["activations"] == n, status
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    latencies.sort()
    return {
        "benchmark": "cas_activation",
        "services": n,
        "concurrency": concurrency,
        "activations_per_s": round(n / wall, 1),
        "p50_ms": round(statistics.median(latencies) * 1000, 1),
        "p99_ms": round(latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] * 1000, 1),
        "wall_s": round(wall, 3),
        "cpus": os.cpu_count(),
        "tee": "sim",
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--services", type=int, default=200, help="number of activations (default 200)")
    p.add_argument("--concurrency", type=int, default=0, help="at most this many at once (default: all)")
    p.add_argument("--json", action="store_true", help="print one JSON line")
    args = p.parse_args()
    result = asyncio.run(run(args.services, args.concurrency or args.services))
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>20}: {v}")


if __name__ == "__main__":
    main()
