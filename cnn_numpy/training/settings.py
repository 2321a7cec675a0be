"""What a run is asked to do (Settings), where it stands (Progress), and the range of every
number a run accepts: one table that the command line, the page and Net.fit all check."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

#: The most epochs one run may ask for (a checkpoint's history stays small).
MAX_EPOCHS = 1000
#: The largest random shift, in pixels: a 28 x 28 digit moved further is mostly off the image.
MAX_AUGMENT = 8


@dataclass(frozen=True)
class Range:
    """The values a setting may take: low..high, each end open (excluded) or not."""

    kind: type
    low: float
    high: float
    low_open: bool = False
    high_open: bool = False

    def describe(self) -> str:
        """E.g. "a whole number in 0..8" or "a number in (0, 100)" (parentheses: excluded)."""
        if self.kind is int:
            return f"a whole number in {self.low:,}..{self.high:,}"
        left, right = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"a number in {left}{self.low:g}, {self.high:g}{right}"


#: Every number a run accepts, by its Settings name.
LIMITS = {
    "epochs": Range(int, 1, MAX_EPOCHS),
    "batch_size": Range(int, 1, 65_536),
    "learning_rate": Range(float, 0, 100, low_open=True, high_open=True),
    "momentum": Range(float, 0, 1, high_open=True),
    "weight_decay": Range(float, 0, 1, high_open=True),
    "augment": Range(int, 0, MAX_AUGMENT),
    "validation": Range(float, 0, 1, high_open=True),
    "split": Range(float, 0, 1, low_open=True, high_open=True),
    "limit": Range(int, 1, 10**7),
    "test_limit": Range(int, 1, 10**7),
    "seed": Range(int, 0, 2**32 - 1),
    "test_share": Range(float, 0, 1, high_open=True),
}


def check_setting(name: str, value: object) -> int | float:
    """`value` as the setting `name` takes it (an int or a float), or a ValueError saying
    what is wrong: not a number, not whole, or out of its range (LIMITS)."""
    limit = LIMITS[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{name} must be {limit.describe()}, got {value!r}")
    if limit.kind is int and not float(value).is_integer():
        raise ValueError(f"{name} must be a whole number, got {value!r}")
    inside = math.isfinite(value) \
        and (value > limit.low if limit.low_open else value >= limit.low) \
        and (value < limit.high if limit.high_open else value <= limit.high)
    if not inside:
        raise ValueError(f"{name} must be {limit.describe()}, got {value!r}")
    return limit.kind(value)


@dataclass
class Settings:
    """What a run was asked to do: recorded in checkpoints and history files, checked on
    resume.  None means "not given": the dataset, the engine and the validation share
    are filled in by prepare_run with what the run used."""

    model: str
    epochs: int
    batch_size: int
    learning_rate: float
    optimizer: str
    seed: int = 0
    engine: str | None = None
    dataset: str | None = None
    data_dir: str | None = None
    split: float | None = None
    limit: int | None = None
    test_limit: int | None = None
    schedule: str = "constant"
    weight_decay: float = 0.0
    augment: int = 0                # largest random shift, in pixels (0: none)
    layers: str | None = None       # the architecture as text (Net.describe())
    validation: float | None = None  # the share of the training set held out; None: default
    momentum: float | None = None   # Momentum's mu or Adam's beta1; None: the optimizer's own
    images: str | None = None       # a folder of class folders, or an .npz (data.load_images)
    image_size: list[int] | None = None  # [height, width] the images were resized to
    channels: int | None = None     # 1 or 3; None: from the images
    test_share: float | None = None  # the share of each class held out to test


@dataclass
class Progress:
    """Where a run stands; all of it goes into a checkpoint."""

    epoch: int = 0                  # epochs completed
    batch: int = 0                  # batches completed in the current epoch
    epoch_rng_state: dict | None = None  # shuffling RNG state when this epoch began
    cce_sum: float = 0.0            # sums over this epoch's batches so far
    ce_sum: float = 0.0
    seen: int = 0
    history: list[dict] = field(default_factory=list)  # one row per finished epoch


#: The columns of a history row: the training figures of the epoch, the validation
#: set's after it (NaN without one), the test set's (NaN unless measured: after every
#: epoch when nothing is held out for validation, else once, in the last row), the
#: learning rate of the epoch's last step, and the speed.
HISTORY_KEYS = ("epoch", "train_cce", "train_ce", "val_cce", "val_ce", "test_cce", "test_ce",
                "learning_rate", "images_per_s")
