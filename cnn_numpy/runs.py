"""Training runs side by side (`cnn-numpy compare`): their settings, their last epoch's
figures, and their curves overlaid.  The runs are read from history files and
checkpoints by training.history_files.read_run."""

from __future__ import annotations

import math

from .files import PathLike
from .training.history_files import Run, read_run

__all__ = ["Run", "plot_runs", "read_run", "table"]

#: The settings compare shows, in order.
SHOWN = ("model", "layers", "dataset", "epochs", "batch_size", "optimizer", "learning_rate",
         "schedule", "weight_decay", "augment", "validation", "seed", "engine")
#: The last epoch's figures compare shows: (key, label).
FIGURES = (("epoch", "epochs trained"), ("train_cce", "train CCE"), ("train_ce", "train CE"),
           ("val_cce", "validation CCE"), ("val_ce", "validation CE"),
           ("test_cce", "test CCE"), ("test_ce", "test CE"))


def table(runs: list[Run]) -> str:
    """The runs' settings and last epoch's figures, one column per run."""
    rows = [("", *(f"run {i + 1}" for i in range(len(runs))))]
    rows += [(key, *(_fmt(run.settings.get(key)) for run in runs)) for key in SHOWN
             if any(key in run.settings for run in runs)]
    for key, label in FIGURES:
        rows.append((label, *(_fmt(run.history[-1][key]) if run.history else "-"
                              for run in runs)))
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


#: The curves of each run: (row key prefix, line style, label).
CURVES = (("train", "--", "train"), ("val", "-", "validation"), ("test", ":", "test"))


def plot_runs(runs: list[Run], path: PathLike) -> None:
    """Every run's train (dashed), validation (solid) and test (dotted) CCE and CE per
    epoch, overlaid, drawn to a picture at path."""
    from .visual.plots import new_figure, save_figure

    fig = new_figure(11, 4.2)  # without matplotlib: an ImportError naming the extra
    from matplotlib.ticker import MaxNLocator

    axes = fig.subplots(1, 2)
    for ax, key, title in ((axes[0], "cce", "categorical cross-entropy"),
                           (axes[1], "ce", "classification error (%)")):
        scale = 100 if key == "ce" else 1
        for i, run in enumerate(runs):
            epochs = [row["epoch"] for row in run.history]
            for split, style, label in CURVES:
                values = [row[f"{split}_{key}"] * scale for row in run.history]
                if any(math.isfinite(v) for v in values):
                    ax.plot(epochs, values, style, color=f"C{i % 10}", marker="o",
                            markersize=3, label=f"run {i + 1} {label}")
        ax.set_title(f"{title} per epoch")
        ax.set_xlabel("epoch")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.grid(alpha=0.3)
        if ax.has_data():
            ax.legend(fontsize=8)
    save_figure(fig, path)
