"""A real deployment of the water services: nats-server, a CAS and four `sereca run` processes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from sereca.apps.water.demo import DemoOptions, WaterDemo, default_scenario

T = 120.0  # bound on the whole startup (a fresh machine builds the detector's reference model once)


@pytest.fixture(scope="session")
def water_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One detector reference-model cache for the session (building it takes seconds)."""
    return tmp_path_factory.mktemp("water-cache")


@pytest.fixture
async def demo(water_cache: Path) -> AsyncIterator[WaterDemo]:
    """The shipped demo scenario replayed as fast as the bus takes it.

    The detector works per step (schedule "steps"), so its alarms do not depend on how fast
    the host is; the CLI test runs the default ("idle") schedule.
    """
    deployment = WaterDemo(DemoOptions(scenario=default_scenario(), speed=0, detector_schedule="steps",
                                       cache_dir=water_cache))
    await asyncio.wait_for(deployment.start(), T)
    try:
        yield deployment
    finally:
        await asyncio.wait_for(deployment.stop(), 60)
