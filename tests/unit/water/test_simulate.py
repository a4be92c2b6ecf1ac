from __future__ import annotations

import math

import numpy as np
import pytest

from sereca.apps.water import Hydraulics, Leak, Network, SensorSet, WaterConfigError, simulate
from sereca.apps.water.hydraulics import emitter_coefficient


def test_readings_shape_units_and_determinism(net1: Network, net1_sensors: SensorSet) -> None:
    a = simulate(net1, [], net1_sensors, days=0.5, step=600, seed=3)
    b = simulate(net1, [], net1_sensors, days=0.5, step=600, seed=3)
    assert list(a.readings.columns) == net1_sensors.ids()
    assert len(a.readings) == 73 and a.readings.index[1] == 600
    assert a.readings.equals(b.readings)
    # Net1 is in GPM/psi; readings are in m and L/s whatever the INP's units.
    assert 20 < a.clean["pressure.10"].iloc[0] < 150
    assert a.clean["level.2"].iloc[0] == pytest.approx(120 * 0.3048, rel=1e-3)
    noise = (a.readings - a.clean)["pressure.11"]
    assert 0.01 < noise.std() < 0.03  # default pressure noise 0.02 m


def test_leak_follows_the_orifice_law(net1: Network) -> None:
    sensors = SensorSet(pressure=["12"], flow=["10", "110"], level=["2"])
    hyd = Hydraulics(demand_model="DDA")
    leak = Leak(pipe="12", start=3600, diameter=0.03)
    base = simulate(net1, [], sensors, days=2 / 24, step=900, hydraulics=hyd).clean
    leaky = simulate(net1, [leak], sensors, days=2 / 24, step=900, hydraulics=hyd)
    assert leaky.leak_nodes == {"12": "12__leak"}
    t = 5400.0
    extra_inflow = (leaky.clean.loc[t, "flow.10"] + leaky.clean.loc[t, "flow.110"]) - (
        base.loc[t, "flow.10"] + base.loc[t, "flow.110"])
    p = leaky.clean.loc[t, "pressure.12"]  # the leak node is at mid-pipe; node 12 is close in head
    expected = emitter_coefficient(math.pi * 0.03**2 / 4, 0.75) * math.sqrt(p)
    assert extra_inflow == pytest.approx(expected, rel=0.1)
    assert np.allclose(leaky.clean.loc[:3000, "flow.10"], base.loc[:3000, "flow.10"], atol=1e-3)  # not before start


def test_incipient_leak_grows(net1: Network) -> None:
    sensors = SensorSet(flow=["10", "110"])
    leak = Leak(pipe="21", start=0, peak=6 * 3600, diameter=0.03, type="incipient")
    base = simulate(net1, [], sensors, days=0.25, step=3600).clean.sum(axis=1)
    grown = simulate(net1, [leak], sensors, days=0.25, step=3600).clean.sum(axis=1) - base
    assert np.all(np.diff(grown.to_numpy()[1:]) > 0)


def test_unknown_pipe_or_sensor(net1: Network, net1_sensors: SensorSet) -> None:
    with pytest.raises(WaterConfigError, match=r"leaks.0.pipe: no pipe 'x9'"):
        simulate(net1, [Leak(pipe="x9", start=0, diameter=0.01)], net1_sensors, days=0.1)
    with pytest.raises(WaterConfigError, match="no node 'zz'"):
        simulate(net1, [], SensorSet(pressure=["zz"]), days=0.1)


def test_demand_noise_changes_readings(net1: Network, net1_sensors: SensorSet) -> None:
    clean = simulate(net1, [], net1_sensors, days=0.5, step=600).clean
    noisy = simulate(net1, [], net1_sensors, days=0.5, step=600, demand_noise=0.05, seed=1).clean
    assert not np.allclose(clean["flow.10"], noisy["flow.10"])
