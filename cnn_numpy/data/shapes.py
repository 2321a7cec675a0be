"""A small dataset to try your own images with: drawn circles, squares and triangles at
random sizes, places and colours, saved as a folder of class folders.

    from cnn_numpy.data.shapes import make_shapes
    make_shapes("shapes", per_class=200)          # shapes/circle/0000.png ...
    # then: cnn-numpy train cnn --images shapes

Needs Pillow (pip install "cnn-numpy[plots]").
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..extras import require
from ..files import PathLike

if TYPE_CHECKING:
    from PIL import Image

SHAPES = ("circle", "square", "triangle")


def draw_shape(kind: str, rng: np.random.Generator, size: int = 40,
               colour: bool = True) -> Image.Image:
    """One shape (a PIL image, size x size): filled, 1/5 to 2/5 of the image across, at a
    random place, in a random bright colour on a random dark background (grey on
    near-black with colour=False, as an "L" image)."""
    require("PIL", "plots", needed_for="drawing shapes", package="Pillow")
    from PIL import Image, ImageDraw

    if kind not in SHAPES:
        raise ValueError(f"kind must be one of {', '.join(SHAPES)}, got {kind!r}")
    background = tuple(int(v) for v in rng.integers(0, 80, 3)) if colour else (20, 20, 20)
    image = Image.new("RGB", (size, size), background)
    r = int(rng.integers(size // 5, size * 2 // 5))
    cx, cy = (int(v) for v in rng.integers(r + 1, size - r - 1, 2))
    fill = tuple(int(v) for v in rng.integers(120, 256, 3)) if colour else (230, 230, 230)
    draw = ImageDraw.Draw(image)
    if kind == "circle":
        draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fill)
    elif kind == "square":
        draw.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fill)
    else:
        draw.polygon([(cx, cy - r), (cx - r, cy + r), (cx + r, cy + r)], fill=fill)
    return image if colour else image.convert("L")


def make_shapes(root: PathLike, per_class: int = 200, size: int = 40, seed: int = 0,
                kinds: tuple[str, ...] = SHAPES) -> Path:
    """Write per_class PNG images of each kind into root/<kind>/ (root must not hold
    them yet) and return root."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    for kind in kinds:
        (root / kind).mkdir(parents=True)
        for i in range(per_class):
            draw_shape(kind, rng, size).save(root / kind / f"{i:04d}.png")
    return root
