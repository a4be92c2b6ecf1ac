"""Replay window and staleness."""

from __future__ import annotations

import pytest

from sereca.bus.errors import ReorderedEnvelope, ReplayedEnvelope, StaleEnvelope
from sereca.bus.replay import ReplayGuard, SeenSet

NOW = 1_700_000_000_000


def test_window() -> None:
    g = ReplayGuard(window=8, max_age=60)
    for seq in (1, 3, 2, 10):
        g.check("k", seq, NOW, NOW)
    with pytest.raises(ReplayedEnvelope):
        g.check("k", 3, NOW, NOW)
    with pytest.raises(ReplayedEnvelope):
        g.check("k", 10, NOW, NOW)
    g.check("k", 4, NOW, NOW)  # late but inside the window
    with pytest.raises(ReorderedEnvelope):
        g.check("k", 2, NOW, NOW)  # 8 behind 10
    g.check("other", 2, NOW, NOW)  # independent sequence spaces
    g.check("k", 1000, NOW, NOW)
    with pytest.raises(ReorderedEnvelope):
        g.check("k", 990, NOW, NOW)


def test_stale_and_future() -> None:
    g = ReplayGuard(max_age=5, max_skew=1)
    with pytest.raises(StaleEnvelope):
        g.check("k", 1, NOW - 6000, NOW)
    with pytest.raises(StaleEnvelope):
        g.check("k", 1, NOW + 2000, NOW)
    g.check("k", 1, NOW - 4000, NOW)


def test_expiry_keeps_safety() -> None:
    g = ReplayGuard(max_age=1, max_skew=0, limit=2)
    g.check("a", 1, NOW, NOW)
    g.check("b", 1, NOW, NOW)
    with pytest.raises(StaleEnvelope, match="too many"):
        g.check("c", 1, NOW, NOW)  # nothing old enough to forget
    later = NOW + 5000
    g.check("c", 1, later, later)  # a and b expired: their replays are stale anyway
    with pytest.raises(StaleEnvelope):
        g.check("a", 1, NOW, later)


def test_seen_set_is_bounded() -> None:
    s = SeenSet(limit=2)
    for i in range(3):
        s.add(("x", b"s", i))
    assert ("x", b"s", 0) not in s and ("x", b"s", 2) in s
