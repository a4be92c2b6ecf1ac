"""The deployment manifest: pydantic models, loading and validation.

A manifest is YAML or JSON (JSON is YAML).  :func:`load_manifest` returns a
:class:`Manifest` or raises :class:`~sereca.cas.errors.ManifestError` listing
*every* problem by its path in the document, e.g.
``services.detector.package: unknown package 'detector-v2'``.

Structural checks come from the pydantic models; cross-references (services
to packages, templates to secrets, bus actions to services, users to roles,
...) are checked afterwards by :func:`_semantic_problems`.  docs/manifest.md
is the reference.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from collections.abc import Iterator, Mapping
from typing import Annotated, Any, Literal

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from sereca.bus.keys import address_problem, patterns_overlap
from sereca.cas.errors import ManifestError
from sereca.cas.templates import TemplateError, parse_template

TEE_TYPES: tuple[str, ...] = ("sim", "sgx", "tdx", "sev-snp")
BUS_ACTIONS: tuple[str, ...] = ("publish", "send", "consume", "request", "reply")
ROLE_ACTIONS: dict[str, tuple[str, ...]] = {
    "secrets": ("read", "write"),
    "manifest": ("read", "update"),
    "audit": ("read",),
    "recovery": ("recover",),
    "broker": ("configure",),
}
KNOWN_TCB_STATUSES: tuple[str, ...] = (
    "UpToDate",
    "SWHardeningNeeded",
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
    "OutOfDate",
    "OutOfDateConfigurationNeeded",
    "Revoked",
)
_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
_SECRET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$")
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_DURATION_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_RESERVED_SERVICE_NAMES = frozenset({"localhost", "cas"})


def parse_duration(value: Any) -> int:
    """Seconds from an int or a string such as ``90s``, ``15m``, ``24h``, ``30d``."""
    if isinstance(value, bool):
        raise ValueError("a duration is a number of seconds or a string like '24h'")
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str) and (m := _DURATION.match(value)):
        seconds = int(m.group(1)) * _DURATION_UNITS[m.group(2)]
    else:
        raise ValueError(f"invalid duration {value!r}: use seconds or a number with s, m, h or d (e.g. '24h')")
    if seconds <= 0:
        raise ValueError("a duration must be positive")
    return seconds


Duration = Annotated[
    int,
    BeforeValidator(parse_duration),
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "integer", "minimum": 1},
                {"type": "string", "pattern": r"^\s*\d+\s*[smhd]?\s*$"},
            ],
            "description": "seconds, or a number with s, m, h or d (e.g. '24h')",
        }
    ),
]


def _hex_value(value: str, size: int | None, what: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{what} must be a hex string")
    v = value.strip().lower().removeprefix("0x")
    try:
        raw = bytes.fromhex(v)
    except ValueError:
        raise ValueError(f"{what} must be hex, got {value!r}") from None
    if not raw:
        raise ValueError(f"{what} must not be empty")
    if size is not None and len(raw) != size:
        raise ValueError(f"{what} must be {size} bytes ({2 * size} hex digits), got {len(raw)} bytes")
    return v


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


# --------------------------------------------------------------------------- packages


class Reference(_Model):
    """Reference values for one TEE type: measurements, or signer + product id + minimum SVN."""

    measurements: list[str] | None = Field(
        None, description="Accepted measurements (hex): MRENCLAVE, MRTD, SNP MEASUREMENT or the sim tree hash."
    )
    signer: str | None = Field(None, description="Accepted signer (hex, 32 bytes): MRSIGNER, or the key digest.")
    product_id: int | None = Field(None, ge=0, description="Accepted product id (ISVPRODID); requires signer.")
    min_svn: int = Field(0, ge=0, description="Minimum security version (ISVSVN); can be raised by a manifest update.")

    @field_validator("measurements")
    @classmethod
    def _measurements_hex(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else [_hex_value(m, None, "measurement") for m in v]

    @field_validator("signer")
    @classmethod
    def _signer_hex(cls, v: str | None) -> str | None:
        return None if v is None else _hex_value(v, 32, "signer")

    @model_validator(mode="after")
    def _identity_given(self) -> Reference:
        if not self.measurements and self.signer is None:
            raise ValueError("give at least one of 'measurements' (non-empty) or 'signer'")
        if self.product_id is not None and self.signer is None:
            raise ValueError("'product_id' needs 'signer' (a product id alone identifies nothing)")
        return self


class Package(_Model):
    """What code a service may run: reference values per TEE type plus the TCB policy."""

    sim: Reference | None = Field(None, description="Simulated TEE (admitted only if config.allow_simulation).")
    sgx: Reference | None = None
    tdx: Reference | None = None
    sev_snp: Reference | None = Field(None, alias="sev-snp")
    debug: bool = Field(False, description="Admit debug enclaves / debug-enabled VMs (never in production).")
    tcb_statuses: list[str] = Field(
        default_factory=lambda: ["UpToDate", "SWHardeningNeeded"], description="Accepted TCB statuses."
    )
    advisories: list[str] = Field(default_factory=list, description="Accepted advisory IDs (e.g. INTEL-SA-00615).")
    max_age_s: float | None = Field(None, gt=0, description="Maximum evidence age (for evidence with a timestamp).")

    @field_validator("tcb_statuses")
    @classmethod
    def _statuses(cls, v: list[str]) -> list[str]:
        unknown = [s for s in v if s not in KNOWN_TCB_STATUSES]
        if unknown:
            raise ValueError(f"unknown TCB status(es) {unknown}; known: {list(KNOWN_TCB_STATUSES)}")
        return v

    @model_validator(mode="after")
    def _some_tee(self) -> Package:
        if not any(self.reference(t) for t in TEE_TYPES):
            raise ValueError(f"give reference values for at least one TEE type ({', '.join(TEE_TYPES)})")
        return self

    def reference(self, tee: str) -> Reference | None:
        return {"sim": self.sim, "sgx": self.sgx, "tdx": self.tdx, "sev-snp": self.sev_snp}.get(tee)


# --------------------------------------------------------------------------- services


class Service(_Model):
    """A service: which package it runs, how many instances, and its parameters."""

    package: str = Field(description="Name of an entry in 'packages'.")
    max_instances: int = Field(1, ge=1, description="Maximum number of live instances.")
    env: dict[str, str] = Field(default_factory=dict, description="Environment variables (templates).")
    files: dict[str, str] = Field(default_factory=dict, description="Absolute path -> file content (template).")
    argv: list[str] = Field(default_factory=list, description="Command-line arguments (templates).")
    cert_validity: Duration | None = Field(
        None, description="Validity of the service's certificate (seconds or '12h'); default config.cert_validity."
    )


# --------------------------------------------------------------------------- secrets


class _SecretBase(_Model):
    shared: bool = Field(True, description="One value for all instances (true) or one per instance (false).")


class SymmetricKeySecret(_SecretBase):
    type: Literal["symmetric-key"]
    size: int = Field(256, description="Key size in bits (a multiple of 8).")

    @field_validator("size")
    @classmethod
    def _size(cls, v: int) -> int:
        if v <= 0 or v % 8 or v > 8192:
            raise ValueError("size is in bits: a positive multiple of 8, at most 8192")
        return v


class CertSecret(_SecretBase):
    type: Literal["cert-ecdsa", "cert-ed25519", "cert-rsa"]
    validity: Duration = Field(365 * 86400, description="Certificate validity (seconds or '365d').")
    subject: str | None = Field(None, description="Common name (default: the secret's name).")
    sans: list[str] = Field(default_factory=list, description="DNS names or IP addresses.")
    size: int | None = Field(
        None, description="RSA: modulus bits (2048, 3072, 4096; default 3072). ECDSA: curve bits (256, 384)."
    )

    @model_validator(mode="after")
    def _size_fits(self) -> CertSecret:
        allowed = {"cert-rsa": (2048, 3072, 4096), "cert-ecdsa": (256, 384), "cert-ed25519": ()}[self.type]
        if self.size is not None and self.size not in allowed:
            raise ValueError(f"size {self.size} is not valid for {self.type}; allowed: {list(allowed) or 'none'}")
        return self


class PlainSecret(_SecretBase):
    type: Literal["plain"]
    value: str = Field(description="A literal value (visible to everyone who can read the manifest).")


class UserDefinedSecret(_SecretBase):
    type: Literal["user-defined"]
    size: int | None = Field(None, ge=1, description="Required length in bytes of the uploaded value (optional).")


Secret = Annotated[
    SymmetricKeySecret | CertSecret | PlainSecret | UserDefinedSecret,
    Field(discriminator="type"),
]


# --------------------------------------------------------------------------- bus


class BusAddress(_Model):
    """Who may do what on one address or address pattern."""

    publish: list[str] = Field(default_factory=list)
    send: list[str] = Field(default_factory=list)
    consume: list[str] = Field(default_factory=list)
    request: list[str] = Field(default_factory=list)
    reply: list[str] = Field(default_factory=list)
    authenticity: Literal["address", "sender"] = Field(
        "address", description="'address': holding the key suffices; 'sender': messages are also signed."
    )
    durable: bool = False
    epoch: int = Field(1, ge=1, description="Key epoch; raise it to rotate the address key.")

    def actions_of(self, service: str) -> list[str]:
        return [a for a in BUS_ACTIONS if service in getattr(self, a)]


class Bus(_Model):
    addresses: dict[str, BusAddress] = Field(default_factory=dict)


def check_address(address: str) -> str | None:
    """None if ``address`` is a valid address or pattern, else what is wrong (the bus's rules)."""
    return address_problem(address)


# --------------------------------------------------------------------------- users, roles, config


class Role(_Model):
    resource: Literal["secrets", "manifest", "audit", "recovery", "broker"]
    actions: list[str]
    names: list[str] | None = Field(None, description="For 'secrets': the secrets it covers (default: all).")

    @model_validator(mode="after")
    def _actions_fit(self) -> Role:
        allowed = ROLE_ACTIONS[self.resource]
        bad = [a for a in self.actions if a not in allowed]
        if bad:
            raise ValueError(f"action(s) {bad} do not apply to resource '{self.resource}'; allowed: {list(allowed)}")
        if not self.actions:
            raise ValueError("a role needs at least one action")
        if self.names is not None and self.resource != "secrets":
            raise ValueError("'names' applies only to resource 'secrets'")
        return self


class User(_Model):
    certificate: str = Field(description="The user's X.509 certificate (PEM); users authenticate with it over TLS.")
    roles: list[str] = Field(default_factory=list)

    @field_validator("certificate")
    @classmethod
    def _cert(cls, v: str) -> str:
        try:
            x509.load_pem_x509_certificate(v.encode())
        except ValueError as exc:
            raise ValueError(f"not a PEM X.509 certificate ({exc})") from None
        return v

    def fingerprint(self) -> str:
        cert = x509.load_pem_x509_certificate(self.certificate.encode())
        return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


class NatsConfig(_Model):
    url: str
    tls: bool = True
    server_cert: str | None = Field(
        None,
        description="Shared cert-* secret that is the broker's TLS server certificate (issued by the deployment CA; "
        "its sans are the broker's host names). `sereca cas broker-config` hands it out with the broker's "
        "per-service permissions.",
    )


class Config(_Model):
    allow_simulation: bool = Field(False, description="Admit simulated evidence (development only).")
    sim_roots: list[str] = Field(
        default_factory=list, description="SHA-256 fingerprints (hex) of the simulated roots to trust."
    )
    seal_mode: Literal["measurement", "signer"] = Field(
        "measurement", description="Seal the state to the CAS's measurement or to its signer."
    )
    cert_validity: Duration = Field(
        24 * 3600, description="Default validity of service certificates (seconds or '24h')."
    )
    nats: NatsConfig | None = Field(None, description="NATS server the services use (given to them on activation).")

    @field_validator("sim_roots")
    @classmethod
    def _roots(cls, v: list[str]) -> list[str]:
        return [_hex_value(r, 32, "sim root fingerprint") for r in v]


# --------------------------------------------------------------------------- manifest


class Manifest(_Model):
    """A SERECA deployment manifest (see docs/manifest.md)."""

    packages: dict[str, Package] = Field(default_factory=dict)
    services: dict[str, Service] = Field(default_factory=dict)
    secrets: dict[str, Secret] = Field(default_factory=dict)
    bus: Bus = Field(default_factory=Bus)
    users: dict[str, User] = Field(default_factory=dict)
    roles: dict[str, Role] = Field(default_factory=dict)
    recovery: dict[str, str] = Field(
        default_factory=dict, description="Owner name -> RSA public key (PEM) that can recover the state."
    )
    config: Config = Field(default_factory=Config)

    def digest(self) -> str:
        """SHA-256 (hex) of the canonical JSON form."""
        return hashlib.sha256(canonical_json(self)).hexdigest()

    def bus_grants(self, service: str) -> Iterator[tuple[str, BusAddress, list[str]]]:
        for address, rule in self.bus.addresses.items():
            actions = rule.actions_of(service)
            if actions:
                yield address, rule, actions

    def user_by_fingerprint(self, fingerprint: str) -> tuple[str, User] | None:
        for name, user in self.users.items():
            if user.fingerprint() == fingerprint:
                return name, user
        return None

    def allowed(self, user: User, resource: str, action: str, name: str | None = None) -> bool:
        for role_name in user.roles:
            role = self.roles.get(role_name)
            if role is None or role.resource != resource or action not in role.actions:
                continue
            if resource == "secrets" and role.names is not None and name not in role.names:
                continue
            return True
        return False


def canonical_json(manifest: Manifest) -> bytes:
    data = manifest.model_dump(mode="json", by_alias=True, exclude_none=False)
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def manifest_schema() -> dict[str, Any]:
    """The JSON Schema of the manifest (``sereca manifest schema``)."""
    schema = Manifest.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "SERECA manifest"
    return schema


# --------------------------------------------------------------------------- loading


def _path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for p in loc:
        if isinstance(p, int):
            parts.append(f"[{p}]")
        else:
            parts.append(("." if parts else "") + str(p))
    return "".join(parts) or "(top level)"


def _loc_without_union_tags(loc: tuple[Any, ...]) -> tuple[Any, ...]:
    # pydantic puts the discriminator value into the loc of tagged unions
    # (secrets.k.symmetric-key.size); the user wrote secrets.k.size.
    tags = {"symmetric-key", "cert-ecdsa", "cert-ed25519", "cert-rsa", "plain", "user-defined"}
    out: list[Any] = []
    for i, p in enumerate(loc):
        if i >= 2 and loc[0] == "secrets" and i == 2 and p in tags:
            continue
        out.append(p)
    return tuple(out)


def _message(err: Mapping[str, Any]) -> str:
    kind = err.get("type", "")
    if kind == "extra_forbidden":
        return "unknown field (check the spelling; see `sereca manifest schema`)"
    if kind == "missing":
        return "required field is missing"
    if kind == "union_tag_invalid":
        return (
            f"unknown secret type {err.get('input', {}).get('type')!r}; use symmetric-key, cert-ecdsa, "
            "cert-ed25519, cert-rsa, plain or user-defined"
        )
    if kind == "union_tag_not_found":
        return "missing 'type' (symmetric-key, cert-ecdsa, cert-ed25519, cert-rsa, plain or user-defined)"
    msg = str(err.get("msg", "invalid"))
    return msg.removeprefix("Value error, ")


def parse_document(text: str | bytes, source: str = "manifest") -> dict[str, Any]:
    """YAML/JSON text -> mapping, or ManifestError."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise ManifestError(["(top level): the manifest is not UTF-8 text"], source) from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(top level)"
        raise ManifestError([f"{where}: not valid YAML/JSON: {getattr(exc, 'problem', exc)}"], source) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ManifestError(["(top level): a manifest is a mapping of sections (packages, services, ...)"], source)
    return data


def load_manifest(text: str | bytes | Mapping[str, Any], source: str = "manifest") -> Manifest:
    """Parse and validate a manifest; raise ManifestError listing every problem."""
    data = dict(text) if isinstance(text, Mapping) else parse_document(text, source)
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        problems = [f"{_path(_loc_without_union_tags(tuple(e['loc'])))}: {_message(e)}" for e in exc.errors()]
        # Cross-references are checked on the parts that did validate, against
        # every name the document defines (valid or not), so one run lists all.
        partial, known = _partial(data)
        problems += [p for p in _semantic_problems(partial, known) if p not in problems]
        problems += _raw_package_refs(data, partial, known)
        raise ManifestError(problems, source) from None
    problems = list(_semantic_problems(manifest, _known(data)))
    if problems:
        raise ManifestError(problems, source)
    return manifest


_ITEM_SECTIONS: dict[str, Any] = {
    "packages": TypeAdapter(Package),
    "services": TypeAdapter(Service),
    "secrets": TypeAdapter(Secret),
    "users": TypeAdapter(User),
    "roles": TypeAdapter(Role),
}
_WHOLE_SECTIONS: dict[str, Any] = {
    "bus": TypeAdapter(Bus),
    "config": TypeAdapter(Config),
    "recovery": TypeAdapter(dict[str, str]),
}


def _raw_package_refs(data: Mapping[str, Any], partial: Manifest, known: dict[str, set[str]]) -> list[str]:
    """``services.X.package`` of services that failed validation themselves."""
    services = data.get("services")
    out = []
    if isinstance(services, dict):
        for name, svc in services.items():
            if name in partial.services or not isinstance(svc, dict):
                continue
            pkg = svc.get("package")
            if isinstance(pkg, str) and pkg not in known["packages"]:
                names = ", ".join(sorted(known["packages"])) or "none defined"
                out.append(f"services.{name}.package: unknown package '{pkg}' (packages: {names})")
    return out


def _known(data: Mapping[str, Any]) -> dict[str, set[str]]:
    return {k: set(v) if isinstance(v, dict) else set() for k in _ITEM_SECTIONS if (v := data.get(k)) is not None} | {
        k: set() for k in _ITEM_SECTIONS if data.get(k) is None
    }


def _partial(data: Mapping[str, Any]) -> tuple[Manifest, dict[str, set[str]]]:
    """The items of ``data`` that validate on their own, and every name it defines."""
    fields: dict[str, Any] = {}
    for section, adapter in _ITEM_SECTIONS.items():
        items = data.get(section)
        good = {}
        if isinstance(items, dict):
            for name, item in items.items():
                try:
                    good[str(name)] = adapter.validate_python(item)
                except ValidationError:
                    pass
        fields[section] = good
    for section, adapter in _WHOLE_SECTIONS.items():
        try:
            fields[section] = adapter.validate_python(data.get(section) or {})
        except ValidationError:
            fields[section] = adapter.validate_python({})
    return Manifest.model_construct(**fields), _known(data)


# --------------------------------------------------------------------------- cross-references


def _semantic_problems(m: Manifest, known: dict[str, set[str]]) -> Iterator[str]:
    for name in m.packages:
        if not _NAME.match(name):
            yield f"packages.{name}: a package name is lowercase letters, digits and '-' (at most 63)"
    for name, svc in m.services.items():
        if not _NAME.match(name):
            yield f"services.{name}: a service name is lowercase letters, digits and '-' (at most 63)"
        elif name in _RESERVED_SERVICE_NAMES:
            yield f"services.{name}: '{name}' is reserved; choose another service name"
        if svc.package not in known["packages"]:
            names = ", ".join(sorted(known["packages"])) or "none defined"
            yield f"services.{name}.package: unknown package '{svc.package}' (packages: {names})"
        for key, tpl in svc.env.items():
            yield from _template_problems(m, known, f"services.{name}.env.{key}", tpl)
            if not key or "=" in key or "\0" in key:
                yield f"services.{name}.env.{key}: invalid environment variable name"
        for path, tpl in svc.files.items():
            yield from _template_problems(m, known, f"services.{name}.files.{path}", tpl)
            if not path.startswith("/"):
                yield f"services.{name}.files.{path}: file paths must be absolute"
        for i, tpl in enumerate(svc.argv):
            yield from _template_problems(m, known, f"services.{name}.argv[{i}]", tpl)
    for name, sec in m.secrets.items():
        if not _SECRET_NAME.match(name):
            yield f"secrets.{name}: a secret name is letters, digits, '_' and '-' (at most 128)"
        if isinstance(sec, PlainSecret | UserDefinedSecret) and not sec.shared:
            yield f"secrets.{name}.shared: a {sec.type} secret has one value; it cannot be per instance"
        if isinstance(sec, CertSecret):
            for san in sec.sans:
                if not san or any(c.isspace() for c in san):
                    yield f"secrets.{name}.sans: invalid name {san!r}"
    for address, rule in m.bus.addresses.items():
        if (why := check_address(address)) is not None:
            yield f"bus.addresses.{address}: {why}"
        for action in BUS_ACTIONS:
            for svc_name in getattr(rule, action):
                if svc_name not in known["services"]:
                    yield f"bus.addresses.{address}.{action}: unknown service '{svc_name}'"
    # Each concrete address must take its key and subject from exactly one entry.
    valid = [a for a in m.bus.addresses if check_address(a) is None]
    for i, a in enumerate(valid):
        for b in valid[i + 1:]:
            if patterns_overlap(a, b):
                yield (f"bus.addresses.{b}: overlaps '{a}' (some address matches both); "
                       "make the patterns disjoint")
    for name, user in m.users.items():
        for role in user.roles:
            if role not in known["roles"]:
                yield f"users.{name}.roles: unknown role '{role}'"
    seen: dict[str, str] = {}
    for name, user in m.users.items():
        fp = user.fingerprint()
        if fp in seen:
            yield f"users.{name}.certificate: same certificate as user '{seen[fp]}'; each user needs their own"
        seen[fp] = name
    for name, role in m.roles.items():
        for secret in role.names or []:
            if secret not in known["secrets"]:
                yield f"roles.{name}.names: unknown secret '{secret}'"
    for owner, pem in m.recovery.items():
        try:
            key = serialization.load_pem_public_key(pem.encode())
        except (ValueError, TypeError) as exc:
            yield f"recovery.{owner}: not a PEM public key ({exc})"
            continue
        if not isinstance(key, rsa.RSAPublicKey):
            yield f"recovery.{owner}: a recovery key must be an RSA public key"
        elif key.key_size < 2048:
            yield f"recovery.{owner}: RSA key of {key.key_size} bits is too small (at least 2048)"
    nats = m.config.nats
    if nats is not None and nats.server_cert is not None:
        sec = m.secrets.get(nats.server_cert)
        if sec is None:
            yield f"config.nats.server_cert: unknown secret '{nats.server_cert}' (define it under secrets as a cert-ecdsa)"
        elif not isinstance(sec, CertSecret) or not sec.shared:
            yield (f"config.nats.server_cert: secret '{nats.server_cert}' must be a shared cert-ecdsa, cert-ed25519 "
                   "or cert-rsa secret (the broker's one certificate)")
        if not nats.tls:
            yield "config.nats.server_cert: set config.nats.tls to true; a server certificate without TLS is unused"
    if any(p.sim for p in m.packages.values()) and m.config.allow_simulation and not m.config.sim_roots:
        yield "config.sim_roots: allow_simulation is true but no simulated root is pinned (see `sereca tee info`)"


def _template_problems(m: Manifest, known: dict[str, set[str]], where: str, template: str) -> Iterator[str]:
    try:
        refs = parse_template(template)
    except TemplateError as exc:
        yield f"{where}: {exc}"
        return
    for ref in refs:
        if ref.root == "secrets":
            if ref.name not in known["secrets"]:
                yield f"{where}: unknown secret '{ref.name}'"
                continue
            sec = m.secrets.get(ref.name)
            if sec is None:  # defined but invalid: reported on its own
                continue
            is_cert = isinstance(sec, CertSecret)
            if ref.part is not None and not is_cert:
                yield f"{where}: secret '{ref.name}' is a {sec.type}; '.{ref.part}' applies only to certificates"
            if is_cert and ref.part is None:
                yield f"{where}: secret '{ref.name}' is a certificate; use .cert, .key or .public"


def host_or_ip(name: str) -> x509.GeneralName:
    """A SAN entry for a DNS name or IP address."""
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)
