"""``get_platform()``: choose the TEE backend (SERECA_TEE=auto|sim|gramine|tsm)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sereca.tee.base import Platform
from sereca.tee.errors import TeeConfigError
from sereca.tee.home import sereca_home

KINDS = ("auto", "sim", "gramine", "tsm")
DEFAULT_ATTESTATION_ROOT = Path("/dev/attestation")
DEFAULT_TSM_ROOT = Path("/sys/kernel/config/tsm/report")


@dataclass(frozen=True)
class Detection:
    kind: str
    reason: str


def detect_platform(attestation_root: Path = DEFAULT_ATTESTATION_ROOT, tsm_root: Path = DEFAULT_TSM_ROOT) -> Detection:
    """Which backend ``auto`` picks here, and why."""
    type_file = attestation_root / "attestation_type"
    if type_file.exists():
        try:
            att = type_file.read_text().strip()
        except OSError as exc:
            att = f"unreadable ({exc.strerror})"
        if att == "dcap":
            return Detection("gramine", f"{type_file} says 'dcap': running in Gramine-SGX with DCAP attestation")
        reason_g = f"{type_file} says {att!r} (not 'dcap')"
    else:
        reason_g = f"no {type_file} (not inside Gramine-SGX)"
    if tsm_root.is_dir():
        return Detection("tsm", f"{tsm_root} exists: confidential VM with configfs-tsm (TDX or SEV-SNP); {reason_g}")
    return Detection(
        "sim",
        f"{reason_g}; no {tsm_root} (not a TDX/SEV-SNP VM with configfs-tsm): using SIMULATION, "
        "which protects nothing against this host",
    )


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value, 0)
    except ValueError:
        raise TeeConfigError(f"${name} must be an integer, not {value!r}") from None


def get_platform(
    kind: str | None = None,
    home: str | os.PathLike[str] | None = None,
    measured_paths: Sequence[str | os.PathLike[str]] | None = None,
    *,
    attestation_root: str | os.PathLike[str] | None = None,
    tsm_root: str | os.PathLike[str] | None = None,
) -> Platform:
    """The platform to use: ``kind`` or $SERECA_TEE or ``auto``.

    ``attestation_root`` (Gramine, default /dev/attestation, env
    $SERECA_ATTESTATION_ROOT) and ``tsm_root`` (configfs-tsm report dir,
    default /sys/kernel/config/tsm/report, env $SERECA_TSM_ROOT) let tests
    point at fixture trees.  Simulated identity comes from
    $SERECA_SIM_SIGNER (hex), $SERECA_SIM_PRODUCT_ID, $SERECA_SIM_SVN and
    $SERECA_SIM_DEBUG.
    """
    chosen = kind or os.environ.get("SERECA_TEE") or "auto"
    if chosen not in KINDS:
        raise TeeConfigError(f"unknown TEE platform {chosen!r} (from SERECA_TEE or argument); use one of {', '.join(KINDS)}")
    att_root = Path(attestation_root or os.environ.get("SERECA_ATTESTATION_ROOT") or DEFAULT_ATTESTATION_ROOT)
    cfg_root = Path(tsm_root or os.environ.get("SERECA_TSM_ROOT") or DEFAULT_TSM_ROOT)
    if chosen == "auto":
        chosen = detect_platform(att_root, cfg_root).kind
    if chosen == "sim":
        from sereca.tee.sim.platform import SimPlatform

        signer_hex = os.environ.get("SERECA_SIM_SIGNER")
        try:
            signer = bytes.fromhex(signer_hex) if signer_hex else None
        except ValueError:
            raise TeeConfigError("$SERECA_SIM_SIGNER must be 32 bytes of hex") from None
        return SimPlatform(
            sereca_home(home),
            measured_paths,
            signer=signer,
            product_id=_env_int("SERECA_SIM_PRODUCT_ID", 0),
            svn=_env_int("SERECA_SIM_SVN", 0),
            debug=os.environ.get("SERECA_SIM_DEBUG", "").lower() in ("1", "true", "yes"),
        )
    if chosen == "gramine":
        from sereca.tee.gramine import GraminePlatform

        return GraminePlatform(att_root)
    from sereca.tee.tsm import TsmPlatform

    return TsmPlatform(cfg_root)
