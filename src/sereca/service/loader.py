"""Resolve ``MODULE:ATTR`` (or ``path/to/file.py:ATTR``) to a :class:`Service`.

Split in two steps so the runtime can measure the service's code *before*
importing (and so running) it: :func:`locate` finds the module's directory
without executing it, :func:`load` imports it.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from sereca.service.app import Service
from sereca.service.errors import ServiceLoadError


@dataclass(frozen=True)
class Target:
    module: str
    attr: str
    directory: Path  # what is measured by default
    search_path: Path  # put on sys.path before import


def locate(spec: str, *, cwd: Path | None = None) -> Target:
    """Parse ``spec`` and find its module's directory without importing the module itself."""
    cwd = cwd or Path.cwd()
    module, sep, attr = spec.rpartition(":")
    if not sep or not module or not attr.isidentifier():
        raise ServiceLoadError(f"bad service {spec!r}: write MODULE:ATTR, e.g. detector:svc or detector/app.py:svc")
    if module.endswith(".py") or os.sep in module or "/" in module:
        path = (cwd / module).resolve()
        if not path.is_file():
            raise ServiceLoadError(f"bad service {spec!r}: {path} is not a file")
        if not path.stem.isidentifier():
            raise ServiceLoadError(f"bad service {spec!r}: {path.name} is not an importable module name")
        return Target(path.stem, attr, path.parent, path.parent)
    if not all(part.isidentifier() for part in module.split(".")):
        raise ServiceLoadError(f"bad service {spec!r}: {module!r} is not a module name")
    _prepend(cwd)
    try:
        found = importlib.util.find_spec(module)
    except (ImportError, ValueError) as exc:
        raise ServiceLoadError(f"cannot find module {module!r}: {exc}") from None
    if found is None or not found.origin or found.origin in ("built-in", "frozen"):
        raise ServiceLoadError(
            f"cannot find module {module!r} (looked in {cwd} and the Python path); "
            "run from the directory that contains it, or give a file path: path/to/app.py:svc"
        )
    return Target(module, attr, Path(found.origin).resolve().parent, cwd)


def load(target: Target) -> Service:
    """Import the module and return its :class:`Service` (errors become one-line :class:`ServiceLoadError`)."""
    _prepend(target.search_path)
    try:
        module = importlib.import_module(target.module)
    except SyntaxError as exc:
        raise ServiceLoadError(f"cannot import {target.module!r}: {exc.msg} ({exc.filename}:{exc.lineno})") from None
    except Exception as exc:
        raise ServiceLoadError(f"cannot import {target.module!r}: {type(exc).__name__}: {exc}") from exc
    svc = getattr(module, target.attr, None)
    if not isinstance(svc, Service):
        raise ServiceLoadError(
            f"{target.module}:{target.attr} is {type(svc).__name__ if svc is not None else 'missing'}, "
            "not a sereca.Service"
        )
    return svc


def _prepend(path: Path) -> None:
    entry = str(path)
    if entry not in sys.path:
        sys.path.insert(0, entry)
