"""Waiting in async tests for something another task or process does."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


async def until(cond: Callable[[], Any], timeout: float = 10.0, interval: float = 0.01) -> None:
    """Poll ``cond`` every ``interval`` s until it is true; ``TimeoutError`` after ``timeout`` s."""

    async def wait() -> None:
        while not cond():
            await asyncio.sleep(interval)

    await asyncio.wait_for(wait(), timeout)
