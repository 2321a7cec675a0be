"""What the converters share: optional imports, and cnn-numpy's flattening order."""

from __future__ import annotations

import importlib

import numpy as np


def require(module: str, extra: str):
    """import `module`, or an ImportError that says which extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"{module} is not installed; install it with "
                          f'pip install "cnn-numpy[{extra}]"') from None


def hwc_order(shape: tuple[int, ...]) -> np.ndarray:
    """For a sample shape (h, w, c): position j of the (c, h, w)-flattened vector that
    PyTorch's Flatten makes holds element hwc_order(shape)[j] of cnn-numpy's
    (h, w, c)-flattened one.  Shapes of other lengths: the identity."""
    size = int(np.prod(shape))
    if len(shape) != 3:
        return np.arange(size)
    return np.arange(size).reshape(shape).transpose(2, 0, 1).ravel()
