"""Preparing a run: the one place that decides which images train, which are held out for
validation, which test, and what the run records.  The command line, the page and
Net.fit all call prepare_run, so the same settings give the same run from any of them.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..architecture import parse_layers
from ..data import Dataset, load_dataset
from ..data.folder import DEFAULT_SIZE, DEFAULT_TEST_SHARE, load_images
from ..engines import DEFAULT_ENGINE
from ..layers import BatchNorm, ConvLayer, PoolLayer
from ..models import CUSTOM, MODEL_DEFAULTS, OWN_IMAGES, defaults
from ..net import Net
from .settings import Settings

#: The share of the training images held out for validation when none is asked for,
#: from MIN_VALIDATED training images on (below that, none is held out).
VALIDATION, MIN_VALIDATED = 0.1, 20


@dataclasses.dataclass(eq=False, repr=False)  # eq and repr on large arrays would be useless
class PreparedRun:
    """A run ready for the training loop: the net, the completed settings, and the images
    of each part (x as given to Net.train, y as labels or one-hot; empty arrays for a
    part the run does not have)."""

    net: Net
    settings: Settings
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    notes: list[str] = dataclasses.field(default_factory=list)  # decisions worth saying
    source: str = ""                # where the images came from, in words

    @property
    def batches(self) -> int:
        """Batches in one epoch (the last one may be short)."""
        return -(-len(self.x_train) // self.settings.batch_size)

    @property
    def fingerprint(self) -> str:
        """A digest of the training images and labels (data_fingerprint)."""
        return data_fingerprint(self.x_train, self.y_train)

    def __repr__(self) -> str:
        return (f"PreparedRun({self.settings.model}: {len(self.x_train):,} train / "
                f"{len(self.x_val):,} validation / {len(self.x_test):,} test images)")


def prepare_run(net: Net, settings: Settings, x_train: np.ndarray, y_train: np.ndarray,
                x_test: np.ndarray | None = None, y_test: np.ndarray | None = None, *,
                validation_data: tuple | None = None, source: str = "",
                class_names: Sequence[str] | None = None, images_as: str | None = None,
                min_steps: int | None = None) -> PreparedRun:
    """The run `settings` asks for, on these images, checked before any training.

    - settings.limit and test_limit keep the first images only;
    - validation_data (x, y) is the validation set if given; otherwise settings.validation
      of the training images (None: VALIDATION, or none below MIN_VALIDATED images) are
      held out with the seed (hold_out);
    - a last batch of one image is refused for a net with BatchNorm;
    - the settings record what ran: the validation share and the engine;
    - the net learns the class names (Net.set_classes: one per output) and how pictures
      become its inputs, so that its model file keeps them;
    - with min_steps, a run of fewer steps gets the epochs to make at least that many.

    ValueError for a run that cannot work, saying why.
    """
    settings = dataclasses.replace(settings)
    net.output_layer  # noqa: B018  (the net must end in a layer that computes a loss)
    if class_names is not None or images_as is not None:
        net.set_classes(class_names if class_names is not None else net.class_names, images_as)
    x_test = x_train[:0] if x_test is None else x_test
    y_test = y_train[:0] if y_test is None else y_test
    if settings.limit is not None:
        x_train, y_train = x_train[: settings.limit], y_train[: settings.limit]
    if settings.test_limit is not None:
        x_test, y_test = x_test[: settings.test_limit], y_test[: settings.test_limit]
    notes: list[str] = []
    if validation_data is not None:
        x_val, y_val = _pair(validation_data)
        settings.validation = 0.0
    else:
        share = settings.validation
        if share is None:
            share = default_validation(len(x_train))
            if len(x_train) < MIN_VALIDATED:
                notes.append(f"{len(x_train)} training images are too few to hold out a "
                             "validation set: the test set is reported every epoch")
        settings.validation = float(share)
        if share:
            x_train, y_train, x_val, y_val = hold_out(x_train, y_train, share, settings.seed)
        else:
            x_val, y_val = x_train[:0], y_train[:0]
    _check_last_batch(net, len(x_train), settings.batch_size)
    batches = -(-len(x_train) // settings.batch_size)
    if min_steps and settings.epochs * batches < min_steps:
        settings.epochs = -(-min_steps // batches)
        notes.append(f"{len(x_train):,} training images make {batches} steps an epoch: "
                     f"training {settings.epochs} epochs, for at least {min_steps:,} steps "
                     "(--epochs sets another number)")
    settings.engine = engine_that_runs(net, settings.engine)
    if settings.layers is None and settings.model == CUSTOM:
        settings.layers = architecture_text(net)
    return PreparedRun(net, settings, x_train, y_train, x_val, y_val, x_test, y_test, notes,
                       source)


def _pair(data) -> tuple[np.ndarray, np.ndarray]:
    if not isinstance(data, tuple) or len(data) != 2:
        raise ValueError("validation_data must be a pair (x, y)")
    return data


def _check_last_batch(net: Net, n: int, batch_size: int) -> None:
    if n == 0:
        raise ValueError("no training images are left to train on; check the limit and the "
                         "validation share")
    if n % batch_size == 1 and any(isinstance(layer, BatchNorm) for layer in net.layers):
        raise ValueError(f"{n:,} training images in batches of {batch_size} leave a last batch "
                         "of one image, on which BatchNorm has no statistics; change the batch "
                         "size or the number of images")


def engine_that_runs(net: Net, asked: str | None) -> str | None:
    """The engine the net's conv and pool layers compute with (asked, else theirs, else
    the default); None for a net without such layers."""
    layers = [layer for layer in net.layers if isinstance(layer, (ConvLayer, PoolLayer))]
    if not layers:
        return None
    return asked or layers[0].engine or DEFAULT_ENGINE


def architecture_text(net: Net) -> str | None:
    """The net's layers as text, or None for a net holding a layer of the user's own."""
    try:
        return net.describe()
    except ValueError:
        return None


def default_validation(n: int) -> float:
    """The validation share of n training images when none is asked for: VALIDATION, or
    none below MIN_VALIDATED images."""
    return VALIDATION if n >= MIN_VALIDATED else 0.0


def hold_out(x: np.ndarray, y: np.ndarray, fraction: float,
             seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_val, y_val): round(fraction * n) samples drawn at random with
    the seed, held out for validation, both parts in their original order."""
    order = np.random.default_rng([seed, 1]).permutation(len(x))
    count = int(round(len(x) * fraction))
    if not 0 < count < len(x):
        raise ValueError(f"a validation share of {fraction} of {len(x):,} images leaves no "
                         "training or no validation images")
    val, keep = np.sort(order[:count]), np.sort(order[count:])
    return x[keep], y[keep], x[val], y[val]


def data_fingerprint(x: np.ndarray, y: np.ndarray) -> str:
    """A short digest of a training set, to notice a different one on resume."""
    h = hashlib.sha256(np.ascontiguousarray(y).tobytes())
    h.update(str(x.shape).encode())
    h.update(np.ascontiguousarray(x[:: max(1, len(x) // 64)]).tobytes())
    return h.hexdigest()[:16]


def run_settings(model: str | None = None, layers: str | None = None,
                 **given: object) -> Settings:
    """The settings of a new run: of the named model, or of the network `layers` gives as
    text (CUSTOM, with the cnn's defaults), with each value given (not None) in place of
    the model's default; a run on one's own images (given `images`) shifts them as
    models.OWN_IMAGES says.  ValueError if both or neither network is named, or the text
    cannot be read."""
    if model is not None and layers is not None:
        raise ValueError(f"give a model name ({model}) or layers, not both")
    if model is None and layers is None:
        raise ValueError("name a model to train (cnn, flat or deep), or give its layers as "
                         "text")
    if layers is not None:
        parse_layers(layers)  # a ValueError names what it cannot read, before any data
    elif model not in MODEL_DEFAULTS:
        raise ValueError(f"unknown model {model!r}: choose one of "
                         f"{', '.join(MODEL_DEFAULTS)}")
    values = defaults(CUSTOM if layers is not None else model)
    if given.get("images") is not None:
        values["augment"] = max(values["augment"], OWN_IMAGES["augment"])
    values.update({k: v for k, v in given.items() if v is not None})
    return Settings(model=CUSTOM if layers is not None else model, layers=layers, **values)


def evaluation_data(saved: dict, dataset: str | None = None, data_dir: str | None = None,
                    split: float | None = None, seed: int | None = None) -> dict:
    """Which data to test a saved model on: what is given, else what it was trained on
    (`saved`: its settings, {} for a plain model file).  A data_dir without a dataset
    means that folder's data (full MNIST for a model trained on the bundled sample,
    which has no folder).  A model trained on a folder of images is tested on that
    folder's test images again.  Returns load_dataset's (or data.load_images's)
    arguments and test_limit."""
    if dataset is None:
        dataset = saved.get("dataset")
        if data_dir is not None and dataset == "mnist-sample":
            dataset = "mnist"
    same = dataset == saved.get("dataset")
    if data_dir is None and same:
        data_dir = saved.get("data_dir")
    images = saved.get("images") if same and data_dir is None else None
    return {"dataset": dataset, "data_dir": data_dir,
            "split": split if split is not None else saved.get("split"),
            "seed": seed if seed is not None else saved.get("seed", 0),
            "test_limit": saved.get("test_limit") if same else None,
            "images": images, **{key: saved.get(key) if images else None
                                 for key in ("image_size", "channels", "test_share")}}


def evaluation_warning(saved: dict, data_name: str, split: float | None) -> str | None:
    """A warning (to follow the model's name) when a model is tested on its own training
    images: one trained on the bundled sample (MNIST's test set) tested on full MNIST's
    official split."""
    if saved.get("dataset") == "mnist-sample" and data_name == "mnist" and split is None:
        return ("was trained on the bundled sample, which is MNIST's test set: these figures "
                "are on its own training images")
    return None


def load_run_data(where: Settings | dict, progress: bool = True,
                  log: Callable[[str], object] = print) -> Dataset:
    """The data a run's Settings (or evaluation_data's dict) names: the user's own images
    (data.load_images) when `images` is set, else a named dataset (data.load_dataset)."""
    get = where.get if isinstance(where, dict) else lambda key: getattr(where, key)
    if get("images") is not None:
        share = get("test_share")
        return load_images(get("images"), size=tuple(get("image_size") or DEFAULT_SIZE),
                           channels=get("channels"), seed=get("seed") or 0, log=log,
                           test_share=DEFAULT_TEST_SHARE if share is None else share)
    return load_dataset(get("dataset"), get("data_dir"), split=get("split"), seed=get("seed"),
                        progress=progress, log=log)


def record_data(settings: Settings, data: Dataset) -> None:
    """What the data decided, made explicit in the settings, so that a resumed run, an
    evaluation or a comparison finds the same data again: the dataset's name and, for
    one's own images, the folder's full path, the size, channels and test share."""
    settings.dataset = data.name
    if settings.images is not None:
        settings.images = str(Path(settings.images).resolve())
        settings.image_size = list(data.x_train.shape[1:3])
        settings.channels = 3 if data.x_train.ndim == 4 else 1
        if settings.test_share is None and not Path(settings.images, "test").is_dir():
            settings.test_share = DEFAULT_TEST_SHARE
