"""History files: a run's settings and its rows (one per epoch), written after every epoch
(`cnn-numpy train --history FILE`, the HistoryFile callback, the page's downloads) and
read back, with checkpoints, by `cnn-numpy compare`.

JSON (a path ending .json): {"settings": {...}, "history": [{"epoch": 1, ...}, ...]},
with null for a figure not measured.  CSV (any other path): one row per epoch, the
figures (HISTORY_KEYS) and then the settings, repeated on every row so that each row
stands alone; the settings' learning rate is the column base_learning_rate (the column
learning_rate is the epoch's, from the schedule).
"""

from __future__ import annotations

import csv
import io
import json
import math
import typing
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ..files import PathLike, atomic_write
from ..net import Net
from ..saving import read_meta
from .callbacks import Callback
from .checkpoints import load_checkpoint
from .settings import HISTORY_KEYS, Settings

#: The most rows read from a history file.
MAX_ROWS = 100_000
#: The CSV columns after the figures: every setting, the base learning rate renamed.
SETTING_COLUMNS = tuple("base_learning_rate" if f.name == "learning_rate" else f.name
                        for f in fields(Settings))


@dataclass
class Run:
    """One run: a name (its file), its settings (a dict, {} if unknown), its history rows."""

    name: str
    settings: dict
    history: list[dict]


def history_text(settings: dict, history: list[dict], as_json: bool) -> str:
    """A run as a history file's text: JSON, or CSV with the settings on every row."""
    rows = [{k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}
            for row in history]
    if as_json:
        return json.dumps({"settings": settings, "history": rows}, indent=1)
    flat = {("base_learning_rate" if k == "learning_rate" else k): v
            for k, v in settings.items()}
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, (*HISTORY_KEYS, *SETTING_COLUMNS), extrasaction="ignore",
                            lineterminator="\n")
    writer.writeheader()
    writer.writerows({**flat, **row} for row in rows)
    return buffer.getvalue()


def write_history(path: PathLike, settings: dict, history: list[dict]) -> None:
    """The run so far, as JSON (path ending .json) or CSV (any other), atomically."""
    text = history_text(settings, history, as_json=str(path).lower().endswith(".json"))
    atomic_write(path, lambda f: f.write(text.encode()))


def read_run(path: PathLike) -> Run:
    """A Run from a checkpoint (.npz), a JSON or a CSV history file; ValueError naming the
    file and what is wrong with it otherwise.  Files of older versions, whose rows name
    the held-out figures test_cce and test_ce whatever they were, are read as written."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    if path.suffix.lower() == ".npz":
        if read_meta(path).get("kind") != "checkpoint":  # a model file: no history
            return Run(str(path), {}, [])
        _, settings, progress, _ = load_checkpoint(path)
        return Run(str(path), asdict(settings), _rows(path, progress.history))
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"{path}: not JSON ({exc})") from None
        if not isinstance(data, dict) or not isinstance(data.get("settings", {}), dict):
            raise ValueError(f"{path}: not a history file (expected settings and history)")
        settings = data.get("settings", {})
        return Run(str(path), settings, _rows(path, data.get("history"), settings))
    try:
        rows = list(csv.DictReader(io.StringIO(text)))
    except csv.Error as exc:
        raise ValueError(f"{path}: not CSV ({exc})") from None
    settings = _csv_settings(rows)
    return Run(str(path), settings, _rows(path, rows, settings))


def _csv_settings(rows: list[dict]) -> dict:
    """The settings columns of a CSV history's first row (none in older files)."""
    if not rows or "model" not in rows[0]:
        return {}
    hints = typing.get_type_hints(Settings)
    settings = {}
    for column, text in rows[0].items():
        if column in SETTING_COLUMNS and text not in (None, ""):
            name = "learning_rate" if column == "base_learning_rate" else column
            settings[name] = _typed(text, typing.get_args(hints[name]) or (hints[name],))
    return settings


def _typed(text: str, kinds: tuple):
    """A CSV cell as the setting's type (a number where the setting is one)."""
    try:
        return int(text) if int in kinds else float(text) if float in kinds else text
    except ValueError:
        return text


def _rows(path: Path, rows, settings: dict | None = None) -> list[dict]:
    """History rows with numeric values (NaN where a figure is missing), checked.  In a
    file of an older version (no val_cce column) the figures of a run that held out a
    validation set are under test_cce and test_ce: they are read as val_cce and val_ce."""
    if not isinstance(rows, list) or len(rows) > MAX_ROWS:
        raise ValueError(f"{path}: no list of per-epoch rows")
    if (settings or {}).get("validation") and all(
            isinstance(row, dict) and "val_cce" not in row for row in rows):
        rows = [{**row, "val_cce": row.get("test_cce"), "val_ce": row.get("test_ce"),
                 "test_cce": None, "test_ce": None} for row in rows]
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or "epoch" not in row:
            raise ValueError(f"{path}: row {i + 1} has no epoch")
        clean = {}
        for key in HISTORY_KEYS:
            value = row.get(key)
            try:
                clean[key] = math.nan if value in (None, "") else float(value)
            except (TypeError, ValueError):
                raise ValueError(f"{path}: row {i + 1}: {key} = {value!r} is not a number") \
                    from None
        out.append(clean)
    return out


class HistoryFile(Callback):
    """The run's settings and rows so far, written to `path` after every epoch and at the
    end (JSON for a .json path, else CSV: runs.write_history)."""

    def __init__(self, path: PathLike):
        self.path = path

    def on_epoch_end(self, net: Net, entry: dict) -> None:
        self._write()

    def on_train_end(self, net: Net) -> None:
        if self.outcome in ("done", "stopped"):
            self._write()  # the last row now holds the test figures

    def _write(self) -> None:
        write_history(self.path, asdict(self.run.settings), self.progress.history)
