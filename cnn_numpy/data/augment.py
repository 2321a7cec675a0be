"""Data augmentation: new training images from old ones, drawn afresh every batch."""

from __future__ import annotations

import numpy as np


def random_shift(X: np.ndarray, max_shift: int, rng: np.random.Generator) -> np.ndarray:
    """Each image moved by its own random (dy, dx) in [-max_shift, max_shift], zero-filled.

    X (n, height, width) or (n, height, width, channels) -> a new array of the same
    shape; X is not changed.  A digit moved by a pixel or two is still the same
    digit, so the network learns not to care where exactly the strokes are.
    """
    if max_shift == 0:
        return X
    n, h, w = X.shape[:3]
    s = max_shift
    padded = np.zeros((n, h + 2 * s, w + 2 * s, *X.shape[3:]), dtype=X.dtype)
    padded[:, s : s + h, s : s + w] = X
    dy, dx = rng.integers(-s, s + 1, size=(2, n))
    # Output pixel (i, j) of image k comes from padded[k, i + s - dy, j + s - dx].
    rows = (np.arange(h) + s - dy[:, None])[:, :, None]    # (n, h, 1)
    cols = (np.arange(w) + s - dx[:, None])[:, None, :]    # (n, 1, w)
    return padded[np.arange(n)[:, None, None], rows, cols]
