"""``sereca measure``, ``sereca evidence show|verify`` and ``sereca tee info``.

Exit codes of ``evidence verify``: 0 verified, 1 rejected, 2 unusable
arguments.  With ``--json`` the last line printed is one JSON object.
Without ``--policy`` the verifier checks signatures and collateral and
accepts the TCB statuses of a patched platform (see docs/tee.md).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from sereca.errors import AttestationError, ConfigError, SerecaError

TEE_CHOICES = ("sgx", "tdx", "sev-snp", "sim")


def _fail(message: str, code: int = 2, as_json: bool = False, extra: dict[str, Any] | None = None) -> NoReturn:
    Console(stderr=True).print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    if as_json:
        print(json.dumps(_verdict(False, message, **(extra or {})), sort_keys=True))
    raise typer.Exit(code)


def _verdict(verified: bool, error: str | None, **fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"verified": verified, "error": error, "tee": None, "tcb_status": None,
                            "advisories": [], "measurement": None, "report_data": None}
    return {**base, **fields}


def _read_file(path: Path, what: str, as_json: bool = False) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        _fail(f"cannot read {what} {path}: {exc.strerror or exc}", 2, as_json)


def measure(paths: list[Path] = typer.Argument(..., help="Files and directories to measure.")) -> None:
    """Print the canonical measurement (hex) of files/trees."""
    from sereca.tee import measure_paths

    try:
        typer.echo(measure_paths(paths).hex())
    except SerecaError as exc:
        _fail(str(exc))


def _console() -> Console:
    # Piped output keeps whole hex values on one line, so they can be copied and grepped.
    return Console() if sys.stdout.isatty() else Console(width=240)


def _table(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title, show_header=True, header_style="bold")
    table.add_column("field")
    table.add_column("value", overflow="fold")
    for k, v in rows:
        table.add_row(k, v)
    return table


def show(
    file: Path = typer.Argument(..., help="Evidence file (quote, SNP report as binary or hex, simulated evidence)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Print the parsed fields of evidence (NOT verified)."""
    from sereca.tee.describe import describe_evidence

    data = _read_file(file, "evidence file")
    try:
        kind, rows = describe_evidence(data)
    except SerecaError as exc:
        _fail(str(exc), 1)
    if as_json:
        print(json.dumps({"tee": kind, "verified": False, **{k.replace(" ", "_"): v for k, v in rows}}))
        return
    console = _console()
    if kind == "sim":
        console.print("[bold yellow on red] SIMULATION [/] simulated evidence: no hardware root of trust")
    console.print(_table(f"{kind} evidence (parsed, not verified)", rows))


def verify_cmd(
    file: Path = typer.Argument(..., help="Evidence file."),
    tee: str | None = typer.Option(None, "--type", help="sgx | tdx | sev-snp | sim (default: detected)."),
    collateral: Path | None = typer.Option(None, "--collateral", help="DCAP collateral JSON (SGX/TDX)."),
    pccs: str | None = typer.Option(None, "--pccs", help="Fetch SGX/TDX collateral from this PCCS URL (cached; default $SERECA_PCCS_URL)."),
    vcek: Path | None = typer.Option(None, "--vcek", help="VCEK certificate, DER or PEM (SEV-SNP)."),
    chain: Path | None = typer.Option(None, "--chain", help="ASK then ARK, PEM (SEV-SNP)."),
    at: float | None = typer.Option(None, "--at", help="Verification time (Unix seconds; default now)."),
    policy_file: Path | None = typer.Option(None, "--policy", help="Policy file (YAML/JSON with Policy fields)."),
    sim_roots: list[str] = typer.Option([], "--sim-root", help="Pinned simulated root fingerprint (repeatable)."),
    report_data: str | None = typer.Option(None, "--report-data", help="Expected report data (hex, zero-padded to 64 bytes)."),
    as_json: bool = typer.Option(False, "--json", help="Last line: one JSON object with the verdict."),
) -> None:
    """Verify evidence: exit 0 verified, 1 rejected, 2 unusable arguments."""
    from sereca.tee import Policy, verify
    from sereca.tee.collateral import Pccs, load_collateral
    from sereca.tee.home import sereca_home
    from sereca.tee.detect import detect_type, normalize_evidence

    if tee is not None and tee not in TEE_CHOICES:
        _fail(f"--type must be one of {', '.join(TEE_CHOICES)}, not {tee!r}", 2, as_json)
    if collateral is not None and pccs is not None:
        _fail("give either --collateral or --pccs, not both", 2, as_json)
    if (vcek is None) != (chain is None):
        _fail("--vcek and --chain go together (the VCEK and its ASK+ARK chain)", 2, as_json)
    expected: bytes | None = None
    if report_data is not None:
        try:
            raw_rd = bytes.fromhex(report_data.removeprefix("0x"))
        except ValueError:
            _fail("--report-data must be hex", 2, as_json)
        if len(raw_rd) > 64:
            _fail("--report-data is longer than 64 bytes", 2, as_json)
        expected = raw_rd.ljust(64, b"\x00")
    evidence = _read_file(file, "evidence file", as_json)
    try:
        policy = Policy.from_file(policy_file) if policy_file else Policy.patched_platform()
        coll: Any = load_collateral(collateral) if collateral is not None else None
        if pccs is not None:
            coll = Pccs(pccs, sereca_home() / "cache" / "collateral")
        vcek_bytes = _read_file(vcek, "VCEK", as_json) if vcek else None
        chain_bytes = _read_file(chain, "chain", as_json) if chain else None
    except ConfigError as exc:
        _fail(str(exc), 2, as_json)
    except SerecaError as exc:  # e.g. structurally broken collateral
        _fail(str(exc), 1, as_json)
    detected: str | None = None
    try:
        detected = detect_type(normalize_evidence(evidence))
    except SerecaError:
        pass
    try:
        claims = verify(evidence, expected, policy, collateral=coll, now=at, sim_roots=sim_roots,
                        vcek=vcek_bytes, chain=chain_bytes, tee=tee)
    except AttestationError as exc:
        check = getattr(exc, "check", "evidence")
        Console(stderr=True).print(f"[bold red]REJECTED[/] ({check}): {exc}", highlight=False)
        if as_json:
            print(json.dumps(_verdict(False, str(exc), tee=detected, check=check, simulated=detected == "sim"),
                             sort_keys=True))
        raise typer.Exit(1) from None
    except ConfigError as exc:
        _fail(str(exc), 2, as_json, {"tee": detected})
    except SerecaError as exc:
        _fail(str(exc), 1, as_json, {"tee": detected})
    result = {"verified": True, "error": None, **claims.to_dict()}
    if as_json:
        print(json.dumps(result, sort_keys=True))
        return
    console = _console()
    if claims.simulated:
        console.print("[bold yellow on red] SIMULATION [/] verified against a pinned SIMULATED root: "
                      "this proves nothing about hardware")
    rows = [(k, ", ".join(v) if isinstance(v, list) else ("" if v is None else str(v))) for k, v in result.items()]
    console.print(_table(f"{claims.tee} evidence: VERIFIED", rows))


def tee_info(as_json: bool = typer.Option(False, "--json", help="Print one JSON object.")) -> None:
    """Say which TEE platform is detected here and why; print the local simulated root."""
    import os

    from sereca.tee import sim_root_fingerprint
    from sereca.tee.home import sereca_home
    from sereca.tee.platforms import DEFAULT_ATTESTATION_ROOT, DEFAULT_TSM_ROOT, detect_platform

    att_root = Path(os.environ.get("SERECA_ATTESTATION_ROOT") or DEFAULT_ATTESTATION_ROOT)
    tsm_root = Path(os.environ.get("SERECA_TSM_ROOT") or DEFAULT_TSM_ROOT)
    from sereca.tee.platforms import KINDS

    setting = os.environ.get("SERECA_TEE") or "auto"
    if setting not in KINDS:
        _fail(f"SERECA_TEE={setting!r} is not one of {', '.join(KINDS)}")
    detection = detect_platform(att_root, tsm_root)
    chosen = detection.kind if setting == "auto" else setting
    try:
        fingerprint = sim_root_fingerprint()
    except SerecaError as exc:
        _fail(str(exc))
    info = {
        "platform": chosen,
        "setting": f"SERECA_TEE={setting}",
        "detected": detection.kind,
        "reason": detection.reason,
        "simulated": chosen == "sim",
        "sim_root_fingerprint": fingerprint,
        "sim_keys": str(sereca_home() / "sim"),
    }
    if as_json:
        print(json.dumps(info, sort_keys=True))
        return
    console = _console()
    if chosen == "sim":
        console.print("[bold yellow on red] SIMULATION [/] no hardware TEE in use: protects nothing against this host")
    console.print(_table("TEE platform", [(k, str(v)) for k, v in info.items()]))


def register(app: typer.Typer) -> None:
    """Add this area's commands to the top-level app."""
    app.command("measure")(measure)
    evidence_app = typer.Typer(help="Show and verify attestation evidence.", no_args_is_help=True)
    evidence_app.command("show")(show)
    evidence_app.command("verify")(verify_cmd)
    app.add_typer(evidence_app, name="evidence")
    tee_app = typer.Typer(help="The local TEE platform.", no_args_is_help=True)
    tee_app.command("info")(tee_info)
    app.add_typer(tee_app, name="tee")


if __name__ == "__main__":  # pragma: no cover
    sys.exit("use the `sereca` command")
