"""A demo scenario for any network: spread-out pressure sensors and one burst after the warm-up.

Used by ``sereca demo water --network NAME`` when no scenario is given for
that network.  Deterministic: the same network always gets the same
sensors and leak.
"""

from __future__ import annotations

import numpy as np

from sereca.apps.water.models import Leak, Scenario, SensorSet
from sereca.apps.water.network import Network

MAX_PRESSURE_SENSORS = 30
LEAK_START = 25 * 3600.0  # just after the detector's default 24 h warm-up
LEAK_DIAMETER = 0.03  # m


def _spread(points: np.ndarray, k: int) -> list[int]:
    """Farthest-point sampling: ``k`` indices of points that cover the map evenly."""
    if len(points) <= k:
        return list(range(len(points)))
    centre = points.mean(axis=0)
    chosen = [int(np.argmax(np.linalg.norm(points - centre, axis=1)))]
    dist = np.linalg.norm(points - points[chosen[0]], axis=1)
    while len(chosen) < k:
        nxt = int(np.argmax(dist))
        chosen.append(nxt)
        dist = np.minimum(dist, np.linalg.norm(points - points[nxt], axis=1))
    return sorted(chosen)


def scenario_for(net: Network, *, days: float = 2.0) -> Scenario:
    wn = net.wn
    junctions = list(wn.junction_name_list)
    xy = np.array([wn.get_node(j).coordinates for j in junctions], dtype=float)
    pressure = [junctions[i] for i in _spread(xy, MAX_PRESSURE_SENSORS)]
    sensors = SensorSet(pressure=pressure, flow=list(wn.pump_name_list), level=list(wn.tank_name_list))
    # The leak: the pipe nearest the middle of the junctions, away from tanks and sources.
    centre = xy.mean(axis=0)
    pipes = [p for p in wn.pipe_name_list if getattr(wn.get_link(p), "length", 0) > 0]
    mids = np.array([net.pipe_midpoint(p) for p in pipes], dtype=float)
    pipe = pipes[int(np.argmin(np.linalg.norm(mids - centre, axis=1)))]
    return Scenario(
        name=f"{net.name}-demo", description=f"{net.name}: {len(pressure)} pressure sensors, a burst on {pipe}",
        network=net.name, days=days, step=300, seed=1, demand_noise=0.02, sensors=sensors,
        leaks=[Leak(pipe=pipe, start=LEAK_START, diameter=LEAK_DIAMETER)],
    )
