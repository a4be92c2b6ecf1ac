"""What a verifier accepts (:class:`Policy`) and what it found (:class:`Claims`)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from sereca.tee.errors import TeeConfigError

#: TCB statuses accepted by default: the platform is patched; at most
#: software mitigations are recommended.
DEFAULT_TCB_STATUSES: tuple[str, ...] = ("UpToDate", "SWHardeningNeeded")

#: Statuses of a patched platform whose BIOS configuration (e.g. SMT on)
#: may matter: what ``sereca evidence verify`` accepts without ``--policy``.
PATCHED_TCB_STATUSES: tuple[str, ...] = DEFAULT_TCB_STATUSES + (
    "ConfigurationNeeded",
    "ConfigurationAndSWHardeningNeeded",
)

KNOWN_TCB_STATUSES = frozenset(
    PATCHED_TCB_STATUSES + ("OutOfDate", "OutOfDateConfigurationNeeded", "Revoked")
)


def _hex(value: str, size: int | None, what: str) -> str:
    v = value.strip().lower().removeprefix("0x")
    try:
        raw = bytes.fromhex(v)
    except ValueError:
        raise ValueError(f"{what} must be hex, got {value!r}") from None
    if size is not None and len(raw) != size:
        raise ValueError(f"{what} must be {size} bytes of hex, got {len(raw)} bytes")
    if not raw:
        raise ValueError(f"{what} must not be empty")
    return v


class Policy(BaseModel):
    """Acceptance policy for evidence.

    ``None`` means "not checked" for ``measurements``, ``signer``,
    ``product_id``, ``advisories`` and ``max_age_s``; an empty
    ``measurements`` list accepts nothing.  ``max_age_s`` applies to evidence
    that carries a timestamp (simulated evidence); hardware quotes carry
    none, their freshness comes from the verifier's nonce in the report data.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    measurements: tuple[str, ...] | None = None
    signer: str | None = None
    product_id: int | None = None
    min_svn: int = 0
    allow_debug: bool = False
    tcb_statuses: tuple[str, ...] = DEFAULT_TCB_STATUSES
    advisories: tuple[str, ...] | None = None
    max_age_s: float | None = None
    #: SHA-256 (hex) of accepted AMD root keys (ARK certificates, DER); None = the ARK given with the chain.
    snp_ark_fingerprints: tuple[str, ...] | None = None

    @field_validator("measurements")
    @classmethod
    def _measurements_hex(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        return None if v is None else tuple(_hex(m, None, "measurement") for m in v)

    @field_validator("snp_ark_fingerprints")
    @classmethod
    def _ark_hex(cls, v: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if v is None:
            return None
        out = tuple(_hex(f.replace(":", ""), 32, "ARK fingerprint") for f in v)
        return out

    @field_validator("signer")
    @classmethod
    def _signer_hex(cls, v: str | None) -> str | None:
        # 32 bytes: MRSIGNER / simulated signer; 48 bytes: SEV-SNP ID key digest.
        if v is None:
            return None
        v = _hex(v, None, "signer")
        if len(v) not in (64, 96):
            raise ValueError("signer must be 32 (MRSIGNER) or 48 (SNP ID key digest) bytes of hex")
        return v

    @field_validator("tcb_statuses")
    @classmethod
    def _statuses_known(cls, v: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [s for s in v if s not in KNOWN_TCB_STATUSES]
        if unknown:
            raise ValueError(f"unknown TCB status {unknown}; known: {sorted(KNOWN_TCB_STATUSES)}")
        return v

    @field_validator("min_svn", "product_id")
    @classmethod
    def _non_negative(cls, v: int | None) -> int | None:
        if v is not None and v < 0:
            raise ValueError("must be >= 0")
        return v

    @field_validator("max_age_s")
    @classmethod
    def _positive_age(cls, v: float | None) -> float | None:
        if v is not None and v <= 0:
            raise ValueError("must be > 0 seconds")
        return v

    @classmethod
    def patched_platform(cls, **fields: Any) -> Policy:
        """A policy accepting every status of a patched platform (see PATCHED_TCB_STATUSES)."""
        return cls(tcb_statuses=PATCHED_TCB_STATUSES, **fields)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], source: str = "policy") -> Policy:
        try:
            return cls.model_validate(dict(data))
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or '(top)'}: {e['msg']}" for e in exc.errors()
            )
            raise TeeConfigError(f"{source}: invalid policy: {problems}") from None

    @classmethod
    def from_file(cls, path: str | Path) -> Policy:
        """Load a policy from a YAML or JSON file (JSON is YAML)."""
        try:
            text = Path(path).read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise TeeConfigError(f"cannot read policy file {path}: {exc}") from None
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise TeeConfigError(f"policy file {path} is not valid YAML/JSON: {exc}") from None
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise TeeConfigError(f"policy file {path} must hold a mapping of Policy fields")
        return cls.from_mapping(data, source=str(path))


@dataclass(frozen=True)
class Claims:
    """Every field a verifier checked, from evidence whose signatures verified.

    ``simulated`` is True only for simulated evidence, which proves nothing
    about hardware.  ``extra`` holds TEE-specific fields (hex strings).
    """

    tee: str  # "sim" | "sgx" | "tdx" | "sev-snp"
    measurement: bytes
    signer: bytes | None
    product_id: int | None
    svn: int | None
    debug: bool
    report_data: bytes
    tcb_status: str | None
    advisories: tuple[str, ...]
    timestamp: float | None
    simulated: bool
    extra: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (bytes as hex)."""
        return {
            "tee": self.tee,
            "simulated": self.simulated,
            "measurement": self.measurement.hex(),
            "signer": None if self.signer is None else self.signer.hex(),
            "product_id": self.product_id,
            "svn": self.svn,
            "debug": self.debug,
            "report_data": self.report_data.hex(),
            "tcb_status": self.tcb_status,
            "advisories": list(self.advisories),
            "timestamp": self.timestamp,
            **{k: v for k, v in self.extra.items()},
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)
