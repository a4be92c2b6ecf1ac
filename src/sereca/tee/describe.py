"""Parse evidence for display, WITHOUT verifying it (``sereca evidence show``)."""

from __future__ import annotations

import datetime as dt
import hashlib

import dcap_qvl

from sereca.tee.detect import detect_type, normalize_evidence
from sereca.tee.errors import EvidenceFormatError
from sereca.tee.sim.format import decode as decode_sim
from sereca.tee.snp import parse_snp_report


def _dcap_fields(raw: bytes) -> list[tuple[str, str]]:
    try:
        quote = dcap_qvl.parse_quote(raw)
        h, r = quote.header, quote.report
        rows = [("quote version", str(h.version)), ("attestation key type", str(h.attestation_key_type)),
                ("qe svn", str(h.qe_svn)), ("pce svn", str(h.pce_svn))]
        if quote.is_sgx():
            rows += [("mrenclave", bytes(r.mr_enclave).hex()), ("mrsigner", bytes(r.mr_signer).hex()),
                     ("attributes", bytes(r.attributes).hex()), ("debug", str(bool(bytes(r.attributes)[0] & 2))),
                     ("cpu svn", bytes(r.cpu_svn).hex())]
        else:
            rows += [("mrtd", bytes(r.mr_td).hex()), ("td attributes", bytes(r.td_attributes).hex()),
                     ("debug", str(bool(bytes(r.td_attributes)[0] & 1))),
                     ("mr seam", bytes(r.mr_seam).hex()), ("mr config id", bytes(r.mr_config_id).hex()),
                     ("rtmr0", bytes(r.rt_mr0).hex()), ("rtmr1", bytes(r.rt_mr1).hex()),
                     ("rtmr2", bytes(r.rt_mr2).hex()), ("rtmr3", bytes(r.rt_mr3).hex())]
        rows.append(("report data", bytes(r.report_data).hex()))
        try:
            rows += [("fmspc", quote.fmspc()), ("pck ca", quote.ca())]
        except ValueError:
            pass
        return rows
    except (ValueError, TypeError) as exc:
        raise EvidenceFormatError(f"not a valid DCAP quote: {exc}") from None


def describe_evidence(evidence: bytes) -> tuple[str, list[tuple[str, str]]]:
    """(tee type, [(field, value)]) of unverified evidence."""
    raw = normalize_evidence(evidence)
    kind = detect_type(raw)
    if kind == "sim":
        ev = decode_sim(raw)
        rows = [("SIMULATED", "true (no hardware root: protects nothing against the host)"),
                ("measurement", ev.measurement.hex()), ("signer", ev.signer.hex()),
                ("product id", str(ev.product_id)), ("security version", str(ev.svn)),
                ("debug", str(ev.debug)), ("report data", ev.report_data.hex()),
                ("timestamp", f"{ev.timestamp:.3f} ({dt.datetime.fromtimestamp(ev.timestamp, dt.timezone.utc):%Y-%m-%d %H:%M:%S} UTC)"),
                ("sim root fingerprint", hashlib.sha256(ev.root_der).hexdigest())]
        return kind, rows
    if kind in ("sgx", "tdx"):
        return kind, _dcap_fields(raw)
    snp = parse_snp_report(raw)
    return kind, [
        ("report version", str(snp.version)), ("guest svn", str(snp.guest_svn)),
        ("policy", f"0x{snp.policy:x}"), ("debug", str(snp.debug)), ("vmpl", str(snp.vmpl)),
        ("measurement", snp.measurement.hex()), ("report data", snp.report_data.hex()),
        ("host data", snp.host_data.hex()), ("id key digest", snp.id_key_digest.hex()),
        ("author key digest", snp.author_key_digest.hex()), ("chip id", snp.chip_id.hex()),
        ("reported tcb", str(snp.reported_tcb)), ("current tcb", str(snp.current_tcb)),
        ("committed tcb", str(snp.committed_tcb)), ("launch tcb", str(snp.launch_tcb)),
        ("signature algo", str(snp.signature_algo)),
        ("signature r", f"{snp.signature_r:096x}"), ("signature s", f"{snp.signature_s:096x}"),
    ]
