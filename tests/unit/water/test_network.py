from __future__ import annotations

import json
from pathlib import Path

import pytest

from sereca.apps.water import Network, NetworkNotFoundError, SensorSet, WaterConfigError, load_network


def test_bundled_names_resolve() -> None:
    net = load_network("net3")
    assert net.name == "Net3" and len(net.digest) == 64
    assert load_network("L-Town").wn.num_junctions == 782


def test_inp_path_and_unknown_name(tmp_path: Path, net1: Network) -> None:
    assert load_network(net1.path).digest == net1.digest
    with pytest.raises(NetworkNotFoundError, match="known: .*Net1"):
        load_network("Atlantis")
    bad = tmp_path / "bad.inp"
    bad.write_text("[JUNCTIONS]\n garbage line here\n[PIPES]\n p1 a b\n")
    with pytest.raises(NetworkNotFoundError, match="cannot read network file"):
        load_network(bad)


def test_geometry_is_json_and_places_sensors(net1: Network, net1_sensors: SensorSet) -> None:
    geo = net1.geometry(net1_sensors)
    json.dumps(geo)
    assert {n["id"] for n in geo["nodes"]} >= {"10", "11", "9", "2"}
    pipe = next(link for link in geo["links"] if link["id"] == "10")
    assert pipe["start"] == "10" and len(pipe["path"]) >= 2
    assert {s["id"] for s in geo["sensors"]} == set(net1_sensors.ids())


def test_sensor_validation_names_the_element(net1: Network) -> None:
    with pytest.raises(WaterConfigError, match="sensors.level: no tank '10'"):
        net1.validate_sensors(SensorSet(level=["10"]))


def test_pipe_distance_is_along_the_network(net1: Network) -> None:
    # Net1 pipes 10 (9-10, pump side) and 11 (10-11): adjacent, both 10530 ft = 3209.5 m.
    distance = net1.pipe_distance_fn(["11"])
    half = net1.wn.get_link("11").length / 2
    assert distance("11", "11") == 0.0
    assert distance("11", "12") == pytest.approx(half + net1.wn.get_link("12").length / 2)
    assert distance("11", "121") == pytest.approx(half + 1609.344 + net1.wn.get_link("121").length / 2, rel=1e-3)
