"""Where SERECA keeps per-installation state ($SERECA_HOME or ~/.sereca)."""

from __future__ import annotations

import os
from pathlib import Path


def sereca_home(home: str | os.PathLike[str] | None = None) -> Path:
    if home is not None:
        return Path(home)
    env = os.environ.get("SERECA_HOME")
    return Path(env) if env else Path.home() / ".sereca"
