"""Training runs side by side: history files (`cnn-numpy train --history FILE`) and
checkpoints, read back for `cnn-numpy compare`.

A history file is JSON, {"settings": {...}, "history": [{"epoch": 1, ...}, ...]}, or CSV,
one row per epoch (the settings then unknown).  A checkpoint holds both.
"""

from __future__ import annotations

import csv
import io
import json
import math
from dataclasses import dataclass
from pathlib import Path

from .files import atomic_write

#: A history row's columns, in the order they are written.
COLUMNS = ("epoch", "train_cce", "train_ce", "test_cce", "test_ce", "learning_rate",
           "images_per_s")
#: The settings compare shows, in order.
SHOWN = ("model", "layers", "dataset", "epochs", "batch_size", "optimizer", "learning_rate",
         "schedule", "weight_decay", "augment", "validation", "seed", "engine")
#: The most rows read from a history file.
MAX_ROWS = 100_000


@dataclass
class Run:
    """One run: a name (its file), its settings (a dict, {} if unknown), its history rows."""

    name: str
    settings: dict
    history: list[dict]


def history_text(settings: dict, history: list[dict], as_json: bool) -> str:
    """A run as a history file's text: JSON with its settings, or CSV (rows only)."""
    if as_json:
        return json.dumps({"settings": settings, "history": history}, indent=1)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, COLUMNS, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    return buffer.getvalue()


def write_history(path, settings: dict, history: list[dict]) -> None:
    """The run so far, as JSON (path ending .json) or CSV (any other), atomically."""
    text = history_text(settings, history, as_json=str(path).lower().endswith(".json"))
    atomic_write(path, lambda f: f.write(text.encode()))


def read_run(path) -> Run:
    """A Run from a checkpoint (.npz), a JSON or a CSV history file; ValueError naming the
    file and what is wrong with it otherwise."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"{path}: no such file")
    if path.suffix.lower() == ".npz":
        from .saving import read

        _, meta, _ = read(path)
        settings = meta.get("settings") if isinstance(meta.get("settings"), dict) else {}
        progress = meta.get("progress") if isinstance(meta.get("progress"), dict) else {}
        return Run(str(path), settings, _rows(path, progress.get("history", [])))
    text = path.read_text(encoding="utf-8", errors="replace")
    if path.suffix.lower() == ".json":
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"{path}: not JSON ({exc})") from None
        if not isinstance(data, dict) or not isinstance(data.get("settings", {}), dict):
            raise ValueError(f"{path}: not a history file (expected settings and history)")
        return Run(str(path), data.get("settings", {}), _rows(path, data.get("history")))
    try:
        rows = list(csv.DictReader(io.StringIO(text)))
    except csv.Error as exc:
        raise ValueError(f"{path}: not CSV ({exc})") from None
    return Run(str(path), {}, _rows(path, rows))


def _rows(path: Path, rows) -> list[dict]:
    """History rows with numeric values (NaN where a figure is missing), checked."""
    if not isinstance(rows, list) or len(rows) > MAX_ROWS:
        raise ValueError(f"{path}: no list of per-epoch rows")
    out = []
    for i, row in enumerate(rows):
        if not isinstance(row, dict) or "epoch" not in row:
            raise ValueError(f"{path}: row {i + 1} has no epoch")
        clean = {}
        for key in COLUMNS:
            value = row.get(key)
            try:
                clean[key] = math.nan if value in (None, "") else float(value)
            except (TypeError, ValueError):
                raise ValueError(f"{path}: row {i + 1}: {key} = {value!r} is not a number") \
                    from None
        out.append(clean)
    return out


def table(runs: list[Run]) -> str:
    """The runs' settings and last epoch's figures, one column per run."""
    rows = [("", *(f"run {i + 1}" for i in range(len(runs))))]
    rows += [(key, *(_fmt(run.settings.get(key)) for run in runs)) for key in SHOWN
             if any(key in run.settings for run in runs)]
    held_out = ["-" if not run.settings else "validation" if run.settings.get("validation")
                else "test" for run in runs]
    for key, label in (("epoch", "epochs trained"), ("train_cce", "train CCE"),
                       ("train_ce", "train CE"), ("test_cce", "held-out CCE"),
                       ("test_ce", "held-out CE")):
        rows.append((label, *(_fmt(run.history[-1][key]) if run.history else "-"
                              for run in runs)))
    rows.append(("held-out set", *held_out))
    widths = [min(60, max(len(r[c]) for r in rows)) for c in range(len(rows[0]))]
    lines = ["  ".join(cell[:60].ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    names = [f"run {i + 1}: {run.name}" for i, run in enumerate(runs)]
    return "\n".join(names + [""] + lines)


def _fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return "-" if math.isnan(value) else f"{value:.4g}"
    return str(value)


def plot_runs(runs: list[Run], path) -> None:
    """Every run's train (dashed) and held-out (solid) CCE and CE per epoch, overlaid."""
    from matplotlib.ticker import MaxNLocator

    from .visual.plots import new_figure, save_figure

    fig = new_figure(11, 4.2)
    axes = fig.subplots(1, 2)
    for ax, key, title in ((axes[0], "cce", "categorical cross-entropy"),
                           (axes[1], "ce", "classification error (%)")):
        scale = 100 if key == "ce" else 1
        for i, run in enumerate(runs):
            epochs = [row["epoch"] for row in run.history]
            color = f"C{i % 10}"
            for split, style in (("train", "--"), ("test", "-")):
                values = [row[f"{split}_{key}"] * scale for row in run.history]
                if any(math.isfinite(v) for v in values):
                    ax.plot(epochs, values, style, color=color, marker="o", markersize=3,
                            label=f"run {i + 1} {'train' if split == 'train' else 'held out'}")
        ax.set_title(f"{title} per epoch")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize=8)
    save_figure(fig, path)
