"""The CAS: configuration and attestation service of a SERECA deployment.

Layers (as MarbleRun's coordinator): :mod:`~sereca.cas.manifest` (models and
validation), :mod:`~sereca.cas.state` (sealed store), :mod:`~sereca.cas.core`
(logic), :mod:`~sereca.cas.api` (HTTP, no logic), :mod:`~sereca.cas.server`
(uvicorn over TLS), :mod:`~sereca.cas.client` (services and CLI).  See
docs/cas.md and docs/manifest.md.
"""

from sereca.cas.client import Activation, CASClient, recover, verify_cas
from sereca.cas.manifest import Manifest, load_manifest, manifest_schema

__all__ = ["Activation", "CASClient", "Manifest", "load_manifest", "manifest_schema", "recover", "verify_cas"]
