"""Fixtures for the water app: small networks, short horizons."""

from __future__ import annotations

from pathlib import Path

import pytest

from sereca.apps.water import Network, SensorSet, load_network

NET1_SENSORS = SensorSet(pressure=["10", "11", "12", "13", "21", "22", "23", "31", "32"], flow=["9", "10"], level=["2"])


@pytest.fixture(scope="session")
def net1() -> Network:
    return load_network("Net1")


@pytest.fixture(scope="session")
def net1_sensors() -> SensorSet:
    return NET1_SENSORS


@pytest.fixture()
def cache_dir(tmp_path: Path) -> Path:
    return tmp_path / "cache"
