"""Errors of the TEE layer.

Every rejection of evidence is an :class:`~sereca.errors.AttestationError`
subclass whose ``check`` names the failed check, so callers (the CAS, the
CLI's ``--json`` output) can report *which* check failed without parsing
messages.  Problems with the local platform or with the caller's inputs are
:class:`PlatformError` / :class:`~sereca.errors.ConfigError`.
"""

from __future__ import annotations

from typing import ClassVar

from sereca.errors import AttestationError, ConfigError, SerecaError


class PlatformError(SerecaError):
    """The local TEE platform is unavailable or misbehaved."""


class TeeConfigError(ConfigError):
    """An argument, file or environment variable given to the TEE layer is unusable."""


class CollateralUnavailableError(TeeConfigError):
    """Verification needs collateral (DCAP) or certificates (SNP) that were not given."""


class EvidenceRejected(AttestationError):
    """Base of all evidence rejections; ``check`` names the failed check."""

    check: ClassVar[str] = "evidence"


class EvidenceFormatError(EvidenceRejected):
    """The evidence is malformed, truncated, or of an unknown type."""

    check = "format"


class SignatureError(EvidenceRejected):
    """A signature or the certificate chain did not verify."""

    check = "signature"


class UntrustedRootError(SignatureError):
    """The evidence chains to a root the caller did not pin (simulated roots)."""

    check = "signature"


class CollateralError(EvidenceRejected):
    """Collateral (TCB info, QE identity, CRLs, certificates) is invalid."""

    check = "collateral"


class CollateralExpiredError(CollateralError):
    """Collateral or a certificate has expired at the verification time."""

    check = "collateral_expired"


class CollateralNotYetValidError(CollateralError):
    """Collateral or a certificate is not yet valid at the verification time."""

    check = "collateral_not_yet_valid"


class TcbStatusError(EvidenceRejected):
    """The platform's TCB status is not accepted (or no TCB level matched)."""

    check = "tcb_status"


class AdvisoryError(TcbStatusError):
    """The platform is affected by a security advisory the policy does not accept."""

    check = "advisories"


class MeasurementError(EvidenceRejected):
    """The measurement (MRENCLAVE / MRTD / SNP measurement / sim) is not accepted."""

    check = "measurement"


class SignerError(EvidenceRejected):
    """Signer, product id or security version does not satisfy the policy."""

    check = "signer"


class DebugError(EvidenceRejected):
    """The TEE runs in debug mode and the policy does not allow debug."""

    check = "debug"


class ReportDataError(EvidenceRejected):
    """The evidence is bound to other report data (replayed or transplanted evidence)."""

    check = "report_data"


class EvidenceAgeError(EvidenceRejected):
    """The evidence is older than the policy's maximum age, or dated in the future."""

    check = "age"


__all__ = [
    "AdvisoryError",
    "CollateralError",
    "CollateralExpiredError",
    "CollateralNotYetValidError",
    "CollateralUnavailableError",
    "DebugError",
    "EvidenceAgeError",
    "EvidenceFormatError",
    "EvidenceRejected",
    "MeasurementError",
    "PlatformError",
    "ReportDataError",
    "SignatureError",
    "SignerError",
    "TcbStatusError",
    "TeeConfigError",
    "UntrustedRootError",
]
