"""Canonical measurement of files and trees (like Gramine's trusted files).

The measurement is SHA-256 over a sorted list of entries, one per regular
file or symlink, each ``(kind, path, mode, SHA-256 of content)``:

* ``path`` is relative to the parent of each argument, so measuring
  ``/opt/app`` on one machine and ``/srv/app`` on another gives the same
  value (entries are named ``app/...``); a file argument is named by its
  basename.  Separators are ``/`` on every OS.
* ``mode`` is normalised the way git does it (0o755 if any execute bit is
  set, else 0o644), because umask and checkouts differ between machines
  while the execute bit is what changes behaviour.
* a symlink is measured by its target string, never followed (a link could
  otherwise point outside the measured tree).
* ``__pycache__`` directories are skipped: they are caches regenerated from
  the measured sources and differ between interpreters.

Every field is length-prefixed, so no two different trees encode the same.
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path

from sereca.tee.errors import TeeConfigError

DOMAIN = b"sereca/measure/v1\x00"
SKIPPED_DIRS = frozenset({"__pycache__"})
_CHUNK = 1 << 20


def _file_digest(path: Path) -> bytes:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.digest()


def _entries(arg: Path) -> Iterator[tuple[str, bytes, int, bytes]]:
    """Yield (name, kind, mode, digest) for one argument."""
    try:
        st = arg.lstat()
    except OSError as exc:
        raise TeeConfigError(f"cannot measure {arg}: {exc.strerror or exc}") from None
    base = arg.resolve().name if arg.name in ("", ".", "..") else arg.name
    if stat.S_ISLNK(st.st_mode):
        yield base, b"l", 0o777, hashlib.sha256(os.readlink(arg).encode()).digest()
        return
    if stat.S_ISREG(st.st_mode):
        yield base, b"f", _norm_mode(st.st_mode), _file_digest(arg)
        return
    if not stat.S_ISDIR(st.st_mode):
        raise TeeConfigError(f"cannot measure {arg}: not a regular file, directory or symlink")
    for dirpath, dirnames, filenames in os.walk(arg, onerror=_raise_walk_error):
        dirnames[:] = [d for d in dirnames if d not in SKIPPED_DIRS]
        rel_dir = Path(dirpath).relative_to(arg)
        # os.walk lists symlinks to directories in dirnames; measure them as links.
        for name in list(dirnames):
            full = Path(dirpath, name)
            if full.is_symlink():
                dirnames.remove(name)
                filenames.append(name)
        for name in filenames:
            full = Path(dirpath, name)
            rel = "/".join((base, *rel_dir.parts, name))
            fst = full.lstat()
            if stat.S_ISLNK(fst.st_mode):
                yield rel, b"l", 0o777, hashlib.sha256(os.readlink(full).encode()).digest()
            elif stat.S_ISREG(fst.st_mode):
                yield rel, b"f", _norm_mode(fst.st_mode), _file_digest(full)
            else:
                raise TeeConfigError(f"cannot measure {full}: not a regular file or symlink")


def _raise_walk_error(exc: OSError) -> None:
    raise TeeConfigError(f"cannot measure {exc.filename}: {exc.strerror or exc}")


def _norm_mode(mode: int) -> int:
    return 0o755 if mode & 0o111 else 0o644


def measurement_entries(paths: Iterable[str | os.PathLike[str]]) -> list[tuple[str, bytes, int, bytes]]:
    """The sorted entries that :func:`measure_paths` hashes (for display and debugging)."""
    entries: dict[str, tuple[str, bytes, int, bytes]] = {}
    given = [Path(p) for p in paths]
    if not given:
        raise TeeConfigError("nothing to measure: give at least one file or directory")
    for arg in given:
        for entry in _entries(arg):
            if entry[0] in entries:
                raise TeeConfigError(
                    f"cannot measure: two inputs both contain {entry[0]!r}; rename one or measure their parent"
                )
            entries[entry[0]] = entry
    return [entries[name] for name in sorted(entries, key=lambda n: n.encode())]


def measure_paths(paths: Iterable[str | os.PathLike[str]]) -> bytes:
    """32-byte canonical hash of the given files and trees (see module doc)."""
    h = hashlib.sha256(DOMAIN)
    for name, kind, mode, digest in measurement_entries(paths):
        encoded = name.encode("utf-8", "surrogateescape")
        h.update(kind + struct.pack(">I", len(encoded)) + encoded + struct.pack(">I", mode) + digest)
    return h.digest()
