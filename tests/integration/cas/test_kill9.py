"""kill -9 of the CAS while services activate loses no acknowledged activation or secret."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from sereca.cas.client import CASClient
from sereca.errors import SerecaError

pytestmark = [pytest.mark.asyncio, pytest.mark.slow]


async def _start(state: Path, env: dict[str, str]) -> tuple[asyncio.subprocess.Process, str, str]:
    url_file = state / "cas.url"
    if url_file.exists():
        url_file.unlink()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sereca.cas", "--state", str(state), "--listen", "127.0.0.1:0",
        "--log-level", "warning", env=env, stderr=asyncio.subprocess.PIPE,
    )
    for _ in range(400):
        if url_file.exists() and (state / "root.pem").exists():
            return proc, url_file.read_text().strip(), (state / "root.pem").read_text()
        if proc.returncode is not None:
            err = await proc.stderr.read()  # type: ignore[union-attr]
            raise AssertionError(f"CAS exited: {err.decode()}")
        await asyncio.sleep(0.05)
    proc.kill()
    raise AssertionError("CAS did not start")


async def test_kill_9_loses_nothing_acknowledged(tmp_path, sim, manifest, alice) -> None:
    env = {
        **os.environ,
        "SERECA_HOME": str(sim.home),
        "SERECA_TEE": "sim",
        "SERECA_MEASURED_PATHS": str(tmp_path / "cas-code"),
    }
    state = tmp_path / "state"
    manifest["services"]["detector"]["max_instances"] = 400
    proc, url, root = await _start(state, env)
    acked: dict[str, str] = {}
    try:
        async with CASClient(url, root, timeout=10) as c:
            await c.set_manifest(json.dumps(manifest))
        async with CASClient(url, root, cert_pem=alice.cert_pem, key_pem=alice.key_pem, timeout=10) as c:
            await c.set_secret("token", b"before-the-crash")

        async def one(i: int) -> None:
            await asyncio.sleep(i * 0.01)  # a stream of services, not one burst
            try:
                async with CASClient(url, root, timeout=10) as c:
                    a = await c.activate("detector", sim.app)
                acked[a.instance_id] = format(a.certificate.serial_number, "x")
            except (SerecaError, OSError):
                pass  # cut off by the kill: not acknowledged

        tasks = [asyncio.ensure_future(one(i)) for i in range(300)]
        for _ in range(400):  # kill -9 in the middle of the stream
            if len(acked) >= 20:
                break
            await asyncio.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        await proc.wait()
        await asyncio.wait_for(asyncio.gather(*tasks), 30)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert 20 <= len(acked) < 300, f"the kill did not land mid-stream ({len(acked)} acknowledged)"

    proc, url, root2 = await _start(state, env)
    try:
        assert root2 == root
        async with CASClient(url, root, cert_pem=alice.cert_pem, key_pem=alice.key_pem, timeout=10) as c:
            status = await c.status()
            assert status["activations"] >= len(acked)
            assert (await c.get_secret("token"))["value"] == "YmVmb3JlLXRoZS1jcmFzaA=="
            log = await c.audit()
        activations = {
            e["detail"]["instance"]: e["detail"]["serial"] for e in log["entries"] if e["event"] == "activation"
            and e["decision"] == "allow"
        }
        for instance, serial in acked.items():
            assert activations.get(instance) == serial, f"acknowledged activation {instance} lost"
        # and the CAS keeps working
        async with CASClient(url, root, timeout=10) as c:
            await c.activate("gateway", sim.app)
    finally:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except asyncio.TimeoutError:
            proc.kill()
            await proc.wait()
