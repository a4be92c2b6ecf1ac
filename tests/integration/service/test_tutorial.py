"""docs/services.md's tutorial, followed to the letter: its files, its manifest, its commands.

Only the fixed ports of the document are replaced by free ones.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sereca.bus.nats_server import find_nats_server, free_port

pytestmark = pytest.mark.slow

DOC = Path(__file__).resolve().parents[3] / "docs" / "services.md"
T = 20.0


def block_after(doc: str, label: str, lang: str) -> str:
    m = re.search(re.escape(label) + r"\s*\n\s*```" + lang + r"\n(.*?)```", doc, re.S)
    assert m, f"docs/services.md has no {lang} block after {label!r}"
    return m.group(1)


def wait_for(what: str, check: Callable[[], bool], procs: list[subprocess.Popen[bytes]], logs: list[Path]) -> None:
    end = time.monotonic() + T
    while not check():
        dead = [p for p in procs if p.poll() is not None]
        if dead or time.monotonic() > end:
            tails = "\n".join(f"--- {log}\n{log.read_text(errors='replace')[-1500:]}" for log in logs if log.exists())
            raise AssertionError(f"{what}: not seen (exited: {[p.args for p in dead]})\n{tails}")
        time.sleep(0.05)


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for p in started:
        if p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                p.kill()
        with contextlib.suppress(Exception):
            p.wait(5)


def test_tutorial(tmp_path: Path, procs: list[subprocess.Popen[bytes]]) -> None:
    doc = DOC.read_text()
    work = tmp_path / "water"
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SERECA_")}
    env.update(SERECA_HOME=str(work / ".sereca"), PYTHONUNBUFFERED="1")
    sereca = [sys.executable, "-m", "sereca.cli.main"]

    def run(*args: str) -> str:
        done = subprocess.run([*sereca, *args], cwd=work, env=env, capture_output=True, text=True, timeout=T)
        assert done.returncode == 0, f"sereca {' '.join(args)}:\n{done.stderr}"
        return done.stdout

    def spawn(name: str, *args: str) -> tuple[subprocess.Popen[bytes], Path]:
        log = work / f"{name}.log"
        with open(log, "wb") as out:
            p = subprocess.Popen(list(args), cwd=work, env=env, stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL)
        procs.append(p)
        return p, log

    # 1-3: workspace, the two services, their measurements
    fingerprint = json.loads(run("tee", "info", "--json"))["sim_root_fingerprint"]
    for name in ("detector", "sensor"):
        (work / name).mkdir()
        (work / name / "app.py").write_text(block_after(doc, f"`{name}/app.py`:", "python"))
    detector_m = run("measure", "detector").strip()
    sensor_m = run("measure", "sensor").strip()

    # 4: the manifest, placeholders filled in as the text says
    nats_port, cas_port = free_port(), free_port()
    manifest = (
        block_after(doc, "measurements and your simulated root's fingerprint:", "yaml")
        .replace("<output of: sereca measure detector>", detector_m)
        .replace("<output of: sereca measure sensor>", sensor_m)
        .replace("<sim_root_fingerprint from: sereca tee info>", fingerprint)
        .replace("nats://127.0.0.1:4222", f"nats://127.0.0.1:{nats_port}")
    )
    assert "<" not in manifest, manifest
    (work / "manifest.yaml").write_text(manifest)
    run("manifest", "verify", "manifest.yaml")

    # 5: broker and CAS
    assert "nats-server -a 127.0.0.1 -p 4222" in doc and "sereca cas start --state cas-state --listen 127.0.0.1:8443" in doc
    nats, nats_log = spawn("nats", find_nats_server(), "-a", "127.0.0.1", "-p", str(nats_port))
    cas, cas_log = spawn("cas", *sereca, "cas", "start", "--state", "cas-state", "--listen", f"127.0.0.1:{cas_port}")
    wait_for("CAS URL file", lambda: (work / "cas-state" / "cas.url").exists(), [nats, cas], [nats_log, cas_log])
    run("cas", "verify", "--url", f"https://127.0.0.1:{cas_port}", "--sim-root", fingerprint)
    run("manifest", "set", "manifest.yaml")

    # 6: the services
    assert "sereca run detector/app.py:svc --http-port 8081" in doc
    det, det_log = spawn("detector", *sereca, "run", "detector/app.py:svc", "--http-port", "0")
    sen, sen_log = spawn("sensor", *sereca, "run", "sensor/app.py:svc", "--http-port", "0")
    logs = [det_log, sen_log, cas_log]
    wait_for("detector ready", lambda: "sereca: detector ready: instance detector-0" in det_log.read_text(), procs, logs)
    wait_for("verdicts", lambda: len(re.findall(r"bar -> leak=(True|False)", sen_log.read_text())) >= 2, procs, logs)
    wait_for("readings", lambda: "reading from s1:" in det_log.read_text(), procs, logs)
    for p in (sen, det):
        p.send_signal(signal.SIGTERM)
    for p, log in ((sen, sen_log), (det, det_log)):
        assert p.wait(T) == 0, log.read_text()
        text = log.read_text()
        assert "SIMULATION" in text and "Traceback" not in text

    # The edited detector is refused, in one line.
    with open(work / "detector" / "app.py", "a") as f:
        f.write("# a comment\n")
    done = subprocess.run([*sereca, "run", "detector/app.py:svc"], cwd=work, env=env, capture_output=True,
                          text=True, timeout=T)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.startswith("error: activation of 'detector'") and "MeasurementError" in done.stderr
    assert done.stderr.count("\n") == 1

    for p in (cas, nats):
        p.send_signal(signal.SIGTERM)
        p.wait(T)
