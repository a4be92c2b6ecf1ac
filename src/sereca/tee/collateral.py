"""DCAP collateral: load it from a file/JSON, or fetch it from a PCCS and cache it.

The cache keeps a fetched collateral on disk until its earliest next-update
time (TCB info, QE identity, CRLs); after that it is fetched again.  The
cache needs no protection: collateral is signed by Intel and dcap-qvl
verifies it on every use, so a tampered cache file only makes verification
fail.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import os
import threading
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import dcap_qvl
from cryptography import x509

from sereca.tee.errors import CollateralError, CollateralUnavailableError, TeeConfigError
from sereca.tee.home import sereca_home

T = TypeVar("T")
Collateral = dcap_qvl.QuoteCollateralV3
COLLATERAL_KEYS = (
    "pck_crl_issuer_chain", "root_ca_crl", "pck_crl", "tcb_info_issuer_chain", "tcb_info",
    "tcb_info_signature", "qe_identity_issuer_chain", "qe_identity", "qe_identity_signature",
)


def _from_json_text(text: str, source: str) -> Collateral:
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise TeeConfigError(f"collateral {source} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise TeeConfigError(f"collateral {source} must be a JSON object")
    missing = [k for k in COLLATERAL_KEYS if k not in data]
    if missing:
        raise TeeConfigError(f"collateral {source} lacks {', '.join(missing)} (expected Intel PCS/PCCS JSON)")
    try:
        return dcap_qvl.QuoteCollateralV3.from_json(text)
    except (ValueError, TypeError) as exc:
        raise CollateralError(f"collateral {source} is malformed: {exc}") from None


def load_collateral(collateral: Any) -> Collateral:
    """A QuoteCollateralV3 from an instance, a mapping, JSON text/bytes, or a file path."""
    if isinstance(collateral, dcap_qvl.QuoteCollateralV3):
        return collateral
    if isinstance(collateral, Mapping):
        return _from_json_text(json.dumps(dict(collateral)), "(mapping)")
    if isinstance(collateral, bytes | bytearray):
        try:
            return _from_json_text(bytes(collateral).decode(), "(bytes)")
        except UnicodeDecodeError:
            raise TeeConfigError("collateral bytes are not UTF-8 JSON") from None
    if isinstance(collateral, str) and collateral.lstrip().startswith("{"):
        return _from_json_text(collateral, "(text)")
    if isinstance(collateral, str | os.PathLike):
        path = Path(collateral)
        try:
            return _from_json_text(path.read_text(), str(path))
        except (OSError, UnicodeDecodeError) as exc:
            raise TeeConfigError(f"cannot read collateral file {path}: {exc}") from None
    raise TeeConfigError(f"unusable collateral of type {type(collateral).__name__}")


def _iso_ts(value: str) -> float:
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def next_update(coll: Collateral) -> float:
    """Earliest time at which any part of ``coll`` must be refreshed (Unix seconds)."""
    times = []
    for doc in (coll.tcb_info, coll.qe_identity):
        try:
            times.append(_iso_ts(json.loads(doc)["nextUpdate"]))
        except (ValueError, KeyError, TypeError):
            raise CollateralError("collateral TCB info / QE identity has no readable nextUpdate") from None
    for crl_bytes in (coll.root_ca_crl, coll.pck_crl):
        try:
            crl = x509.load_der_x509_crl(crl_bytes)
        except ValueError:
            try:
                crl = x509.load_pem_x509_crl(crl_bytes)
            except ValueError:
                raise CollateralError("collateral CRL is neither DER nor PEM") from None
        if crl.next_update_utc is not None:
            times.append(crl.next_update_utc.timestamp())
    return min(times)


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine from sync code, also when an event loop is already running."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["value"] = asyncio.run(coro)
        except BaseException as exc:  # re-raised in the caller's thread
            box["error"] = exc

    thread = threading.Thread(target=target, name="sereca-pccs-fetch")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


@dataclass(frozen=True)
class Pccs:
    """Fetch collateral from a PCCS (or Intel PCS) URL, cached on disk until its next update."""

    url: str
    cache_dir: Path | None = None

    @classmethod
    def from_env(cls, home: str | os.PathLike[str] | None = None) -> Pccs | None:
        url = os.environ.get("SERECA_PCCS_URL")
        return cls(url, sereca_home(home) / "cache" / "collateral") if url else None

    def _cache_path(self, quote: bytes) -> Path | None:
        if self.cache_dir is None:
            return None
        try:
            parsed = dcap_qvl.parse_quote(quote)
            key = f"{self.url}|{parsed.quote_type()}|{parsed.fmspc()}|{parsed.ca()}"
        except ValueError:
            return None
        return self.cache_dir / (hashlib.sha256(key.encode()).hexdigest() + ".json")

    def collateral_for(self, quote: bytes, now: float) -> Collateral:
        path = self._cache_path(quote)
        if path is not None and path.is_file():
            try:
                cached = json.loads(path.read_text())
                if float(cached["next_update"]) > now:
                    return dcap_qvl.QuoteCollateralV3.from_json(json.dumps(cached["collateral"]))
            except (OSError, ValueError, KeyError, TypeError):
                pass  # unreadable cache entry: fetch again
        try:
            coll = _run(dcap_qvl.get_collateral(self.url, quote))
        except (ValueError, RuntimeError, OSError) as exc:
            raise CollateralUnavailableError(f"cannot fetch collateral from {self.url}: {exc}") from None
        if path is not None:
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                entry = {"next_update": next_update(coll), "collateral": json.loads(coll.to_json())}
                tmp = path.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_text(json.dumps(entry))
                os.replace(tmp, path)
            except (OSError, CollateralError):
                pass  # the cache is an optimisation; verification does not depend on it
        return coll
