"""Reading a user's picture of a digit and turning it into an MNIST-style 28x28 image."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import BinaryIO

import numpy as np

from ..extras import require
from ..files import PathLike
from .idx import DataError

#: Below this colour distance from the background (0..1) a picture has no ink at all.
MIN_INK = 0.05
#: Largest picture read, in pixels: a small, highly compressed PNG can decode to gigabytes.
MAX_PIXELS = 16_000_000


def mnist_style(gray: np.ndarray) -> np.ndarray:
    """A grayscale image (h, w) in [0, 1] -> (28, 28) float32 as MNIST digits are made.

    Light backgrounds are inverted (MNIST is a white digit on black), the
    digit is cropped to its bounding box, scaled so its longer side is 20
    pixels, and pasted into a 28x28 black square with its centre of mass in
    the middle.
    """
    from PIL import Image

    border = np.concatenate([gray[0], gray[-1], gray[:, 0], gray[:, -1]])
    if border.mean() > 0.5:
        gray = 1.0 - gray
    mask = gray > 0.2 * gray.max() if gray.max() > 0 else np.zeros_like(gray, bool)
    if not mask.any():
        return np.zeros((28, 28), np.float32)
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    digit = gray[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = digit.shape
    scale = 20 / max(h, w)
    size = max(1, round(w * scale)), max(1, round(h * scale))
    small = (
        np.asarray(
            Image.fromarray((digit * 255).astype(np.uint8)).resize(size, Image.Resampling.LANCZOS),
            dtype=np.float32,
        )
        / 255
    )
    out = np.zeros((28, 28), np.float32)
    total = small.sum()
    cy, cx = (
        ((np.indices(small.shape) * small).sum(axis=(1, 2)) / total)
        if total > 0
        else (small.shape[0] / 2, small.shape[1] / 2)
    )
    top = int(np.clip(round(14 - cy), 0, 28 - small.shape[0]))
    left = int(np.clip(round(14 - cx), 0, 28 - small.shape[1]))
    out[top : top + small.shape[0], left : left + small.shape[1]] = small
    return out


def image_file(path: PathLike) -> Path:
    """`path` as a Path if it is a file; a DataError saying what it is otherwise."""
    path = Path(path)
    if path.is_dir():
        raise DataError(f"{path}: is a folder, not an image file; name the pictures in it "
                        f"(e.g. {path / '*.png'})")
    if not path.is_file():
        raise DataError(f"{path}: no such image file")
    return path


def read_digit_image(path: PathLike) -> np.ndarray:
    """A PNG/JPEG (any size, colour or gray) as an MNIST-style (28, 28) float32 image."""
    path = image_file(path)
    return decode_digit_image(path, str(path))


def decode_digit_image(source: PathLike | BinaryIO, what: str,
                       max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Like read_digit_image, from a path or a binary file object; `what` names it in errors.

    A picture of more than max_pixels pixels is refused before it is decoded.

    Ink is whatever differs from the background, in any colours: each pixel's
    distance in RGB from the median colour of the border, scaled so the
    strongest ink is 1.  A transparent background (a drawing tool's usual
    PNG) counts as white, so a dark digit on it is ink.  A picture of one
    flat colour gives an all-zero image.
    """
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise DataError('reading images needs Pillow: pip install "cnn-numpy[plots]"') from None
    try:
        with warnings.catch_warnings():
            # Pillow only warns about a suspiciously huge image; refuse it instead
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                image.draft("RGB", (512, 512))  # JPEG: decode at a reduced size when huge
                if image.size[0] * image.size[1] > max_pixels:
                    raise DataError(f"{what}: the image is {image.size[0]} x {image.size[1]} "
                                    f"pixels; the most this reads is {max_pixels:,}: "
                                    "scale it down")
                if image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info:
                    rgba = image.convert("RGBA")
                    white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
                    image = Image.alpha_composite(white, rgba)
                rgb = np.asarray(image.convert("RGB"), dtype=np.float32) / 255
    except DataError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise DataError(f"{what}: image too large to read safely ({exc})") from None
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise DataError(f"{what}: not a readable PNG or JPEG image ({exc})") from None
    return mnist_style(ink(rgb))


def ink(rgb: np.ndarray) -> np.ndarray:
    """(h, w, 3) colours in [0, 1] -> (h, w) ink in [0, 1]: the distance from the background
    colour (the border's median), scaled to a maximum of 1; all zero when there is none."""
    border = np.concatenate([rgb[0], rgb[-1], rgb[:, 0], rgb[:, -1]])
    distance = np.sqrt(((rgb - np.median(border, axis=0)) ** 2).sum(axis=2) / 3)
    strongest = distance.max()
    if strongest < MIN_INK:
        return np.zeros(distance.shape, np.float32)
    return (distance / strongest).astype(np.float32)


def save_digit_strip(images: np.ndarray, path: PathLike) -> None:
    """The (n, h, w) or colour (n, h, w, 3) images in [0, 1] side by side, each enlarged 8
    times, as a picture
    in the format path's suffix names (.png, .jpg or .jpeg: cnn_numpy.files.PIXEL_FORMATS;
    any other is a ValueError)."""
    from ..files import PIXEL_FORMATS, atomic_write, picture_format

    form = picture_format(path, formats=PIXEL_FORMATS)
    require("PIL", "plots", needed_for=f"{path}: drawing a picture", package="Pillow")
    from PIL import Image

    height = images.shape[1]
    gap = np.full((height, 2, *images.shape[3:]), 0.35, np.float32)
    strip = np.hstack([part for image in images for part in (image, gap)][:-1])
    picture = Image.fromarray((strip * 255).round().astype(np.uint8)).resize(
        (strip.shape[1] * 8, height * 8), Image.Resampling.NEAREST)
    atomic_write(Path(path), lambda f: picture.save(f, form))
