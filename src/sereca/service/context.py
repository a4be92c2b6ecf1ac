"""What a running service's handlers can reach (``svc.bus``, ``svc.params``, ...).

The runtime builds one :class:`ServiceContext` when it starts and drops it
when it stops; :class:`sereca.Service` exposes its fields as attributes.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sereca.service.metrics import ServiceMetrics


@dataclass(frozen=True)
class Params:
    """The parameters the CAS rendered for this service at activation.

    Kept in memory only: the runtime never writes secrets to the host's disk
    or to ``os.environ`` (both are visible to the untrusted host).
    """

    env: Mapping[str, str] = field(default_factory=dict)
    files: Mapping[str, bytes] = field(default_factory=dict)
    argv: tuple[str, ...] = ()

    def get(self, name: str, default: str | None = None) -> str | None:
        """An env parameter, or ``default``."""
        return self.env.get(name, default)

    def __getitem__(self, name: str) -> str:
        try:
            return self.env[name]
        except KeyError:
            raise KeyError(
                f"parameter {name!r} was not provisioned; add it to the service's env in the manifest"
            ) from None

    def file(self, path: str) -> bytes:
        try:
            return self.files[path]
        except KeyError:
            raise KeyError(
                f"file {path!r} was not provisioned; add it to the service's files in the manifest"
            ) from None

    @classmethod
    def from_activation(cls, params: Mapping[str, Any] | Any) -> Params:
        """From the activation's ``params`` (``env``; ``files`` path -> b64 or bytes; ``argv``)."""
        import base64

        if params is None:
            return cls()
        if not isinstance(params, Mapping):
            params = {k: getattr(params, k, None) for k in ("env", "files", "argv")}
        files: dict[str, bytes] = {}
        for path, content in dict(params.get("files") or {}).items():
            files[path] = content if isinstance(content, bytes) else base64.b64decode(content)
        return cls(
            env=dict(params.get("env") or {}),
            files=files,
            argv=tuple(params.get("argv") or ()),
        )


@dataclass(frozen=True)
class ServiceContext:
    """The live resources of one running service."""

    bus: Any
    params: Params
    instance_id: str
    simulated: bool
    platform: str
    tee: str
    logger: logging.Logger
    metrics: ServiceMetrics
