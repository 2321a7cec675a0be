"""Net.fit: the command line's training loop, called from Python."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..files import PathLike
from ..models import CUSTOM
from ..net import Net
from ..schedules import SCHEDULES
from .callbacks import Callback, EpochLog, History, ProgressBar
from .checkpoints import Checkpoint
from .loop import train
from .prepare import prepare_run
from .settings import Settings


def fit(net: Net, x: np.ndarray, y: np.ndarray, *, epochs: int = 1, batch_size: int = 32,
        learning_rate: float = 0.001, schedule: str = "constant", augment: int = 0,
        validation_split: float = 0.0,
        validation_data: tuple[np.ndarray, np.ndarray] | None = None,
        seed: int | None = None, checkpoint: PathLike | None = None,
        callbacks: Sequence[Callback] = (), progress: bool | None = None,
        class_names: Sequence[str] | None = None, images_as: str | None = None) -> History:
    """Net.fit (see its docstring): prepare_run, then the loop with these callbacks, the
    progress bar and epoch lines first and the History and checkpoint last."""
    settings = _settings(net, epochs, batch_size, learning_rate, schedule, augment,
                         validation_split, validation_data, seed)
    X = net._check_X(x)
    net._check_Y(y, X.shape[0])  # the loop passes y on as it is, labels or one-hot
    if validation_data is not None:
        _check_pair(net, validation_data)
    run = prepare_run(net, settings, X, y, validation_data=validation_data,
                      class_names=class_names, images_as=images_as)
    history = History()
    shown = [] if progress is False else [ProgressBar(progress), EpochLog()]
    saved = [] if checkpoint is None else [Checkpoint(checkpoint)]
    train(run, [*shown, *callbacks, history, *saved])
    return history


def _settings(net: Net, epochs, batch_size, learning_rate, schedule, augment,
              validation_split, validation_data, seed) -> Settings:
    """fit's arguments as Settings, each checked (ValueError naming the bad one)."""
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
    return Settings(model=CUSTOM, epochs=epochs, batch_size=batch_size,
                    learning_rate=learning_rate, optimizer=net.optimizer.name,
                    seed=(net.seed or 0) if seed is None else seed, schedule=schedule,
                    weight_decay=net.weight_decay, augment=augment,
                    validation=float(validation_split))


def _check_pair(net: Net, data) -> None:
    if not isinstance(data, tuple) or len(data) != 2:
        raise ValueError("Net.fit: validation_data must be a pair (x, y)")
    x_val = net._check_X(data[0])
    net._check_Y(data[1], x_val.shape[0])
