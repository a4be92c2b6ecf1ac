"""Bus key material: the grants format, key derivation, address patterns, hashed subjects.

This module is the single place where the "Bus keys" contract of
docs/architecture.md is implemented:

* ``derive_subject_key(R)``            = HKDF(R, info="bus/subject")
* ``derive_address_key(R, A, n)``      = HKDF(R, info="bus/address/<A>/epoch/<n>")
* ``derive_concrete_key(K, a)``        = HKDF(K, info="bus/concrete/<a>")

(HKDF-SHA-256, no salt, 32 bytes).  :func:`grants_for` turns a manifest
``bus`` section into the ``activation.keys["bus"]`` document for a service;
:class:`Keyring` is what a running service builds from that document.
"""

from __future__ import annotations

import base64
import hashlib
import os
import hmac
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from sereca.bus.errors import BusConfigError

ACTIONS = ("publish", "send", "consume", "request", "reply")
AUTHENTICITY = ("address", "sender")
SUBJECT_ROOT = "sereca"
#: second subject token per delivery mode: publish (all consumers), send (one), request (one, live)
MODE_ALL = "all"
MODE_ONE = "one"
MODE_REQ = "req"
MODES = (MODE_ALL, MODE_ONE, MODE_REQ)
_HASH_BYTES = 15  # 120 bits -> 24 base32 characters, no padding


# ---------------------------------------------------------------- derivation

def hkdf(key: bytes, info: str, length: int = 32) -> bytes:
    """HKDF-SHA-256 without salt, as used everywhere in the key hierarchy."""
    if len(key) < 16:
        raise BusConfigError(f"key material too short ({len(key)} bytes); bus keys are 32 bytes")
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=info.encode()).derive(key)


def derive_subject_key(root_secret: bytes) -> bytes:
    return hkdf(root_secret, "bus/subject")


def derive_address_key(root_secret: bytes, address: str, epoch: int) -> bytes:
    return hkdf(root_secret, f"bus/address/{address}/epoch/{int(epoch)}")


def derive_concrete_key(pattern_key: bytes, address: str) -> bytes:
    return hkdf(pattern_key, f"bus/concrete/{address}")


def derive_name_key(pattern_key: bytes) -> bytes:
    """Key that seals the concrete address inside messages on a pattern (bus-internal)."""
    return hkdf(pattern_key, "bus/name")


# ---------------------------------------------------------------- addresses

def address_problem(address: object) -> str | None:
    """None if ``address`` is a well-formed address or pattern, else what is wrong with it.

    The one definition of the syntax (NATS subject rules): dot-separated non-empty tokens
    without whitespace; ``*`` (one token) and ``>`` (the rest, last token only) are whole tokens.
    """
    if not isinstance(address, str) or not address:
        return "an address must be a non-empty string"
    tokens = address.split(".")
    for i, tok in enumerate(tokens):
        if not tok:
            return "empty token (two dots, or a leading/trailing dot)"
        if any(c.isspace() for c in tok):
            return "tokens must not contain whitespace"
        if tok == ">" and i != len(tokens) - 1:
            return "'>' may only be the last token"
        if tok not in ("*", ">") and ("*" in tok or ">" in tok):
            return "'*' and '>' must be whole tokens"
    return None


def split_address(address: str, *, allow_wildcards: bool = True) -> list[str]:
    """Validate an address (or pattern) and return its tokens."""
    problem = address_problem(address)
    if problem is not None:
        raise BusConfigError(f"bus address {address!r}: {problem}")
    if not allow_wildcards and is_pattern(address):
        raise BusConfigError(f"bus address {address!r} is a pattern; publish/send/request need a concrete address")
    return address.split(".")


def is_pattern(address: str) -> bool:
    return any(t in ("*", ">") for t in address.split("."))


def matches(pattern: str, address: str) -> bool:
    """True if the concrete ``address`` matches ``pattern`` (NATS subject rules)."""
    p = pattern.split(".")
    a = address.split(".")
    for i, tok in enumerate(p):
        if tok == ">":
            return len(a) > i
        if i >= len(a):
            return False
        if tok != "*" and tok != a[i]:
            return False
    return len(a) == len(p)


def is_subpattern(sub: str, pattern: str) -> bool:
    """True if every address matching ``sub`` also matches ``pattern``."""
    s = sub.split(".")
    p = pattern.split(".")
    for i, tok in enumerate(p):
        if tok == ">":
            return len(s) > i
        if i >= len(s):
            return False
        if s[i] == ">":
            return False
        if tok != "*" and (s[i] == "*" or s[i] != tok):
            return False
    return len(s) == len(p)


def patterns_overlap(a: str, b: str) -> bool:
    """True if some concrete address matches both patterns."""
    x = a.split(".")
    y = b.split(".")
    for i in range(max(len(x), len(y))):
        if i >= len(x) or i >= len(y):
            return False
        if x[i] == ">" or y[i] == ">":
            return True
        if x[i] != "*" and y[i] != "*" and x[i] != y[i]:
            return False
    return True


# ---------------------------------------------------------------- subjects

def _token(subject_key: bytes, material: str) -> str:
    digest = hmac.new(subject_key, material.encode(), hashlib.sha256).digest()[:_HASH_BYTES]
    return base64.b32encode(digest).decode().lower()


def address_token(subject_key: bytes, grant_address: str) -> str:
    """Hashed subject token of a manifest entry (address or pattern)."""
    kind = "p" if is_pattern(grant_address) else "a"
    return _token(subject_key, f"{kind}\x00{grant_address}")


def concrete_token(subject_key: bytes, pattern: str, address: str) -> str:
    """Hashed subject token of a concrete address under a pattern."""
    return _token(subject_key, f"c\x00{pattern}\x00{address}")


def grant_subject_base(subject_key: bytes, grant_address: str, mode: str) -> str:
    """``sereca.<mode>.<token>``; patterns append one more token per concrete address."""
    return f"{SUBJECT_ROOT}.{mode}.{address_token(subject_key, grant_address)}"


def stream_name(subject_key: bytes, grant_address: str) -> str:
    return f"SERECA_{address_token(subject_key, grant_address)}"


# ---------------------------------------------------------------- grants

@dataclass(frozen=True)
class Grant:
    address: str
    epoch: int
    key: bytes = field(repr=False)
    actions: frozenset[str]
    authenticity: str = "address"
    durable: bool = False
    pattern: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", is_pattern(self.address))

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Grant:
        try:
            address = str(doc["address"])
            split_address(address)
            key = base64.b64decode(doc["key"], validate=True)
            actions = frozenset(str(a) for a in doc.get("actions", ()))
            authenticity = str(doc.get("authenticity", "address"))
            epoch = int(doc.get("epoch", 1))
            durable = bool(doc.get("durable", False))
        except BusConfigError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise BusConfigError(f"malformed bus grant {dict(doc)!r}: {exc}; re-run activation") from exc
        if len(key) != 32:
            raise BusConfigError(f"bus grant for {address!r}: key must be 32 bytes, got {len(key)}")
        unknown = actions - set(ACTIONS)
        if unknown:
            raise BusConfigError(f"bus grant for {address!r}: unknown actions {sorted(unknown)}; allowed: {ACTIONS}")
        if authenticity not in AUTHENTICITY:
            raise BusConfigError(f"bus grant for {address!r}: authenticity must be one of {AUTHENTICITY}")
        return cls(address, epoch, key, actions, authenticity, durable)

    def to_json(self) -> dict[str, Any]:
        return {"address": self.address, "epoch": self.epoch, "key": base64.b64encode(self.key).decode(),
                "actions": sorted(self.actions), "authenticity": self.authenticity, "durable": self.durable}


def _section_addresses(bus_section: Any) -> dict[str, dict[str, Any]]:
    """Accept a plain mapping or a pydantic model for the manifest's ``bus`` section."""
    if hasattr(bus_section, "model_dump"):
        bus_section = bus_section.model_dump()
    if bus_section is None:
        return {}
    if not isinstance(bus_section, Mapping):
        raise BusConfigError("the manifest's bus section must be a mapping with an 'addresses' key")
    addresses = bus_section.get("addresses", {}) or {}
    out: dict[str, dict[str, Any]] = {}
    for addr, entry in addresses.items():
        if hasattr(entry, "model_dump"):
            entry = entry.model_dump()
        split_address(addr)
        out[addr] = dict(entry or {})
    names = list(out)
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            if patterns_overlap(a, b):
                raise BusConfigError(
                    f"bus addresses {a!r} and {b!r} overlap: every concrete address must belong to exactly one "
                    f"manifest entry (its key and subject come from that entry); make the patterns disjoint")
    return out


def entry_actions(entry: Mapping[str, Any], service: str) -> set[str]:
    return {a for a in ACTIONS if service in (entry.get(a) or ())}


def grants_for(root_secret: bytes, bus_section: Any, service: str, *, ca_pem: str | None = None) -> dict[str, Any]:
    """The ``activation.keys["bus"]`` document for ``service`` (what the CAS hands out)."""
    if len(root_secret) != 32:
        raise BusConfigError("the deployment root secret must be 32 bytes")
    grants = []
    for address, entry in _section_addresses(bus_section).items():
        actions = entry_actions(entry, service)
        if not actions:
            continue
        epoch = int(entry.get("epoch", 1) or 1)
        grants.append(Grant(
            address=address, epoch=epoch, key=derive_address_key(root_secret, address, epoch),
            actions=frozenset(actions), authenticity=str(entry.get("authenticity") or "address"),
            durable=bool(entry.get("durable", False)),
        ).to_json())
    return {"subject_key": base64.b64encode(derive_subject_key(root_secret)).decode(),
            "ca_pem": ca_pem, "grants": grants}


# ---------------------------------------------------------------- keyring

@dataclass(slots=True)
class Route:
    """Everything needed to seal/open messages on one concrete address (cached by the bus)."""

    address: str
    grant: Grant
    aead: AESGCM
    name_aead: AESGCM | None  # set for addresses under a pattern grant
    subjects: dict[str, str]  # mode -> broker subject
    addr_bytes: bytes = b""
    addr_ad: bytes = b""
    stream: str = ""
    stream_subjects: list[str] = field(default_factory=list)
    fast: bool = False  # concrete address, address authenticity, not durable: inlined sealing
    nonce_base: int = field(default_factory=lambda: int.from_bytes(os.urandom(12), "big"))


@dataclass
class Keyring:
    """The bus keys of one service: the subject key and its grants."""

    subject_key: bytes = field(repr=False)
    grants: tuple[Grant, ...]
    ca_pem: str | None = None

    @classmethod
    def from_activation(cls, doc: Mapping[str, Any]) -> Keyring:
        """Build from ``activation.keys["bus"]`` (see :func:`grants_for`)."""
        try:
            subject_key = base64.b64decode(doc["subject_key"], validate=True)
            grants = tuple(Grant.from_json(g) for g in doc.get("grants", ()))
        except BusConfigError:
            raise
        except (KeyError, TypeError, ValueError) as exc:
            raise BusConfigError(f"malformed bus key document: {exc}; re-run activation") from exc
        if len(subject_key) != 32:
            raise BusConfigError("bus subject key must be 32 bytes")
        return cls(subject_key, grants, doc.get("ca_pem"))

    @classmethod
    def for_service(cls, root_secret: bytes, bus_section: Any, service: str, *, ca_pem: str | None = None) -> Keyring:
        return cls.from_activation(grants_for(root_secret, bus_section, service, ca_pem=ca_pem))

    def grant_for(self, address: str) -> Grant | None:
        """The grant whose address equals, or whose pattern covers, ``address`` (a concrete address or pattern)."""
        for g in self.grants:
            if g.address == address:
                return g
        for g in self.grants:
            if g.pattern and is_subpattern(address, g.address):
                return g
        return None

    def route(self, grant: Grant, address: str) -> Route:
        """Keys and subjects for a concrete ``address`` covered by ``grant``."""
        if grant.pattern:
            key = derive_concrete_key(grant.key, address)
            name_aead: AESGCM | None = AESGCM(derive_name_key(grant.key))
            tail = "." + concrete_token(self.subject_key, grant.address, address)
        else:
            key, name_aead, tail = grant.key, None, ""
        subjects = {m: grant_subject_base(self.subject_key, grant.address, m) + tail for m in MODES}
        raw = address.encode()
        fast = not grant.pattern and grant.authenticity == "address" and not grant.durable
        return Route(address, grant, AESGCM(key), name_aead, subjects, raw, len(raw).to_bytes(2, "big") + raw,
                     fast=fast)

    def name_aead(self, grant: Grant) -> AESGCM:
        return AESGCM(derive_name_key(grant.key))

    def consume_subjects(self, grant: Grant, address: str) -> dict[str, str]:
        """Broker subjects a consumer of ``address`` (concrete, the grant's pattern, or a sub-pattern) subscribes to."""
        if not grant.pattern:
            return {m: grant_subject_base(self.subject_key, grant.address, m) for m in MODES}
        if not is_pattern(address):
            tail = "." + concrete_token(self.subject_key, grant.address, address)
        else:
            tail = ".*"
        return {m: grant_subject_base(self.subject_key, grant.address, m) + tail for m in MODES}

    def addresses(self) -> Iterable[str]:
        return (g.address for g in self.grants)
