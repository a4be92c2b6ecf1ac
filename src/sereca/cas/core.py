"""The CAS's logic: manifest, activation, secrets, recovery, audit.

The API layer (:mod:`sereca.cas.api`) only translates HTTP to calls of
:class:`CAS` and errors to statuses.  Every method that changes state
awaits :meth:`CAS._commit` before returning, so what a caller was told is
on disk (fsync + atomic rename).  Concurrent changes share one write (group
commit): state mutations happen synchronously on the event loop, and one
writer at a time persists everything mutated so far.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import datetime as dt
import hashlib
import json
import logging
import os
import secrets as _secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from sereca.bus.keys import derive_subject_key
from sereca.bus.permissions import nats_permissions
from sereca.cas import keys as keymod
from sereca.cas import vault
from sereca.cas.audit import GENESIS, AuditLog
from sereca.cas.errors import (
    ActivationError,
    CASError,
    ConflictError,
    InstanceLimitError,
    ManifestError,
    NonceError,
    NotFoundError,
    NotReadyError,
    PermissionDenied,
    RecoveryError,
    UnknownServiceError,
)
from sereca.cas.manifest import TEE_TYPES, CertSecret, Manifest, UserDefinedSecret, load_manifest
from sereca.cas.pki import CA, cert_pem, default_sans, fingerprint, key_pem, load_cert, load_csr, self_signed, spki_der
from sereca.cas.state import SealedStore, audit_key
from sereca.cas.templates import Ref, TemplateError, Value, key_marker, parse_template, render
from sereca.errors import SerecaError
from sereca.tee import Policy, verify
from sereca.tee.base import Platform

log = logging.getLogger("sereca.cas")

NONCE_TTL_S = 60.0
MAX_OUTSTANDING_NONCES = 20000
CAS_TLS_VALIDITY_S = 365 * 86400
STATE_FORMAT = 1


@dataclass(frozen=True)
class Peer:
    """Who is calling, from the TLS client certificate."""

    kind: str  # "anonymous" | "user" | "service" | "unknown"
    name: str = ""
    instance: str = ""

    def __str__(self) -> str:
        if self.kind == "user":
            return f"user:{self.name}"
        if self.kind == "service":
            return f"service:{self.name}/{self.instance}"
        return self.kind


@dataclass(frozen=True)
class _Checked:
    """An activation request after the checks that need no evidence verification."""

    manifest: Manifest
    tee: str
    public_key: Any
    expected: bytes
    evidence: bytes
    policy: Policy


@dataclass(frozen=True)
class ActivationRequest:
    service: str
    nonce: str
    evidence: str  # base64
    tee: str | None
    csr: str
    instance: str | None = None  # take over / renew this instance slot


def _iso(t: dt.datetime) -> str:
    return t.astimezone(dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class CAS:
    """One coordinator: open with :meth:`open`, then call its methods from one event loop."""

    def __init__(self, store: SealedStore, platform: Platform, sans: list[str]) -> None:
        self.store = store
        self.platform = platform
        self.sans = sans
        self.on_trust_change: Callable[[], None] | None = None
        self._dk: bytes | None = None
        self._s: dict[str, Any] = {}
        self._ca: CA | None = None
        self._manifest: Manifest | None = None
        self._users_by_fp: dict[str, str] = {}
        self._root: bytes = b""
        self._recovery_reason = ""
        self._ephemeral: tuple[Any, x509.Certificate] | None = None
        self._tls: tuple[bytes, bytes] | None = None
        self.audit: AuditLog | None = None
        self._nonces: dict[str, float] = {}
        self._write_lock = asyncio.Lock()
        self._manifest_lock = asyncio.Lock()
        self._dirty = 0
        self._written = 0
        self._failed: str | None = None
        self._bg: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ opening

    @classmethod
    async def open(
        cls, state_dir: str | os.PathLike[str], platform: Platform, sans: list[str] | None = None
    ) -> CAS:
        cas = cls(SealedStore(state_dir, platform), platform, sans or default_sans())
        opened = await asyncio.to_thread(cas.store.open)
        if opened.status == "new":
            await cas._initialize()
        elif opened.status == "recovery":
            cas._recovery_reason = opened.reason
            cas._ephemeral = self_signed(cas.sans)
            log.warning("CAS in RECOVERY MODE: %s; run `sereca recover --key OWNER.pem`", opened.reason)
        else:
            assert opened.dk is not None and opened.state is not None
            await asyncio.to_thread(cas._load, opened.dk, opened.state)
        return cas

    async def _initialize(self) -> None:
        self._dk = _secrets.token_bytes(32)
        ca = CA.create()
        self._s = {
            "format": STATE_FORMAT,
            "root_secret": base64.b64encode(_secrets.token_bytes(32)).decode(),
            "ca_key": ca.key_pem.decode(),
            "ca_cert": ca.cert_pem.decode(),
            "manifest_text": None,
            "manifest_history": [],
            "shared_certs": {},
            "instance_certs": {},
            "user_secrets": {},
            "instances": {},
            "audit": {"count": 0, "head": GENESIS},
            "stats": {"activations": 0},
        }
        self.audit = AuditLog(self.store.audit_path, audit_key(self._dk))
        self._adopt()
        await asyncio.to_thread(self.store.write_keys, self._dk, "measurement", {})
        self.audit.record("cas.init", "info", "cas", root_fingerprint=fingerprint(ca.cert))
        await self._commit()

    def _load(self, dk: bytes, state: dict[str, Any]) -> None:
        if state.get("format") != STATE_FORMAT:
            raise CASError(f"state format {state.get('format')!r} is not supported by this CAS version")
        self._dk, self._s = dk, state
        self.audit = AuditLog(self.store.audit_path, audit_key(dk))
        self.audit.load(state["audit"]["count"], state["audit"]["head"])
        self._adopt()

    def _adopt(self) -> None:
        """Rebuild cached objects from ``self._s``."""
        self._ca = CA.from_pem(self._s["ca_key"], self._s["ca_cert"])
        self._root = base64.b64decode(self._s["root_secret"])
        text = self._s.get("manifest_text")
        self._manifest = load_manifest(text, "stored manifest") if text else None
        self._users_by_fp = (
            {u.fingerprint(): n for n, u in self._manifest.users.items()} if self._manifest else {}
        )
        tls_key = ec.generate_private_key(ec.SECP256R1())
        tls_cert = self._ca.issue(tls_key.public_key(), "SERECA CAS", self.sans, CAS_TLS_VALIDITY_S, client=False)
        self._tls = (cert_pem(tls_cert) + self._ca.cert_pem, key_pem(tls_key))
        self._ephemeral = None
        self._recovery_reason = ""

    # ------------------------------------------------------------------ properties

    @property
    def mode(self) -> str:
        if self._dk is None:
            return "recovery"
        return "ready" if self._manifest is not None else "no-manifest"

    @property
    def simulated(self) -> bool:
        return self.platform.tee_type == "sim"

    @property
    def manifest(self) -> Manifest | None:
        return self._manifest

    def root_pem(self) -> str:
        if self._ca is None:
            raise NotReadyError("the CAS is in recovery mode: its root certificate is sealed until recovery")
        return self._ca.cert_pem.decode()

    def tls_credentials(self) -> tuple[bytes, bytes]:
        """(certificate chain PEM, private key PEM) the HTTPS server presents."""
        if self._ephemeral is not None:
            key, cert = self._ephemeral
            return cert_pem(cert), key_pem(key)
        assert self._tls is not None
        return self._tls

    def trusted_client_pems(self) -> list[str]:
        """Certificates the TLS server accepts client certificates from (CA + users)."""
        if self._ca is None:
            return []
        out = [self._ca.cert_pem.decode()]
        if self._manifest:
            out += [u.certificate for u in self._manifest.users.values()]
        return out

    # ------------------------------------------------------------------ persistence

    async def _commit(self) -> None:
        """Return once everything mutated so far is on disk."""
        if self._failed:
            raise CASError(f"the CAS cannot persist its state ({self._failed}); restart it after fixing the disk")
        assert self._dk is not None and self.audit is not None
        self._dirty += 1
        target = self._dirty
        async with self._write_lock:
            if self._written >= target:
                return
            upto = self._dirty
            lines, count, head = self.audit.take_pending()
            self._s["audit"] = {"count": count, "head": head}
            generation = self.store.next_generation()
            self._s["generation"] = generation
            payload = json.dumps(self._s, separators=(",", ":")).encode()
            try:
                await asyncio.to_thread(self.store.write_state, self._dk, payload, generation, lines)
            except OSError as exc:
                self._failed = str(exc)
                raise CASError(f"cannot write the state to {self.store.dir}: {exc}") from None
            self._written = upto

    def _commit_soon(self) -> None:
        if self._dk is None or self._failed:
            return
        task = asyncio.get_running_loop().create_task(self._commit_quiet())
        self._bg.add(task)
        task.add_done_callback(self._bg.discard)

    async def _commit_quiet(self) -> None:
        try:
            await self._commit()
        except SerecaError as exc:
            log.error("%s", exc)

    async def flush(self) -> None:
        if self._dk is not None:
            await self._commit()

    def _deny(self, event: str, peer: Peer | str, exc: SerecaError, **detail: Any) -> None:
        if self.audit is not None:
            self.audit.record(event, "deny", str(peer), error=type(exc).__name__, reason=str(exc), **detail)
            self._commit_soon()

    # ------------------------------------------------------------------ identity

    def identify(self, client_cert_pem: str | None) -> Peer:
        if not client_cert_pem:
            return Peer("anonymous")
        try:
            cert = load_cert(client_cert_pem)
        except ValueError:
            return Peer("unknown")
        user = self._users_by_fp.get(fingerprint(cert))
        if user is not None:
            return Peer("user", user)
        if self._ca is not None and self._ca.issued(cert):
            for inst_id, rec in self._s.get("instances", {}).items():
                if rec["serial"] == format(cert.serial_number, "x") and not rec.get("released"):
                    return Peer("service", rec["service"], inst_id)
        return Peer("unknown")

    def _require_user(self, peer: Peer, resource: str, action: str, name: str | None = None) -> None:
        m = self._require_manifest()
        if peer.kind != "user":
            raise PermissionDenied(
                f"{action} on {resource}{f' {name!r}' if name else ''} needs a user of the manifest "
                "authenticated by their client certificate (--cert/--key); this request had "
                + ("none" if peer.kind == "anonymous" else "a certificate the manifest does not list")
            )
        if not m.allowed(m.users[peer.name], resource, action, name):
            raise PermissionDenied(
                f"user '{peer.name}' has no role allowing '{action}' on {resource}"
                f"{f' {name!r}' if name else ''}; add such a role to the user in the manifest"
            )

    def _require_manifest(self) -> Manifest:
        if self._dk is None:
            raise NotReadyError(
                f"the CAS is in recovery mode ({self._recovery_reason}); an owner must run "
                "`sereca recover --key OWNER.pem`"
            )
        if self._manifest is None:
            raise NotReadyError("the CAS has no manifest yet; set one with `sereca manifest set FILE`")
        return self._manifest

    # ------------------------------------------------------------------ manifest

    async def set_manifest(self, text: str | bytes, peer: Peer) -> dict[str, Any]:
        if self._dk is None:
            self._require_manifest()
        async with self._manifest_lock:  # one manifest change at a time; "first" decided under the lock
            first = self._manifest is None
            try:
                if not first:
                    self._require_user(peer, "manifest", "update")
                manifest = load_manifest(text)
                clash = sorted(set(manifest.services) & {n.lower() for n in self.sans})
                if clash:
                    raise ManifestError(
                        [f"services.{n}: the name is also a host name of the CAS's TLS certificate; a service "
                         "certificate must not be able to pose as the CAS: rename the service" for n in clash]
                    )
            except SerecaError as exc:
                self._deny("manifest.set", peer, exc)
                raise
            await self._install_manifest(manifest, text if isinstance(text, str) else text.decode(), peer, first)
        return {"digest": manifest.digest(), "first": first}

    async def _install_manifest(self, manifest: Manifest, text: str, peer: Peer, first: bool) -> None:
        assert self._ca is not None and self._dk is not None and self.audit is not None
        old = self._manifest
        shared = await asyncio.to_thread(
            vault.refresh_shared, self._ca, self._root, manifest, self._s["shared_certs"]
        )
        self._s["shared_certs"] = shared
        self._s["user_secrets"] = {
            k: v for k, v in self._s["user_secrets"].items() if isinstance(manifest.secrets.get(k), UserDefinedSecret)
        }
        self._s["manifest_text"] = text
        self._s["manifest_history"].append({"digest": manifest.digest(), "time": _iso(dt.datetime.now(dt.timezone.utc)), "by": str(peer)})
        self._manifest = manifest
        self._users_by_fp = {u.fingerprint(): n for n, u in manifest.users.items()}
        if first or old is None or old.recovery != manifest.recovery or old.config.seal_mode != manifest.config.seal_mode:
            await asyncio.to_thread(self.store.write_keys, self._dk, manifest.config.seal_mode, manifest.recovery)
        self.audit.record(
            "manifest.set" if first else "manifest.update",
            "allow",
            str(peer),
            digest=manifest.digest(),
            services=sorted(manifest.services),
            simulation=manifest.config.allow_simulation,
        )
        await self._commit()
        if self.on_trust_change is not None:
            self.on_trust_change()

    def get_manifest(self) -> dict[str, Any]:
        m = self._require_manifest()
        return {
            "manifest": self._s["manifest_text"],
            "digest": m.digest(),
            "history": self._s["manifest_history"],
        }

    async def raise_min_svn(self, package: str, tee: str, min_svn: int, peer: Peer) -> dict[str, Any]:
        """Raise one package's minimum SVN without a full manifest update."""
        async with self._manifest_lock:
            return await self._raise_min_svn(package, tee, min_svn, peer)

    async def _raise_min_svn(self, package: str, tee: str, min_svn: int, peer: Peer) -> dict[str, Any]:
        m = self._require_manifest()
        try:
            self._require_user(peer, "manifest", "update")
            if package not in m.packages:
                raise NotFoundError(f"unknown package '{package}' (packages: {', '.join(sorted(m.packages))})")
            ref = m.packages[package].reference(tee)
            if ref is None:
                raise NotFoundError(f"package '{package}' has no reference values for TEE type '{tee}'")
            if min_svn < ref.min_svn:
                raise ConflictError(
                    f"min_svn {min_svn} is below the current {ref.min_svn}: lowering it needs a full manifest update"
                )
        except SerecaError as exc:
            self._deny("manifest.min_svn", peer, exc, package=package, tee=tee, min_svn=min_svn)
            raise
        data = m.model_dump(mode="json", by_alias=True, exclude_none=True)
        data["packages"][package]["sev-snp" if tee == "sev-snp" else tee]["min_svn"] = min_svn
        new = load_manifest(data)
        await self._install_manifest(new, yaml.safe_dump(data, sort_keys=False), peer, first=False)
        return {"digest": new.digest(), "package": package, "tee": tee, "min_svn": min_svn}

    # ------------------------------------------------------------------ activation

    def new_nonce(self) -> str:
        self._require_manifest()
        now = time.monotonic()
        if len(self._nonces) >= MAX_OUTSTANDING_NONCES:
            self._nonces = {n: t for n, t in self._nonces.items() if t > now}
            if len(self._nonces) >= MAX_OUTSTANDING_NONCES:
                raise ConflictError("too many outstanding activation nonces; retry in a minute")
        nonce = _secrets.token_hex(32)
        self._nonces[nonce] = now + NONCE_TTL_S
        return nonce

    def _take_nonce(self, nonce: str) -> bytes:
        expiry = self._nonces.pop(nonce, None) if isinstance(nonce, str) else None
        if expiry is None:
            raise NonceError(
                "the nonce is unknown or was already used (a replayed activation, or the CAS restarted); "
                "request a fresh nonce"
            )
        if expiry < time.monotonic():
            raise NonceError(f"the nonce expired (nonces live {NONCE_TTL_S:.0f} s); request a fresh one")
        return bytes.fromhex(nonce)

    async def activate(self, req: ActivationRequest, cas_address: str) -> dict[str, Any]:
        try:
            checked = self._check_request(req)
            if checked.tee == "sim":  # fast and local
                claims = self._verify(req, checked)
            else:  # may fetch collateral: keep the event loop free
                claims = await asyncio.to_thread(self._verify, req, checked)
            result = self._grant(req, checked, claims, cas_address)
        except SerecaError as exc:
            self._deny("activation", f"service:{req.service}", exc, service=req.service, tee=req.tee)
            raise
        await self._commit()
        return result

    def _check_request(self, req: ActivationRequest) -> _Checked:
        m = self._require_manifest()
        svc = m.services.get(req.service)
        if svc is None:
            raise UnknownServiceError(
                f"unknown service '{req.service}'; the manifest defines: {', '.join(sorted(m.services)) or 'none'}"
            )
        nonce = self._take_nonce(req.nonce)
        tee = req.tee
        if tee not in TEE_TYPES:
            raise ActivationError(f"the activation must name its TEE type ('tee': {', '.join(TEE_TYPES)}), not {tee!r}")
        if tee == "sim" and not m.config.allow_simulation:
            raise ActivationError(
                "simulated evidence is not admitted: the manifest's config.allow_simulation is false "
                "(run the service in a real TEE, or allow simulation for development)"
            )
        package = m.packages[svc.package]
        ref = package.reference(tee)
        if ref is None:
            raise ActivationError(
                f"package '{svc.package}' of service '{req.service}' has no reference values for TEE type '{tee}'"
            )
        csr = load_csr(req.csr)
        public_key = csr.public_key()
        if not isinstance(public_key, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey):
            raise ActivationError("the CSR's key must be Ed25519 (or ECDSA)")
        expected = hashlib.sha256(spki_der(public_key)).digest() + hashlib.sha256(nonce).digest()
        try:
            evidence = base64.b64decode(req.evidence, validate=True)
        except (binascii.Error, ValueError):
            raise ActivationError("'evidence' is not valid base64") from None
        policy = Policy(
            measurements=tuple(ref.measurements) if ref.measurements else None,
            signer=ref.signer,
            product_id=ref.product_id,
            min_svn=ref.min_svn,
            allow_debug=package.debug,
            tcb_statuses=tuple(package.tcb_statuses),
            advisories=tuple(package.advisories),
            max_age_s=package.max_age_s,
        )
        return _Checked(m, tee, public_key, expected, evidence, policy)

    @staticmethod
    def _verify(req: ActivationRequest, c: _Checked) -> Any:
        sim_roots = c.manifest.config.sim_roots if c.manifest.config.allow_simulation else ()
        try:
            claims = verify(c.evidence, c.expected, c.policy, sim_roots=sim_roots, tee=c.tee)
        except SerecaError as exc:
            raise ActivationError(
                f"evidence of service '{req.service}' rejected ({type(exc).__name__}): {exc}"
            ) from None
        if claims.simulated and not c.manifest.config.allow_simulation:
            raise ActivationError("simulated evidence is not admitted: the manifest's config.allow_simulation is false")
        return claims

    def _grant(self, req: ActivationRequest, checked: _Checked, claims: Any, cas_address: str) -> dict[str, Any]:
        """Everything after verification; synchronous, so slot allocation and state changes are atomic."""
        assert self._ca is not None and self.audit is not None
        m = checked.manifest
        svc = m.services[req.service]
        public_key = checked.public_key
        instance_id = self._allocate(req.service, svc.max_instances, req.instance)
        validity = svc.cert_validity or m.config.cert_validity
        leaf = self._ca.issue(
            public_key,
            req.service,
            [req.service, instance_id],
            validity,
            uris=[f"sereca://service/{req.service}/{instance_id}"],
        )
        leaf_pem = cert_pem(leaf).decode()
        ca_pem = self._ca.cert_pem.decode()
        templates = [*svc.env.values(), *svc.files.values(), *svc.argv]
        needed = {r.name for t in templates for r in parse_template(t) if r.root == "secrets"}
        inst_certs, changed = vault.instance_cert_secrets(
            self._ca, self._root, m, instance_id, self._s["instance_certs"].get(instance_id, {}), needed
        )
        marker_nonce = _secrets.token_hex(16)
        markers: dict[str, str] = {}

        def resolve(ref: Ref) -> Value | bytes:
            if ref.root == "secrets":
                return vault.resolve_secret(
                    m, self._root, ref.name, ref.part, instance_id, self._s["shared_certs"], inst_certs,
                    self._s["user_secrets"],
                )
            if ref.root == "ca":
                return Value("cert", ca_pem.encode())
            if ref.root == "cas":
                return Value("text", cas_address.encode())
            if ref.name == "cert":
                return Value("cert", leaf_pem.encode())
            if ref.name == "key":
                marker = key_marker(marker_nonce, ref.encoding)
                markers[marker] = ref.encoding or "pem"
                return marker.encode()
            if ref.name == "name":
                return Value("text", req.service.encode())
            return Value("text", instance_id.encode())

        env: dict[str, str] = {}
        files: dict[str, str] = {}
        argv: list[str] = []
        try:
            for k, t in svc.env.items():
                env[k] = _text(render(t, resolve, f"services.{req.service}.env.{k}"), f"services.{req.service}.env.{k}")
            for path, t in svc.files.items():
                files[path] = base64.b64encode(render(t, resolve, f"services.{req.service}.files.{path}")).decode()
            for i, t in enumerate(svc.argv):
                argv.append(_text(render(t, resolve, f"services.{req.service}.argv[{i}]"), f"services.{req.service}.argv[{i}]"))
        except TemplateError as exc:
            raise ActivationError(f"cannot render the parameters of service '{req.service}': {exc}") from None

        # -- decided: mutate the state (no await above this line) ----------------------
        now = dt.datetime.now(dt.timezone.utc)
        if changed:
            self._s["instance_certs"][instance_id] = inst_certs
        self._s["instances"][instance_id] = {
            "service": req.service,
            "serial": format(leaf.serial_number, "x"),
            "not_after": leaf.not_valid_after_utc.timestamp(),
            "key_sha256": hashlib.sha256(spki_der(public_key)).hexdigest(),
            "activated": _iso(now),
            "tee": claims.tee,
            "measurement": claims.measurement.hex(),
            "svn": claims.svn,
            "simulated": claims.simulated,
        }
        self._s["stats"]["activations"] += 1
        self.audit.record(
            "activation",
            "allow",
            f"service:{req.service}",
            service=req.service,
            instance=instance_id,
            tee=claims.tee,
            measurement=claims.measurement.hex(),
            svn=claims.svn,
            simulated=claims.simulated,
            serial=format(leaf.serial_number, "x"),
        )
        nats = m.config.nats.model_dump() if m.config.nats else None
        return {
            "instance_id": instance_id,
            "cert_chain_pem": leaf_pem + ca_pem,
            "ca_pem": ca_pem,
            "params": {"env": env, "files": files, "argv": argv},
            "keys": {"bus": keymod.bus_keys(self._root, m, req.service, ca_pem)},
            "simulated": claims.simulated,
            "nats": nats,
            "not_after": _iso(leaf.not_valid_after_utc),
            "key_markers": markers,
        }

    def _allocate(self, service: str, limit: int, wanted: str | None) -> str:
        instances = self._s["instances"]
        now = time.time()
        slots = [f"{service}-{i}" for i in range(limit)]
        if wanted is not None:
            if wanted not in slots:
                raise ActivationError(
                    f"instance '{wanted}' is not an instance of service '{service}' "
                    f"(instances are {service}-0 … {service}-{limit - 1})"
                )
            return wanted
        for slot in slots:
            rec = instances.get(slot)
            if rec is None or rec.get("released") or rec["not_after"] < now:
                return slot
        raise InstanceLimitError(
            f"instance limit reached: service '{service}' already has {limit} live instance(s) "
            f"(services.{service}.max_instances = {limit}); stop one, let its certificate expire, "
            "restart it with its instance id, or raise max_instances"
        )

    async def release(self, instance_id: str, peer: Peer) -> dict[str, Any]:
        """A service instance stops: its slot becomes free (called with its own certificate)."""
        self._require_manifest()
        assert self.audit is not None
        if peer.kind != "service" or peer.instance != instance_id:
            exc = PermissionDenied(f"only instance '{instance_id}' itself (with its certificate) can release it")
            self._deny("instance.release", peer, exc, instance=instance_id)
            raise exc
        self._s["instances"][instance_id]["released"] = True
        self.audit.record("instance.release", "allow", str(peer), instance=instance_id)
        await self._commit()
        return {"instance_id": instance_id, "released": True}

    # ------------------------------------------------------------------ secrets

    async def set_secret(self, name: str, value: bytes, peer: Peer) -> dict[str, Any]:
        m = self._require_manifest()
        assert self.audit is not None
        try:
            self._require_user(peer, "secrets", "write", name)
            sec = m.secrets.get(name)
            if sec is None:
                raise NotFoundError(f"unknown secret '{name}'; the manifest defines: {', '.join(sorted(m.secrets)) or 'none'}")
            if not isinstance(sec, UserDefinedSecret):
                raise ConflictError(f"secret '{name}' is a {sec.type} generated by the CAS; only user-defined secrets can be set")
            if sec.size is not None and len(value) != sec.size:
                raise ConflictError(f"secret '{name}' must be exactly {sec.size} bytes (got {len(value)})")
            if len(value) > 1 << 20:
                raise ConflictError(f"secret '{name}' is larger than 1 MiB")
        except SerecaError as exc:
            self._deny("secret.set", peer, exc, secret=name)
            raise
        self._s["user_secrets"][name] = base64.b64encode(value).decode()
        self.audit.record("secret.set", "allow", str(peer), secret=name, sha256=hashlib.sha256(value).hexdigest())
        await self._commit()
        return {"name": name, "size": len(value)}

    async def get_secret(self, name: str, peer: Peer, instance: str | None = None) -> dict[str, Any]:
        m = self._require_manifest()
        assert self.audit is not None
        try:
            self._require_user(peer, "secrets", "read", name)
            sec = m.secrets.get(name)
            if sec is None:
                raise NotFoundError(f"unknown secret '{name}'")
            if not sec.shared and instance is None:
                raise ConflictError(f"secret '{name}' has one value per instance; name the instance")
            if isinstance(sec, CertSecret):
                store = self._s["shared_certs"] if sec.shared else self._s["instance_certs"].get(instance or "", {})
                if name not in store:
                    raise NotFoundError(f"instance '{instance}' has no value of secret '{name}' yet (not activated)")
                out: dict[str, Any] = {"cert_pem": store[name]["cert_pem"], "key_pem": store[name]["key_pem"]}
            else:
                v = vault.resolve_secret(m, self._root, name, None, instance or "", {}, {}, self._s["user_secrets"])
                out = {"value": base64.b64encode(v.data).decode()}
        except SerecaError as exc:
            self._deny("secret.get", peer, exc, secret=name)
            raise
        self.audit.record("secret.get", "allow", str(peer), secret=name, instance=instance)
        await self._commit()
        return {"name": name, "type": sec.type, **out}

    def _nats_users(self, m: Manifest) -> dict[str, Any]:
        subject_key = derive_subject_key(self._root)
        return {name: nats_permissions(m.bus, name, subject_key) for name in sorted(m.services)}

    async def nats_authorization(self, peer: Peer) -> dict[str, Any]:
        """Broker permissions per service, from the manifest's bus section (for nats-server's
        ``authorization.users`` with ``verify_and_map``: the identity is the service name, a DNS SAN
        of every service certificate).  Only for a user with ``broker``/``configure``: the lists tie
        each hashed subject to the services using it, which the broker must not learn from anyone."""
        m = self._require_manifest()
        assert self.audit is not None
        try:
            self._require_user(peer, "broker", "configure")
        except SerecaError as exc:
            self._deny("broker.authorization", peer, exc)
            raise
        self.audit.record("broker.authorization", "allow", str(peer))
        await self._commit()
        return {"users": self._nats_users(m), "ca_pem": self._ca.cert_pem.decode() if self._ca else None}

    async def broker_config(self, peer: Peer) -> dict[str, Any]:
        """Everything a nats-server needs to enforce the manifest (``sereca cas broker-config``).

        Its TLS certificate and key (the shared cert secret ``config.nats.server_cert``, issued by the
        deployment CA), the deployment CA that issues client certificates, and the per-service
        permissions.  Needs a user with ``broker``/``configure``; refused with a precise reason when the
        manifest has no usable ``config.nats`` section.
        """
        m = self._require_manifest()
        assert self.audit is not None and self._ca is not None
        try:
            self._require_user(peer, "broker", "configure")
            nats = m.config.nats
            if nats is None:
                raise ConflictError(
                    "the manifest has no config.nats section: add config.nats with url (tls://HOST:PORT), "
                    "tls: true and server_cert naming a shared cert-ecdsa secret whose sans are the broker's "
                    "host names"
                )
            if not nats.tls:
                raise ConflictError(
                    "config.nats.tls is false: services would connect without client certificates, so the "
                    "broker could not tell them apart; set tls: true (and a tls:// url) before generating "
                    "the broker's configuration"
                )
            if not nats.server_cert:
                raise ConflictError(
                    "config.nats.server_cert is not set: add a shared cert-ecdsa secret with the broker's host "
                    "names as sans and name it in config.nats.server_cert"
                )
            stored = self._s["shared_certs"].get(nats.server_cert)
            if stored is None:
                raise NotFoundError(f"secret '{nats.server_cert}' has no certificate yet; set the manifest again")
        except SerecaError as exc:
            self._deny("broker.config", peer, exc)
            raise
        self.audit.record("broker.config", "allow", str(peer), secret=nats.server_cert)
        await self._commit()
        ca_pem = self._ca.cert_pem.decode()
        return {
            "url": nats.url,
            "server_cert_pem": stored["cert_pem"] + ca_pem,
            "server_key_pem": stored["key_pem"],
            "ca_pem": ca_pem,
            "users": self._nats_users(m),
        }

    # ------------------------------------------------------------------ status, evidence, audit

    def status(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "mode": self.mode,
            "tee": self.platform.tee_type,
            "simulated": self.simulated,
        }
        if self._dk is None:
            out["reason"] = self._recovery_reason
            return out
        assert self._ca is not None and self.audit is not None
        out["root_fingerprint"] = fingerprint(self._ca.cert)
        out["audit"] = {"count": self.audit.count, "head": self.audit.head}
        out["activations"] = self._s["stats"]["activations"]
        if self._manifest is not None:
            now = time.time()
            live: dict[str, int] = {}
            for rec in self._s["instances"].values():
                if not rec.get("released") and rec["not_after"] >= now:
                    live[rec["service"]] = live.get(rec["service"], 0) + 1
            out["manifest_digest"] = self._manifest.digest()
            out["allow_simulation"] = self._manifest.config.allow_simulation
            out["services"] = {
                n: {"live": live.get(n, 0), "max_instances": s.max_instances, "package": s.package}
                for n, s in self._manifest.services.items()
            }
        return out

    async def evidence(self, nonce_hex: str) -> dict[str, Any]:
        """Evidence binding the CAS's root (or, in recovery mode, its TLS) certificate to a client nonce."""
        try:
            nonce = bytes.fromhex(nonce_hex)
        except (ValueError, TypeError):
            raise ConflictError("the nonce must be hex") from None
        if not 16 <= len(nonce) <= 64:
            raise ConflictError("the nonce must be 16 to 64 bytes")
        if self._ephemeral is not None:
            bound = self._ephemeral[1]
        else:
            assert self._ca is not None
            bound = self._ca.cert
        der = bound.public_bytes(serialization.Encoding.DER)
        rd = hashlib.sha256(der).digest() + hashlib.sha256(nonce).digest()
        ev = await asyncio.to_thread(self.platform.evidence, rd)
        return {
            "evidence": base64.b64encode(ev).decode(),
            "tee": self.platform.tee_type,
            "simulated": self.simulated,
            "mode": self.mode,
            "cert_pem": cert_pem(bound).decode(),
        }

    async def audit_export(self, peer: Peer) -> dict[str, Any]:
        try:
            self._require_user(peer, "audit", "read")
        except SerecaError as exc:
            self._deny("audit.export", peer, exc)
            raise
        assert self.audit is not None
        self.audit.record("audit.export", "allow", str(peer))
        await self._commit()
        audit = self.audit
        async with self._write_lock:  # no append runs while the file is read
            entries = await asyncio.to_thread(lambda: list(audit.read()))
            count = len(entries)
            head = entries[-1]["hash"] if entries else GENESIS
        return {"entries": entries, "count": count, "head": head}

    # ------------------------------------------------------------------ recovery

    def recovery_info(self) -> dict[str, Any]:
        if self._dk is not None:
            raise ConflictError("the CAS is not in recovery mode; nothing to recover")
        entries = self.store.recovery_entries()
        if not entries:
            raise RecoveryError(
                "the sealed state has no recovery keys (the manifest listed none): it cannot be recovered; "
                "start the CAS on the original platform"
            )
        return {"mode": "recovery", "reason": self._recovery_reason, "keys": entries}

    async def recover(self, dk: bytes) -> dict[str, Any]:
        if self._dk is not None:
            raise ConflictError("the CAS is not in recovery mode; nothing to recover")
        await asyncio.to_thread(self.store.check_recovered_key, dk)
        state = await asyncio.to_thread(self.store.decrypt_state, dk)
        await asyncio.to_thread(self._load, dk, state)
        assert self.audit is not None
        m = self._manifest
        await asyncio.to_thread(
            self.store.write_keys, dk, m.config.seal_mode if m else "measurement", m.recovery if m else {}
        )
        self.audit.record("cas.recovered", "allow", "owner", tee=self.platform.tee_type)
        await self._commit()
        if self.on_trust_change is not None:
            self.on_trust_change()
        return {"mode": self.mode, "root_fingerprint": fingerprint(self._ca.cert)}  # type: ignore[union-attr]


def _text(data: bytes, where: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise TemplateError(f"{where} renders to binary data; use the hex or base64 encoding") from None
    if "\0" in text:
        raise TemplateError(f"{where} contains a NUL byte; use the hex or base64 encoding")
    return text


__all__ = ["CAS", "ActivationRequest", "ManifestError", "Peer"]
