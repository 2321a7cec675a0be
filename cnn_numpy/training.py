"""The training loop: epochs of shuffled mini-batches, progress, checkpoints, resume.

Everything that decides the result (weights, optimizer state, the shuffling
RNG, the Net's RNG that draws dropout masks, the position in the epoch, the
running sums) is in a checkpoint, so a run resumed from any checkpoint ends
exactly where the uninterrupted run would.  The learning rate of each step
comes from the schedule and the step number, and the random shifts of
--augment from (seed, epoch, batch), so neither needs saving.
"""

from __future__ import annotations

import copy
import hashlib
import signal
import threading
import time
import types
import typing
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from . import saving
from .data.augment import random_shift
from .layers import BatchNorm
from .net import DivergenceError, Net
from .optimizers import OPTIMIZERS
from .schedules import SCHEDULES, learning_rate

MODELS = ("cnn", "flat", "deep")
#: The model name of a run whose layers came as text (Settings.layers).
CUSTOM = "custom"
MAX_AUGMENT = 8  # pixels: a 28x28 digit moved further is mostly off the image
MAX_EPOCHS = 1000  # so a checkpoint's history stays well inside what its loader reads
EVAL_CHUNK = 1000  # test images evaluated between two looks at Ctrl-C


@dataclass
class Progress:
    """Where a run stands: all of it goes into a checkpoint's meta JSON."""

    epoch: int = 0                  # epochs completed
    batch: int = 0                  # batches completed in the current epoch
    epoch_rng_state: dict | None = None  # shuffling RNG state when this epoch began
    cce_sum: float = 0.0            # sums over this epoch's batches so far
    ce_sum: float = 0.0
    seen: int = 0
    history: list[dict] = field(default_factory=list)  # one dict per finished epoch


@dataclass
class Settings:
    """What a run was asked to do (saved in checkpoints, checked on resume)."""

    model: str
    epochs: int
    batch_size: int
    learning_rate: float
    optimizer: str
    seed: int
    engine: str | None = None
    dataset: str | None = None
    data_dir: str | None = None
    split: float | None = None
    limit: int | None = None
    test_limit: int | None = None
    schedule: str = "constant"
    weight_decay: float = 0.0
    augment: int = 0                # largest random shift, in pixels (0: none)
    layers: str | None = None       # model "custom": the architecture as text (--layers)
    validation: float = 0.0         # the share of the training set held out (see hold_out)


def save_checkpoint(path, net: Net, settings: Settings, progress: Progress,
                    fingerprint: str) -> None:
    """Weights, optimizer state, settings and progress in one atomic .npz."""
    meta = {"kind": "checkpoint", "settings": asdict(settings), "progress": asdict(progress),
            "data_fingerprint": fingerprint, "net_rng_state": net.rng.bit_generator.state}
    saving.save(net, path, meta=meta, with_optimizer=True)


def load_checkpoint(path) -> tuple[Net, Settings, Progress, str]:
    """(net with optimizer state, settings, progress, data fingerprint) from a checkpoint."""
    net, meta, optimizer_arrays = saving.read(path)
    if meta.get("kind") != "checkpoint":
        raise saving.ModelFileError(f"{path}: a model file, not a training checkpoint "
                                    "(save one with `cnn-numpy train ... --save PATH`)")
    try:
        settings = _from_json(Settings, meta["settings"])
        progress = _from_json(Progress, meta["progress"])
        _check_meaning(settings, progress)
        net.optimizer.load_state_dict(optimizer_arrays)
        if "net_rng_state" in meta:
            net.rng.bit_generator.state = meta["net_rng_state"]
    except (KeyError, TypeError, ValueError) as exc:
        raise saving.ModelFileError(f"{path}: damaged checkpoint ({exc})") from None
    return net, settings, progress, str(meta.get("data_fingerprint"))


def _allowed(hint) -> tuple[type, ...]:
    """The Python types a JSON value may have for a field annotated `hint`."""
    parts = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    allowed = {int: (int,), float: (int, float), type(None): (type(None),)}
    return tuple(t for part in parts for t in allowed.get(part, (typing.get_origin(part)
                                                                 or part,)))


def _from_json(cls, values):
    """cls(**values), after checking that every value has its field's type."""
    if not isinstance(values, dict):
        raise ValueError(f"{cls.__name__} is not a JSON object")
    hints = typing.get_type_hints(cls)
    for name, value in values.items():
        if name not in hints or isinstance(value, bool) or not isinstance(value,
                                                                          _allowed(hints[name])):
            raise ValueError(f"{cls.__name__}.{name} = {value!r}")
    return cls(**values)


def _check_meaning(settings: Settings, progress: Progress) -> None:
    """Values a checkpoint could only hold if it was tampered with."""
    if (settings.model not in MODELS and not (settings.model == CUSTOM and settings.layers)) \
            or settings.optimizer not in OPTIMIZERS or settings.schedule not in SCHEDULES:
        raise ValueError(f"unknown model {settings.model!r}, optimizer {settings.optimizer!r} "
                         f"or schedule {settings.schedule!r}")
    if not 0 <= settings.validation < 1:
        raise ValueError(f"validation = {settings.validation}")
    if not 0 <= settings.augment <= MAX_AUGMENT \
            or not (np.isfinite(settings.weight_decay) and settings.weight_decay >= 0):
        raise ValueError(f"augment = {settings.augment}, weight_decay = {settings.weight_decay}")
    for name in ("epochs", "batch_size", "limit", "test_limit"):
        value = getattr(settings, name)
        if value is not None and value < 1:
            raise ValueError(f"{name} = {value}")
    if not (np.isfinite(settings.learning_rate) and settings.learning_rate >= 0) \
            or min(progress.epoch, progress.batch, progress.seen) < 0:
        raise ValueError("negative or infinite numbers in the settings or progress")
    keys = {"epoch", "train_cce", "train_ce", "test_cce", "test_ce", "images_per_s"}
    for entry in progress.history:
        if not isinstance(entry, dict) or not keys <= set(entry) <= keys | {"learning_rate"} \
                or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in entry.values()):
            raise ValueError(f"bad history entry {entry!r}")
    if progress.epoch_rng_state is not None:
        np.random.default_rng().bit_generator.state = progress.epoch_rng_state  # checks it


def data_fingerprint(x: np.ndarray, y: np.ndarray) -> str:
    """A short digest of a training set, to notice a different split on resume."""
    h = hashlib.sha256(np.ascontiguousarray(y).tobytes())
    h.update(str(x.shape).encode())
    h.update(np.ascontiguousarray(x[:: max(1, len(x) // 64)]).tobytes())
    return h.hexdigest()[:16]


class _SigintFlag:
    """While active, Ctrl-C only sets a flag; the loop stops after the current batch.

    Signal handlers belong to the main thread; elsewhere Ctrl-C is left alone.
    """

    def __init__(self) -> None:
        self.raised = False
        self._active = threading.current_thread() is threading.main_thread()

    def __enter__(self):
        if self._active:
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.raised = True

    def __exit__(self, *exc) -> None:
        if self._active:
            signal.signal(signal.SIGINT, self._old)


def _progress_bar(total: int, initial: int, desc: str, enabled: bool | None):
    from tqdm import tqdm

    # disable=None: tqdm shows the bar only when stderr is a terminal
    return tqdm(total=total, initial=initial, desc=desc, unit="img", leave=False,
                disable=None if enabled is None else not enabled, dynamic_ncols=True)


def train(net: Net, data, settings: Settings, *, progress: Progress | None = None,
          checkpoint=None, interrupt_checkpoint=None, show_progress: bool | None = None,
          on_epoch: Callable[[Progress, dict], bool | None] | None = None,
          on_batch: Callable[[Progress, float, float], bool | None] | None = None) -> Progress:
    """Train `net` on data.x_train/y_train until settings.epochs epochs are done.

    After each batch on_batch(progress, cce, ce) is called; after each epoch
    the test set (data.x_test, y_test; Net.fit puts its validation set there;
    none: NaN figures) is evaluated, a history entry appended,
    on_epoch(progress, entry) called, and the checkpoint (if a path is given)
    written.  Either hook returning True stops the run there (on_batch's:
    before the epoch ends, with no entry for it).  Ctrl-C stops after the
    current batch, writes the checkpoint (to interrupt_checkpoint when no
    checkpoint path was given) and raises
    KeyboardInterrupt.  A NaN/inf loss raises DivergenceError without
    touching the checkpoint.  Returns the final Progress.
    """
    progress = copy.deepcopy(progress) if progress is not None else Progress()
    X, Y = data.x_train, data.y_train
    n, bs = len(X), settings.batch_size
    batches = -(-n // bs)
    if n % bs == 1 and any(isinstance(layer, BatchNorm) for layer in net.layers):
        raise ValueError(f"{n:,} training images in batches of {bs} leave a last batch of one "
                         "image, on which BatchNorm has no statistics; change the batch size "
                         "or the number of images")
    fingerprint = data_fingerprint(X, Y)
    rng = np.random.default_rng(settings.seed)
    if progress.epoch_rng_state is not None:
        rng.bit_generator.state = progress.epoch_rng_state

    def save(path=checkpoint) -> None:
        if path is not None:
            save_checkpoint(path, net, settings, progress, fingerprint)

    with _SigintFlag() as sigint:
        while progress.epoch < settings.epochs:
            progress.epoch_rng_state = rng.bit_generator.state
            order = rng.permutation(n)
            started, processed = time.perf_counter(), 0
            bar = _progress_bar(n, min(progress.batch * bs, n),
                                f"Epoch {progress.epoch + 1}/{settings.epochs}", show_progress)
            with bar:
                for b in range(progress.batch, batches):
                    idx = order[b * bs : (b + 1) * bs]
                    lr = learning_rate(settings.schedule, settings.learning_rate,
                                       progress.epoch * batches + b, settings.epochs * batches)
                    where = f"in epoch {progress.epoch + 1}, batch {b + 1}; lower the " \
                            f"learning rate (now {lr:.3g})"
                    x = random_shift(X[idx], settings.augment,
                                     np.random.default_rng([settings.seed, progress.epoch, b]))
                    try:
                        _, cce, ce = net.train(x, Y[idx], lr)
                    except DivergenceError as exc:  # say where, too
                        raise DivergenceError(f"{str(exc).split('; ')[0]} {where}") from None
                    progress.batch = b + 1
                    progress.cce_sum += cce * len(idx)
                    progress.ce_sum += ce * len(idx)
                    progress.seen += len(idx)
                    processed += len(idx)
                    if on_batch is not None and on_batch(progress, cce, ce):
                        return progress
                    bar.update(len(idx))
                    bar.set_postfix(cce=f"{progress.cce_sum / progress.seen:.4f}",
                                    ce=f"{progress.ce_sum / progress.seen:.4f}",
                                    refresh=False)
                    if sigint.raised:
                        save(checkpoint or interrupt_checkpoint)
                        raise KeyboardInterrupt
            seconds = time.perf_counter() - started
            # Evaluated in chunks, so that Ctrl-C is honoured here too: the epoch's training is
            # done (progress.batch == batches), so a resumed run goes straight to this test.
            test_cce = test_ce = 0.0 if len(data.x_test) else float("nan")
            for start in range(0, len(data.x_test), EVAL_CHUNK):
                x = data.x_test[start : start + EVAL_CHUNK]
                _, cce, ce = net.evaluate(x, data.y_test[start : start + EVAL_CHUNK])
                test_cce += cce * len(x) / len(data.x_test)
                test_ce += ce * len(x) / len(data.x_test)
                if sigint.raised:
                    save(checkpoint or interrupt_checkpoint)
                    raise KeyboardInterrupt
            entry = {"epoch": progress.epoch + 1,
                     "train_cce": progress.cce_sum / max(progress.seen, 1),
                     "train_ce": progress.ce_sum / max(progress.seen, 1),
                     "test_cce": test_cce, "test_ce": test_ce,
                     "images_per_s": processed / seconds if processed else 0.0,
                     "learning_rate": learning_rate(settings.schedule, settings.learning_rate,
                                                    (progress.epoch + 1) * batches - 1,
                                                    settings.epochs * batches)}
            progress.history.append(entry)
            progress.epoch += 1
            progress.batch, progress.cce_sum, progress.ce_sum, progress.seen = 0, 0.0, 0.0, 0
            progress.epoch_rng_state = rng.bit_generator.state
            stop = on_epoch is not None and on_epoch(progress, entry)
            save()
            if stop:
                break
            if sigint.raised and progress.epoch < settings.epochs:
                if checkpoint is None:
                    save(interrupt_checkpoint)
                raise KeyboardInterrupt
    return progress


# -- Net.fit: the same loop from Python ----------------------------------------------

class Callback:
    """Hooks into Net.fit.  Return True from on_batch_end or on_epoch_end to stop the run."""

    def on_batch_end(self, net: Net, batch: int, cce: float, ce: float) -> bool | None:
        """After every training step: the batch's number in its epoch (0-based), its CCE and
        CE (measured before the step's update)."""

    def on_epoch_end(self, net: Net, entry: dict) -> bool | None:
        """After every epoch: entry is the History's row for it."""

    def on_train_end(self, net: Net) -> None:
        """After the last epoch, or when a callback stopped the run."""


def weight_arrays(net: Net) -> list[np.ndarray]:
    """Every array that a trained net's results depend on: each layer's weights, then its
    buffers (BatchNorm's running statistics), in layer order."""
    return [a for layer in net.layers
            for a in (*layer.params().values(), *layer.buffers().values())]


class EarlyStopping(Callback):
    """Stop when `monitor` (default "val_cce", lower is better) has not improved for
    `patience` epochs, and give the net back the weights (and BatchNorm statistics) of
    its best epoch."""

    def __init__(self, patience: int = 3, monitor: str = "val_cce", restore_best: bool = True):
        if isinstance(patience, bool) or not isinstance(patience, int) or patience < 1:
            raise ValueError(f"EarlyStopping: patience must be an integer >= 1, got {patience!r}")
        if monitor not in HISTORY_KEYS:
            raise ValueError(f"EarlyStopping: monitor must be one of {', '.join(HISTORY_KEYS)}, "
                             f"got {monitor!r}")
        self.patience, self.monitor, self.restore_best = patience, monitor, restore_best
        self.best, self.best_epoch, self._weights = float("inf"), 0, None

    def on_epoch_end(self, net, entry):
        value = entry[self.monitor]
        if np.isnan(value):
            raise ValueError(f"EarlyStopping: {self.monitor} is NaN; give Net.fit a "
                             "validation_split or validation_data to monitor it")
        if value < self.best:
            self.best, self.best_epoch = value, entry["epoch"]
            self._weights = [a.copy() for a in weight_arrays(net)]
        return entry["epoch"] - self.best_epoch >= self.patience

    def on_train_end(self, net):
        if self.restore_best and self._weights is not None:
            for array, best in zip(weight_arrays(net), self._weights, strict=True):
                array[...] = best


#: The columns of a History, one row per epoch.
HISTORY_KEYS = ("epoch", "train_cce", "train_ce", "val_cce", "val_ce", "learning_rate",
                "images_per_s")


class History:
    """What Net.fit returns: one row per epoch (HISTORY_KEYS), as `rows`, and each column
    as a list: history["val_ce"].  The val figures are NaN without a validation set."""

    def __init__(self, rows: list[dict]):
        self.rows = rows

    def __getitem__(self, key: str) -> list[float]:
        if key not in HISTORY_KEYS:
            raise KeyError(f"{key!r}: a History has {', '.join(HISTORY_KEYS)}")
        return [row[key] for row in self.rows]

    def __len__(self) -> int:
        return len(self.rows)

    def __repr__(self) -> str:
        return f"History({len(self.rows)} epochs)"

    def plot(self, path) -> None:
        """Train and validation CCE and CE per epoch, drawn to a PNG at path; needs
        matplotlib (pip install "cnn-numpy[plots]")."""
        from .visual.plots import plot_history

        plot_history([{**row, "test_cce": row["val_cce"], "test_ce": row["val_ce"]}
                      for row in self.rows], path, held_out="validation")


def fit(net: Net, x: np.ndarray, y: np.ndarray, *, epochs: int = 1, batch_size: int = 32,
        learning_rate: float = 0.001, schedule: str = "constant", augment: int = 0,
        validation_split: float = 0.0, validation_data=None, seed: int | None = None,
        checkpoint=None, callbacks=(), progress: bool = True) -> History:
    """Net.fit: train on (x, y) for `epochs` with the command line's loop (training.train),
    so the same settings give the same weights from either."""
    from types import SimpleNamespace

    if validation_split and validation_data is not None:
        raise ValueError("Net.fit: give validation_split or validation_data, not both")
    if isinstance(validation_split, bool) or not isinstance(validation_split, (int, float)) \
            or not 0 <= validation_split < 1:
        raise ValueError(f"Net.fit: validation_split must be a fraction in [0, 1), got "
                         f"{validation_split!r}")
    for what, value, low in (("epochs", epochs, 1), ("batch_size", batch_size, 1),
                             ("augment", augment, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"Net.fit: {what} must be an integer >= {low}, got {value!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"Net.fit: schedule must be one of {', '.join(SCHEDULES)}, got "
                         f"{schedule!r}")
    seed = (net.seed or 0) if seed is None else seed
    X = net._check_X(x)
    net._check_Y(y, X.shape[0])  # the loop passes y on as it is, labels or one-hot
    Y = y
    if validation_split:
        X, Y, x_val, y_val = hold_out(X, Y, validation_split, seed)
    elif validation_data is not None:
        if not isinstance(validation_data, tuple) or len(validation_data) != 2:
            raise ValueError("Net.fit: validation_data must be a pair (x, y)")
        x_val = net._check_X(validation_data[0])
        y_val = validation_data[1]
        net._check_Y(y_val, x_val.shape[0])
    else:
        x_val, y_val = X[:0], Y[:0]
    settings = Settings(model="custom", epochs=epochs, batch_size=batch_size,
                        learning_rate=learning_rate, optimizer=net.optimizer.name, seed=seed,
                        schedule=schedule, weight_decay=net.weight_decay, augment=augment,
                        layers=_text_or_none(net), validation=float(validation_split))
    data = SimpleNamespace(x_train=X, y_train=Y, x_test=x_val, y_test=y_val)
    rows = []

    def on_batch(state, cce, ce):
        return any([bool(c.on_batch_end(net, state.batch - 1, cce, ce)) for c in callbacks])

    def on_epoch(state, entry):
        row = {"epoch": entry["epoch"], "train_cce": entry["train_cce"],
               "train_ce": entry["train_ce"], "val_cce": entry["test_cce"],
               "val_ce": entry["test_ce"], "learning_rate": entry["learning_rate"],
               "images_per_s": entry["images_per_s"]}
        rows.append(row)
        if progress:
            print(f"Epoch {row['epoch']}/{epochs}  train CCE: {row['train_cce']:.4f}  CE: "
                  f"{row['train_ce']:.4f}  |  validation CCE: {row['val_cce']:.4f}  CE: "
                  f"{row['val_ce']:.4f}  ({row['images_per_s']:,.0f} img/s)")
        return any([bool(c.on_epoch_end(net, row)) for c in callbacks])

    try:
        train(net, data, settings, checkpoint=checkpoint, show_progress=progress,
              on_epoch=on_epoch, on_batch=on_batch)
    finally:
        for callback in callbacks:
            callback.on_train_end(net)
    return History(rows)


def hold_out(x: np.ndarray, y: np.ndarray, fraction: float, seed: int):
    """(x_train, y_train, x_val, y_val): round(fraction * n) samples drawn at random with
    the seed, held out for validation, both parts in their original order.  Net.fit's
    validation_split and the command line's --validation hold out the same ones."""
    order = np.random.default_rng([seed, 1]).permutation(len(x))
    count = int(round(len(x) * fraction))
    if not 0 < count < len(x):
        raise ValueError(f"a validation share of {fraction} of {len(x):,} images leaves no "
                         "training or no validation images")
    val, keep = np.sort(order[:count]), np.sort(order[count:])
    return x[keep], y[keep], x[val], y[val]


def _text_or_none(net: Net) -> str | None:
    """The net's architecture text, or None for a net holding a user's layer."""
    try:
        return net.describe()
    except ValueError:
        return None
