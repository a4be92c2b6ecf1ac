"""SGX and TDX quote verification through dcap-qvl (Intel DCAP, Intel root built in)."""

from __future__ import annotations

import struct
from typing import Any

import dcap_qvl

from sereca.tee.collateral import Pccs, load_collateral
from sereca.tee.errors import (
    CollateralExpiredError,
    CollateralNotYetValidError,
    CollateralUnavailableError,
    EvidenceFormatError,
    SignatureError,
    TcbStatusError,
)
from sereca.tee.policy import Claims

HEADER_SIZE = 48
SGX_BODY_SIZE = 384
SGX_DEBUG = 0x02  # ATTRIBUTES.FLAGS bit 1
TDX_DEBUG = 0x01  # TD_ATTRIBUTES bit 0 (TUD.DEBUG)


def _classify(message: str) -> Exception:
    """Map a dcap-qvl failure to the check that failed."""
    low = message.lower()
    detail = " ".join(message.split())
    if "no matching tcb level" in low or "tcb status is invalid" in low:
        return TcbStatusError(f"TCB check failed: {detail}")
    if "expired" in low:
        return CollateralExpiredError(f"collateral expired at the verification time: {detail}")
    if "in the future" in low or "notvalidyet" in low or "not yet valid" in low:
        return CollateralNotYetValidError(f"collateral not yet valid at the verification time: {detail}")
    return SignatureError(f"quote signature or certificate chain did not verify: {detail}")


def _sgx_fields(raw: bytes, version: int) -> tuple[int, int, int]:
    """(isv_prod_id, isv_svn, attributes flags) from the SGX report body."""
    off = HEADER_SIZE + (6 if version == 5 else 0)  # v5 prefixes the body with type and size
    if len(raw) < off + SGX_BODY_SIZE:
        raise EvidenceFormatError("SGX quote is truncated")
    prod_id, svn = struct.unpack_from("<HH", raw, off + 256)
    return prod_id, svn, raw[off + 48]


def verify_dcap(raw: bytes, collateral: Any, now: float) -> Claims:
    """Verify an SGX/TDX quote with its collateral; return claims (no policy applied)."""
    try:
        quote = dcap_qvl.parse_quote(raw)
        header = quote.header
        report = quote.report
    except (ValueError, TypeError) as exc:
        raise EvidenceFormatError(f"not a valid DCAP quote: {exc}") from None
    if collateral is None:
        collateral = Pccs.from_env()
        if collateral is None:
            raise CollateralUnavailableError(
                "verifying an SGX/TDX quote needs its collateral: give a collateral JSON file "
                "(--collateral) or set SERECA_PCCS_URL to fetch it"
            )
    coll = collateral.collateral_for(raw, now) if isinstance(collateral, Pccs) else load_collateral(collateral)
    try:
        verified = dcap_qvl.verify(raw, coll, int(now))
    except ValueError as exc:
        raise _classify(str(exc)) from None
    except Exception as exc:  # a native panic surfaces as another type: still a rejection
        raise SignatureError(f"quote verification failed: {type(exc).__name__}: {exc}") from None
    # (FMSPC is left to `evidence show`: extracting it re-parses the PCK certificate, ~0.1 ms.)
    status = verified.status
    advisories = tuple(verified.advisory_ids)
    if quote.is_sgx():
        prod_id, svn, flags = _sgx_fields(raw, header.version)
        return Claims(
            tee="sgx",
            measurement=bytes(report.mr_enclave),
            signer=bytes(report.mr_signer),
            product_id=prod_id,
            svn=svn,
            debug=bool(flags & SGX_DEBUG),
            report_data=bytes(report.report_data),
            tcb_status=status,
            advisories=advisories,
            timestamp=None,
            simulated=False,
            extra={"quote_version": str(header.version), "attributes": bytes(report.attributes).hex(),
                   "cpu_svn": bytes(report.cpu_svn).hex()},
        )
    td_attributes = bytes(report.td_attributes)
    extra = {
        "quote_version": str(header.version),
        "td_attributes": td_attributes.hex(),
        "xfam": bytes(report.xfam).hex(),
        "mr_seam": bytes(report.mr_seam).hex(),
        "mr_signer_seam": bytes(report.mr_signer_seam).hex(),
        "mr_config_id": bytes(report.mr_config_id).hex(),
        "mr_owner": bytes(report.mr_owner).hex(),
        "mr_owner_config": bytes(report.mr_owner_config).hex(),
        "rtmr0": bytes(report.rt_mr0).hex(),
        "rtmr1": bytes(report.rt_mr1).hex(),
        "rtmr2": bytes(report.rt_mr2).hex(),
        "rtmr3": bytes(report.rt_mr3).hex(),
        "tee_tcb_svn": bytes(report.tee_tcb_svn).hex(),
    }
    return Claims(
        tee="tdx",
        measurement=bytes(report.mr_td),
        signer=None,
        product_id=None,
        svn=None,
        debug=bool(td_attributes[0] & TDX_DEBUG),
        report_data=bytes(report.report_data),
        tcb_status=status,
        advisories=advisories,
        timestamp=None,
        simulated=False,
        extra=extra,
    )
