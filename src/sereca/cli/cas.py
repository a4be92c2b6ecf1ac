"""CAS commands: ``sereca cas start|verify|audit|broker-config``, ``sereca manifest set|get|verify|schema|min-svn``,
``sereca status``, ``sereca secret set|get``, ``sereca recover``, ``sereca cert root``.

Connection settings (flags or environment):

* ``--url`` / ``$SERECA_CAS_URL`` (default: the URL saved by ``sereca cas verify``)
* ``--root`` / ``$SERECA_CAS_ROOT``: the pinned root certificate (default: the
  one ``sereca cas verify`` saved in ``$SERECA_HOME/cas/root.pem``)
* ``--cert`` / ``--key`` (``$SERECA_USER_CERT`` / ``$SERECA_USER_KEY``): the
  user's certificate and key, for commands that need a role.

Exit codes: 0 success, 1 rejected (attestation failed, invalid manifest,
audit log broken), 2 unusable input or any other error.
"""

from __future__ import annotations

import asyncio
import base64
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from sereca.errors import AttestationError, IntegrityError, SerecaError

T = TypeVar("T")

UrlOpt = typer.Option(None, "--url", envvar="SERECA_CAS_URL", help="CAS URL (default: the one `cas verify` saved).")
RootOpt = typer.Option(None, "--root", envvar="SERECA_CAS_ROOT", help="Pinned CAS root certificate (PEM file).")
CertOpt = typer.Option(None, "--cert", envvar="SERECA_USER_CERT", help="Your user certificate (PEM).")
KeyOpt = typer.Option(None, "--key", envvar="SERECA_USER_KEY", help="Your user private key (PEM).")
InsecureOpt = typer.Option(False, "--insecure", help="Do not check the CAS's certificate (development only).")


def _fail(message: str, code: int = 2) -> NoReturn:
    Console(stderr=True, soft_wrap=True).print(f"[bold red]error:[/] {message}", highlight=False, markup=True)
    raise typer.Exit(code)


def _pin_dir() -> Path:
    from sereca.tee.home import sereca_home

    return sereca_home(None) / "cas"


def _read(path: Path, what: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        _fail(f"cannot read {what} {path}: {exc.strerror or exc}")


def _url(url: str | None) -> str:
    if url:
        return url
    saved = _pin_dir() / "url"
    if saved.exists():
        return saved.read_text().strip()
    _fail("no CAS URL: pass --url, set $SERECA_CAS_URL, or run `sereca cas verify --url URL --policy P`")


def _root(root: Path | None, insecure: bool) -> str | None:
    if insecure:
        Console(stderr=True).print("[bold yellow]warning:[/] --insecure: the CAS's identity is NOT checked")
        return None
    path = root or _pin_dir() / "root.pem"
    if not path.exists():
        _fail(
            f"no pinned CAS root ({path} does not exist): run `sereca cas verify --url URL --policy P` "
            "or pass --root FILE"
        )
    return _read(path, "root certificate").decode()


def _run(make: Callable[[], Awaitable[T]], rejected: tuple[type[BaseException], ...] = ()) -> T:
    try:
        return asyncio.run(make())  # type: ignore[arg-type]
    except rejected as exc:
        _fail(str(exc), 1)
    except SerecaError as exc:
        _fail(str(exc), 2)


def _client(url: str | None, root: Path | None, insecure: bool, cert: Path | None = None, key: Path | None = None):  # type: ignore[no-untyped-def]
    from sereca.cas.client import CASClient

    return CASClient(
        _url(url),
        _root(root, insecure),
        insecure=insecure,
        cert_pem=_read(cert, "certificate") if cert else None,
        key_pem=_read(key, "key") if key else None,
    )


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, sort_keys=True))


def _load_policy(path: Path | None, sim_roots: list[str]) -> tuple[Any, list[str]]:
    import yaml

    from sereca.tee import Policy

    if path is None:
        return Policy(), sim_roots
    try:
        data = yaml.safe_load(_read(path, "policy")) or {}
    except yaml.YAMLError as exc:
        _fail(f"policy file {path} is not valid YAML/JSON: {exc}")
    if not isinstance(data, dict):
        _fail(f"policy file {path} must hold a mapping of policy fields")
    extra = data.pop("sim_roots", []) or []
    return Policy.from_mapping(data, source=str(path)), [*sim_roots, *extra]


# ------------------------------------------------------------------------------ sereca cas


def cas_start(
    state: Path = typer.Option(Path("cas-state"), "--state", envvar="SERECA_CAS_STATE", help="State directory."),
    listen: str = typer.Option("127.0.0.1:8443", "--listen", envvar="SERECA_CAS_LISTEN", help="HOST:PORT (0 = free port)."),
    san: list[str] = typer.Option([], "--san", help="Extra host name or IP for the CAS's TLS certificate."),
    log_level: str = typer.Option("info", "--log-level"),
) -> None:
    """Run the CAS (HTTPS; resumes its sealed state, or starts in recovery mode)."""
    from sereca.cas.server import run

    try:
        run(state, listen, sans=san, log_level=log_level)
    except SerecaError as exc:
        _fail(str(exc))


def cas_verify(
    url: str = typer.Option(..., "--url", envvar="SERECA_CAS_URL", help="CAS URL."),
    policy: Path = typer.Option(None, "--policy", help="Policy file (YAML/JSON: Policy fields, optional sim_roots)."),
    sim_root: list[str] = typer.Option([], "--sim-root", help="Accept simulated evidence under this root (hex)."),
    out: Path = typer.Option(None, "--out", help="Where to pin the root (default $SERECA_HOME/cas/root.pem)."),
) -> None:
    """Attest the CAS, then pin its root certificate locally."""
    from sereca.cas.client import verify_cas

    pol, roots = _load_policy(policy, sim_root)
    root, claims = _run(lambda: verify_cas(url, pol, sim_roots=roots), rejected=(AttestationError,))
    target = out or _pin_dir() / "root.pem"
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(root)
    if out is None:
        (_pin_dir() / "url").write_text(url + "\n")
    console = Console()
    if claims.simulated:
        console.print("[bold red]SIMULATION[/]: the CAS runs in a simulated TEE; this protects nothing against its host")
    console.print(f"CAS at {url} attested ({claims.tee}, measurement {claims.measurement.hex()})")
    console.print(f"root certificate pinned in {target}")


def cas_audit(
    url: str = UrlOpt,
    root: Path = RootOpt,
    cert: Path = CertOpt,
    key: Path = KeyOpt,
    insecure: bool = InsecureOpt,
    out: Path = typer.Option(None, "--out", help="Write the export (JSON lines) here instead of stdout."),
    verify_file: Path = typer.Option(None, "--verify", help="Verify an exported log offline (no CAS needed)."),
    head: str = typer.Option(None, "--head", help="With --verify: the head hash it must end at (from `sereca status`)."),
) -> None:
    """Export the hash-chained audit log (role audit/read), or verify an export."""
    from sereca.cas.audit import verify_entries

    if verify_file is not None:
        lines = _read(verify_file, "audit export").decode().splitlines()
        try:
            entries = [json.loads(ln) for ln in lines if ln.strip()]
        except json.JSONDecodeError as exc:
            _fail(f"{verify_file} is not JSON lines: {exc}", 1)
        try:
            count, last = verify_entries(entries, head)
        except IntegrityError as exc:
            _fail(f"audit log rejected: {exc}", 1)
        typer.echo(f"audit log verified: {count} entries, head {last}")
        return

    async def go() -> dict[str, Any]:
        async with _client(url, root, insecure, cert, key) as c:
            return await c.audit()

    data = _run(go)
    verify_entries(data["entries"], data["head"])
    text = "".join(json.dumps(e, sort_keys=True) + "\n" for e in data["entries"])
    if out:
        out.write_text(text)
        Console(stderr=True).print(f"{data['count']} entries written to {out} (chain verified, head {data['head']})")
    else:
        sys.stdout.write(text)


def cas_broker_config(
    out: Path = typer.Option(..., "--out", help="Directory for server.pem, server.key, ca.pem and sereca-broker.conf."),
    url: str = UrlOpt,
    root: Path = RootOpt,
    cert: Path = CertOpt,
    key: Path = KeyOpt,
    insecure: bool = InsecureOpt,
) -> None:
    """Write the broker's mutual-TLS and per-service permission config (role broker/configure).

    Include the generated file in the nats-server config (include "sereca-broker.conf"):
    clients need a certificate from the deployment CA, and each service may publish and
    subscribe only on the hashed subjects the manifest allows it.
    """
    from sereca.cas.broker import INCLUDE_NAME, fetch_broker_config

    async def go() -> Any:
        async with _client(url, root, insecure, cert, key) as c:
            config = await fetch_broker_config(c)
        config.port  # noqa: B018  (refuses a URL that is not tls://HOST:PORT, before anything is written)
        return config

    config = _run(go)
    try:
        paths = config.write(out)
    except OSError as exc:
        _fail(f"cannot write the broker configuration into {out}: {exc}")
    err = Console(stderr=True)
    err.print(f"broker configuration for {config.url}: {len(config.users)} service(s) "
              f"({', '.join(sorted(config.users))}); mutual TLS with the deployment CA")
    for p in paths:
        err.print(f"  {p}")
    err.print(f'add to the nats-server config: include "{out.resolve() / INCLUDE_NAME}"  (listen on port {config.port})')


# ------------------------------------------------------------------------------ sereca manifest


def manifest_set(
    file: Path = typer.Argument(..., help="Manifest (YAML or JSON)."),
    url: str = UrlOpt,
    root: Path = RootOpt,
    cert: Path = CertOpt,
    key: Path = KeyOpt,
    insecure: bool = InsecureOpt,
) -> None:
    """Set the manifest (the first one: anyone with the pinned root; later: a user with manifest/update)."""
    from sereca.cas.errors import ManifestError
    from sereca.cas.manifest import load_manifest

    text = _read(file, "manifest")
    try:
        load_manifest(text, str(file))
    except ManifestError as exc:
        _fail(str(exc), 1)

    async def go() -> dict[str, Any]:
        async with _client(url, root, insecure, cert, key) as c:
            return await c.set_manifest(text)

    result = _run(go, rejected=(ManifestError,))
    typer.echo(f"manifest {'set' if result['first'] else 'updated'}: {result['digest']}")


def manifest_get(
    url: str = UrlOpt, root: Path = RootOpt, insecure: bool = InsecureOpt,
    as_json: bool = typer.Option(False, "--json", help="Print digest and history as JSON too."),
) -> None:
    """Print the CAS's current manifest."""

    async def go() -> dict[str, Any]:
        async with _client(url, root, insecure) as c:
            return await c.get_manifest()

    data = _run(go)
    if as_json:
        _print_json(data)
    else:
        typer.echo(data["manifest"].rstrip("\n"))


def manifest_verify(file: Path = typer.Argument(..., help="Manifest (YAML or JSON).")) -> None:
    """Validate a manifest offline; list every problem by its path."""
    from sereca.cas.errors import ManifestError
    from sereca.cas.manifest import load_manifest

    try:
        m = load_manifest(_read(file, "manifest"), str(file))
    except ManifestError as exc:
        _fail(str(exc), 1)
    typer.echo(f"{file}: valid ({len(m.services)} services, {len(m.secrets)} secrets); digest {m.digest()}")
    if m.config.allow_simulation:
        Console(stderr=True).print("[bold red]SIMULATION[/]: this manifest admits simulated evidence (development only)")


def manifest_schema() -> None:
    """Print the manifest's JSON Schema."""
    from sereca.cas.manifest import manifest_schema as schema

    _print_json(schema())


def manifest_min_svn(
    package: str = typer.Argument(...),
    min_svn: int = typer.Argument(..., help="New minimum security version (can only go up)."),
    tee: str = typer.Option(..., "--tee", help="sgx, tdx, sev-snp or sim"),
    url: str = UrlOpt, root: Path = RootOpt, cert: Path = CertOpt, key: Path = KeyOpt, insecure: bool = InsecureOpt,
) -> None:
    """Raise a package's minimum SVN (no redeploy; instances below it cannot renew)."""

    async def go() -> dict[str, Any]:
        async with _client(url, root, insecure, cert, key) as c:
            return await c.raise_min_svn(package, tee, min_svn)

    r = _run(go)
    typer.echo(f"{package} ({tee}): min_svn {r['min_svn']}; manifest {r['digest']}")


# ------------------------------------------------------------------------------ status, secrets, recover, cert


def status(
    url: str = UrlOpt, root: Path = RootOpt, insecure: bool = InsecureOpt,
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Show the CAS's mode, manifest and live instances."""

    async def go() -> dict[str, Any]:
        async with _client(url, root, insecure) as c:
            return await c.status()

    s = _run(go)
    if as_json:
        _print_json(s)
        return
    console = Console() if sys.stdout.isatty() else Console(width=240)
    if s.get("simulated"):
        console.print("[bold red]SIMULATION[/]: the CAS runs in a simulated TEE; this protects nothing against its host")
    console.print(f"mode: [bold]{s['mode']}[/]  tee: {s['tee']}")
    if s["mode"] == "recovery":
        console.print(f"reason: {s.get('reason')}; run `sereca recover --key OWNER.pem`")
        return
    console.print(f"root: {s['root_fingerprint']}  activations: {s['activations']}  audit: {s['audit']['count']} entries, head {s['audit']['head']}")
    if "services" in s:
        console.print(f"manifest: {s['manifest_digest']}" + ("  [bold red](admits SIMULATION)[/]" if s.get("allow_simulation") else ""))
        table = Table(show_header=True, header_style="bold")
        for col in ("service", "package", "live", "max"):
            table.add_column(col)
        for name, v in sorted(s["services"].items()):
            table.add_row(name, v["package"], str(v["live"]), str(v["max_instances"]))
        console.print(table)


def secret_set(
    name: str = typer.Argument(...),
    file: Path = typer.Argument(None, help="File with the value (or use --value)."),
    value: str = typer.Option(None, "--value", help="The value as text."),
    url: str = UrlOpt, root: Path = RootOpt, cert: Path = CertOpt, key: Path = KeyOpt, insecure: bool = InsecureOpt,
) -> None:
    """Upload a user-defined secret (role secrets/write)."""
    if (file is None) == (value is None):
        _fail("give the value either as FILE or with --value")
    data = _read(file, "secret file") if file else value.encode()  # type: ignore[union-attr]

    async def go() -> dict[str, Any]:
        async with _client(url, root, insecure, cert, key) as c:
            return await c.set_secret(name, data)

    r = _run(go)
    typer.echo(f"secret {name} set ({r['size']} bytes)")


def secret_get(
    name: str = typer.Argument(...),
    instance: str = typer.Option(None, "--instance", help="For per-instance secrets."),
    out: Path = typer.Option(None, "--out", help="Write the raw value here."),
    url: str = UrlOpt, root: Path = RootOpt, cert: Path = CertOpt, key: Path = KeyOpt, insecure: bool = InsecureOpt,
) -> None:
    """Read a secret (role secrets/read)."""

    async def go() -> dict[str, Any]:
        async with _client(url, root, insecure, cert, key) as c:
            return await c.get_secret(name, instance)

    r = _run(go)
    if "value" in r:
        raw = base64.b64decode(r["value"])
        if out:
            out.write_bytes(raw)
        else:
            try:
                typer.echo(raw.decode("utf-8"))
            except UnicodeDecodeError:
                typer.echo(raw.hex())
    else:
        text = r["cert_pem"] + r["key_pem"]
        if out:
            out.write_text(text)
        else:
            typer.echo(text.rstrip("\n"))


def recover_cmd(
    key: Path = typer.Option(..., "--key", help="The owner's RSA private key (PEM)."),
    url: str = UrlOpt,
    policy: Path = typer.Option(None, "--policy", help="Attest the CAS with this policy before sending the key."),
    sim_root: list[str] = typer.Option([], "--sim-root", help="Accept simulated evidence under this root."),
    insecure: bool = typer.Option(False, "--insecure", help="Skip attestation of the CAS (development only)."),
) -> None:
    """Restore a CAS in recovery mode with a recovery key of the manifest."""
    from sereca.cas.client import recover
    from sereca.cas.errors import RecoveryError

    pol = _load_policy(policy, sim_root) if policy is not None or sim_root else (None, [])
    if pol[0] is None and not insecure:
        _fail("give --policy (to attest the CAS before sending it the key) or --insecure")
    r = _run(
        lambda: recover(_url(url), _read(key, "recovery key"), policy=pol[0], sim_roots=pol[1], insecure=insecure),
        rejected=(RecoveryError, AttestationError),
    )
    typer.echo(f"CAS recovered: mode {r['mode']}, root {r['root_fingerprint']}")


def cert_root(
    url: str = UrlOpt, root: Path = RootOpt, insecure: bool = InsecureOpt,
    fetch: bool = typer.Option(False, "--fetch", help="Ask the CAS (over the pinned connection) instead of printing the pin."),
) -> None:
    """Print the deployment's root certificate (PEM): what services and clients trust."""
    if not fetch:
        typer.echo(_root(root, insecure).rstrip("\n") if not insecure else _fail("--insecure needs --fetch"))
        return

    async def go() -> str:
        async with _client(url, root, insecure) as c:
            return await c.root_certificate()

    typer.echo(_run(go).rstrip("\n"))


def register(app: typer.Typer) -> None:
    """Add this area's commands to the top-level app."""
    cas = typer.Typer(help="Run, attest and audit the CAS.", no_args_is_help=True)
    cas.command("start")(cas_start)
    cas.command("verify")(cas_verify)
    cas.command("audit")(cas_audit)
    cas.command("broker-config")(cas_broker_config)
    app.add_typer(cas, name="cas")

    manifest = typer.Typer(help="Manifests: validate, set, get, JSON Schema.", no_args_is_help=True)
    manifest.command("set")(manifest_set)
    manifest.command("get")(manifest_get)
    manifest.command("verify")(manifest_verify)
    manifest.command("schema")(manifest_schema)
    manifest.command("min-svn")(manifest_min_svn)
    app.add_typer(manifest, name="manifest")

    secret = typer.Typer(help="User-defined secrets.", no_args_is_help=True)
    secret.command("set")(secret_set)
    secret.command("get")(secret_get)
    app.add_typer(secret, name="secret")

    cert = typer.Typer(help="Certificates.", no_args_is_help=True)
    cert.command("root")(cert_root)
    app.add_typer(cert, name="cert")

    app.command("status")(status)
    app.command("recover")(recover_cmd)

