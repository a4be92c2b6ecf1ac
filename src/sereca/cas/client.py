"""Client library of the CAS, used by services (activation) and the CLI.

Every connection pins the CAS's root certificate (``root_pem``), obtained
with :func:`verify_cas` (which attests the CAS first) or from a trusted
operator.  Only ``insecure=True`` skips the check, for development.

Activation (service side, docs/architecture.md)::

    client = CASClient(url, root_pem=pinned_root_pem)
    activation = await client.activate("detector", platform)

makes a fresh Ed25519 key, asks for a nonce, produces evidence over
``SHA-256(SPKI DER of the key) || SHA-256(nonce bytes)`` (the nonce is hex
on the wire; its decoded bytes are hashed), sends evidence + CSR and
returns an :class:`Activation`.  The private key never leaves the process;
``{{ service.key }}`` parameters are filled in here.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import os
import secrets as _secrets
import ssl
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.x509.oid import NameOID

from sereca.cas.errors import ERROR_CLASSES, ManifestError, RecoveryError, TransportError
from sereca.cas.state import recovery_fingerprint, unwrap_recovery
from sereca.cas.templates import fill_key_markers
from sereca.errors import AttestationError, ConfigError, SerecaError
from sereca.tee.base import Platform


def _write_private(d: str, name: str, data: bytes) -> Path:
    path = Path(d, name)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return path


def load_cert_chain(ctx: ssl.SSLContext, chain_pem: bytes, key_pem: bytes) -> None:
    """Load an in-memory certificate chain and key into ``ctx`` (ssl needs files: a private temp dir)."""
    with tempfile.TemporaryDirectory(prefix="sereca-tls-") as d:
        ctx.load_cert_chain(_write_private(d, "cert.pem", chain_pem), _write_private(d, "key.pem", key_pem))


@dataclass
class Activation:
    """What a service gets on activation (contract in docs/architecture.md)."""

    service: str
    instance_id: str
    cert_chain_pem: str
    ca_pem: str
    params: dict[str, Any]
    keys: dict[str, Any]
    simulated: bool
    nats: dict[str, Any] | None
    private_key: ed25519.Ed25519PrivateKey = field(repr=False)
    not_after: str = ""

    @property
    def certificate(self) -> x509.Certificate:
        return x509.load_pem_x509_certificate(self.cert_chain_pem.encode())

    def private_key_pem(self) -> bytes:
        return self.private_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    def file(self, path: str) -> bytes:
        """Content of a rendered file parameter."""
        return base64.b64decode(self.params["files"][path])

    def write_files(self, root: str | os.PathLike[str] | None = None) -> list[Path]:
        """Write the file parameters (under ``root`` if given), mode 0600; return the paths."""
        out = []
        for path in self.params["files"]:
            target = Path(root, path.lstrip("/")) if root else Path(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(self.file(path))
            out.append(target)
        return out

    def ssl_context(self, server_side: bool = False, check_hostname: bool = False) -> ssl.SSLContext:
        """An mTLS context: presents this instance's certificate, trusts only the deployment CA.

        Peers must present a certificate from the same deployment; check the
        peer's service with :func:`peer_service` (host names are not checked
        unless ``check_hostname``, as service names are not DNS names).
        """
        purpose = ssl.PROTOCOL_TLS_SERVER if server_side else ssl.PROTOCOL_TLS_CLIENT
        ctx = ssl.SSLContext(purpose)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_verify_locations(cadata=self.ca_pem)
        ctx.verify_mode = ssl.CERT_REQUIRED
        if not server_side:
            ctx.check_hostname = check_hostname
        load_cert_chain(ctx, self.cert_chain_pem.encode(), self.private_key_pem())
        return ctx


def peer_service(ssl_object: ssl.SSLObject | ssl.SSLSocket) -> tuple[str, str] | None:
    """(service, instance id) of a verified peer certificate of this deployment, or None."""
    der = ssl_object.getpeercert(binary_form=True)
    if not der:
        return None
    cert = x509.load_der_x509_certificate(der)
    try:
        uris = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(
            x509.UniformResourceIdentifier
        )
    except x509.ExtensionNotFound:
        return None
    for uri in uris:
        parts = uri.split("/")
        if uri.startswith("sereca://service/") and len(parts) == 5:
            return parts[3], parts[4]
    return None


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
        name, detail = body.get("error", ""), body.get("detail", "")
    except ValueError:
        name, detail, body = "", response.text[:300], {}
    if name == "ManifestError":
        raise ManifestError(body.get("problems") or [detail])
    cls = ERROR_CLASSES.get(name)
    if cls is None:
        raise TransportError(f"the CAS answered HTTP {response.status_code}: {detail or response.reason_phrase}")
    raise cls(detail)


class CASClient:
    """Async client of one CAS.  Use as ``async with CASClient(...) as c:`` or call :meth:`aclose`."""

    def __init__(
        self,
        url: str,
        root_pem: str | None = None,
        *,
        insecure: bool = False,
        cert_pem: str | bytes | None = None,
        key_pem: str | bytes | None = None,
        timeout: float = 30.0,
    ) -> None:
        if root_pem is None and not insecure:
            raise ConfigError(
                "no pinned CAS root certificate: run `sereca cas verify --url URL --policy P` first "
                "(or pass insecure=True / --insecure for development only)"
            )
        self.url = url.rstrip("/")
        self.root_pem = root_pem
        if root_pem is not None:
            try:
                ctx = ssl.create_default_context(cadata=root_pem)
            except (ssl.SSLError, ValueError) as exc:
                raise ConfigError(f"the pinned CAS root is not a PEM certificate ({exc}); run `sereca cas verify` again") from None
        else:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if cert_pem is not None:
            if key_pem is None:
                raise ConfigError("a client certificate needs its private key (--key)")
            as_bytes = [v.encode() if isinstance(v, str) else v for v in (cert_pem, key_pem)]
            try:
                load_cert_chain(ctx, as_bytes[0], as_bytes[1])
            except ssl.SSLError as exc:
                raise ConfigError(f"cannot use the client certificate and key: {exc}") from None
        self._ctx = ctx
        self._http = httpx.AsyncClient(verify=ctx, timeout=timeout)

    async def __aenter__(self) -> CASClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def _request(self, method: str, path: str, **kw: Any) -> Any:
        try:
            r = await self._http.request(method, f"{self.url}{path}", **kw)
        except httpx.ConnectError as exc:
            text = str(exc)
            if "CERTIFICATE_VERIFY_FAILED" in text:
                raise TransportError(
                    f"the server at {self.url} does not hold a certificate from the pinned CAS root: "
                    f"it is not this deployment's CAS (or the pin is stale): {text}"
                ) from None
            raise TransportError(f"cannot connect to the CAS at {self.url}: {text or type(exc).__name__}") from None
        except (httpx.ReadError, httpx.RemoteProtocolError, httpx.WriteError) as exc:
            raise TransportError(
                f"the CAS at {self.url} closed the connection ({exc or type(exc).__name__}); if you presented "
                "a client certificate, it is not one the CAS trusts"
            ) from None
        except httpx.TimeoutException:
            raise TransportError(f"the CAS at {self.url} did not answer in time") from None
        except httpx.HTTPError as exc:
            raise TransportError(f"cannot talk to the CAS at {self.url}: {exc or type(exc).__name__}") from None
        _raise_for(r)
        return r.json()

    # -- public -----------------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        return await self._request("GET", "/api/v1/status")

    async def root_certificate(self) -> str:
        return (await self._request("GET", "/api/v1/cas/root"))["root_pem"]

    async def evidence(self, nonce: bytes) -> dict[str, Any]:
        return await self._request("GET", "/api/v1/cas/evidence", params={"nonce": nonce.hex()})

    async def nonce(self) -> str:
        return (await self._request("POST", "/api/v1/activation/nonce"))["nonce"]

    async def activate(self, service: str, platform: Platform, *, instance: str | None = None) -> Activation:
        """Attest as ``service`` and get its certificate, parameters and keys."""
        key = ed25519.Ed25519PrivateKey.generate()
        spki = key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        nonce = await self.nonce()
        report_data = hashlib.sha256(spki).digest() + hashlib.sha256(bytes.fromhex(nonce)).digest()
        evidence = await asyncio.to_thread(platform.evidence, report_data)
        csr = (
            x509.CertificateSigningRequestBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, service)]))
            .sign(key, None)
        )
        body = {
            "service": service,
            "nonce": nonce,
            "evidence": base64.b64encode(evidence).decode(),
            "tee": platform.tee_type,
            "csr": csr.public_bytes(serialization.Encoding.PEM).decode(),
            "instance": instance,
        }
        data = await self._request("POST", "/api/v1/activation", json=body)
        return self._activation(service, key, data)

    async def renew(self, activation: Activation, platform: Platform) -> Activation:
        """A fresh certificate (new key, fresh evidence) for the same instance."""
        return await self.activate(activation.service, platform, instance=activation.instance_id)

    async def release(self, activation: Activation) -> None:
        """Tell the CAS this instance stops (frees its slot); authenticated with its own certificate."""
        async with CASClient(
            self.url, self.root_pem, insecure=self.root_pem is None,
            cert_pem=activation.cert_chain_pem, key_pem=activation.private_key_pem(),
        ) as c:
            await c._request("DELETE", f"/api/v1/activation/{activation.instance_id}")

    @staticmethod
    def _activation(service: str, key: ed25519.Ed25519PrivateKey, data: dict[str, Any]) -> Activation:
        markers: dict[str, str] = data.get("key_markers") or {}
        params = data["params"]
        if markers:
            pem = key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
            fill = lambda s: fill_key_markers(s.encode(), markers, pem).decode()  # noqa: E731
            params = {
                "env": {k: fill(v) for k, v in params["env"].items()},
                "argv": [fill(v) for v in params["argv"]],
                "files": {
                    p: base64.b64encode(fill_key_markers(base64.b64decode(v), markers, pem)).decode()
                    for p, v in params["files"].items()
                },
            }
        return Activation(
            service=service,
            instance_id=data["instance_id"],
            cert_chain_pem=data["cert_chain_pem"],
            ca_pem=data["ca_pem"],
            params=params,
            keys=data["keys"],
            simulated=bool(data["simulated"]),
            nats=data.get("nats"),
            private_key=key,
            not_after=data.get("not_after", ""),
        )

    async def set_manifest(self, text: str | bytes) -> dict[str, Any]:
        body = text.encode() if isinstance(text, str) else text
        return await self._request("PUT", "/api/v1/manifest", content=body,
                                   headers={"content-type": "application/yaml"})

    async def get_manifest(self) -> dict[str, Any]:
        return await self._request("GET", "/api/v1/manifest")

    async def raise_min_svn(self, package: str, tee: str, min_svn: int) -> dict[str, Any]:
        return await self._request(
            "POST", f"/api/v1/manifest/packages/{package}/min-svn", json={"tee": tee, "min_svn": min_svn}
        )

    async def set_secret(self, name: str, value: bytes) -> dict[str, Any]:
        return await self._request("PUT", f"/api/v1/secrets/{name}", json={"value": base64.b64encode(value).decode()})

    async def get_secret(self, name: str, instance: str | None = None) -> dict[str, Any]:
        params = {"instance": instance} if instance else None
        return await self._request("GET", f"/api/v1/secrets/{name}", params=params)

    async def nats_authorization(self) -> dict[str, Any]:
        """``{"users": {service: NATS permissions}, "ca_pem": ...}`` for the broker's config."""
        return await self._request("GET", "/api/v1/bus/nats-authorization")

    async def broker_config(self) -> dict[str, Any]:
        """The broker's TLS key pair, the deployment CA and per-service permissions (user with broker/configure);
        see :func:`sereca.cas.broker.fetch_broker_config` for the typed form."""
        return await self._request("GET", "/api/v1/bus/broker-config")

    async def audit(self) -> dict[str, Any]:
        return await self._request("GET", "/api/v1/audit")


async def attest_cas(
    url: str, policy: Any, *, sim_roots: Iterable[str] = (), timeout: float = 30.0, pinned_cert: str | None = None
) -> tuple[str, Any]:
    """Attest the CAS at ``url``; return (bound certificate PEM, claims).

    Fetches the CAS's evidence over a fresh nonce, verifies it against
    ``policy`` (a :class:`sereca.tee.Policy`), checks that it binds the
    certificate the CAS presents as its root (recovery mode: its temporary
    TLS certificate), then checks that the server holds that certificate's key.
    """
    from sereca.tee import verify

    nonce = _secrets.token_bytes(32)
    async with CASClient(url, pinned_cert, insecure=pinned_cert is None, timeout=timeout) as c:
        ev = await c.evidence(nonce)
    bound = ev["cert_pem"]
    der = x509.load_pem_x509_certificate(bound.encode()).public_bytes(serialization.Encoding.DER)
    expected = hashlib.sha256(der).digest() + hashlib.sha256(nonce).digest()
    try:
        claims = verify(base64.b64decode(ev["evidence"]), expected, policy, sim_roots=tuple(sim_roots))
    except SerecaError as exc:
        raise AttestationError(f"the CAS at {url} failed attestation ({type(exc).__name__}): {exc}") from None
    async with CASClient(url, bound, timeout=timeout) as c:  # the server holds the bound certificate
        await c.status()
    return bound, claims


async def verify_cas(
    url: str, policy: Any, *, sim_roots: Iterable[str] = (), timeout: float = 30.0
) -> tuple[str, Any]:
    """Attest a CAS in normal mode; return (root certificate PEM to pin, claims)."""
    root, claims = await attest_cas(url, policy, sim_roots=sim_roots, timeout=timeout)
    cert = x509.load_pem_x509_certificate(root.encode())
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise TransportError(f"the CAS at {url} is in recovery mode; recover it first (`sereca recover`)")
    return root, claims


async def recover(
    url: str,
    private_key_pem: bytes,
    *,
    policy: Any = None,
    sim_roots: Iterable[str] = (),
    insecure: bool = False,
    timeout: float = 30.0,
) -> dict[str, Any]:
    """Recover a CAS in recovery mode with an owner's RSA private key.

    With ``policy`` the CAS is attested first and the data key is sent only
    to the attested instance; ``insecure`` skips attestation (development).
    The private key stays here: the CAS sends the data key encrypted to it,
    and receives it back decrypted over the (attested) TLS channel.
    """
    try:
        key = serialization.load_pem_private_key(private_key_pem, None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"cannot read the recovery key (an unencrypted PEM RSA private key): {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigError("the recovery key must be an RSA private key")
    if policy is not None:
        pinned, _claims = await attest_cas(url, policy, sim_roots=sim_roots, timeout=timeout)
    elif insecure:
        pinned = None
    else:
        raise ConfigError("give a policy to attest the CAS before sending it the key (or insecure=True / --insecure)")
    async with CASClient(url, pinned, insecure=pinned is None, timeout=timeout) as c:
        info = await c._request("GET", "/api/v1/recovery")
        mine = recovery_fingerprint(key.public_key())
        entry = next((e for e in info["keys"] if e.get("fingerprint") == mine), None)
        if entry is None:
            owners = ", ".join(e.get("owner", "?") for e in info["keys"])
            raise RecoveryError(
                f"this key is not one of the deployment's recovery keys (recovery keys belong to: {owners})"
            )
        dk = unwrap_recovery(key, entry["wrapped"])
        return await c._request("POST", "/api/v1/recovery", json={"key": base64.b64encode(dk).decode()})


__all__ = ["Activation", "CASClient", "attest_cas", "load_cert_chain", "peer_service", "recover", "verify_cas"]
