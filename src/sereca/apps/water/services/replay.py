"""Replaying simulated readings in (scaled) real time.

``speed`` is simulated seconds per real second (3600: one simulated hour
per second); 0 replays as fast as the consumer of the batches allows.  A
replay that falls behind (a slow publish, a busy host) catches up by sending
the overdue steps at once rather than stretching simulated time.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass

import numpy as np

# With speed 0, give the event loop a turn every this many batches (health, metrics, signals).
_YIELD_EVERY = 32


@dataclass(frozen=True)
class Step:
    t: float
    values: dict[str, float]


class Replay:
    """Time steps of a readings table (index: time in s, columns: sensor ids)."""

    def __init__(self, times: np.ndarray, ids: list[str], values: np.ndarray) -> None:
        if values.shape != (len(times), len(ids)):
            raise ValueError(f"readings of shape {values.shape} do not match {len(times)} times x {len(ids)} sensors")
        self.times = np.asarray(times, dtype=float)
        self.ids = list(ids)
        self.values = np.asarray(values, dtype=float)

    @classmethod
    def from_frame(cls, frame: object) -> Replay:
        return cls(frame.index.to_numpy(dtype=float), [str(c) for c in frame.columns],  # type: ignore[attr-defined]
                   frame.to_numpy(dtype=float))  # type: ignore[attr-defined]

    def __len__(self) -> int:
        return len(self.times)

    @property
    def duration(self) -> float:
        return float(self.times[-1] - self.times[0]) if len(self.times) else 0.0

    def steps(self) -> Iterator[Step]:
        for t, row in zip(self.times, self.values, strict=True):
            # Missing readings (NaN) are left out rather than sent as NaN.
            yield Step(float(t), {sid: v for sid, v in zip(self.ids, row.tolist(), strict=True) if math.isfinite(v)})

    async def run(self, emit: Callable[[Step], Awaitable[None]], speed: float,
                  clock: Callable[[], float] = time.monotonic) -> int:
        """Call ``emit`` for every step on schedule; return how many were emitted."""
        if not len(self.times):
            return 0
        t0, started, n = float(self.times[0]), clock(), 0
        for step in self.steps():
            if speed > 0:
                delay = started + (step.t - t0) / speed - clock()
                if delay > 0:
                    await asyncio.sleep(delay)
            elif n % _YIELD_EVERY == 0:
                await asyncio.sleep(0)
            await emit(step)
            n += 1
        return n
