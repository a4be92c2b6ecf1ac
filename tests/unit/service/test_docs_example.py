"""The run_local example of docs/services.md runs, against the tutorial's detector."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

DOC = Path(__file__).resolve().parents[3] / "docs" / "services.md"


def test_run_local_example_from_the_docs() -> None:
    doc = DOC.read_text()
    detector = re.search(r"`detector/app.py`:\s*\n\s*```python\n(.*?)```", doc, re.S)
    example = re.search(r"```python\n(from sereca.bus.api import EventBus, Identity\n.*?)```", doc, re.S)
    assert detector and example
    ns: dict[str, Any] = {"__name__": "docs_example"}
    exec(compile(detector.group(1), "detector/app.py", "exec"), ns)  # noqa: S102 - our own documentation
    exec(compile(example.group(1), "docs/services.md", "exec"), ns)  # noqa: S102
    asyncio.run(asyncio.wait_for(ns["test_check"](), 10))
