"""Shared test fixtures.

Package-specific fixtures live in conftest.py files next to the tests of
that package.
"""

from __future__ import annotations

from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
VECTORS = PROJECT_ROOT.parent / "shared" / "vectors"


@pytest.fixture(autouse=True)
def _isolated_sereca_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Never touch the developer's ~/.sereca: each test gets its own home."""
    home = tmp_path_factory.mktemp("sereca-home")
    monkeypatch.setenv("SERECA_HOME", str(home))
    return home


@pytest.fixture(scope="session")
def vectors() -> Path:
    """The real SGX/TDX/SEV-SNP evidence in ../shared/vectors (read-only)."""
    if not VECTORS.is_dir():
        pytest.fail(f"test vectors not found at {VECTORS}: the shared/ folder must sit beside the project")
    return VECTORS
