"""Replay, reorder and staleness checks for inbound messages."""

from __future__ import annotations

from sereca.bus.errors import ReorderedEnvelope, ReplayedEnvelope, StaleEnvelope


class ReplayGuard:
    """A sliding window of ``window`` sequence numbers per (address, sender, session).

    A message is accepted once; a sequence number more than ``window`` below the
    highest seen is rejected as reordered-beyond-window; a timestamp more than
    ``max_age`` seconds old (or ``max_skew`` in the future) is stale.  A window
    is forgotten only after ``max_age + max_skew`` of silence, when any replay
    of its messages would be rejected as stale anyway.
    """

    __slots__ = ("window", "max_age_ms", "max_skew_ms", "_state", "_limit", "_mask")

    def __init__(self, window: int = 1024, max_age: float = 60.0, max_skew: float = 10.0,
                 limit: int = 100_000) -> None:
        self.window = window
        self.max_age_ms = int(max_age * 1000)
        self.max_skew_ms = int(max_skew * 1000)
        self._state: dict[object, list[int]] = {}
        self._limit = limit
        self._mask = (1 << window) - 1

    def check_fresh(self, ts_ms: int, now_ms: int) -> None:
        if ts_ms < now_ms - self.max_age_ms:
            raise StaleEnvelope(f"sent {(now_ms - ts_ms) / 1000:.1f} s ago, older than {self.max_age_ms / 1000:g} s")
        if ts_ms > now_ms + self.max_skew_ms:
            raise StaleEnvelope(f"timestamp {(ts_ms - now_ms) / 1000:.1f} s in the future (clock skew?)")

    def check(self, key: object, seq: int, ts_ms: int, now_ms: int) -> None:
        """Raise if the message is stale, replayed or too far reordered; otherwise record it.

        ``key`` names the stream of sequence numbers, e.g. (sender, session).
        """
        if ts_ms < now_ms - self.max_age_ms or ts_ms > now_ms + self.max_skew_ms:
            self.check_fresh(ts_ms, now_ms)
        st = self._state.get(key)
        if st is None:
            if len(self._state) >= self._limit:
                self._expire(now_ms)
            self._state[key] = [seq, 1, now_ms]
            return
        top, bits = st[0], st[1]
        if seq > top:
            shift = seq - top
            st[1] = ((bits << shift) | 1) & self._mask if shift < self.window else 1
            st[0] = seq
        else:
            off = top - seq
            if off >= self.window:
                raise ReorderedEnvelope(f"sequence {seq} is {off} behind {top}, beyond the {self.window}-message window")
            if bits >> off & 1:
                raise ReplayedEnvelope(f"sequence {seq} was already delivered")
            st[1] = bits | (1 << off)
        st[2] = now_ms

    def _expire(self, now_ms: int) -> None:
        horizon = now_ms - self.max_age_ms - self.max_skew_ms
        dead = [k for k, st in self._state.items() if st[2] < horizon]
        for k in dead:
            del self._state[k]
        if len(self._state) >= self._limit:
            raise StaleEnvelope("too many concurrent sender sessions; refusing new ones until old ones expire")


class SeenSet:
    """Duplicate suppression for durable deliveries: ids of handled messages, bounded FIFO."""

    __slots__ = ("_seen", "_limit")

    def __init__(self, limit: int = 100_000) -> None:
        self._seen: dict[tuple[str, bytes, int], None] = {}
        self._limit = limit

    def __contains__(self, key: tuple[str, bytes, int]) -> bool:
        return key in self._seen

    def add(self, key: tuple[str, bytes, int]) -> None:
        self._seen[key] = None
        if len(self._seen) > self._limit:
            del self._seen[next(iter(self._seen))]
