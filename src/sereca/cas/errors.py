"""Errors of the CAS (``sereca.cas``).

Each class says what kind of thing went wrong; each message says what was
wrong and what to do.  The API layer maps them to HTTP statuses
(:data:`HTTP_STATUS`) and the client maps the JSON error back to the same
class, so ``except ActivationError`` works on either side of the wire.
"""

from __future__ import annotations

from collections.abc import Sequence

from sereca.errors import AttestationError, ConfigError, IntegrityError, SerecaError


class CASError(SerecaError):
    """Root of the CAS's own errors that fit no more specific root class."""


class ManifestError(ConfigError):
    """A manifest is invalid; ``problems`` lists every problem as ``path: message``."""

    def __init__(self, problems: Sequence[str], source: str = "manifest") -> None:
        self.problems = list(problems)
        self.source = source
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{source} is invalid ({len(self.problems)} problem(s)):\n{lines}")


class ActivationError(AttestationError):
    """A service's activation was refused (evidence, binding, nonce, policy)."""


class UnknownServiceError(ActivationError):
    """The manifest names no such service."""


class InstanceLimitError(ActivationError):
    """The service already runs as many instances as the manifest allows."""


class NonceError(ActivationError):
    """The nonce is unknown, already used or expired."""


class PermissionDenied(CASError):
    """The caller is not authenticated as a user holding the needed role."""


class NotFoundError(CASError):
    """The named object (secret, instance, ...) does not exist."""


class ConflictError(CASError):
    """The request is valid but conflicts with the CAS's current state."""


class NotReadyError(CASError):
    """The CAS has no manifest yet, or is in recovery mode."""


class RecoveryError(CASError):
    """Recovery failed (wrong key, no recovery keys, not in recovery mode)."""


class StateIntegrityError(IntegrityError):
    """The sealed state on disk was tampered with or truncated; the CAS refuses to use it."""


class TransportError(CASError):
    """The CAS could not be reached or did not answer as a CAS does."""


#: error class name -> HTTP status; the client maps names back to classes.
HTTP_STATUS: dict[str, int] = {
    "ManifestError": 422,
    "ConfigError": 400,
    "ActivationError": 403,
    "UnknownServiceError": 404,
    "InstanceLimitError": 409,
    "NonceError": 403,
    "AttestationError": 403,
    "PermissionDenied": 403,
    "NotFoundError": 404,
    "ConflictError": 409,
    "NotReadyError": 503,
    "RecoveryError": 403,
    "StateIntegrityError": 500,
    "IntegrityError": 400,
    "CASError": 400,
}

ERROR_CLASSES: dict[str, type[SerecaError]] = {
    cls.__name__: cls
    for cls in (
        ManifestError,
        ConfigError,
        ActivationError,
        UnknownServiceError,
        InstanceLimitError,
        NonceError,
        AttestationError,
        PermissionDenied,
        NotFoundError,
        ConflictError,
        NotReadyError,
        RecoveryError,
        StateIntegrityError,
        IntegrityError,
        CASError,
    )
}


def error_name(exc: SerecaError) -> str:
    """The most specific registered class name of ``exc`` (for the wire)."""
    for cls in type(exc).__mro__:
        if cls.__name__ in ERROR_CLASSES:
            return cls.__name__
    return "CASError"
