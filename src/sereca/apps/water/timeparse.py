"""Durations and instants written by people: ``90``, ``"36h"``, ``"2d 3h"``, ``"5min"``, ``"2d03:00"``.

All times in the water app are seconds from the start of the simulation
(time 0 is the start of the network's demand patterns).
"""

from __future__ import annotations

import re

_UNIT_SECONDS = {"d": 86400, "h": 3600, "min": 60, "m": 60, "s": 1}
_TOKEN = re.compile(r"(\d+(?:\.\d+)?)\s*(d|h|min|m|s)(?![a-z])", re.IGNORECASE)
_CLOCK = re.compile(r"(\d+):(\d{2})(?::(\d{2}))?$")


def parse_duration(value: float | int | str) -> float:
    """Seconds for a number (already seconds) or a string such as ``"2d 3h"`` or ``"1d06:30"``.

    Raises ``ValueError`` with a message naming the accepted forms.
    """
    if isinstance(value, bool):
        raise ValueError("expected a duration, got a boolean")
    if isinstance(value, int | float):
        if value < 0:
            raise ValueError(f"duration {value} is negative")
        return float(value)
    text = str(value).strip().lower()
    if not text:
        raise ValueError("empty duration")
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if seconds < 0:
            raise ValueError(f"duration {value!r} is negative")
        return seconds
    total = 0.0
    rest = text
    clock = _CLOCK.search(rest)
    if clock:
        hours, minutes, secs = clock.group(1), clock.group(2), clock.group(3) or "0"
        total += int(hours) * 3600 + int(minutes) * 60 + int(secs)
        rest = rest[: clock.start()]
    matched = 0
    for match in _TOKEN.finditer(rest):
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]
        matched += len(match.group(0))
    leftover = _TOKEN.sub("", rest).strip()
    if leftover or (not matched and not clock):
        raise ValueError(
            f"cannot read duration {value!r}: use seconds (3600) or units d/h/min/s ('2d 3h', '90min') "
            "optionally followed by a clock time ('1d 06:30')"
        )
    return total


def format_duration(seconds: float) -> str:
    """``'2d 03:05'``-style text for reports."""
    seconds = int(round(seconds))
    days, rem = divmod(seconds, 86400)
    hours, rem = divmod(rem, 3600)
    minutes = rem // 60
    return f"{days}d {hours:02d}:{minutes:02d}" if days else f"{hours:02d}:{minutes:02d}"
