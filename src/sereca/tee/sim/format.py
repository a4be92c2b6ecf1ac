"""Wire format of simulated evidence (version 1).

    "SERECA-SIM" | version (1 byte) | body length (u32 BE) | body | Ed25519 signature (64)

``body`` is a msgpack array: ["sim", simulated=True, measurement (32),
signer (32), product id, security version, debug, report data (64),
timestamp (float Unix seconds), [platform cert DER, root cert DER]].  The
signature by the platform key covers every byte before it.  Parsing is
strict: exact types, sizes and length; nothing trailing.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import msgpack

from sereca.tee.errors import EvidenceFormatError

MAGIC = b"SERECA-SIM"
VERSION = 1
SIGNATURE_SIZE = 64
_HEADER = len(MAGIC) + 1 + 4
_MAX_BODY = 16 * 1024


@dataclass(frozen=True)
class SimEvidence:
    measurement: bytes
    signer: bytes
    product_id: int
    svn: int
    debug: bool
    report_data: bytes
    timestamp: float
    platform_der: bytes
    root_der: bytes
    signed: bytes = b""
    signature: bytes = b""


def is_sim_evidence(data: bytes) -> bool:
    return data[: len(MAGIC)] == MAGIC


def encode_body(ev: SimEvidence) -> bytes:
    body = msgpack.packb(
        ["sim", True, ev.measurement, ev.signer, ev.product_id, ev.svn, ev.debug, ev.report_data,
         float(ev.timestamp), [ev.platform_der, ev.root_der]],
        use_bin_type=True,
    )
    return MAGIC + bytes([VERSION]) + struct.pack(">I", len(body)) + body


def _bytes(v: object, size: int | None, what: str) -> bytes:
    if not isinstance(v, bytes) or (size is not None and len(v) != size):
        raise EvidenceFormatError(f"simulated evidence: {what} must be {size or 'some'} bytes")
    return v


def _uint16(v: object, what: str) -> int:
    if type(v) is not int or not 0 <= v <= 0xFFFF:
        raise EvidenceFormatError(f"simulated evidence: {what} must be an integer 0..65535")
    return v


def decode(data: bytes) -> SimEvidence:
    """Parse simulated evidence (no signature check; see sim.verify)."""
    if not is_sim_evidence(data):
        raise EvidenceFormatError("not simulated evidence (bad magic)")
    if len(data) < _HEADER + SIGNATURE_SIZE:
        raise EvidenceFormatError("simulated evidence is truncated")
    if data[len(MAGIC)] != VERSION:
        raise EvidenceFormatError(f"simulated evidence version {data[len(MAGIC)]} is not supported (expected {VERSION})")
    (body_len,) = struct.unpack_from(">I", data, len(MAGIC) + 1)
    if body_len > _MAX_BODY or len(data) != _HEADER + body_len + SIGNATURE_SIZE:
        raise EvidenceFormatError("simulated evidence length does not match its header (truncated or trailing bytes)")
    body = data[_HEADER : _HEADER + body_len]
    try:
        fields = msgpack.unpackb(body, raw=False, use_list=True, strict_map_key=True,
                                 max_bin_len=_MAX_BODY, max_str_len=16, max_array_len=16, max_map_len=0,
                                 max_ext_len=0)
    except Exception as exc:  # msgpack raises many unrelated types on garbage
        raise EvidenceFormatError(f"simulated evidence body is not valid msgpack: {type(exc).__name__}") from None
    if not isinstance(fields, list) or len(fields) != 10 or fields[0] != "sim" or fields[1] is not True:
        raise EvidenceFormatError("simulated evidence body has the wrong shape")
    _, _, measurement, signer, product_id, svn, debug, report_data, timestamp, chain = fields
    if not isinstance(debug, bool):
        raise EvidenceFormatError("simulated evidence: debug must be a boolean")
    if not isinstance(timestamp, float) or timestamp != timestamp or abs(timestamp) > 1e11:
        raise EvidenceFormatError("simulated evidence: timestamp must be a finite Unix time")
    if not isinstance(chain, list) or len(chain) != 2:
        raise EvidenceFormatError("simulated evidence: chain must hold the platform and root certificates")
    return SimEvidence(
        measurement=_bytes(measurement, 32, "measurement"),
        signer=_bytes(signer, 32, "signer"),
        product_id=_uint16(product_id, "product id"),
        svn=_uint16(svn, "security version"),
        debug=debug,
        report_data=_bytes(report_data, 64, "report data"),
        timestamp=timestamp,
        platform_der=_bytes(chain[0], None, "platform certificate"),
        root_der=_bytes(chain[1], None, "root certificate"),
        signed=data[: _HEADER + body_len],
        signature=data[_HEADER + body_len :],
    )
