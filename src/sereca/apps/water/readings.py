"""Readings and alarms files.

Readings: CSV with a ``time`` column (seconds since the start of the patterns, or
an ISO 8601 timestamp) and one column per sensor id (``pressure.n1``,
``flow.p227``, ``level.T1``); or JSON lines, one object per time step:
``{"t": 300, "values": {"pressure.n1": 28.9, ...}}``. Units: m for pressure and
level, L/s for flow. Empty cells are missing readings.

Alarms: CSV with columns ``time`` (s), ``pipe``, then ``node``, ``score``,
``confidence``, ``x``, ``y``, ``sensors`` (``;``-separated).
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from sereca.apps.water.detector import Alarm
from sereca.apps.water.errors import ReadingsError
from sereca.apps.water.scoring import AlarmRecord
from sereca.apps.water.timeparse import parse_duration

ALARM_COLUMNS = ("time", "pipe", "node", "score", "confidence", "x", "y", "size_lps", "sensors")


def parse_time(value: Any, origin: datetime | None = None) -> float:
    """Seconds from a number, a duration string, or an ISO timestamp (relative to ``origin``)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ValueError("time is not finite")
        return float(value)
    text = str(value).strip()
    try:
        return parse_duration(text)
    except ValueError:
        pass
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"time {text!r} is neither seconds nor an ISO timestamp") from None
    if origin is None:
        origin = stamp.replace(hour=0, minute=0, second=0, microsecond=0)
    return (stamp - origin).total_seconds()


def read_readings(path: str | Path, origin: datetime | None = None) -> pd.DataFrame:
    """A readings file as a DataFrame (index ``time`` in s, ascending; columns = sensor ids).

    ISO timestamps are converted to seconds since ``origin`` (default: midnight of the
    first timestamp's day, so that time 0 lines up with the start of the demand patterns).
    """
    path = Path(path)
    if not path.is_file():
        raise ReadingsError(f"readings file {path} does not exist")
    if path.suffix.lower() in (".jsonl", ".ndjson", ".json"):
        frame = _read_jsonl(path, origin)
    else:
        frame = _read_csv(path, origin)
    if frame.empty:
        raise ReadingsError(f"{path}: no readings")
    return frame.sort_index()


def _read_csv(path: Path, origin: datetime | None) -> pd.DataFrame:
    try:
        raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ReadingsError(f"{path}: not a readable CSV file: {exc}") from None
    if "time" not in raw.columns:
        raise ReadingsError(f"{path}: no 'time' column (columns: {', '.join(raw.columns[:8])})")
    times = []
    first_origin = origin
    for i, value in enumerate(raw["time"], start=2):
        try:
            t = parse_time(value, first_origin)
        except ValueError as exc:
            raise ReadingsError(f"{path}: line {i}: {exc}") from None
        if first_origin is None and not _is_number(value):
            first_origin = datetime.fromisoformat(value.strip()).replace(hour=0, minute=0, second=0, microsecond=0)
        times.append(t)
    data = {}
    for col in raw.columns:
        if col == "time":
            continue
        values = pd.to_numeric(raw[col].replace("", np.nan), errors="coerce")
        bad = values.isna() & (raw[col] != "")
        if bad.any():
            line = int(np.flatnonzero(bad.to_numpy())[0]) + 2
            raise ReadingsError(f"{path}: line {line}, column {col!r}: {raw[col].iloc[line - 2]!r} is not a number")
        data[col] = values.to_numpy(dtype=float)
    return pd.DataFrame(data, index=pd.Index(times, name="time", dtype=float))


def _is_number(value: str) -> bool:
    try:
        float(value)
    except ValueError:
        return False
    return True


def _read_jsonl(path: Path, origin: datetime | None) -> pd.DataFrame:
    rows: dict[float, dict[str, float]] = {}
    with path.open(encoding="utf-8") as fh:
        for i, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                t = parse_time(obj["t"], origin)
                values = obj["values"]
                if not isinstance(values, dict):
                    raise TypeError("'values' must be an object")
                rows.setdefault(t, {}).update({str(k): float(v) for k, v in values.items()})
            except (json.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
                raise ReadingsError(f"{path}: line {i}: expected {{\"t\": ..., \"values\": {{...}}}}: {exc}") from None
    frame = pd.DataFrame.from_dict(rows, orient="index")
    frame.index = pd.Index(frame.index, name="time", dtype=float)
    return frame


def write_readings(frame: pd.DataFrame, path: str | Path) -> None:
    """Write readings as CSV (or JSON lines for ``.jsonl``)."""
    path = Path(path)
    if path.suffix.lower() in (".jsonl", ".ndjson"):
        with path.open("w", encoding="utf-8") as fh:
            for t, row in zip(frame.index, frame.to_dict(orient="records"), strict=True):
                values = {k: v for k, v in row.items() if v == v}  # drop NaN
                fh.write(json.dumps({"t": float(t), "values": values}) + "\n")
        return
    frame.to_csv(path, index_label="time", float_format="%.6g")


def write_alarms(alarms: Sequence[Alarm], path: str | Path) -> None:
    with Path(path).open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(ALARM_COLUMNS)
        for a in alarms:
            writer.writerow([f"{a.time:g}", a.pipe, a.node, f"{a.score:.3f}", f"{a.confidence:.3f}",
                             f"{a.x:.2f}", f"{a.y:.2f}", f"{a.size_lps:.2f}", ";".join(a.sensors)])


def read_alarms(path: str | Path) -> list[AlarmRecord]:
    """An alarms CSV (at least ``time`` and ``pipe`` columns)."""
    path = Path(path)
    try:
        with path.open(newline="", encoding="utf-8") as fh:
            reader = csv.DictReader(fh)
            if reader.fieldnames is None or not {"time", "pipe"} <= set(reader.fieldnames):
                raise ReadingsError(f"{path}: an alarms file needs 'time' and 'pipe' columns")
            records = []
            for i, row in enumerate(reader, start=2):
                try:
                    records.append(AlarmRecord(time=parse_time(row["time"]), pipe=row["pipe"].strip()))
                except ValueError as exc:
                    raise ReadingsError(f"{path}: line {i}: {exc}") from None
                if not records[-1].pipe:
                    raise ReadingsError(f"{path}: line {i}: empty pipe")
            return records
    except OSError as exc:
        raise ReadingsError(f"cannot read {path}: {exc.strerror or exc}") from None


def iter_frames(frame: pd.DataFrame) -> Iterable[tuple[float, dict[str, float]]]:
    """``(t, {sensor: value})`` per time step, skipping missing values (for replay)."""
    cols = list(frame.columns)
    for t, row in zip(frame.index, frame.to_numpy(dtype=float), strict=True):
        yield float(t), {c: float(v) for c, v in zip(cols, row, strict=True) if v == v}
