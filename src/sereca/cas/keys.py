"""Key derivation from the deployment root secret (HKDF-SHA-256, no salt).

Every key the CAS hands out derives from the 32-byte root secret ``R`` with
an info label naming its use, so keys rotate by epoch and never cross uses
(see the bus-key table in docs/architecture.md).
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sereca.bus.keys import grants_for
from sereca.cas.manifest import Manifest


def hkdf(secret: bytes, info: str, length: int = 32) -> bytes:
    """HKDF-SHA-256(secret, salt=None, info) -> ``length`` bytes."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info.encode()).derive(secret)


def secret_seed(root: bytes, secret: str, instance: str | None, length: int = 32) -> bytes:
    """Seed of a generated secret: shared (``instance`` None) or per instance."""
    scope = "shared" if instance is None else f"instance/{instance}"
    return hkdf(root, f"cas/secret/{secret}/{scope}", length)


def bus_keys(root: bytes, manifest: Manifest, service: str, ca_pem: str) -> dict[str, Any]:
    """``activation.keys["bus"]`` for ``service`` (format in docs/architecture.md).

    The derivation itself lives in one place, :func:`sereca.bus.keys.grants_for`.
    """
    return grants_for(root, manifest.bus.model_dump(), service, ca_pem=ca_pem)
