"""Apply a :class:`Policy` to verified :class:`Claims` (the policy-level checks).

Runs only after signatures and collateral verified; each failure raises the
error class that names its check.
"""

from __future__ import annotations

import hmac

from sereca.tee.errors import (
    AdvisoryError,
    DebugError,
    EvidenceAgeError,
    MeasurementError,
    ReportDataError,
    SignatureError,
    SignerError,
    TcbStatusError,
    TeeConfigError,
)
from sereca.tee.policy import Claims, Policy

REPORT_DATA_SIZE = 64
#: Tolerated clock difference between the producer and the verifier.
MAX_FUTURE_SKEW_S = 300.0


def check_report_data_arg(expected: bytes | None) -> None:
    if expected is not None and (not isinstance(expected, bytes | bytearray) or len(expected) != REPORT_DATA_SIZE):
        raise TeeConfigError(
            f"expected_report_data must be exactly {REPORT_DATA_SIZE} bytes "
            f"(got {len(expected) if isinstance(expected, bytes | bytearray) else type(expected).__name__})"
        )


def apply_policy(claims: Claims, policy: Policy, expected_report_data: bytes | None, now: float) -> None:
    """Raise the matching EvidenceRejected subclass if ``claims`` fail ``policy``."""
    if claims.tee == "sev-snp" and policy.snp_ark_fingerprints is not None:
        if claims.extra.get("ark_fingerprint") not in policy.snp_ark_fingerprints:
            raise SignatureError(
                f"the AMD root (ARK {claims.extra.get('ark_fingerprint')}) is not among the pinned ARKs; "
                "use the chain from AMD's KDS"
            )
    if claims.tcb_status is not None and claims.tcb_status not in policy.tcb_statuses:
        raise TcbStatusError(
            f"TCB status {claims.tcb_status} is not accepted (policy accepts: {', '.join(policy.tcb_statuses)}); "
            "update the platform (microcode/BIOS) or widen tcb_statuses in the policy"
        )
    if policy.advisories is not None:
        unaccepted = [a for a in claims.advisories if a not in policy.advisories]
        if unaccepted:
            raise AdvisoryError(
                f"platform is affected by advisories not accepted by the policy: {', '.join(unaccepted)}"
            )
    if policy.measurements is not None and claims.measurement.hex() not in policy.measurements:
        raise MeasurementError(
            f"measurement {claims.measurement.hex()} is not among the {len(policy.measurements)} accepted "
            "measurement(s); the code differs from what the policy admits"
        )
    if policy.signer is not None and (claims.signer is None or claims.signer.hex() != policy.signer):
        found = "none" if claims.signer is None else claims.signer.hex()
        raise SignerError(f"signer {found} is not the accepted signer {policy.signer}")
    if policy.product_id is not None and claims.product_id != policy.product_id:
        raise SignerError(f"product id {claims.product_id} is not the accepted product id {policy.product_id}")
    if policy.min_svn and (claims.svn is None or claims.svn < policy.min_svn):
        raise SignerError(f"security version {claims.svn} is below the policy's minimum {policy.min_svn}")
    if claims.debug and not policy.allow_debug:
        raise DebugError("the TEE runs in debug mode (its memory is readable by the host); the policy forbids debug")
    if expected_report_data is not None and not hmac.compare_digest(claims.report_data, expected_report_data):
        raise ReportDataError(
            "evidence is bound to different report data (a replayed or transplanted quote, "
            "or a different key/nonce)"
        )
    if claims.timestamp is not None:
        if claims.timestamp > now + MAX_FUTURE_SKEW_S:
            raise EvidenceAgeError(
                f"evidence is dated {claims.timestamp - now:.0f} s in the future; check the clocks"
            )
        if policy.max_age_s is not None and now - claims.timestamp > policy.max_age_s:
            raise EvidenceAgeError(
                f"evidence is {now - claims.timestamp:.0f} s old, older than the policy's maximum age "
                f"{policy.max_age_s:g} s; produce fresh evidence"
            )
