"""Checkpoints: a model file that also holds the optimizer's state, the settings, the
progress and the data's fingerprint, so that a run can go on exactly where it stopped.

A checkpoint is a model file (saving.py) with a "meta" entry:
    {"kind": "checkpoint", "version": CHECKPOINT_VERSION, "settings": {...},
     "progress": {...}, "data_fingerprint": "...", "net_rng_state": {...}}
Version 1 (no "version" key) named the held-out figures of every history row test_cce
and test_ce, even when they came from a validation set; it is read and renamed.
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Callable
from dataclasses import asdict, replace

import numpy as np

from .. import saving
from ..architecture import describe_layers, parse_layers
from ..files import PathLike
from ..models import CUSTOM, MODEL_LAYERS, MODELS
from ..net import Net
from ..optimizers import OPTIMIZERS
from ..schedules import SCHEDULES, learning_rate
from .callbacks import Callback
from .settings import HISTORY_KEYS, MAX_AUGMENT, Progress, Settings

CHECKPOINT_VERSION = 2


class Checkpoint(Callback):
    """Save a checkpoint to `path` after every epoch and when the run ends; on Ctrl-C to
    `path`, or to `interrupt_path` when there is no path (None: not at all)."""

    def __init__(self, path: PathLike | None = None, interrupt_path: PathLike | None = None):
        self.path, self.interrupt_path = path, interrupt_path

    def on_epoch_end(self, net: Net, entry: dict) -> None:
        self._save(self.path)

    def on_train_end(self, net: Net) -> None:
        if self.outcome in ("done", "stopped"):
            self._save(self.path)  # the last row now holds the test figures
        elif self.outcome == "interrupted":
            self._save(self.path or self.interrupt_path)

    @property
    def saved_to(self) -> PathLike | None:
        """Where Ctrl-C saves."""
        return self.path or self.interrupt_path

    def _save(self, path) -> None:
        if path is not None:
            save_checkpoint(path, self.run.net, self.run.settings, self.progress,
                            self.run.fingerprint)


def save_checkpoint(path: PathLike, net: Net, settings: Settings, progress: Progress,
                    fingerprint: str) -> None:
    """Weights, optimizer state, settings and progress in one atomic .npz."""
    progress = replace(progress, history=[_nan_to_none(row) for row in progress.history])
    meta = {"kind": "checkpoint", "version": CHECKPOINT_VERSION, "settings": asdict(settings),
            "progress": asdict(progress), "data_fingerprint": fingerprint,
            "net_rng_state": net.rng.bit_generator.state}
    saving.save(net, path, meta=meta, with_optimizer=True)


def load_checkpoint(path: PathLike) -> tuple[Net, Settings, Progress, str]:
    """(net with optimizer state, settings, progress, data fingerprint) from a checkpoint;
    ModelFileError naming the file for one that is not a checkpoint or is damaged."""
    net, meta, optimizer_arrays = saving.read(path, Net)
    if meta.get("kind") != "checkpoint":
        raise saving.ModelFileError(f"{path}: a model file, not a training checkpoint "
                                    "(save one with `cnn-numpy train ... --save PATH`)")
    version = meta.get("version", 1)
    if version not in (1, CHECKPOINT_VERSION):
        raise saving.ModelFileError(f"{path}: a checkpoint of version {version!r}; this "
                                    f"cnn-numpy reads versions 1 and {CHECKPOINT_VERSION} "
                                    "(a newer cnn-numpy wrote it?)")
    try:
        settings = _from_json(Settings, meta["settings"])
        progress = _from_json(Progress, meta["progress"])
        progress.history = [_row(entry, version, settings) for entry in progress.history]
        _check_meaning(settings, progress)
        net.optimizer.load_state_dict(optimizer_arrays)
        if "net_rng_state" in meta:
            net.rng.bit_generator.state = meta["net_rng_state"]
    except (KeyError, TypeError, ValueError) as exc:
        raise saving.ModelFileError(f"{path}: damaged checkpoint ({exc})") from None
    return net, settings, progress, str(meta.get("data_fingerprint"))


def _nan_to_none(row: dict) -> dict:
    return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}


def _row(entry, version: int, settings: Settings) -> dict:
    """A history row as this version names it (NaN for a figure not measured)."""
    if not isinstance(entry, dict):
        raise ValueError(f"bad history entry {entry!r}")
    row = dict(entry)
    if version == 1:  # test_* held whatever was held out
        held_out = "val" if settings.validation else "test"
        figures = {f"{held_out}_cce": row.pop("test_cce", None),
                   f"{held_out}_ce": row.pop("test_ce", None)}
        row.update(figures)
    row = {key: row.get(key) for key in HISTORY_KEYS} | {k: v for k, v in row.items()
                                                        if k not in HISTORY_KEYS}
    if set(row) != set(HISTORY_KEYS):
        raise ValueError(f"bad history entry {entry!r}")
    for key, value in row.items():
        if value is None and key not in ("epoch", "train_cce", "train_ce"):
            row[key] = math.nan
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(f"bad history entry {entry!r}")
    return row


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
    if not 0 <= (settings.validation or 0) < 1:
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
    if progress.epoch_rng_state is not None:
        np.random.default_rng().bit_generator.state = progress.epoch_rng_state  # checks it


#: What a resumed run may change: the engine (all compute the same numbers) and the
#: learning rate, lower only (fine-tuning; the history records each epoch's rate).
#: Everything else would make it another run.
FIXED_ON_RESUME = ("batch_size", "optimizer", "seed", "dataset", "data_dir", "split", "limit",
                   "test_limit", "schedule", "weight_decay", "augment", "validation")


def resume_settings(settings: Settings, progress: Progress, asked: dict,
                    spell: Callable[[str], str] = str, name: str = "the checkpoint") -> Settings:
    """The settings of a resumed run: the checkpoint's, with what `asked` may change
    (settings names -> values given; None: not given).  ValueError naming the setting
    (as `spell` writes its name) for a change that would make it another run; `name`
    names the checkpoint in the messages."""
    settings = replace(settings)
    if asked.get("engine") is not None:
        settings.engine = asked["engine"]
    rate = asked.get("learning_rate")
    if rate is not None:
        if rate > settings.learning_rate:
            raise ValueError(f"{spell('learning_rate')} {rate} is higher than the checkpoint's "
                             f"{settings.learning_rate}; resuming may only lower it")
        settings.learning_rate = rate
    _check_same_network(settings, asked, spell)
    for setting in FIXED_ON_RESUME:
        given, saved = asked.get(setting), getattr(settings, setting)
        if given is not None and given != saved:
            raise ValueError(f"{spell(setting)} {given} differs from the checkpoint's {saved}; "
                             "leave it out when resuming")
    if asked.get("epochs") is not None:
        settings.epochs = asked["epochs"]
    if settings.epochs < progress.epoch:
        raise ValueError(f"{spell('epochs')} {settings.epochs} is below the {progress.epoch} "
                         f"epochs {name} has already trained; ask for more to continue")
    if settings.epochs == progress.epoch and progress.batch:  # stopped within an epoch
        raise ValueError(f"{name} stopped partway through epoch {progress.epoch + 1}; "
                         f"resume with {spell('epochs')} {progress.epoch + 1} or more")
    return settings


def _check_same_network(settings: Settings, asked: dict, spell) -> None:
    """The model name or layers given again must describe the checkpoint's network."""
    given = asked.get("layers") or asked.get("model")
    if given is None:
        return
    saved = settings.layers or MODEL_LAYERS.get(settings.model)
    text = MODEL_LAYERS.get(given, given)
    try:
        same = saved is not None and describe_layers(parse_layers(text)) == \
            describe_layers(parse_layers(saved))
    except ValueError:
        same = False
    if not same:
        what = spell("layers") if asked.get("layers") else spell("model")
        raise ValueError(f"{what} {given!r} is another network than the checkpoint's "
                         f"({settings.model}); leave it out when resuming (the checkpoint "
                         "holds its own)")


def replanned_note(settings: Settings, progress: Progress, planned: int,
                   batches: int) -> str | None:
    """What changes when a scheduled run resumes with another number of epochs than it was
    planned over (the rates from here on), with the rate before and after; None if
    nothing does."""
    if settings.schedule == "constant" or settings.epochs == planned:
        return None
    step = progress.epoch * batches + progress.batch
    before = learning_rate(settings.schedule, settings.learning_rate, step, planned * batches)
    now = learning_rate(settings.schedule, settings.learning_rate, step,
                        settings.epochs * batches)
    return (f"The {settings.schedule} schedule was planned over {planned} epoch"
            f"{'s' * (planned != 1)}; with --epochs {settings.epochs} it is planned over "
            f"{settings.epochs} now, so the learning rate at epoch {progress.epoch + 1} is "
            f"{now:.3g}, not {before:.3g} (the same rates a {settings.epochs}-epoch run has "
            "from the start)")
