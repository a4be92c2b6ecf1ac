"""TEE layer: platforms (sim, gramine, tsm), evidence verification, policy.

See docs/tee.md and the contract in docs/architecture.md.
"""

from sereca.tee.base import Platform
from sereca.tee.errors import (
    AdvisoryError,
    CollateralError,
    CollateralExpiredError,
    CollateralNotYetValidError,
    CollateralUnavailableError,
    DebugError,
    EvidenceAgeError,
    EvidenceFormatError,
    EvidenceRejected,
    MeasurementError,
    PlatformError,
    ReportDataError,
    SignatureError,
    SignerError,
    TcbStatusError,
    TeeConfigError,
    UntrustedRootError,
)
from sereca.tee.measure import measure_paths
from sereca.tee.platforms import detect_platform, get_platform
from sereca.tee.policy import DEFAULT_TCB_STATUSES, PATCHED_TCB_STATUSES, Claims, Policy
from sereca.tee.sim.keys import root_fingerprint as sim_root_fingerprint_at
from sereca.tee.verify import verify


def sim_root_fingerprint(home: str | None = None) -> str:
    """SHA-256 fingerprint (hex) of this installation's simulated root (created on first use)."""
    from sereca.tee.home import sereca_home

    return sim_root_fingerprint_at(sereca_home(home))


__all__ = [
    "AdvisoryError",
    "Claims",
    "CollateralError",
    "CollateralExpiredError",
    "CollateralNotYetValidError",
    "CollateralUnavailableError",
    "DEFAULT_TCB_STATUSES",
    "DebugError",
    "EvidenceAgeError",
    "EvidenceFormatError",
    "EvidenceRejected",
    "MeasurementError",
    "PATCHED_TCB_STATUSES",
    "Platform",
    "PlatformError",
    "Policy",
    "ReportDataError",
    "SignatureError",
    "SignerError",
    "TcbStatusError",
    "TeeConfigError",
    "UntrustedRootError",
    "detect_platform",
    "get_platform",
    "measure_paths",
    "sim_root_fingerprint",
    "verify",
]
