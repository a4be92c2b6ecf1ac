from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sereca.bus.nats_server import EmbeddedNatsServer

SERVICE = Path(__file__).with_name("service_proc.py")


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[EmbeddedNatsServer]:
    server = EmbeddedNatsServer(workdir=tmp_path / "nats").start()
    try:
        yield server
    finally:
        server.stop()


class Procs:
    """Service processes of one test; all killed at teardown."""

    def __init__(self, env: dict[str, str], tmp: Path) -> None:
        self.env = env
        self.tmp = tmp
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, *args: str, wait_ready: bool = True) -> subprocess.Popen[str]:
        p = subprocess.Popen([sys.executable, str(SERVICE), *args], env=self.env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
        self.procs.append(p)
        if wait_ready:
            line = _readline(p, 20)
            if line.strip() != "ready":
                p.kill()
                raise AssertionError(f"service {args} did not start: {line!r} {p.stderr.read() if p.stderr else ''}")
        return p

    def run(self, *args: str, timeout: float = 60) -> dict[str, Any]:
        p = subprocess.run([sys.executable, str(SERVICE), *args], env=self.env, capture_output=True, text=True,
                           timeout=timeout)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout.strip().splitlines()[-1])

    def stop_all(self) -> None:
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(5)


def _readline(p: subprocess.Popen[str], timeout: float) -> str:
    import selectors

    sel = selectors.DefaultSelector()
    assert p.stdout is not None
    sel.register(p.stdout, selectors.EVENT_READ)
    try:
        if not sel.select(timeout):
            return "<timeout>"
        return p.stdout.readline()
    finally:
        sel.close()


@pytest.fixture
def procs(nats_server: EmbeddedNatsServer, tmp_path: Path) -> Iterator[Procs]:
    env = dict(os.environ, BUS_URL=nats_server.url, BUS_ROOT=os.urandom(32).hex(),
               PYTHONPATH=os.pathsep.join([str(Path(__file__).resolve().parents[3] / "src"),
                                           os.environ.get("PYTHONPATH", "")]))
    ps = Procs(env, tmp_path)
    try:
        yield ps
    finally:
        ps.stop_all()


def read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def wait_lines(path: Path, cond: Callable[[list[dict[str, Any]]], bool], timeout: float = 20.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        lines = read_lines(path)
        if cond(lines):
            return lines
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s; {len(lines)} lines in {path.name}")
        time.sleep(0.05)
