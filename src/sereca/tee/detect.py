"""Recognise the type of a piece of evidence from its bytes."""

from __future__ import annotations

import re
import struct

from sereca.tee.errors import EvidenceFormatError
from sereca.tee.sim.format import is_sim_evidence

SNP_REPORT_SIZE = 0x4A0
TEE_TYPES = ("sgx", "tdx", "sev-snp", "sim")
_HEX_TEXT = re.compile(rb"\A[0-9a-fA-F\s]+\Z")
_MAX_EVIDENCE = 1 << 20


def normalize_evidence(data: bytes) -> bytes:
    """Raw evidence bytes; hex text (as SNP reports are often stored) is decoded."""
    if not isinstance(data, bytes | bytearray | memoryview):
        raise EvidenceFormatError(f"evidence must be bytes, not {type(data).__name__}")
    data = bytes(data)
    if len(data) > _MAX_EVIDENCE:
        raise EvidenceFormatError(f"evidence is {len(data)} bytes; no supported evidence is larger than 1 MiB")
    if data and _HEX_TEXT.match(data):
        compact = b"".join(data.split())
        if len(compact) % 2 == 0:
            return bytes.fromhex(compact.decode())
    return data


def detect_type(data: bytes) -> str:
    """One of TEE_TYPES, or EvidenceFormatError."""
    if is_sim_evidence(data):
        return "sim"
    if len(data) >= 8:
        version, key_type, tee = struct.unpack_from("<HHI", data, 0)
        if version in (3, 4, 5) and key_type in (2, 3):
            if tee == 0x00:
                return "sgx"
            if tee == 0x81:
                return "tdx"
    if len(data) == SNP_REPORT_SIZE and struct.unpack_from("<I", data, 0)[0] in (2, 3, 4, 5):
        return "sev-snp"
    raise EvidenceFormatError(
        "unrecognised evidence: not a DCAP quote (SGX/TDX), an SEV-SNP report or simulated evidence"
    )
