"""Reuse the CAS integration fixtures (real server over TLS, simulated platforms, users)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_spec = importlib.util.spec_from_file_location(
    "sereca_cas_test_fixtures", Path(__file__).resolve().parents[2] / "integration" / "cas" / "conftest.py"
)
assert _spec is not None and _spec.loader is not None
_fixtures = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _fixtures
_spec.loader.exec_module(_fixtures)

sim = _fixtures.sim
alice = _fixtures.alice
bob = _fixtures.bob
owner_key = _fixtures.owner_key
manifest = _fixtures.manifest
server = _fixtures.server
ready = _fixtures.ready
connect = _fixtures.connect
new_user = _fixtures.new_user
