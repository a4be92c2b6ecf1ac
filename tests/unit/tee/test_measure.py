"""Canonical measurement of files and trees."""

from __future__ import annotations

import hashlib
import os
import shutil
import struct
from pathlib import Path

import pytest

from sereca.tee import TeeConfigError, measure_paths


def make_tree(root: Path) -> Path:
    app = root / "app"
    (app / "pkg").mkdir(parents=True)
    (app / "main.py").write_text("print('hi')\n")
    (app / "pkg" / "mod.py").write_text("X = 1\n")
    run = app / "run.sh"
    run.write_text("#!/bin/sh\n")
    run.chmod(0o755)
    return app


def test_known_answer_for_one_file(tmp_path: Path) -> None:
    # Independent re-statement of the documented encoding (not the code under test).
    f = tmp_path / "hello.txt"
    f.write_bytes(b"hello")
    f.chmod(0o600)
    name = b"hello.txt"
    entry = b"f" + struct.pack(">I", len(name)) + name + struct.pack(">I", 0o644) + hashlib.sha256(b"hello").digest()
    assert measure_paths([f]) == hashlib.sha256(b"sereca/measure/v1\x00" + entry).digest()


def test_same_tree_elsewhere_same_measurement(tmp_path: Path) -> None:
    a = make_tree(tmp_path / "one")
    b = tmp_path / "two" / "deep" / "app"
    shutil.copytree(a, b)
    (b / "main.py").chmod(0o664)  # another umask: not part of the measurement
    assert measure_paths([a]) == measure_paths([b])


def test_argument_order_does_not_matter(tmp_path: Path) -> None:
    app = make_tree(tmp_path)
    extra = tmp_path / "config.toml"
    extra.write_text("x=1\n")
    assert measure_paths([app, extra]) == measure_paths([extra, app])


@pytest.mark.parametrize("change", ["byte", "append", "rename", "exec", "new-file", "delete"])
def test_any_change_changes_measurement(tmp_path: Path, change: str) -> None:
    app = make_tree(tmp_path)
    before = measure_paths([app])
    target = app / "pkg" / "mod.py"
    if change == "byte":
        target.write_text("X = 2\n")
    elif change == "append":
        target.write_text("X = 1\n\n")
    elif change == "rename":
        target.rename(app / "pkg" / "mod2.py")
    elif change == "exec":
        target.chmod(0o755)
    elif change == "new-file":
        (app / "pkg" / "__init__.py").write_text("")
    else:
        target.unlink()
    assert measure_paths([app]) != before


def test_symlink_measured_by_target_not_followed(tmp_path: Path) -> None:
    app = make_tree(tmp_path)
    outside = tmp_path / "outside.txt"
    outside.write_text("a")
    (app / "link").symlink_to(outside)
    m1 = measure_paths([app])
    outside.write_text("b")  # content outside the tree does not count
    assert measure_paths([app]) == m1
    (app / "link").unlink()
    (app / "link").symlink_to(tmp_path / "elsewhere")
    assert measure_paths([app]) != m1


def test_pycache_ignored(tmp_path: Path) -> None:
    app = make_tree(tmp_path)
    m1 = measure_paths([app])
    (app / "__pycache__").mkdir()
    (app / "__pycache__" / "main.cpython-311.pyc").write_bytes(os.urandom(16))
    assert measure_paths([app]) == m1


def test_unusable_inputs(tmp_path: Path) -> None:
    with pytest.raises(TeeConfigError, match="nothing to measure"):
        measure_paths([])
    with pytest.raises(TeeConfigError, match="cannot measure"):
        measure_paths([tmp_path / "missing"])
    a = tmp_path / "a" / "x"
    b = tmp_path / "b" / "x"
    a.parent.mkdir()
    b.parent.mkdir()
    a.write_text("1")
    b.write_text("2")
    with pytest.raises(TeeConfigError, match="both contain"):
        measure_paths([a, b])
    os.mkfifo(tmp_path / "fifo")
    with pytest.raises(TeeConfigError, match="not a regular file"):
        measure_paths([tmp_path / "fifo"])
