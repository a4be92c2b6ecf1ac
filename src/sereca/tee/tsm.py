"""TDX and SEV-SNP confidential VMs through Linux configfs-tsm.

One report entry ``<root>/<name>``: write 64 bytes to ``inblob``, read
``outblob`` (TDX quote or SNP report, per ``provider``) and ``auxblob``
(SNP certificates, when the host supplies them).  ``generation`` counts
writes: if it moves while we read, another process wrote the entry, and the
report data inside the outblob must be ours.  The root is a parameter so
tests can use a fixture tree.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import dcap_qvl

from sereca.tee.base import Bind, Platform, check_report_data, check_seal_args
from sereca.tee.errors import PlatformError
from sereca.tee.snp import parse_snp_report

PROVIDERS = {"tdx_guest": "tdx", "sev_guest": "sev-snp"}
_ATTEMPTS = 3


def undisturbed(before: int, written: int, after: int) -> bool:
    """Whether ``generation`` read before our write, after it and after reading the
    outblob shows that nobody else wrote the entry in between (our write adds one;
    a counter that did not move at all is tolerated, the report-data check still applies)."""
    return 0 <= written - before <= 1 and after == written


class TsmPlatform(Platform):
    name = "tsm"

    def __init__(self, root: Path = Path("/sys/kernel/config/tsm/report"), entry: str | None = None) -> None:
        self.root = Path(root)
        self.entry = self.root / (entry or f"sereca-{os.getpid()}")
        self._lock = threading.Lock()
        self._measurement: bytes | None = None
        self.last_auxblob: bytes | None = None

    def _read(self, name: str) -> bytes:
        path = self.entry / name
        try:
            return path.read_bytes()
        except OSError as exc:
            raise PlatformError(f"cannot read {path}: {exc.strerror or exc}") from None

    def _generation(self) -> int:
        raw = self._read("generation").strip()
        try:
            return int(raw)
        except ValueError:
            raise PlatformError(f"{self.entry / 'generation'} does not hold a number") from None

    def _ensure_entry(self) -> None:
        try:
            self.entry.mkdir(exist_ok=True)  # configfs fills a new directory with its attributes
        except OSError as exc:
            raise PlatformError(
                f"cannot create configfs-tsm report entry {self.entry}: {exc.strerror or exc} "
                "(is configfs mounted and is this a TDX/SEV-SNP guest with a recent kernel?)"
            ) from None

    @property
    def provider(self) -> str:
        self._ensure_entry()
        return self._read("provider").decode(errors="replace").strip()

    @property
    def tee_type(self) -> str:
        provider = self.provider
        if provider not in PROVIDERS:
            raise PlatformError(f"unsupported configfs-tsm provider {provider!r} (supported: {', '.join(PROVIDERS)})")
        return PROVIDERS[provider]

    def _report_data_of(self, tee: str, blob: bytes) -> tuple[bytes, bytes]:
        """(report data, measurement) inside an outblob."""
        try:
            if tee == "tdx":
                report = dcap_qvl.parse_quote(blob).report
                return bytes(report.report_data), bytes(report.mr_td)
            snp = parse_snp_report(blob)
            return snp.report_data, snp.measurement
        except Exception as exc:  # parsers raise several types on garbage
            raise PlatformError(f"configfs-tsm returned an unparsable {tee} report: {exc}") from None

    def evidence(self, report_data: bytes) -> bytes:
        rd = check_report_data(report_data)
        tee = self.tee_type
        with self._lock:
            for _ in range(_ATTEMPTS):
                before = self._generation()
                try:
                    with open(self.entry / "inblob", "wb", buffering=0) as f:
                        f.write(rd)
                except OSError as exc:
                    raise PlatformError(f"cannot write {self.entry / 'inblob'}: {exc.strerror or exc}") from None
                written = self._generation()
                blob = self._read("outblob")
                aux = self._read("auxblob") if (self.entry / "auxblob").exists() else None
                after = self._generation()
                if not undisturbed(before, written, after):
                    continue  # another writer touched the entry: try again
                echoed, measurement = self._report_data_of(tee, blob)
                if echoed != rd:
                    continue
                self._measurement = measurement
                self.last_auxblob = aux
                return blob
        raise PlatformError(
            f"configfs-tsm entry {self.entry} kept changing under us (another process writes it); "
            "give each process its own entry"
        )

    def measurement(self) -> bytes:
        if self._measurement is None:
            self.evidence(b"\x00" * 64)
        assert self._measurement is not None
        return self._measurement

    def sealing_key(self, label: str, bind: Bind = "measurement") -> bytes:
        check_seal_args(label, bind)
        raise PlatformError(
            "configfs-tsm offers no sealing key (TDX has none; SNP's derived keys need /dev/sev-guest): "
            "obtain persistent keys from the CAS after attestation"
        )

    def describe(self) -> dict[str, str]:
        return {"platform": self.name, "tsm_root": str(self.root), "entry": str(self.entry)}
