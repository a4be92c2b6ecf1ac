"""SGX inside Gramine, through its /dev/attestation pseudo-files.

Write 64 bytes to ``user_report_data``, read ``quote`` (DCAP); the MRENCLAVE
is the first 32 bytes of ``my_target_info``; sealing keys derive from
``keys/_sgx_mrenclave`` / ``keys/_sgx_mrsigner`` (16-byte SGX EGETKEY keys).
The root is a parameter so tests can use a fixture directory.
"""

from __future__ import annotations

import threading
from pathlib import Path

import dcap_qvl

from sereca.tee.base import Bind, Platform, check_report_data, check_seal_args, hkdf_sha256, seal_info
from sereca.tee.errors import PlatformError

_SEAL_FILES = {"measurement": "_sgx_mrenclave", "signer": "_sgx_mrsigner"}


class GraminePlatform(Platform):
    name = "gramine"

    def __init__(self, root: Path = Path("/dev/attestation")) -> None:
        self.root = Path(root)
        # Gramine's report data and quote are per-process: one evidence request at a time.
        self._lock = threading.Lock()

    @property
    def tee_type(self) -> str:
        return "sgx"

    def _read(self, name: str) -> bytes:
        path = self.root / name
        try:
            return path.read_bytes()
        except OSError as exc:
            raise PlatformError(f"cannot read {path}: {exc.strerror or exc} (is this running inside Gramine-SGX?)") from None

    def attestation_type(self) -> str:
        return self._read("attestation_type").decode(errors="replace").strip()

    def evidence(self, report_data: bytes) -> bytes:
        rd = check_report_data(report_data)
        att = self.attestation_type()
        if att != "dcap":
            raise PlatformError(
                f"Gramine attestation type is {att!r}; set sgx.remote_attestation = \"dcap\" in the manifest"
            )
        with self._lock:
            path = self.root / "user_report_data"
            try:
                with open(path, "wb", buffering=0) as f:
                    f.write(rd)
            except OSError as exc:
                raise PlatformError(f"cannot write {path}: {exc.strerror or exc}") from None
            quote = self._read("quote")
        try:
            echoed = bytes(dcap_qvl.parse_quote(quote).report.report_data)
        except (ValueError, TypeError) as exc:
            raise PlatformError(f"Gramine returned an unparsable quote: {exc}") from None
        if echoed != rd:
            raise PlatformError("Gramine returned a quote over other report data (a concurrent writer?); retry")
        return quote

    def measurement(self) -> bytes:
        info = self._read("my_target_info")
        if len(info) < 32:
            raise PlatformError(f"{self.root / 'my_target_info'} is too short to hold MRENCLAVE")
        return info[:32]

    def sealing_key(self, label: str, bind: Bind = "measurement") -> bytes:
        check_seal_args(label, bind)
        key = self._read(f"keys/{_SEAL_FILES[bind]}")
        if len(key) != 16:
            raise PlatformError(f"{self.root / 'keys' / _SEAL_FILES[bind]} must hold a 16-byte SGX key")
        # The hardware key already binds the enclave identity; the label separates uses.
        return hkdf_sha256(key, seal_info("sgx", bind, b"", label))

    def describe(self) -> dict[str, str]:
        return {**super().describe(), "attestation_root": str(self.root)}
