"""Every error SERECA raises on purpose derives from :class:`SerecaError`.

Messages say what was wrong and what the user can do about it; the CLI
prints them without a traceback.  Each subsystem defines its own subclasses
in its own package (``sereca.tee.errors``, ``sereca.cas.errors``, ...) and
derives them from the classes here.
"""

from __future__ import annotations


class SerecaError(Exception):
    """Root of all SERECA errors."""


class ConfigError(SerecaError):
    """A flag, environment variable, manifest or file given by the user is unusable."""


class AttestationError(SerecaError):
    """Evidence was rejected (signature, collateral, TCB, policy, binding, age)."""


class IntegrityError(SerecaError):
    """Data from an untrusted party (broker, store, file, network) failed its integrity check."""
