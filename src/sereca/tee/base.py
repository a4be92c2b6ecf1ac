"""The one interface every TEE backend implements (httpx-transport style)."""

from __future__ import annotations

import hashlib
import hmac
from abc import ABC, abstractmethod
from typing import ClassVar, Literal

from sereca.tee.errors import TeeConfigError

Bind = Literal["measurement", "signer"]
REPORT_DATA_SIZE = 64
SEALING_KEY_SIZE = 32


class Platform(ABC):
    """A TEE this process runs in: measures, produces evidence, derives sealing keys."""

    name: ClassVar[str]

    @property
    @abstractmethod
    def tee_type(self) -> str:
        """"sim" | "sgx" | "tdx" | "sev-snp"."""

    @abstractmethod
    def evidence(self, report_data: bytes) -> bytes:
        """Evidence binding exactly 64 bytes of ``report_data`` to this TEE's identity."""

    @abstractmethod
    def sealing_key(self, label: str, bind: Bind = "measurement") -> bytes:
        """A 32-byte key only this code (``measurement``) or its signer (``signer``) can derive."""

    @abstractmethod
    def measurement(self) -> bytes:
        """The measurement of the code running in this TEE."""

    def describe(self) -> dict[str, str]:
        """Human-facing facts for ``sereca tee info``."""
        return {"platform": self.name, "tee": self.tee_type}


def check_report_data(report_data: bytes) -> bytes:
    if not isinstance(report_data, bytes | bytearray) or len(report_data) != REPORT_DATA_SIZE:
        got = len(report_data) if isinstance(report_data, bytes | bytearray) else type(report_data).__name__
        raise TeeConfigError(f"report data must be exactly {REPORT_DATA_SIZE} bytes (got {got})")
    return bytes(report_data)


def check_seal_args(label: str, bind: str) -> None:
    if bind not in ("measurement", "signer"):
        raise TeeConfigError(f"sealing key bind must be 'measurement' or 'signer', not {bind!r}")
    if not isinstance(label, str) or not label:
        raise TeeConfigError("sealing key label must be a non-empty string naming the key's use")


def hkdf_sha256(secret: bytes, info: bytes, length: int = SEALING_KEY_SIZE) -> bytes:
    """HKDF-SHA-256 without salt (RFC 5869), small and allocation-free."""
    prk = hmac.new(b"\x00" * 32, secret, hashlib.sha256).digest()
    out, block, counter = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def seal_info(tee: str, bind: str, identity: bytes, label: str) -> bytes:
    return f"sereca/tee/seal/v1/{tee}/{bind}/{identity.hex()}/{label}".encode()
