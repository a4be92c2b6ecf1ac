"""Loading a water network by name or INP path, its map geometry, and network distances.

Bundled names: wntr's ``Net1``, ``Net2``, ``Net3``, ``Net6``, ``ky4``, ``ky10``
and ``L-Town`` (the BattLeDIM 2020 network, shipped inside the ``epyt`` wheel).
"""

from __future__ import annotations

import hashlib
import importlib.util
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from sereca.apps.water.errors import NetworkNotFoundError, WaterConfigError
from sereca.apps.water.models import SensorSet

_WNTR_NAMES = ("Net1", "Net2", "Net3", "Net6", "ky4", "ky10")
_LTOWN_ALIASES = ("l-town", "ltown", "l_town")


def _package_dir(package: str) -> Path | None:
    # find_spec does not import the package (epyt's import is slow and chatty).
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def bundled_networks() -> dict[str, Path]:
    """Names that :func:`load_network` accepts, with the INP file each stands for."""
    found: dict[str, Path] = {}
    wntr_dir = _package_dir("wntr")
    if wntr_dir is not None:
        for name in _WNTR_NAMES:
            path = wntr_dir / "library" / "networks" / f"{name}.inp"
            if path.is_file():
                found[name] = path
    epyt_dir = _package_dir("epyt")
    if epyt_dir is not None and (epyt_dir / "networks" / "L-TOWN.inp").is_file():
        found["L-Town"] = epyt_dir / "networks" / "L-TOWN.inp"
    return found


def resolve_network_path(name_or_path: str | Path) -> tuple[str, Path]:
    """``(display name, INP path)`` for a bundled name or an existing INP file."""
    text = str(name_or_path)
    candidate = Path(text).expanduser()
    if candidate.is_file():
        return candidate.stem, candidate
    bundled = bundled_networks()
    key = text.lower()
    for name, path in bundled.items():
        if name.lower() == key or (name == "L-Town" and key in _LTOWN_ALIASES):
            return name, path
    known = ", ".join(sorted(bundled)) or "none (is wntr installed?)"
    raise NetworkNotFoundError(f"network {text!r} is neither an INP file nor a bundled network (known: {known})")


@dataclass(frozen=True)
class Network:
    """A water network: its source INP, content hash and a wntr model (do not mutate it)."""

    name: str
    path: Path
    digest: str
    wn: Any = field(repr=False, compare=False)

    def fresh_model(self) -> Any:
        """An independent wntr model of the same INP, safe to modify."""
        return _read_inp(self.path)

    @cached_property
    def pipe_names(self) -> list[str]:
        return list(self.wn.pipe_name_list)

    def validate_sensors(self, sensors: SensorSet) -> None:
        """Raise naming the first sensor that refers to a missing or wrong-type element."""
        wn = self.wn
        for name in sensors.pressure:
            if name not in wn.node_name_list:
                raise WaterConfigError(f"sensors.pressure: no node {name!r} in network {self.name}")
        for name in sensors.flow:
            if name not in wn.link_name_list:
                raise WaterConfigError(f"sensors.flow: no link {name!r} in network {self.name}")
        for name in sensors.level:
            if name not in wn.tank_name_list:
                raise WaterConfigError(f"sensors.level: no tank {name!r} in network {self.name}")

    def validate_pipes(self, pipes: list[str], what: str = "leaks") -> None:
        known = set(self.wn.pipe_name_list)
        for i, pipe in enumerate(pipes):
            if pipe not in known:
                raise WaterConfigError(f"{what}.{i}.pipe: no pipe {pipe!r} in network {self.name}")

    def pipe_midpoint(self, pipe: str) -> tuple[float, float]:
        link = self.wn.get_link(pipe)
        (x1, y1), (x2, y2) = link.start_node.coordinates, link.end_node.coordinates
        return ((x1 + x2) / 2.0, (y1 + y2) / 2.0)

    def element_xy(self, kind: str, element: str) -> tuple[float, float]:
        """Map position of a sensor's element: the node, or a link's midpoint."""
        if kind == "flow":
            link = self.wn.get_link(element)
            (x1, y1), (x2, y2) = link.start_node.coordinates, link.end_node.coordinates
            return ((x1 + x2) / 2.0, (y1 + y2) / 2.0)
        x, y = self.wn.get_node(element).coordinates
        return (float(x), float(y))

    def geometry(self, sensors: SensorSet | None = None) -> dict[str, Any]:
        """JSON-able map for a dashboard: nodes, links (with vertex paths), bounds, sensors.

        ``{"name", "digest", "bounds": [xmin, ymin, xmax, ymax],
        "nodes": [{"id", "x", "y", "type"}], "links": [{"id", "type", "start", "end",
        "path": [[x, y], ...], "length"}], "sensors": [{"id", "kind", "element", "x", "y"}]}``
        Coordinates are the INP's (metres for L-Town, arbitrary for Net1/Net3).
        """
        wn = self.wn
        nodes = []
        for name, node in wn.nodes():
            x, y = node.coordinates
            nodes.append({"id": name, "x": float(x), "y": float(y), "type": node.node_type})
        links = []
        for name, link in wn.links():
            path = [link.start_node.coordinates, *link.vertices, link.end_node.coordinates]
            links.append({
                "id": name,
                "type": link.link_type,
                "start": link.start_node_name,
                "end": link.end_node_name,
                "path": [[float(x), float(y)] for x, y in path],
                "length": float(getattr(link, "length", 0.0)),
            })
        placed = []
        if sensors is not None:
            self.validate_sensors(sensors)
            for sid in sensors.ids():
                kind, _, element = sid.partition(".")
                x, y = self.element_xy(kind, element)
                placed.append({"id": sid, "kind": kind, "element": element, "x": x, "y": y})
        xs = [n["x"] for n in nodes] or [0.0]
        ys = [n["y"] for n in nodes] or [0.0]
        return {
            "name": self.name,
            "digest": self.digest,
            "bounds": [min(xs), min(ys), max(xs), max(ys)],
            "nodes": nodes,
            "links": links,
            "sensors": placed,
        }

    @cached_property
    def _graph(self) -> tuple[dict[str, int], Any]:
        """Undirected graph of all links, weighted by pipe length (pumps and valves: 0 m)."""
        from scipy.sparse import csr_matrix

        index = {name: i for i, name in enumerate(self.wn.node_name_list)}
        rows, cols, weights = [], [], []
        for _, link in self.wn.links():
            a, b = index[link.start_node_name], index[link.end_node_name]
            w = float(getattr(link, "length", 0.0)) or 1e-6  # csgraph drops explicit zeros
            rows += [a, b]
            cols += [b, a]
            weights += [w, w]
        n = len(index)
        return index, csr_matrix((weights, (rows, cols)), shape=(n, n))

    @property
    def node_index(self) -> dict[str, int]:
        """Column of each node in :meth:`node_distances` results."""
        return self._graph[0]

    def node_distances(self, sources: list[str]) -> np.ndarray:
        """Shortest network distance (m) from each source node to every node: shape (len(sources), nodes)."""
        from scipy.sparse.csgraph import dijkstra

        index, graph = self._graph
        return dijkstra(graph, directed=False, indices=[index[s] for s in sources])

    def pipe_distance_fn(self, reference_pipes: list[str]) -> Any:
        """``distance(ref_pipe, other_link) -> metres`` between pipe midpoints along the network.

        Distance between two pipes = the shortest path from a midpoint, out through an
        end node, to the other pipe's midpoint; 0 for the same pipe.
        """
        wn = self.wn
        index, _ = self._graph
        ends: list[str] = []
        for pipe in reference_pipes:
            link = wn.get_link(pipe)
            ends += [link.start_node_name, link.end_node_name]
        dist = self.node_distances(ends) if ends else np.zeros((0, len(index)))
        row = {}
        for i, pipe in enumerate(reference_pipes):
            row[pipe] = (2 * i, 2 * i + 1)

        def distance(ref: str, other: str) -> float:
            if ref == other:
                return 0.0
            a = wn.get_link(ref)
            b = wn.get_link(other)
            half_a = float(getattr(a, "length", 0.0)) / 2.0
            half_b = float(getattr(b, "length", 0.0)) / 2.0
            ia, ib = row[ref]
            ends_b = (index[b.start_node_name], index[b.end_node_name])
            best = min(dist[r, c] for r in (ia, ib) for c in ends_b)
            return half_a + float(best) + half_b

        return distance

    def adjacent_pipe(self, node: str) -> str | None:
        """The shortest pipe touching ``node``: its middle is closest to the node (the alarm's pipe)."""
        pipes = [self.wn.get_link(n) for n in self.wn.get_links_for_node(node)]
        pipes = [p for p in pipes if p.link_type == "Pipe"]
        if not pipes:
            return None
        return min(pipes, key=lambda p: p.length).name


def _read_inp(path: Path) -> Any:
    import wntr  # heavy import, only when a network is really needed

    try:
        return wntr.network.WaterNetworkModel(str(path))
    except Exception as exc:  # wntr raises many types for malformed INP files
        raise NetworkNotFoundError(f"cannot read network file {path}: {exc}") from None


def load_network(name_or_path: str | Path) -> Network:
    """Load a bundled network by name (``Net3``, ``L-Town``, ...) or an EPANET INP file."""
    name, path = resolve_network_path(name_or_path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    return Network(name=name, path=path, digest=digest, wn=_read_inp(path))
