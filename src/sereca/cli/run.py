"""``sereca run MODULE:ATTR``: run a service attested, on the sealed bus.

Startup failures print one line and exit 2 (via sereca.cli.main); SIGTERM
or SIGINT drain in-flight handlers, run on_stop hooks, close the bus and
exit 0.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
from pathlib import Path

import typer
from rich.console import Console

from sereca.errors import SerecaError

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def _measure_env() -> list[Path]:
    raw = os.environ.get("SERECA_MEASURE", "")
    return [Path(p) for p in raw.split(os.pathsep) if p]


def run(
    target: str = typer.Argument(..., metavar="MODULE:ATTR", help="The service, e.g. detector:svc or detector/app.py:svc."),
    cas: str = typer.Option(None, "--cas", envvar="SERECA_CAS_URL", help="CAS URL (https://host:port)."),
    cas_root: Path = typer.Option(
        None, "--cas-root", envvar="SERECA_CAS_ROOT", help="Pinned CAS root certificate (PEM file)."
    ),
    nats: str = typer.Option(
        None, "--nats", envvar="SERECA_NATS_URL",
        help="NATS URL; tls://... uses mutual TLS with the activation certificate. Default: from the manifest.",
    ),
    nats_reconnect_s: float = typer.Option(
        60.0, "--nats-reconnect-s", envvar="SERECA_NATS_RECONNECT_S",
        help="Seconds to keep retrying a lost broker before the service exits with status 1.",
    ),
    tee: str = typer.Option(None, "--tee", envvar="SERECA_TEE", help="auto | sim | gramine | tsm (default auto)."),
    http_port: int = typer.Option(
        0, "--http-port", envvar="SERECA_HTTP_PORT", help="Port of /healthz /readyz /metrics /asyncapi.json; 0 = free."
    ),
    http_host: str = typer.Option("127.0.0.1", "--http-host", envvar="SERECA_HTTP_HOST", help="Address to serve HTTP on."),
    no_http: bool = typer.Option(False, "--no-http", help="Serve no HTTP at all."),
    http_tls: bool = typer.Option(
        False, "--http-tls", envvar="SERECA_HTTP_TLS",
        help="Serve HTTPS with the activation certificate; accept client certificates of the deployment CA.",
    ),
    port_file: Path = typer.Option(
        None, "--port-file", envvar="SERECA_PORT_FILE", help="Write the chosen HTTP port to this file."
    ),
    measure: list[Path] = typer.Option(
        None, "--measure",
        help="What the sim platform measures (repeatable; env SERECA_MEASURE, ':'-separated). "
        "Default: the directory of the service's module.",
    ),
    drain_timeout: float = typer.Option(
        10.0, "--drain-timeout", envvar="SERECA_DRAIN_TIMEOUT", help="Seconds in-flight handlers get on SIGTERM."
    ),
    log_level: str = typer.Option("info", "--log-level", envvar="SERECA_LOG_LEVEL", help="debug, info, warning."),
    instance: str = typer.Option(
        None, "--instance", envvar="SERECA_INSTANCE", help="Reclaim this instance id (e.g. detector-0) after a crash."
    ),
) -> None:
    """Run a service: detect the TEE, activate at the CAS, join the bus, serve until SIGTERM."""
    from sereca.service.launch import LaunchOptions, Started
    from sereca.service.launch import run as launch

    level = getattr(logging, log_level.upper(), None)
    if not isinstance(level, int):
        from sereca.errors import ConfigError

        raise ConfigError(f"--log-level {log_level!r}: use debug, info, warning or error")
    logging.basicConfig(level=level, format=LOG_FORMAT, stream=sys.stderr)
    # One line per CAS request is noise at info level.
    logging.getLogger("httpx").setLevel(max(level, logging.WARNING))
    err = Console(stderr=True)
    options = LaunchOptions(
        target=target,
        cas_url=cas,
        cas_root=cas_root,
        nats_url=nats,
        nats_reconnect_s=nats_reconnect_s,
        tee=tee,
        http_port=None if no_http else http_port,
        http_host=http_host,
        port_file=port_file,
        measure=tuple(measure or _measure_env()),
        drain_timeout=drain_timeout,
        instance=instance,
        http_tls=http_tls,
    )

    def ready(started: Started) -> None:
        rt, ctx = started.runtime, started.runtime.context
        if ctx.simulated:
            err.print(
                "[bold white on red] SIMULATION [/] no hardware TEE: this service is NOT protected against this host",
                highlight=False,
            )
        http = rt.http_url or "off"
        typer.echo(
            f"sereca: {started.service.name} ready: instance {ctx.instance_id}, platform {ctx.platform}"
            f"{' (SIMULATION)' if ctx.simulated else ''}, http {http}",
        )
        sys.stdout.flush()

    try:
        status = asyncio.run(launch(options, on_ready=ready))
    except SerecaError as exc:
        # One unwrapped line (rich would wrap it at the terminal width), exit 2.
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    if status:
        raise typer.Exit(status)
    logging.getLogger("sereca.service").info("exited cleanly")


def register(app: typer.Typer) -> None:
    """Add ``sereca run``."""
    app.command(name="run")(run)
