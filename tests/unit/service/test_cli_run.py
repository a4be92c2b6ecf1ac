"""``sereca run`` failure paths: one clear line on stderr, non-zero exit, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from sereca.service.errors import ServiceLoadError
from sereca.service.loader import load, locate

SERVICE_SRC = """
from sereca import Service
svc = Service("echo")
not_a_service = 42
"""


def sereca(*args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SERECA_") or k == "SERECA_HOME"}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "sereca.cli.main", *args],
        cwd=cwd, env=full_env, capture_output=True, text=True, timeout=timeout,
    )


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    d = tmp_path / "echo"
    d.mkdir()
    (d / "app.py").write_text(SERVICE_SRC)
    return d


def test_locate_by_file_and_by_module(app_dir: Path) -> None:
    by_file = locate("echo/app.py:svc", cwd=app_dir.parent)
    assert (by_file.module, by_file.attr, by_file.directory) == ("app", "svc", app_dir.resolve())
    by_module = locate("app:svc", cwd=app_dir)
    assert by_module.directory == app_dir.resolve()
    assert load(by_file).name == "echo"


@pytest.mark.parametrize("spec,match", [
    ("nocolon", "MODULE:ATTR"),
    ("echo/app.py:", "MODULE:ATTR"),
    ("echo/missing.py:svc", "is not a file"),
    ("no_such_module_xyz:svc", "cannot find module"),
])
def test_bad_targets(app_dir: Path, spec: str, match: str) -> None:
    with pytest.raises(ServiceLoadError, match=match):
        locate(spec, cwd=app_dir.parent)


def test_attribute_that_is_not_a_service(app_dir: Path) -> None:
    with pytest.raises(ServiceLoadError, match="is int, not a sereca.Service"):
        load(locate("echo/app.py:not_a_service", cwd=app_dir.parent))


def test_module_that_fails_to_import(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("import no_such_dependency_xyz\n")
    with pytest.raises(ServiceLoadError, match="ModuleNotFoundError"):
        load(locate("broken.py:svc", cwd=tmp_path))


def _one_clean_line(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def test_cli_bad_target_is_one_line(app_dir: Path) -> None:
    line = _one_clean_line(sereca("run", "echo/app.py:not_a_service", "--tee", "sim", "--cas", "https://x",
                                  cwd=app_dir.parent))
    assert "not a sereca.Service" in line


def test_cli_without_cas_url_says_what_to_give(app_dir: Path) -> None:
    line = _one_clean_line(sereca("run", "echo/app.py:svc", "--tee", "sim", cwd=app_dir.parent))
    assert "--cas" in line and "SERECA_CAS_URL" in line


def test_cli_bad_measure_path(app_dir: Path) -> None:
    line = _one_clean_line(sereca("run", "echo/app.py:svc", "--tee", "sim", "--measure", "nope",
                                  cwd=app_dir.parent))
    assert "nope" in line
