"""Named datasets: MNIST, Fashion-MNIST, and the 10k MNIST sample bundled with the package.

Every dataset comes back as a Dataset with images float32 (n, 28, 28) in [0, 1]
and labels int64 (n,). Files are found locally (and checksum-verified) or
downloaded into a cache folder.
"""

from __future__ import annotations

import dataclasses
import numbers
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ..files import PathLike
from .download import MIRRORS_ENV, DownloadError, download_file, mirrors_from_env
from .idx import DataError, load_images_and_labels, md5_of_content

__all__ = [
    "DATASETS",
    "available_datasets",
    "Dataset",
    "default_cache_dir",
    "find_or_download",
    "load_dataset",
]

DATASETS = ("mnist", "mnist-sample", "fashion-mnist")

DATA_ENV = "CNN_NUMPY_DATA"

TRAIN_IMAGES = "train-images-idx3-ubyte"
TRAIN_LABELS = "train-labels-idx1-ubyte"
TEST_IMAGES = "t10k-images-idx3-ubyte"
TEST_LABELS = "t10k-labels-idx1-ubyte"

# MD5 of each file's decompressed content, so .gz and uncompressed copies both verify.
FILES: dict[str, dict[str, str]] = {
    "mnist": {
        TRAIN_IMAGES: "6bbc9ace898e44ae57da46a324031adb",
        TRAIN_LABELS: "a25bea736e30d166cdddb491f175f624",
        TEST_IMAGES: "2646ac647ad5339dbf082846283269ea",
        TEST_LABELS: "27ae3e4e09519cfbb04c329615203637",
    },
    "fashion-mnist": {
        TRAIN_IMAGES: "f4a8712d7a061bf5bd6d2ca38dc4d50a",
        TRAIN_LABELS: "9018921c3c673c538a1fc5bad174d6f9",
        TEST_IMAGES: "8181f5470baa50b63fa0f6fddb340f0a",
        TEST_LABELS: "15d484375f8d13e6eb1aabb0c3f46965",
    },
}

# Base URLs serving the official .gz files, tried in order.
MIRRORS: dict[str, list[str]] = {
    "mnist": [
        "https://ossci-datasets.s3.amazonaws.com/mnist/",
        "https://storage.googleapis.com/cvdf-datasets/mnist/",
        "http://yann.lecun.com/exdb/mnist/",
    ],
    "fashion-mnist": ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"],
}

# Folders where system packages install the files (Debian: dataset-fashion-mnist).
SYSTEM_DIRS: dict[str, list[Path]] = {
    "fashion-mnist": [Path("/usr/share/datasets/fashion-mnist")],
}

#: Each named dataset's class names: label i is names[i].
CLASS_NAMES = {
    "mnist": tuple(str(d) for d in range(10)),
    "mnist-sample": tuple(str(d) for d in range(10)),
    "fashion-mnist": ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                      "Sneaker", "Bag", "Ankle boot"),
}

SAMPLE_FOLDER = "mnist_sample"
SAMPLE_TRAIN_SIZE = 9_000  # of the 10,000 bundled images; the rest is the test set

# (resolved path, size, mtime_ns, md5) of files already verified in this process.
_verified: set[tuple[str, int, int, str]] = set()


@dataclass(frozen=True, eq=False, repr=False)  # eq/repr on big arrays would be useless
class Dataset:
    """A train/test split: x_* float32 (n, h, w) or (n, h, w, channels) in [0, 1], y_*
    int64 (n,) labels, and the name of each class."""

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int = 10
    source: str = ""
    class_names: tuple[str, ...] | None = None  # label i is class_names[i]

    def names(self) -> tuple[str, ...]:
        """The name of each class: class_names, or the class numbers where it has none."""
        return tuple(self.class_names or (str(k) for k in range(self.num_classes)))

    def __repr__(self) -> str:
        return (
            f"Dataset({self.name!r}, train={len(self.x_train)}, test={len(self.x_test)}, "
            f"image={self.x_train.shape[1:]}, num_classes={self.num_classes}, "
            f"source={self.source!r})"
        )


def default_cache_dir() -> Path:
    """$XDG_CACHE_HOME/cnn-numpy, or ~/.cache/cnn-numpy; each dataset gets a subfolder."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "cnn-numpy"


# ---------------------------------------------------------------- local files


def _local_file(folder: Path, base_name: str) -> Path | None:
    """`folder/base_name.gz` or `folder/base_name`, whichever exists (gzipped preferred)."""
    for candidate in (folder / (base_name + ".gz"), folder / base_name):
        if candidate.is_file():
            return candidate
    return None


class CorruptFileError(DataError):
    """A dataset file is present but its content is not the official one."""


def _verify(path: Path, expected_md5: str, what: str) -> None:
    """Check the decompressed MD5 of `path`; cached per (path, size, mtime)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, expected_md5)
    if key in _verified:
        return
    actual = md5_of_content(path)
    if actual != expected_md5:
        raise CorruptFileError(
            f"{path}: checksum mismatch (MD5 of the content is {actual}, expected "
            f"{expected_md5} for {what}); the file is corrupt or from another dataset. "
            "Delete it and run again to re-download it, or replace it with a good copy."
        )
    _verified.add(key)


def _search_dirs(name: str, data_dir: PathLike | None) -> list[Path]:
    """Folders to look in, in order; data_dir and $CNN_NUMPY_DATA may hold a `name` subfolder."""
    roots = [Path(data_dir)] if data_dir is not None else []
    if os.environ.get(DATA_ENV):
        roots.append(Path(os.environ[DATA_ENV]))
    dirs = [d for root in roots for d in (root, root / name)]
    dirs.append(default_cache_dir() / name)
    dirs.extend(SYSTEM_DIRS.get(name, []))
    return dirs


def find_or_download(
    name: str,
    data_dir: PathLike | None = None,
    *,
    download: bool = True,
    progress: bool = True,
    files: Mapping[str, str] | None = None,
) -> Path:
    """Return a folder holding every file of dataset `name`, all checksum-verified.

    Looks in data_dir, $CNN_NUMPY_DATA, the cache folder and system folders; files
    may be gzipped (name.gz) or not. Missing files are downloaded into data_dir (when
    given) or the cache folder. `files` maps base file names to the MD5 of their
    decompressed content and defaults to the dataset's four official files.
    """
    if name not in FILES:
        raise DataError(
            f"no files to find for dataset {name!r}; downloadable datasets: {', '.join(FILES)}"
        )
    files = dict(FILES[name] if files is None else files)
    if data_dir is not None and Path(data_dir).exists() and not Path(data_dir).is_dir():
        raise DataError(f"--data-dir {data_dir} is a file; give the folder holding the "
                        f"{name} files")
    searched = _search_dirs(name, data_dir)
    for folder in searched:
        found = {base: _local_file(folder, base) for base in files}
        if all(found.values()):
            for base, path in found.items():
                _verify(path, files[base], f"{name} {base}")
            return folder

    named = None if data_dir is None else Path(data_dir)
    shown = [str(folder) for folder in searched]
    if named is not None and not named.exists():  # a typo, most likely: say so, once
        shown = [f"{named} (no such folder)" if folder == named else str(folder)
                 for folder in searched if folder.parent != named]
    looked = f"Looked for its files ({', '.join(files)}, each optionally .gz) in " + ", ".join(
        shown) + "."
    if not download:
        raise DataError(
            f"dataset {name!r} was not found and downloading is switched off. {looked} "
            f"To get it, allow downloads (network access), or put the files into "
            f"--data-dir or ${DATA_ENV}."
        )
    target = Path(data_dir) if data_dir is not None else default_cache_dir() / name
    try:
        _download_missing(name, files, target, progress)
    except DownloadError as exc:
        sample = ", or use --dataset mnist-sample (bundled)" if name == "mnist" else ""
        raise DataError(f"dataset {name!r} is not available locally, and {exc.reason}. Put "
                        f"its four files into --data-dir DIR or ${DATA_ENV}, set "
                        f"${MIRRORS_ENV} to working mirrors{sample}. {looked}") from exc
    return target


def _download_missing(name: str, files: Mapping[str, str], target: Path, progress: bool) -> None:
    """Verify what `target` already has and download the rest as name.gz."""
    mirrors = mirrors_from_env(MIRRORS[name])
    for base, md5 in files.items():
        existing = _local_file(target, base)
        if existing is not None:
            _verify(existing, md5, f"{name} {base}")
        else:
            download_file(base + ".gz", target, mirrors, md5, progress=progress)


# ---------------------------------------------------------------- loading


def _load_folder(name: str, folder: Path) -> Dataset:
    """The official train/test split from a folder holding the four files."""
    x_train, y_train = load_images_and_labels(
        _local_file(folder, TRAIN_IMAGES), _local_file(folder, TRAIN_LABELS)
    )
    x_test, y_test = load_images_and_labels(
        _local_file(folder, TEST_IMAGES), _local_file(folder, TEST_LABELS)
    )
    return Dataset(name, x_train, y_train, x_test, y_test, source=str(folder),
                   class_names=CLASS_NAMES[name])


def _load_sample() -> Dataset:
    """The bundled 10k MNIST test images, split 9,000 / 1,000 by a fixed permutation."""
    sample = resources.files("cnn_numpy.data") / SAMPLE_FOLDER
    with (
        resources.as_file(sample / (TEST_IMAGES + ".gz")) as images,
        resources.as_file(sample / (TEST_LABELS + ".gz")) as labels,
    ):
        _verify(images, FILES["mnist"][TEST_IMAGES], "the bundled MNIST sample")
        _verify(labels, FILES["mnist"][TEST_LABELS], "the bundled MNIST sample")
        x, y = load_images_and_labels(images, labels)
    # Seed 0 always, whatever the caller's seed: the sample split never changes.
    order = np.random.default_rng(seed=0).permutation(len(x))
    train, test = order[:SAMPLE_TRAIN_SIZE], order[SAMPLE_TRAIN_SIZE:]
    return Dataset("mnist-sample", x[train], y[train], x[test], y[test], source="bundled sample",
                   class_names=CLASS_NAMES["mnist-sample"])


def _resplit(data: Dataset, split: float, seed: int) -> Dataset:
    """Pool train and test, then split randomly with `split` as the training fraction."""
    x = np.concatenate([data.x_train, data.x_test])
    y = np.concatenate([data.y_train, data.y_test])
    n_train = round(split * len(x))
    if not 0 < n_train < len(x):
        raise DataError(f"split={split} leaves an empty train or test set for {len(x)} examples")
    order = np.random.default_rng(seed).permutation(len(x))
    train, test = order[:n_train], order[n_train:]
    return dataclasses.replace(data, x_train=x[train], y_train=y[train], x_test=x[test],
                               y_test=y[test])


def _check_split(split: float | None) -> None:
    """Reject anything but None or a fraction strictly between 0 and 1."""
    if split is None:
        return
    if isinstance(split, bool) or not isinstance(split, numbers.Real) or not 0 < split < 1:
        raise DataError(
            f"split must be a training fraction between 0 and 1 (e.g. 0.95), got {split!r}"
        )


def load_dataset(
    name: str | None = None,
    data_dir: PathLike | None = None,
    *,
    split: float | None = None,
    seed: int = 0,
    download: bool = True,
    progress: bool = True,
    log: Callable[[str], object] = print,
) -> Dataset:
    """Load a dataset by name (see DATASETS).

    name=None means full MNIST when it is available locally or can be downloaded,
    and otherwise the bundled sample (saying so once through `log`). split=None
    keeps the dataset's own train/test split; a fraction in (0, 1) pools both and
    re-splits randomly with np.random.default_rng(seed).
    """
    _check_split(split)
    if name is None:
        data = _load_default(data_dir, download, progress, log)
    elif name == "mnist-sample":
        if data_dir is not None:
            raise DataError(f"--data-dir {data_dir} does not apply to mnist-sample, which is "
                            "bundled with cnn-numpy; leave out one of them")
        data = _load_sample()
    elif name in FILES:
        folder = find_or_download(name, data_dir, download=download, progress=progress)
        data = _load_folder(name, folder)
    else:
        raise DataError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
    return data if split is None else _resplit(data, split, seed)


def _load_default(
    data_dir: PathLike | None, download: bool, progress: bool, log: Callable[[str], object]
) -> Dataset:
    """Full MNIST if we can get it, else the bundled sample."""
    try:
        folder = find_or_download("mnist", data_dir, download=download, progress=progress)
    except CorruptFileError:
        raise  # a damaged local copy is worth knowing about, not silently skipping
    except DataError:
        if data_dir is not None:  # a folder that was named must be used, not skipped
            raise
        log(
            "Full MNIST is not available, so using the bundled 10k sample "
            "(9,000 train / 1,000 test); for the full set put the four MNIST files "
            f"into --data-dir or ${DATA_ENV}, or allow network access."
        )
        return _load_sample()
    return _load_folder("mnist", folder)


def available_datasets(data_dir: PathLike | None = None) -> list[str]:
    """The datasets that can be loaded without a download: the bundled sample first, then
    each of the others whose verified files are in data_dir or where load_dataset looks."""
    found = ["mnist-sample"]
    for name in FILES:
        try:
            find_or_download(name, data_dir, download=False, progress=False)
            found.append(name)
        except DataError:
            pass
    return found
