"""The CAS's HTTP API (FastAPI).  No logic here: HTTP in, :class:`CAS` call, JSON out.

The caller's identity comes from the TLS client certificate, which the
server's protocol puts into the ASGI scope as the TLS extension
(``scope["extensions"]["tls"]["client_cert_chain"]``, see
:mod:`sereca.cas.server`).  Errors are JSON ``{"error": class name,
"detail": message, "problems": [...]}`` with the status from
:data:`sereca.cas.errors.HTTP_STATUS`.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from sereca import __version__
from sereca.cas.core import CAS, ActivationRequest, Peer
from sereca.cas.errors import HTTP_STATUS, ConflictError, ManifestError, error_name
from sereca.errors import SerecaError

MAX_MANIFEST_BYTES = 1 << 20


class ActivationBody(BaseModel):
    service: str = Field(max_length=128)
    nonce: str = Field(max_length=256)
    evidence: str = Field(max_length=1 << 20, description="base64 evidence")
    tee: str | None = Field(None, description="TEE type hint: sim, sgx, tdx, sev-snp")
    csr: str = Field(max_length=16384, description="PEM CSR of the service's fresh key")
    instance: str | None = Field(None, max_length=200, description="Renew / take over this instance id")


class SecretBody(BaseModel):
    value: str = Field(description="base64 value")


class MinSvnBody(BaseModel):
    tee: str
    min_svn: int = Field(ge=0)


class RecoverBody(BaseModel):
    key: str = Field(description="base64 data key, decrypted by the owner with their recovery key")


def peer_cert(request: Request) -> str | None:
    tls = request.scope.get("extensions", {}).get("tls") or {}
    chain = tls.get("client_cert_chain") or ()
    return chain[0] if chain else None


def create_app(cas: CAS) -> FastAPI:
    app = FastAPI(
        title="SERECA CAS",
        version=__version__,
        description="Configuration and attestation service of a SERECA deployment (docs/cas.md).",
    )

    @app.exception_handler(SerecaError)
    async def _sereca_error(request: Request, exc: SerecaError) -> JSONResponse:
        name = error_name(exc)
        body: dict[str, Any] = {"error": name, "detail": str(exc)}
        if isinstance(exc, ManifestError):
            body["problems"] = exc.problems
        return JSONResponse(body, status_code=HTTP_STATUS.get(name, 400))

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            f"{'.'.join(str(p) for p in e.get('loc', ()) if p != 'body') or 'body'}: {e.get('msg', 'invalid')}"
            for e in exc.errors()
        ]
        return JSONResponse(
            {"error": "ConfigError", "detail": "malformed request: " + "; ".join(problems)}, status_code=400
        )

    def who(request: Request) -> Peer:
        return cas.identify(peer_cert(request))

    @app.get("/api/v1/status")
    async def status() -> dict[str, Any]:
        return cas.status()

    @app.get("/api/v1/cas/root")
    async def root() -> dict[str, Any]:
        return {"root_pem": cas.root_pem()}

    @app.get("/api/v1/cas/evidence")
    async def evidence(nonce: str) -> dict[str, Any]:
        return await cas.evidence(nonce)

    @app.post("/api/v1/activation/nonce")
    async def nonce() -> dict[str, Any]:
        return {"nonce": cas.new_nonce()}

    @app.post("/api/v1/activation")
    async def activate(body: ActivationBody, request: Request) -> dict[str, Any]:
        req = ActivationRequest(body.service, body.nonce, body.evidence, body.tee, body.csr, body.instance)
        return await cas.activate(req, str(request.base_url).rstrip("/"))

    @app.delete("/api/v1/activation/{instance_id}")
    async def release(instance_id: str, request: Request) -> dict[str, Any]:
        return await cas.release(instance_id, who(request))

    @app.get("/api/v1/bus/nats-authorization")
    async def nats_authorization(request: Request) -> dict[str, Any]:
        return await cas.nats_authorization(who(request))

    @app.get("/api/v1/bus/broker-config")
    async def broker_config(request: Request) -> dict[str, Any]:
        return await cas.broker_config(who(request))

    @app.get("/api/v1/manifest")
    async def get_manifest() -> dict[str, Any]:
        return cas.get_manifest()

    @app.put("/api/v1/manifest")
    async def set_manifest(request: Request) -> dict[str, Any]:
        body = await _limited_body(request)
        return await cas.set_manifest(body, who(request))

    @app.post("/api/v1/manifest/packages/{package}/min-svn")
    async def min_svn(package: str, body: MinSvnBody, request: Request) -> dict[str, Any]:
        return await cas.raise_min_svn(package, body.tee, body.min_svn, who(request))

    @app.put("/api/v1/secrets/{name}")
    async def set_secret(name: str, body: SecretBody, request: Request) -> dict[str, Any]:
        try:
            value = base64.b64decode(body.value, validate=True)
        except (binascii.Error, ValueError):
            raise ConflictError("the secret value must be base64") from None
        return await cas.set_secret(name, value, who(request))

    @app.get("/api/v1/secrets/{name}")
    async def get_secret(name: str, request: Request, instance: str | None = None) -> dict[str, Any]:
        return await cas.get_secret(name, who(request), instance)

    @app.get("/api/v1/audit")
    async def audit(request: Request) -> dict[str, Any]:
        return await cas.audit_export(who(request))

    @app.get("/api/v1/recovery")
    async def recovery() -> dict[str, Any]:
        return cas.recovery_info()

    @app.post("/api/v1/recovery")
    async def recover(body: RecoverBody) -> dict[str, Any]:
        try:
            key = base64.b64decode(body.key, validate=True)
        except (binascii.Error, ValueError):
            raise ConflictError("the recovered key must be base64") from None
        return await cas.recover(key)

    return app


async def _limited_body(request: Request) -> bytes:
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_MANIFEST_BYTES:
            raise ConflictError(f"the manifest is larger than {MAX_MANIFEST_BYTES} bytes")
        chunks.append(chunk)
    return b"".join(chunks)
