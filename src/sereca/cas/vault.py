"""Secret values: generation, storage form, and resolution for templates.

* ``symmetric-key``: derived from the root secret (HKDF, label
  ``cas/secret/<name>/shared`` or ``.../instance/<id>``), never stored.
* ``cert-*``: generated and issued by the deployment CA; stored in the
  sealed state (shared: at manifest time; per instance: on the instance's
  first activation, so a restarted instance gets the same value).
* ``plain``: the manifest's literal value.  ``user-defined``: uploaded later.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any

from sereca.cas import keys
from sereca.cas.errors import NotReadyError
from sereca.cas.manifest import CertSecret, Manifest, PlainSecret, SymmetricKeySecret, UserDefinedSecret
from sereca.cas.pki import CA, cert_pem, key_pem, public_pem, secret_key
from sereca.cas.templates import Value


def definition_digest(secret: CertSecret) -> str:
    return hashlib.sha256(json.dumps(secret.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def make_cert_secret(ca: CA, name: str, secret: CertSecret, seed: bytes | None) -> dict[str, str]:
    key = secret_key(secret.type, secret.size, seed)
    cert = ca.issue(key.public_key(), secret.subject or name, secret.sans, secret.validity)
    return {"key_pem": key_pem(key).decode(), "cert_pem": cert_pem(cert).decode(), "def": definition_digest(secret)}


def refresh_shared(ca: CA, root: bytes, manifest: Manifest, stored: dict[str, Any]) -> dict[str, Any]:
    """Shared cert secrets for ``manifest``: keep unchanged ones, make new/changed ones."""
    out: dict[str, Any] = {}
    for name, sec in manifest.secrets.items():
        if isinstance(sec, CertSecret) and sec.shared:
            old = stored.get(name)
            if old is not None and old.get("def") == definition_digest(sec):
                out[name] = old
            else:
                seed = None if sec.type == "cert-rsa" else keys.secret_seed(root, name, None)
                out[name] = make_cert_secret(ca, name, sec, seed)
    return out


def instance_cert_secrets(
    ca: CA, root: bytes, manifest: Manifest, instance: str, stored: dict[str, Any], needed: set[str]
) -> tuple[dict[str, Any], bool]:
    """Per-instance cert secrets of ``instance`` among ``needed``; returns (values, changed)."""
    out = dict(stored)
    changed = False
    for name in needed:
        sec = manifest.secrets.get(name)
        if not isinstance(sec, CertSecret) or sec.shared:
            continue
        old = out.get(name)
        if old is None or old.get("def") != definition_digest(sec):
            seed = None if sec.type == "cert-rsa" else keys.secret_seed(root, name, instance)
            out[name] = make_cert_secret(ca, f"{name}", sec, seed)
            changed = True
    return out, changed


def resolve_secret(
    manifest: Manifest,
    root: bytes,
    name: str,
    part: str | None,
    instance: str,
    shared_certs: dict[str, Any],
    instance_certs: dict[str, Any],
    user_values: dict[str, str],
) -> Value:
    sec = manifest.secrets[name]
    if isinstance(sec, SymmetricKeySecret):
        return Value("bytes", keys.secret_seed(root, name, None if sec.shared else instance, sec.size // 8))
    if isinstance(sec, PlainSecret):
        return Value("text", sec.value.encode())
    if isinstance(sec, UserDefinedSecret):
        if name not in user_values:
            raise NotReadyError(
                f"secret '{name}' is user-defined and has not been uploaded yet; a user with write access "
                f"must run `sereca secret set {name} FILE`"
            )
        data = base64.b64decode(user_values[name])
        try:
            data.decode("utf-8")
            return Value("text", data)
        except UnicodeDecodeError:
            return Value("bytes", data)
    stored = (shared_certs if sec.shared else instance_certs)[name]
    if part == "cert":
        return Value("cert", stored["cert_pem"].encode())
    if part == "key":
        return Value("key", stored["key_pem"].encode())
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    k = load_pem_private_key(stored["key_pem"].encode(), None)
    return Value("public", public_pem(k))  # type: ignore[arg-type]
