"""Bus addresses and patterns, as NATS subjects spell them.

An address is dot-separated tokens; a pattern may use ``*`` for exactly one
token and ``>`` as the last token for one or more.  The runtime needs this
for its own checks (handler declarations, bridge permissions) before any
message reaches the bus.
"""

from __future__ import annotations

import re

from sereca.bus.keys import address_problem, is_pattern, is_subpattern, matches
from sereca.service.errors import ServiceDefinitionError

# Matching follows the bus's own rules; only the stricter token check is the runtime's.
__all__ = ["check_address", "covers", "is_pattern", "matches"]

# Tokens are restricted so an address never smuggles broker syntax or whitespace.
_TOKEN = re.compile(r"^[A-Za-z0-9_\-]+$")


def check_address(address: str, *, allow_wildcards: bool) -> str:
    """Return ``address`` if it is well formed, else raise :class:`ServiceDefinitionError`.

    The bus's syntax (:func:`sereca.bus.keys.address_problem`), plus the runtime's stricter
    token alphabet.
    """
    problem = address_problem(address)
    if problem is not None:
        raise ServiceDefinitionError(f"bad bus address {address!r}: {problem}")
    if not allow_wildcards and is_pattern(address):
        raise ServiceDefinitionError(f"bad bus address {address!r}: wildcards are not allowed here")
    for token in address.split("."):
        if token not in ("*", ">") and not _TOKEN.match(token):
            raise ServiceDefinitionError(
                f"bad bus address {address!r}: token {token!r} must be letters, digits, '_' or '-'"
            )
    return address


def covers(outer: str, inner: str) -> bool:
    """True if every address matched by pattern ``inner`` is matched by pattern ``outer``."""
    return is_subpattern(inner, outer)
