"""Bus addresses and patterns, as NATS subjects spell them.

An address is dot-separated tokens; a pattern may use ``*`` for exactly one
token and ``>`` as the last token for one or more.  The runtime needs this
for its own checks (handler declarations, bridge permissions) before any
message reaches the bus.
"""

from __future__ import annotations

import re

from sereca.service.errors import ServiceDefinitionError

# Tokens are restricted so an address never smuggles broker syntax or whitespace.
_TOKEN = re.compile(r"^[A-Za-z0-9_\-]+$")


def check_address(address: str, *, allow_wildcards: bool) -> str:
    """Return ``address`` if it is well formed, else raise :class:`ServiceDefinitionError`."""
    if not isinstance(address, str) or not address:
        raise ServiceDefinitionError(f"bad bus address {address!r}: it must be a non-empty string")
    tokens = address.split(".")
    for i, token in enumerate(tokens):
        if token in ("*", ">"):
            if not allow_wildcards:
                raise ServiceDefinitionError(f"bad bus address {address!r}: wildcards are not allowed here")
            if token == ">" and i != len(tokens) - 1:
                raise ServiceDefinitionError(f"bad bus address {address!r}: '>' may only be the last token")
        elif not _TOKEN.match(token):
            raise ServiceDefinitionError(
                f"bad bus address {address!r}: token {token!r} must be letters, digits, '_' or '-'"
            )
    return address


def is_pattern(address: str) -> bool:
    return any(t in ("*", ">") for t in address.split("."))


def matches(pattern: str, address: str) -> bool:
    """True if the concrete ``address`` is covered by ``pattern``."""
    p, a = pattern.split("."), address.split(".")
    for i, token in enumerate(p):
        if token == ">":
            return len(a) > i
        if i >= len(a) or (token != "*" and token != a[i]):
            return False
    return len(p) == len(a)


def covers(outer: str, inner: str) -> bool:
    """True if every address matched by pattern ``inner`` is matched by pattern ``outer``."""
    o, n = outer.split("."), inner.split(".")
    for i, token in enumerate(o):
        if token == ">":
            return len(n) > i
        if i >= len(n):
            return False
        if n[i] == ">":
            return False
        if token == "*":
            continue
        if n[i] == "*" or n[i] != token:
            return False
    return len(o) == len(n)
