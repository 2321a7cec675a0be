"""A convolution's output arranged by the p x p pool window element after it, and max
pooling in that order: blocks.py writes Z so when the pool tiles it.

Z[i, h, w, f] is stored at (h % p, w % p, i, h // p, w // p, f): one contiguous
(n, oh/p, ow/p, nf) array per window element (a, q).  Max pooling with stride
p then reads p*p contiguous arrays instead of p*p strided views whose inner
runs are a pixel's few channels, and the im2col copy writes the windows in
that order at no extra cost.  Only for p dividing oh and ow (every output
position in exactly one window).
"""

from __future__ import annotations

import numpy as np

from .columns import first_max_index, route_to_max, window_max


def by_pool_window(a: np.ndarray, p: int) -> np.ndarray:
    """A view of a (n, oh, ow, ...) arranged by p x p pooling window element:
    (p, p, n, oh/p, ow/p, ...), where [i, j] is a[:, i::p, j::p] (p divides oh and ow)."""
    n, oh, ow, *rest = a.shape
    split = a.reshape(n, oh // p, p, ow // p, p, *rest)
    return split.transpose(2, 4, 0, 1, 3, *range(5, split.ndim))


def max_pool_forward(Z: np.ndarray, argmax: bool) -> tuple[np.ndarray, tuple]:
    """Z (p, p, n, oh/p, ow/p, c) -> out (n, oh/p, ow/p, c), the maximum over [a, q];
    with argmax, also where each window's first maximum is (columns.first_max_index)."""
    elements = [Z[a, q] for a in range(Z.shape[0]) for q in range(Z.shape[1])]
    out = window_max(elements)
    return out, (Z, out, first_max_index(elements, out) if argmax else None)


def max_pool_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """dout (n, oh/p, ow/p, c) -> dZ (p, p, n, oh/p, ow/p, c): each window's gradient at
    its first maximum, 0 elsewhere."""
    Z, out, index = cache
    elements = [(a, q) for a in range(Z.shape[0]) for q in range(Z.shape[1])]
    if index is None:
        index = first_max_index([Z[a, q] for a, q in elements], out)
    dZ = np.empty(Z.shape, dtype=dout.dtype)
    route_to_max(dout, index, [dZ[a, q] for a, q in elements], write=True)
    return dZ
