"""Callbacks: the one way to watch or steer the training loop (training.train).

The command line's progress bar and epoch lines, its history files, plots and
checkpoints, Net.fit's History and EarlyStopping, and the page's live run are all
callbacks of the same loop.  Write your own by subclassing Callback:

    class Stop(Callback):
        def on_epoch_end(self, net, entry):
            return entry["val_ce"] < 0.02     # True stops the run

    net.fit(x, y, epochs=10, validation_split=0.1, callbacks=[Stop()])
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable, Iterator

import numpy as np

from ..files import PathLike
from ..net import Net
from .prepare import PreparedRun
from .settings import HISTORY_KEYS, Progress


class Callback:
    """Hooks into the training loop.  Return True from on_batch_end or on_epoch_end to stop
    the run there.

    Before on_train_begin the loop sets `run` (the PreparedRun: net, settings, images;
    a callback may change run.settings.learning_rate, which applies from the next
    step, or batch_size, from the next epoch) and `progress` (the Progress, updated in
    place).  Before on_train_end it sets `outcome`: "done" (every epoch ran),
    "stopped" (a callback asked), "interrupted" (Ctrl-C) or "failed" (an exception,
    such as DivergenceError, which the loop then raises).
    """

    run: PreparedRun
    progress: Progress
    outcome: str | None = None

    def on_train_begin(self, net: Net) -> None:
        """Before the first step (of this call: a resumed run starts mid-way)."""

    def on_epoch_begin(self, net: Net, epoch: int) -> None:
        """Before the epoch numbered `epoch` (from 1, as in the history rows) begins or goes
        on."""

    def on_batch_end(self, net: Net, batch: int, cce: float, ce: float) -> bool | None:
        """After every training step: the batch's number in its epoch (from 0), its CCE and
        CE (measured before the step's update)."""

    def on_epoch_end(self, net: Net, entry: dict) -> bool | None:
        """After every epoch: `entry` is its history row (HISTORY_KEYS)."""

    def on_train_end(self, net: Net) -> None:
        """After the run, however it ended (see outcome); when it ended normally, after the
        test set was measured (in the last history row)."""


def weight_arrays(net: Net) -> list[np.ndarray]:
    """Every array that a trained net's results depend on: each layer's weights, then its
    buffers (BatchNorm's running statistics), in layer order."""
    return [a for layer in net.layers
            for a in (*layer.params().values(), *layer.buffers().values())]


class EarlyStopping(Callback):
    """Stop when `monitor` (default "val_cce", lower is better) has not improved for
    `patience` epochs; with restore_best, the net gets back the weights (and BatchNorm
    statistics) of its best epoch when the run stops or reaches its last epoch, so
    that the test set is measured on them."""

    def __init__(self, patience: int = 3, monitor: str = "val_cce", restore_best: bool = True):
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"EarlyStopping: patience must be an integer >= 1, got {patience!r}")
        if monitor not in HISTORY_KEYS[1:]:
            raise ValueError(f"EarlyStopping: monitor must be one of "
                             f"{', '.join(HISTORY_KEYS[1:])}, got {monitor!r}")
        self.patience, self.monitor, self.restore_best = patience, monitor, restore_best
        self.best, self.best_epoch, self._weights = math.inf, 0, None

    def on_epoch_end(self, net: Net, entry: dict) -> bool:
        value = entry[self.monitor]
        if np.isnan(value):
            raise ValueError(f"EarlyStopping: {self.monitor} is NaN; give Net.fit a "
                             "validation_split or validation_data to monitor it")
        if value < self.best:
            self.best, self.best_epoch = value, entry["epoch"]
            self._weights = [a.copy() for a in weight_arrays(net)]
        stop = entry["epoch"] - self.best_epoch >= self.patience
        if (stop or entry["epoch"] >= self.run.settings.epochs) and self.restore_best:
            for array, best in zip(weight_arrays(net), self._weights, strict=True):
                array[...] = best
        return stop


class History(Callback):
    """The rows of a run, one per epoch (HISTORY_KEYS): what Net.fit returns.

    history.rows            the rows, as dicts;  for row in history: ...
    history["val_ce"]       one column, a list
    history.history         every column as a list, by name, with Keras's names too:
                            loss (train_cce), val_loss, accuracy (1 - train_ce),
                            val_accuracy
    history.epoch           the epoch numbers (from 1)
    history.class_names     what the net's outputs mean (None: numbers)
    history.plot(path)      the curves, drawn to a picture
    """

    KERAS = {"loss": ("train_cce", False), "val_loss": ("val_cce", False),
             "accuracy": ("train_ce", True), "val_accuracy": ("val_ce", True)}

    def __init__(self, rows: list[dict] | None = None):
        self.rows: list[dict] = [] if rows is None else rows
        self.class_names: tuple[str, ...] | None = None  # the net's, once it trains

    def on_train_begin(self, net: Net) -> None:
        self.class_names = net.class_names

    def on_epoch_end(self, net: Net, entry: dict) -> None:
        self.rows.append(entry)  # the loop's own row: the test figures arrive in it later

    def __getitem__(self, key: str) -> list[float]:
        columns = self.history
        if key not in columns:
            raise KeyError(f"{key!r}: a History has {', '.join(columns)}")
        return columns[key]

    @property
    def history(self) -> dict[str, list[float]]:
        columns = {key: [row[key] for row in self.rows] for key in HISTORY_KEYS}
        for name, (key, accuracy) in self.KERAS.items():
            columns[name] = [1 - v if accuracy else v for v in columns[key]]
        return columns

    @property
    def epoch(self) -> list[int]:
        return [row["epoch"] for row in self.rows]

    def __iter__(self) -> Iterator[dict]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        last = self.rows[-1] if self.rows else None
        figures = "" if last is None else ", last: " + ", ".join(
            f"{key} {last[key]:.4f}" for key in ("train_cce", "val_cce", "val_ce", "test_ce")
            if not math.isnan(last[key]))
        return f"History({len(self.rows)} epochs{figures})"

    def plot(self, path: PathLike) -> None:
        """Train, validation and test CCE and CE per epoch, drawn to a picture at path (its
        suffix sets the format); needs matplotlib (pip install "cnn-numpy[plots]")."""
        from ..visual.plots import plot_history

        plot_history(self.rows, path)


class ProgressBar(Callback):
    """A progress bar per epoch on stderr (running CCE and CE): shown when stderr is a
    terminal, or always with show=True, never with show=False."""

    def __init__(self, show: bool | None = None):
        self.show, self.bar, self.seen = show, None, 0

    def on_epoch_begin(self, net: Net, epoch: int) -> None:
        from tqdm import tqdm

        n, done = len(self.run.x_train), self.progress.batch * self.run.settings.batch_size
        self.seen = self.progress.seen
        # disable=None: tqdm shows the bar only when stderr is a terminal
        self.bar = tqdm(total=n, initial=min(done, n), unit="img", leave=False,
                        desc=f"Epoch {epoch}/{self.run.settings.epochs}", dynamic_ncols=True,
                        disable=None if self.show is None else not self.show)

    def on_batch_end(self, net: Net, batch: int, cce: float, ce: float) -> None:
        progress = self.progress
        self.bar.update(progress.seen - self.seen)
        self.seen = progress.seen
        self.bar.set_postfix(cce=f"{progress.cce_sum / progress.seen:.4f}",
                             ce=f"{progress.ce_sum / progress.seen:.4f}", refresh=False)

    def on_epoch_end(self, net: Net, entry: dict) -> None:
        self._close()

    def on_train_end(self, net: Net) -> None:
        self._close()

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def epoch_line(entry: dict, epochs: int) -> str:
    """One epoch's figures in a line: training, then validation and test where measured."""
    parts = [f"Epoch {entry['epoch']}/{epochs}  train CCE: {entry['train_cce']:.4f}  "
             f"CE: {entry['train_ce']:.4f}"]
    for key, name in (("val", "validation"), ("test", "test")):
        if not math.isnan(entry[f"{key}_cce"]):
            parts.append(f"{name} CCE: {entry[f'{key}_cce']:.4f}  CE: {entry[f'{key}_ce']:.4f}")
    return "  |  ".join(parts) + f"  ({entry['images_per_s']:,.0f} img/s)"


class EpochLog(Callback):
    """A line per epoch (epoch_line), given to `say` (default: print to stdout)."""

    def __init__(self, say: Callable[[str], None] | None = None):
        self.say = say or (lambda text: print(text, flush=True))

    def on_epoch_end(self, net: Net, entry: dict) -> None:
        self.say(epoch_line(entry, self.run.settings.epochs))


class LossWarning(Callback):
    """One warning, given to `warn`, when an epoch's training loss is ten times worse than
    guessing: the learning rate is too high."""

    def __init__(self, warn: Callable[[str], None] | None = None):
        self.warn = warn or (lambda text: print(f"warning: {text}", file=sys.stderr))
        self.warned = False

    def on_epoch_end(self, net: Net, entry: dict) -> None:
        chance = float(np.log(net.output_layer.num_neurons))
        if entry["train_cce"] > 10 * chance and not self.warned:
            self.warned = True
            self.warn(f"the training loss exploded in epoch {entry['epoch']} (train CCE "
                      f"{entry['train_cce']:.4g}; guessing scores {chance:.2f}): lower the "
                      f"learning rate (now {self.run.settings.learning_rate:g})")


class PlotFile(Callback):
    """The curves so far, drawn to `path` after every epoch and at the end."""

    def __init__(self, path: PathLike):
        self.path = path

    def on_epoch_end(self, net: Net, entry: dict) -> None:
        from ..visual.plots import plot_history

        plot_history(self.progress.history, self.path)

    def on_train_end(self, net: Net) -> None:
        if self.outcome in ("done", "stopped"):
            self.on_epoch_end(net, {})
