"""The ``sereca`` CAS commands against a real CAS (CLI in a subprocess)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.asyncio


async def sereca(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from sereca.cli.main import main; main()", *args,
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode or 0, out.decode(), err.decode()


def _files(tmp_path: Path, **contents: str) -> dict[str, str]:
    paths = {}
    for name, text in contents.items():
        p = tmp_path / name
        p.write_text(text)
        paths[name] = str(p)
    return paths


async def test_operator_workflow(ready, sim, alice, bob, tmp_path) -> None:
    home = tmp_path / "cli-home"
    env = {**os.environ, "SERECA_HOME": str(home), "COLUMNS": "200"}
    f = _files(
        tmp_path,
        policy=json.dumps({"measurements": [sim.cas.measurement().hex()], "sim_roots": [sim.root]}),
        wrong=json.dumps({"measurements": ["00" * 32]}),
        alice_cert=alice.cert_pem, alice_key=alice.key_pem, bob_cert=bob.cert_pem, bob_key=bob.key_pem,
        bad="services:\n  detector: {package: detector-v2}\n",
    )
    code, out, err = await sereca("cas", "verify", "--url", ready.url, "--policy", f["wrong"], "--sim-root", sim.root, env=env)
    assert code == 1 and "MeasurementError" in err and "Traceback" not in err
    code, out, err = await sereca("cas", "verify", "--url", ready.url, "--policy", f["policy"], env=env)
    assert code == 0, err
    assert "SIMULATION" in out and (home / "cas" / "root.pem").read_text() == ready.root_pem

    code, out, err = await sereca("status", env=env)
    assert code == 0 and "mode: ready" in out and "SIMULATION" in out, err
    code, out, _ = await sereca("manifest", "get", env=env)
    assert code == 0 and "packages" in out
    code, out, _ = await sereca("cert", "root", env=env)
    assert out.strip() == ready.root_pem.strip()

    alice_opts = ["--cert", f["alice_cert"], "--key", f["alice_key"]]
    code, out, err = await sereca("secret", "get", "token", *alice_opts, env=env)
    assert code == 0 and out.strip() == "hunter2", err
    code, out, err = await sereca("secret", "set", "token", "--value", "x", "--cert", f["bob_cert"], "--key", f["bob_key"], env=env)
    assert code == 2 and "user 'bob' has no role allowing 'write'" in err and "Traceback" not in err

    code, out, err = await sereca("manifest", "set", f["bad"], *alice_opts, env=env)
    assert code == 1 and "services.detector.package: unknown package 'detector-v2'" in err

    export = tmp_path / "audit.jsonl"
    code, out, err = await sereca("cas", "audit", "--out", str(export), *alice_opts, env=env)
    assert code == 0, err
    code, out, err = await sereca("cas", "audit", "--verify", str(export), env=env)
    assert code == 0 and "verified" in out
    lines = export.read_text().splitlines()
    entry = json.loads(lines[1])
    entry["actor"] = "someone-else"
    lines[1] = json.dumps(entry)
    export.write_text("\n".join(lines) + "\n")
    code, out, err = await sereca("cas", "audit", "--verify", str(export), env=env)
    assert code == 1 and "entry 1" in err


async def test_offline_manifest_commands(tmp_path) -> None:
    env = {**os.environ, "SERECA_HOME": str(tmp_path)}
    code, out, _ = await sereca("manifest", "schema", env=env)
    assert code == 0 and json.loads(out)["title"] == "SERECA manifest"
    bad = tmp_path / "m.yaml"
    bad.write_text("packages: {p: {}}\nservices:\n  s: {package: q, max_instances: -1}\n")
    code, out, err = await sereca("manifest", "verify", str(bad), env=env)
    assert code == 1 and "Traceback" not in err
    for expected in ("packages.p:", "services.s.max_instances:", "services.s.package: unknown package 'q'"):
        assert expected in err
    code, out, err = await sereca("status", env=env)  # no URL, no pin: a clear message
    assert code == 2 and "no CAS URL" in err


async def test_cas_start_command(tmp_path, sim) -> None:
    env = {**os.environ, "SERECA_HOME": str(sim.home), "SERECA_TEE": "sim",
           "SERECA_MEASURED_PATHS": str(tmp_path / "cas-code")}
    state = tmp_path / "cli-state"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", "from sereca.cli.main import main; main()", "cas", "start", "--state", str(state),
        "--listen", "127.0.0.1:0", "--log-level", "warning", env=env,
    )
    try:
        for _ in range(400):
            if (state / "cas.url").exists():
                break
            await asyncio.sleep(0.05)
        from sereca.cas.server import wait_ready

        status = await wait_ready((state / "cas.url").read_text().strip(), (state / "root.pem").read_text())
        assert status["mode"] == "no-manifest"
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 20) == 0
