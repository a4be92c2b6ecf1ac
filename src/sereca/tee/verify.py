"""``verify()``: evidence plus collateral in, checked :class:`Claims` out."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from sereca.tee.checks import apply_policy, check_report_data_arg
from sereca.tee.detect import TEE_TYPES, detect_type, normalize_evidence
from sereca.tee.errors import EvidenceFormatError, TeeConfigError
from sereca.tee.policy import Claims, Policy


def verify(
    evidence: bytes,
    expected_report_data: bytes | None,
    policy: Policy | None = None,
    collateral: Any = None,
    now: float | None = None,
    sim_roots: Iterable[str] = (),
    vcek: bytes | None = None,
    chain: bytes | None = None,
    tee: str | None = None,
) -> Claims:
    """Verify ``evidence`` and apply ``policy``; return the checked claims.

    ``expected_report_data`` (64 bytes) must be given; pass ``None`` only to
    skip the binding check on purpose (e.g. inspecting a stored quote).
    ``collateral`` (SGX/TDX): a collateral JSON string/bytes/dict, a path, or
    a ``dcap_qvl.QuoteCollateralV3``; see :mod:`sereca.tee.collateral` for
    fetching from a PCCS.  ``vcek`` / ``chain`` (SEV-SNP): the VCEK (DER or
    PEM) and the ASK+ARK PEM bundle.  ``sim_roots``: pinned fingerprints of
    simulated roots (simulated evidence verifies against nothing else).
    ``now`` defaults to the current time.  Raises an EvidenceRejected
    subclass naming the failed check, or TeeConfigError for unusable inputs.
    """
    check_report_data_arg(expected_report_data)
    policy = policy if policy is not None else Policy()
    at = time.time() if now is None else float(now)
    raw = normalize_evidence(evidence)
    kind = detect_type(raw)
    if tee is not None:
        if tee not in TEE_TYPES:
            raise TeeConfigError(f"unknown TEE type {tee!r}; expected one of {', '.join(TEE_TYPES)}")
        if tee != kind:
            raise EvidenceFormatError(f"evidence is {kind}, but {tee} was expected")
    if kind == "sim":
        from sereca.tee.sim.verify import verify_sim

        claims = verify_sim(raw, sim_roots, at)
    elif kind in ("sgx", "tdx"):
        from sereca.tee.dcap import verify_dcap

        claims = verify_dcap(raw, collateral, at)
    else:
        from sereca.tee.snp import verify_snp

        claims = verify_snp(raw, vcek, chain, at)
    apply_policy(claims, policy, expected_report_data, at)
    return claims
