"""Verify simulated evidence: trust comes only from simulated roots the caller pins."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sereca.tee.errors import (
    CollateralExpiredError,
    CollateralNotYetValidError,
    EvidenceFormatError,
    SignatureError,
    UntrustedRootError,
)
from sereca.tee.policy import Claims
from sereca.tee.sim.format import decode


def _norm_pins(sim_roots: Iterable[str]) -> list[str]:
    return [r.strip().lower().removeprefix("sha256:").replace(":", "") for r in sim_roots]


def verify_sim(evidence: bytes, sim_roots: Iterable[str], now: float) -> Claims:
    """Check the signature chain of simulated evidence and return its claims."""
    ev = decode(evidence)
    fingerprint = hashlib.sha256(ev.root_der).hexdigest()
    pins = _norm_pins(sim_roots)
    if not pins:
        raise UntrustedRootError(
            "simulated evidence is trusted only under a pinned simulated root; none was given "
            f"(this evidence's root is {fingerprint}; pin it with --sim-root / sim_roots only if you "
            "accept SIMULATION, which protects nothing)"
        )
    if not any(hmac.compare_digest(fingerprint, p) for p in pins):
        raise UntrustedRootError(f"simulated evidence chains to root {fingerprint}, which is not pinned")
    try:
        root = x509.load_der_x509_certificate(ev.root_der)
        leaf = x509.load_der_x509_certificate(ev.platform_der)
    except Exception:  # cryptography raises ValueError, InvalidVersion, ... on bad DER
        raise EvidenceFormatError("simulated evidence carries an unparsable certificate") from None
    try:
        leaf.verify_directly_issued_by(root)
    except (ValueError, TypeError, InvalidSignature):
        raise SignatureError("simulated platform certificate is not signed by the pinned simulated root") from None
    at = now
    if at < root.not_valid_before_utc.timestamp() or at < leaf.not_valid_before_utc.timestamp():
        raise CollateralNotYetValidError("simulated platform certificate is not yet valid at the verification time")
    if at > root.not_valid_after_utc.timestamp() or at > leaf.not_valid_after_utc.timestamp():
        raise CollateralExpiredError("simulated platform certificate has expired at the verification time")
    key = leaf.public_key()
    if not isinstance(key, Ed25519PublicKey):
        raise SignatureError("simulated platform key is not Ed25519")
    try:
        key.verify(ev.signature, ev.signed)
    except InvalidSignature:
        raise SignatureError("simulated evidence signature does not verify under its platform key") from None
    return Claims(
        tee="sim",
        measurement=ev.measurement,
        signer=ev.signer,
        product_id=ev.product_id,
        svn=ev.svn,
        debug=ev.debug,
        report_data=ev.report_data,
        tcb_status=None,
        advisories=(),
        timestamp=ev.timestamp,
        simulated=True,
        extra={"sim_root_fingerprint": fingerprint},
    )
