"""``sereca demo water``: the water-network monitor on a private local deployment.

Starts NATS and a CAS (simulated TEE admitted), sets the application's
manifest, runs the four services as ``sereca run`` processes, shows their
status, the dashboard URL and live counters, replays the scenario's leaks,
and stops everything on Ctrl-C / SIGTERM or after ``--for SECONDS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from enum import Enum
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

PROGRESS_EVERY_TTY = 2.0
PROGRESS_EVERY_PIPE = 5.0


def _sim_time(t: float | None) -> str:
    if t is None:
        return "-"
    d, rest = divmod(int(t), 86400)
    return f"d{d} {rest // 3600:02d}:{rest % 3600 // 60:02d}"


class Schedule(str, Enum):
    """The leak-detector's ``WATER_DETECTOR_SCHEDULE`` (docs/water.md, "Scheduling").

    Spelled out, not built from ``config.DETECTOR_SCHEDULES``: the CLI imports no water code
    until a command runs. ``test_detector_schedule_is_one_of_two_names`` keeps them equal.
    """

    idle = "idle"
    steps = "steps"


class _Reporter:
    """Human output of a demo run (stderr when --json keeps stdout for the JSON line)."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.started = time.monotonic()
        self.seen_alerts: dict[str, tuple[str, int]] = {}
        self.leaks_announced: set[int] = set()
        self.first_alert_s: float | None = None

    def line(self, text: str) -> None:
        self.console.print(f"[dim]{time.monotonic() - self.started:6.1f}s[/] {text}", highlight=False)

    def event(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "manifest":
            self.line(f"CAS up; manifest set for {', '.join(data['services'])} ({data['network']})")
            broker = data.get("broker")
            if broker:
                self.line(f"NATS up at {broker['url']}: mutual TLS (client certificates from the deployment CA), "
                          f"permissions from the manifest for {', '.join(broker['permissions'])}")
        elif kind == "service":
            self.line(f"[green]attested[/] {data['name']}: instance {data['instance']} (SIMULATED), pid {data['pid']}")

    def simulation_notice(self) -> None:
        self.console.print(
            "[bold white on red] SIMULATION [/] [bold red]no TEE hardware: every service runs on the simulated "
            "platform. Nothing is protected against this host; never use it for real data.[/]", highlight=False)

    def status(self, demo: Any) -> None:
        table = Table(title="water services", title_justify="left")
        for col in ("service", "instance", "attested", "pid", "URL"):
            table.add_column(col)
        for row in demo.status():
            attested = "[red]yes (SIMULATED)[/]" if row["simulated"] else ("yes" if row["attested"] else "no")
            table.add_row(row["name"], row["instance"] or "-", attested, str(row["pid"]), row["url"] or "-")
        self.console.print(table)
        self.console.print(f"[bold]dashboard:[/] {demo.dashboard_url}", highlight=False, soft_wrap=True)

    def progress(self, demo: Any, snap: Any) -> None:
        scenario = demo.scenario
        for i, leak in enumerate(scenario.leaks if scenario else []):
            if i not in self.leaks_announced and snap.sim_time is not None and snap.sim_time >= leak.start:
                self.leaks_announced.add(i)
                self.line(f"[yellow]leak injected[/] on pipe {leak.pipe} ({leak.type}, {leak.diameter * 1000:g} mm) "
                          f"at sim {_sim_time(leak.start)}")
        for alert in reversed(snap.alerts):
            key = (alert.get("level", ""), int(alert.get("count", 1)))
            if self.seen_alerts.get(alert["id"]) != key:
                if self.first_alert_s is None:
                    self.first_alert_s = time.monotonic() - self.started
                verb = "ALERT" if alert["id"] not in self.seen_alerts else "alert updated"
                self.seen_alerts[alert["id"]] = key
                colour = "red" if alert.get("level") == "critical" else "yellow"
                self.line(f"[bold {colour}]{verb}[/] {alert.get('level')}: pipe {alert.get('pipe')} "
                          f"(node {alert.get('node')}), sim {_sim_time(alert.get('time'))}, "
                          f"{alert.get('count', 1)} alarm(s), score {float(alert.get('score', 0)):.2f}")

    def counters(self, snap: Any) -> None:
        critical = sum(1 for a in snap.alerts if a.get("level") == "critical")
        phase = "warming up" if snap.warming_up else ("replay done" if snap.replay_done else "detecting")
        self.line(f"sim {_sim_time(snap.sim_time)}  readings {snap.readings:,} (detector {snap.readings_detected:,})"
                  f"  leaks active {snap.leaks_active}  alerts {len(snap.alerts)} ({critical} critical)  [{phase}]")


async def _run(options: Any, seconds: float | None, reporter: _Reporter, as_json: bool) -> dict[str, Any]:
    from sereca.apps.water.demo import WaterDemo

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    demo = WaterDemo(options, on_event=reporter.event)
    reporter.simulation_notice()
    result: dict[str, Any] = {}
    snap = None
    interrupted = False
    try:
        starting = asyncio.create_task(demo.start())
        stopper = asyncio.create_task(stop.wait())
        done, _ = await asyncio.wait({starting, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if starting not in done:
            interrupted = True
            reporter.line("interrupted during startup: stopping")
            starting.cancel()
            with contextlib.suppress(BaseException):
                await starting
            return {}
        stopper.cancel()
        starting.result()
        startup_s = time.monotonic() - reporter.started
        reporter.line(f"all services ready in {startup_s:.1f} s")
        reporter.status(demo)
        reporter.simulation_notice()
        every = PROGRESS_EVERY_TTY if reporter.console.is_terminal else PROGRESS_EVERY_PIPE
        # --for counts from the command's start: startup is part of the time asked for.
        end = None if seconds is None else loop.time() + seconds - (time.monotonic() - reporter.started)
        last_counters = 0.0
        while not stop.is_set():
            timeout = 1.0 if end is None else max(0.0, min(1.0, end - loop.time()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout)
            snap = await demo.poll()
            reporter.progress(demo, snap)
            if loop.time() - last_counters >= every:
                last_counters = loop.time()
                reporter.counters(snap)
            if failed := demo.failed():
                names = ", ".join(s.name for s in failed)
                reporter.console.print(f"[bold red]error:[/] service(s) {names} stopped unexpectedly; last log lines:\n"
                                       + failed[0].log_tail(), highlight=False)
                result["failed"] = [s.name for s in failed]
                break
            if end is not None and loop.time() >= end:
                break
        interrupted = stop.is_set()
        status = demo.status()
        result.update({
            "services": status,
            "readings": snap.readings if snap else 0,
            "readings_detected": snap.readings_detected if snap else 0,
            "sim_time_s": snap.sim_time if snap else None,
            "alarms": snap.alarms if snap else 0,
            "alerts": snap.alerts if snap else [],
            "alert_count": len(snap.alerts) if snap else 0,
            "simulated_tee": all(row["simulated"] for row in status) if status else True,
            "network": demo.network_name,
            "scenario": demo.scenario.name if demo.scenario else None,
            "leaks": [leak.model_dump(mode="json") for leak in (demo.scenario.leaks if demo.scenario else [])],
            "speed": options.speed,
            "dashboard_url": demo.dashboard_url,
            "broker": demo.broker_info(),
            "startup_s": round(startup_s, 2),
            "first_alert_s": round(reporter.first_alert_s, 2) if reporter.first_alert_s is not None else None,
        })
    finally:
        reporter.line("stopping: services drain, then CAS and NATS stop" + (" (signal)" if interrupted else ""))
        await demo.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.remove_signal_handler(sig)
    codes = demo.exit_codes()
    result["exit_codes"] = codes
    result["run_s"] = round(time.monotonic() - reporter.started, 2)
    clean = all(c == 0 for c in codes.values())
    reporter.line(("stopped cleanly: " if clean else "[red]stopped, not all cleanly:[/] ")
                  + ", ".join(f"{n} exit {c}" for n, c in codes.items()) + "; temp dir removed")
    return result


def water(
    seconds: float = typer.Option(
        None, "--for", min=0, help="Run this many seconds (startup included), then stop (default: until Ctrl-C)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object as the last line of stdout."),
    speed: float = typer.Option(3600.0, "--speed", min=0, help="Simulated seconds per real second (0: as fast as possible)."),
    scenario: Path = typer.Option(None, "--scenario", exists=True, dir_okay=False, help="Scenario YAML (default: the shipped one)."),
    network: str = typer.Option(None, "--network", help="Network name or INP file (replaces the scenario's)."),
    dashboard_port: int = typer.Option(0, "--dashboard-port", min=0, max=65535, help="Dashboard port (0: a free one)."),
    host: str = typer.Option("127.0.0.1", "--host", help="Address the dashboard listens on."),
    schedule: Schedule = typer.Option(
        Schedule.idle, "--schedule",
        help="Leak detector: idle = localisation work between steps too; steps = per step only, as `water detect`."),
) -> None:
    """Run the water-network monitor: NATS, CAS, four attested services, a dashboard (SIMULATED TEE)."""
    from sereca.apps.water.demo import DemoOptions
    from sereca.errors import SerecaError

    console = Console(stderr=as_json)
    if not console.is_terminal:
        console = Console(stderr=as_json, width=160)  # logs and pipes: no wrapping at 80 columns
    options = DemoOptions(scenario=scenario, network=network, speed=speed, host=host, dashboard_port=dashboard_port,
                          detector_schedule=schedule.value)
    reporter = _Reporter(console)
    try:
        result = asyncio.run(_run(options, seconds, reporter, as_json))
    except SerecaError as exc:
        # One line says what failed; a service's log tail, if any, follows it.
        first, _, rest = str(exc).partition("\n")
        typer.echo(f"error: {first}", err=True)
        if rest:
            typer.echo("\n".join(f"  | {line}" for line in rest.splitlines()), err=True)
        raise typer.Exit(2) from None
    if as_json and result:
        sys.stdout.write(json.dumps(result, separators=(",", ":"), default=str) + "\n")
        sys.stdout.flush()
    if result.get("failed"):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add ``sereca demo water``."""
    demo = typer.Typer(help="Demo applications on a private local deployment (simulated TEE).",
                       no_args_is_help=True)
    demo.command(name="water")(water)
    app.add_typer(demo, name="demo")
