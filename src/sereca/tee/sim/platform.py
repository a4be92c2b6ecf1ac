"""The simulated platform: evidence signed by a per-installation software key."""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path

from sereca.tee.base import Bind, Platform, check_report_data, check_seal_args, hkdf_sha256, seal_info
from sereca.tee.errors import TeeConfigError
from sereca.tee.measure import measure_paths
from sereca.tee.sim.format import SimEvidence, encode_body
from sereca.tee.sim.keys import SimAuthority, load_authority

#: Signer id of simulated services unless configured (a fixed, public value).
DEFAULT_SIM_SIGNER = bytes.fromhex("5e12ecaa" * 8)


def _default_measured_paths() -> list[str]:
    env = os.environ.get("SERECA_MEASURED_PATHS")
    if env:
        return [p for p in env.split(os.pathsep) if p]
    # Otherwise the code that runs: the sereca package itself.
    return [str(Path(__file__).resolve().parents[2])]


class SimPlatform(Platform):
    """A simulated CPU.  Exercises every code path; protects nothing against the host."""

    name = "sim"

    def __init__(
        self,
        home: Path,
        measured_paths: Sequence[str | os.PathLike[str]] | None = None,
        *,
        signer: bytes | None = None,
        product_id: int = 0,
        svn: int = 0,
        debug: bool = False,
    ) -> None:
        if signer is not None and len(signer) != 32:
            raise TeeConfigError("simulated signer id must be 32 bytes")
        for what, v in (("product id", product_id), ("security version", svn)):
            if not 0 <= v <= 0xFFFF:
                raise TeeConfigError(f"simulated {what} must be 0..65535")
        self.home = home
        self._paths = list(measured_paths) if measured_paths is not None else None
        self._signer = signer or DEFAULT_SIM_SIGNER
        self._product_id = product_id
        self._svn = svn
        self._debug = debug
        self._authority: SimAuthority | None = None
        self._measurement: bytes | None = None

    @property
    def tee_type(self) -> str:
        return "sim"

    @property
    def authority(self) -> SimAuthority:
        if self._authority is None:
            self._authority = load_authority(self.home)
        return self._authority

    @property
    def root_fingerprint(self) -> str:
        return self.authority.root_fingerprint

    def measurement(self) -> bytes:
        if self._measurement is None:
            paths = self._paths if self._paths is not None else _default_measured_paths()
            self._measurement = measure_paths(paths)
        return self._measurement

    def signer(self) -> bytes:
        return self._signer

    def evidence(self, report_data: bytes) -> bytes:
        rd = check_report_data(report_data)
        auth = self.authority
        ev = SimEvidence(self.measurement(), self._signer, self._product_id, self._svn, self._debug, rd,
                         time.time(), auth.platform_der, auth.root_der)
        signed = encode_body(ev)
        return signed + auth.platform_key.sign(signed)

    def sealing_key(self, label: str, bind: Bind = "measurement") -> bytes:
        check_seal_args(label, bind)
        identity = self.measurement() if bind == "measurement" else self._signer
        return hkdf_sha256(self.authority.platform_secret, seal_info("sim", bind, identity, label))

    def describe(self) -> dict[str, str]:
        return {
            **super().describe(),
            "simulated": "true",
            "sim_root_fingerprint": self.root_fingerprint,
            "keys": str(self.home / "sim"),
        }
