"""A convolution and the p x p max pool after it, with the convolution's output arranged
by pool window element: the math of cnn_numpy/engines/im2col.py, in another order, on
the fast path's im2col.py and columns.py.

Z[i, h, w, f] is stored at (h % p, w % p, i, h // p, w // p, f): one contiguous
(n, oh/p, ow/p, nf) array per window element (a, q).  Max pooling with stride
p then reads p*p contiguous arrays instead of p*p strided views whose inner
runs are a pixel's few channels, and the im2col copy writes the windows in
that order at no extra cost.  Only for p dividing oh and ow (every output
position in exactly one window).
"""

from __future__ import annotations

import numpy as np

from ..engines.columns import add_window_gradients
from ..engines.im2col import offset_views, window_view
from . import im2col
from .columns import first_max_index, route_to_max, window_matrix, window_max


def by_pool_window(a: np.ndarray, p: int) -> np.ndarray:
    """A view of a (n, oh, ow, ...) arranged by p x p pooling window element:
    (p, p, n, oh/p, ow/p, ...), where [i, j] is a[:, i::p, j::p] (p divides oh and ow)."""
    n, oh, ow, *rest = a.shape
    split = a.reshape(n, oh // p, p, ow // p, p, *rest)
    return split.transpose(2, 4, 0, 1, 3, *range(5, split.ndim))


def conv_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray, stride: int, p: int):
    """im2col's Z = cols.T @ [W; b], with cols' columns in pool window order:
    x (n, ih, iw, c) -> Z (p, p, n, oh/p, ow/p, nf).  Returns (Z, cache)."""
    fw, nf = W.shape[0], W.shape[3]
    windows = by_pool_window(window_view(x, fw, stride), p)
    cols = window_matrix(windows)
    Z = cols.T @ np.concatenate([W.reshape(-1, nf), b[None, :]])
    return Z.reshape(*windows.shape[:-3], nf), (x.shape, cols, W, stride, p)


def conv_backward(dZ: np.ndarray, cache, need_dx: bool):
    """(dx or None, dW, db) from dZ (p, p, n, oh/p, ow/p, nf), as im2col's conv_backward."""
    x_shape, cols, W, stride, p = cache
    # dW and db: im2col's product, whose rows (cols' columns) are in this order already.
    _, dW, db = im2col.conv_backward(dZ, (x_shape, cols, W, stride), need_dx=False)
    if not need_dx:
        return None, dW, db
    dx = np.zeros(x_shape, dtype=dZ.dtype)
    add_window_gradients(dZ.reshape(-1, W.shape[3]), W, [
        by_pool_window(view, p) for view in offset_views(dx, W.shape[0], stride)])
    return dx, dW, db


def max_pool_forward(Z: np.ndarray, argmax: bool):
    """Z (p, p, n, oh/p, ow/p, c) -> out (n, oh/p, ow/p, c), the maximum over [a, q];
    with argmax, also where each window's first maximum is (columns.first_max_index)."""
    elements = [Z[a, q] for a in range(Z.shape[0]) for q in range(Z.shape[1])]
    out = window_max(elements)
    return out, (Z, out, first_max_index(elements, out) if argmax else None)


def max_pool_backward(dout: np.ndarray, cache) -> np.ndarray:
    """dout (n, oh/p, ow/p, c) -> dZ (p, p, n, oh/p, ow/p, c): each window's gradient at
    its first maximum, 0 elsewhere."""
    Z, out, index = cache
    elements = [(a, q) for a in range(Z.shape[0]) for q in range(Z.shape[1])]
    if index is None:
        index = first_max_index([Z[a, q] for a, q in elements], out)
    dZ = np.empty(Z.shape, dtype=dout.dtype)
    route_to_max(dout, index, [dZ[a, q] for a, q in elements], write=True)
    return dZ
