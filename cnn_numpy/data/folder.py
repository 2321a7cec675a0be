"""Your own images as a dataset: a folder with one subfolder per class, or an .npz file.

    photos/                   the layout of torchvision's ImageFolder and Keras's
        cat/ 001.jpg ...      image_dataset_from_directory: each subfolder is a class,
        dog/ a.png ...        named by the folder; PNG, JPEG, BMP or GIF files of any size
    photos/train/<class>/...  with train/ and test/ folders, those are the split;
    photos/test/<class>/...   otherwise a seeded share of each class is held out for testing

    data = load_images("photos", size=(28, 28), channels=None)   # a Dataset
    data.class_names                                             # ("cat", "dog")

Every image is resized to `size` and converted to grey (channels=1) or colour (3);
channels=None keeps colour only when some image has it.  Hidden files and files that
are not images (by their suffix) are skipped and counted; an image that cannot be
decoded (not an image after all, truncated, or so large that decoding it could exhaust
memory) is skipped and named; the report says each once.  A folder without images, a
single class or a class without readable images is a DataError (a ValueError) that
says what to fix.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..extras import require
from ..files import PathLike
from .datasets import Dataset
from .idx import DataError
from .images import image_file, read_digit_image

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif")
#: The largest image decoded, in pixels (Pillow's decompression-bomb guard is 89 million).
MAX_PIXELS = 40_000_000
#: Classes with fewer images than this get a warning: too few to learn from or test on.
FEW_IMAGES = 10
DEFAULT_SIZE = (28, 28)
DEFAULT_TEST_SHARE = 0.2
MAX_CLASSES = 1000


@dataclasses.dataclass
class _Listing:
    """The files found: (path, class index, part) and what was skipped, with counts."""

    classes: list[str]
    files: list[tuple[Path, int, str]] = dataclasses.field(default_factory=list)
    hidden: int = 0
    not_images: list[str] = dataclasses.field(default_factory=list)
    linked_folders: list[str] = dataclasses.field(default_factory=list)


def load_images(path: PathLike, size: tuple[int, int] = DEFAULT_SIZE, channels: int | None = None,
                test_share: float = DEFAULT_TEST_SHARE, seed: int = 0,
                log: Callable[[str], object] = print) -> Dataset:
    """A folder of class folders (or an .npz file: load_npz) as a Dataset of float32
    images (n, h, w) for grey or (n, h, w, 3) for colour, in [0, 1], with its class names.

    size      (height, width) every image is resized to;
    channels  1 (grey), 3 (colour) or None (colour only when some image has colour);
    test_share  the share of each class held out for testing, drawn with the seed, when
              the folder has no train/ and test/ folders of its own;
    log       receives the report: what was skipped, converted, or is worth a warning.
    """
    root = Path(path)
    if root.is_file() and root.suffix.lower() == ".npz":
        return load_npz(root, test_share=test_share, seed=seed)
    height, width = _check_size(size)
    if channels not in (None, 1, 3):
        raise DataError(f"channels must be 1 (grey), 3 (colour) or None (from the images), "
                        f"got {channels!r}")
    listing = _list(root, test_share, seed)
    x, y, parts, report = _read_all(listing, (height, width), channels)
    for line in _report_lines(listing, report, (height, width)):
        log(line)
    train, test = parts == "train", parts == "test"
    _check_counts(listing.classes, y[train], y[test], log)
    return Dataset(root.name or str(root), x[: train.sum()], y[: train.sum()],
                   x[len(x) - test.sum():], y[len(y) - test.sum():],
                   num_classes=len(listing.classes), source=str(root),
                   class_names=tuple(listing.classes))


def _check_size(size) -> tuple[int, int]:
    try:
        height, width = (int(v) for v in size)
    except (TypeError, ValueError):
        raise DataError(f"size must be (height, width), got {size!r}") from None
    if not (4 <= height <= 1024 and 4 <= width <= 1024):
        raise DataError(f"size must be between 4 and 1024 pixels each way, got {size!r}")
    return height, width


# -- finding the files -------------------------------------------------------------------

def _visible_folders(folder: Path, linked: bool = False) -> list[Path]:
    """folder's subfolders that are not hidden, by name: those that are links with
    linked=True, the others without (a link is not followed: it may loop)."""
    return sorted((p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")
                   and p.is_symlink() == linked), key=lambda p: p.name)


def _list(root: Path, test_share: float, seed: int) -> _Listing:
    """Every image file under root's class folders, each with its class and its part."""
    if not root.exists():
        raise DataError(f"{root}: no such folder")
    if not root.is_dir():
        raise DataError(f"{root}: not a folder (give a folder with one subfolder per class, "
                        "or an .npz file)")
    names = {p.name for p in _visible_folders(root)}
    split = {"train", "test"} <= names
    top = root / "train" if split else root
    classes = [p.name for p in _visible_folders(top)]
    if not classes:
        links = len(_visible_folders(top, linked=True))
        raise DataError(f"{top}: no class folders; put each class's images in a subfolder "
                        "named after the class (e.g. cats/, dogs/)"
                        + (f"; {links} folder(s) there are links, which are not followed"
                           if links else ""))
    if len(classes) > MAX_CLASSES:
        raise DataError(f"{top}: {len(classes)} class folders; at most {MAX_CLASSES}")
    listing = _Listing(classes)
    for part, folder in (("train", top), ("test", root / "test")) if split else (("", top),):
        listing.linked_folders += [str(p) for p in _visible_folders(folder, linked=True)]
        for index, name in enumerate(classes):
            if part == "test" and (not (folder / name).is_dir()
                                   or (folder / name).is_symlink()):  # counted above
                continue
            _add_files(listing, folder / name, index, part)
        extra = sorted({p.name for p in _visible_folders(folder)} - set(classes))
        if extra:
            raise DataError(f"{folder}: class folder {extra[0]!r} is not in {top}; the test "
                            "classes must be training classes too")
    if not split:
        _hold_out(listing, test_share, seed)
    return listing


def _add_files(listing: _Listing, folder: Path, index: int, part: str) -> None:
    """The image files under folder, in sorted order; folders that are links are not
    followed (a link may loop), hidden files and other files are counted."""
    for here, dirs, files in os.walk(folder, followlinks=False):
        listing.linked_folders += [str(Path(here) / d) for d in dirs
                                   if (Path(here) / d).is_symlink()]
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(here) / name
            if name.startswith("."):
                listing.hidden += 1
            elif path.suffix.lower() not in IMAGE_SUFFIXES:
                listing.not_images.append(str(path))
            else:
                listing.files.append((path, index, part))


def _hold_out(listing: _Listing, share: float, seed: int) -> None:
    """Each class's files split with the seed (held_out_mask)."""
    test = held_out_mask(np.array([c for _, c, _ in listing.files], np.int64), share, seed)
    listing.files = [(path, c, "test" if tested else "train")
                     for (path, c, _), tested in zip(listing.files, test, strict=True)]


def held_out_mask(labels: np.ndarray, share: float, seed: int) -> np.ndarray:
    """True for the samples held out for testing: round(share * count) of each class,
    drawn with the seed (a DataError for a share outside [0, 1))."""
    if isinstance(share, bool) or not isinstance(share, (int, float)) or not 0 <= share < 1:
        raise DataError(f"test_share must be a fraction in [0, 1), got {share!r}")
    rng = np.random.default_rng([seed, 2])
    test = np.zeros(len(labels), bool)
    for k in np.unique(labels):
        mine = np.flatnonzero(labels == k)
        test[mine[rng.permutation(len(mine))[: round(share * len(mine))]]] = True
    return test


# -- reading them --------------------------------------------------------------------

@dataclasses.dataclass
class _Report:
    unreadable: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    resized: int = 0
    modes: set = dataclasses.field(default_factory=set)
    channels: int = 1


def _read_all(listing: _Listing, size: tuple[int, int], channels: int | None):
    """(x, y, parts, report): training images from the front of x, test images from the
    back, so each part is a view and memory is the images' own size."""
    if not listing.files:
        raise DataError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in the class folders"
                        + (f"; found {len(listing.not_images)} other files"
                           if listing.not_images else ""))
    n, report = len(listing.files), _Report(channels=channels or 1)
    x = np.empty((n, *size) if report.channels == 1 else (n, *size, 3), np.float32)
    y, parts = np.zeros(n, np.int64), np.full(n, "", dtype="<U5")
    front, back = 0, n
    for path, index, part in listing.files:
        try:
            rgb = _read(path, size, report)
        except _UnreadableError as exc:
            report.unreadable.append((str(path), str(exc)))
            continue
        if channels is None and report.channels == 1 and not _grey(rgb):
            x = _to_colour(x, front, back)
            report.channels = 3
        slot = front if part in ("train", "") else back - 1
        x[slot] = rgb.mean(axis=2) if report.channels == 1 else rgb
        y[slot], parts[slot] = index, "train" if part in ("train", "") else "test"
        front, back = (front + 1, back) if slot == front else (front, back - 1)
    if front == 0 and back == n:
        raise DataError(f"none of the {n} image files could be read: "
                        f"{report.unreadable[0][0]} ({report.unreadable[0][1]})")
    return x, y, parts, report


def _to_colour(x: np.ndarray, front: int, back: int) -> np.ndarray:
    """The grey images so far, copied into a new colour array (3 equal channels)."""
    colour = np.empty((*x.shape, 3), np.float32)
    colour[:front] = x[:front, ..., None]
    colour[back:] = x[back:, ..., None]
    return colour


def _grey(rgb: np.ndarray) -> bool:
    return bool((rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 1] == rgb[..., 2]).all())


class _UnreadableError(Exception):
    """An image file that cannot be decoded: skipped, and named in the report."""


def _read(path: Path, size: tuple[int, int], report: _Report) -> np.ndarray:
    """One image as (h, w, 3) float32 in [0, 1] at `size`; transparency over white."""
    require("PIL", "plots", needed_for="reading images", package="Pillow")
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            # Pillow only warns about a suspiciously large image: refuse it instead
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                w, h = image.size
                if w * h > MAX_PIXELS:
                    raise _UnreadableError(f"{w} x {h} pixels is more than the {MAX_PIXELS:,} read "
                                      "safely (a possible decompression bomb)")
                mode = image.mode
                image = ImageOps.exif_transpose(image)
                if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                    rgba = image.convert("RGBA")
                    image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
                image = image.convert("RGB").resize(size[::-1], Image.Resampling.BILINEAR)
                rgb = np.asarray(image, dtype=np.float32) / 255
    except _UnreadableError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise _UnreadableError(f"refused as a possible decompression bomb ({exc})") from None
    except UnidentifiedImageError:
        raise _UnreadableError("not an image Pillow can read") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise _UnreadableError(f"damaged or truncated ({exc})") from None
    report.modes.add(mode)
    report.resized += (h, w) != size
    return rgb


def _report_lines(listing: _Listing, report: _Report, size: tuple[int, int]) -> list[str]:
    """What loading did that a user should hear, each said once."""
    lines = []
    skipped = []
    if listing.hidden:
        skipped.append(f"{listing.hidden} hidden file{'s' * (listing.hidden != 1)}")
    if listing.not_images:
        skipped.append(f"{len(listing.not_images)} file{'s' * (len(listing.not_images) != 1)} "
                       f"that {'are' if len(listing.not_images) != 1 else 'is'} not an image "
                       f"(e.g. {Path(listing.not_images[0]).name})")
    if listing.linked_folders:
        skipped.append(f"{len(listing.linked_folders)} linked folder(s), not followed")
    if skipped:
        lines.append("Skipped " + ", ".join(skipped) + ".")
    if report.unreadable:
        named = "; ".join(f"{Path(p).name}: {why}" for p, why in report.unreadable[:3])
        more = len(report.unreadable) - 3
        lines.append(f"Could not read {len(report.unreadable)} image file(s), left out: {named}"
                     + (f"; and {more} more" if more > 0 else ""))
    kept = "L" if report.channels == 1 else "RGB"
    notes = [f"{report.resized:,} resized from other sizes"] * bool(report.resized) + \
        [f"converted from {', '.join(sorted(report.modes - {kept}))}"] * bool(report.modes - {kept})
    lines.append(f"Images: {size[0]} x {size[1]}, {'grey' if report.channels == 1 else 'colour'}"
                 + (f" ({'; '.join(notes)})" if notes else ""))
    return lines


def _check_counts(classes: list[str], y_train: np.ndarray, y_test: np.ndarray, log) -> None:
    """A DataError for a class without training images or a single class; a warning for
    classes with few images."""
    counts = np.bincount(y_train, minlength=len(classes))
    empty = [name for name, count in zip(classes, counts, strict=True) if count == 0]
    if empty:
        raise DataError(f"class {empty[0]!r} has no readable training images; add some, or "
                        "remove its folder")
    if len(classes) < 2:
        raise DataError(f"only one class ({classes[0]!r}): a classifier needs two or more "
                        "class folders")
    total = counts + np.bincount(y_test, minlength=len(classes))
    few = [f"{name} ({count} image{'' if count == 1 else 's'})"
           for name, count in zip(classes, total, strict=True) if count < FEW_IMAGES]
    if few:
        log(f"Warning: few images in class{'es' * (len(few) > 1)} {', '.join(few)} (at least "
            f"{FEW_IMAGES} each is better): too few to learn from and to test on")
    if not len(y_test):
        log("Warning: no test images (test_share 0 and no test/ folder): the test figures "
            "will be missing")


# -- .npz files ------------------------------------------------------------------------

def load_npz(path: PathLike, test_share: float = DEFAULT_TEST_SHARE, seed: int = 0) -> Dataset:
    """An .npz of `x` (n, h, w) or (n, h, w, c) images, uint8 0..255 or floats in [0, 1],
    and `y` integer labels (n,), with optional `class_names` (k strings) and `x_test`,
    `y_test`; without a test set, a seeded share of each class is held out.  Read
    without pickle."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: not a readable .npz file ({exc})") from None
    missing = {"x", "y"} - set(arrays)
    if missing:
        raise DataError(f"{path}: no {sorted(missing)[0]!r} array; an .npz dataset holds x "
                        "(images) and y (integer labels)")
    x, y = _npz_images(path, arrays["x"], "x"), _npz_labels(path, arrays["y"], "y")
    names = _npz_names(path, arrays.get("class_names"), y)
    if len(x) != len(y):
        raise DataError(f"{path}: x has {len(x)} images but y has {len(y)} labels")
    if "x_test" in arrays:
        x_test = _npz_images(path, arrays["x_test"], "x_test")
        y_test = _npz_labels(path, arrays.get("y_test", np.zeros(0, int)), "y_test")
        return Dataset(path.stem, x, y, x_test, y_test, len(names), str(path), tuple(names))
    test = held_out_mask(y, test_share, seed)
    return Dataset(path.stem, x[~test], y[~test], x[test], y[test], len(names), str(path),
                   tuple(names))


def _npz_images(path: Path, x: np.ndarray, key: str) -> np.ndarray:
    if x.ndim not in (3, 4) or (x.ndim == 4 and x.shape[3] not in (1, 3)) or not len(x):
        raise DataError(f"{path}: {key} must be images (n, height, width) or (n, height, "
                        f"width, 1 or 3), got shape {x.shape}")
    if x.dtype == np.uint8:
        return x.astype(np.float32) / 255
    if x.dtype.kind != "f" or not np.isfinite(x).all() or x.min() < 0 or x.max() > 1:
        raise DataError(f"{path}: {key} must be uint8 0..255 or floats in [0, 1], got "
                        f"{x.dtype}" + (f" from {x.min():g} to {x.max():g}"
                                        if x.dtype.kind in "fiu" and x.size else ""))
    return x.astype(np.float32)


def _npz_labels(path: Path, y: np.ndarray, key: str) -> np.ndarray:
    if y.ndim != 1 or y.dtype.kind not in "iu" or (y.size and y.min() < 0):
        raise DataError(f"{path}: {key} must be integer labels 0..k-1 (n,), got dtype "
                        f"{y.dtype} and shape {y.shape}")
    return y.astype(np.int64)


def _npz_names(path: Path, names, y: np.ndarray) -> list[str]:
    k = int(y.max()) + 1 if y.size else 0
    if names is None:
        return [str(i) for i in range(k)]
    if names.ndim != 1 or names.dtype.kind not in "US" or len(names) < k:
        raise DataError(f"{path}: class_names must be {k} or more strings, one per label, got "
                        f"{names.dtype} of shape {names.shape}")
    return [str(name) for name in names]


def save_npz(path: PathLike, x: np.ndarray, y: np.ndarray,
             class_names: Sequence[str] | None = None) -> None:
    """Write a dataset that load_npz reads (x as uint8 0..255), atomically."""
    from ..files import atomic_write

    arrays = {"x": np.round(np.asarray(x) * 255).astype(np.uint8), "y": np.asarray(y)}
    if class_names is not None:
        arrays["class_names"] = np.array([str(c) for c in class_names])
    atomic_write(Path(path), lambda f: np.savez_compressed(f, **arrays))


def read_picture(path: PathLike, size: tuple[int, int], channels: int) -> np.ndarray:
    """One picture as a model trained with load_images sees it: resized to size, float32
    in [0, 1], (h, w) for channels 1 or (h, w, 3); DataError naming the file otherwise."""
    path = image_file(path)
    try:
        rgb = _read(path, tuple(size), _Report())
    except _UnreadableError as exc:
        raise DataError(f"{path}: {exc}") from None
    return rgb.mean(axis=2) if channels == 1 else rgb


def read_input(path: PathLike, input_shape: tuple[int, ...], images_as: str) -> np.ndarray:
    """One picture as a net taking samples of `input_shape` (h, w) or (h, w, c) reads it:
    MNIST's way (read_digit_image: the ink, centred) for images_as 'digits' and a
    28 x 28 grey input, else resized to its size and channels (read_picture)."""
    h, w, *c = input_shape
    if images_as == "digits" and (h, w, *c) in ((28, 28), (28, 28, 1)):
        return read_digit_image(path)
    return read_picture(path, (h, w), c[0] if c else 1)
