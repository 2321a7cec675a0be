"""The im2col engine: every window copied into one column of a matrix, then one matmul.

Convolution.  A strided view (numpy.lib.stride_tricks) shows the input as
(n, oh, ow, fw, fw, c) windows without copying; copying them gives the
"columns" matrix, one column per output position and one row per window
element (a, q, channel), and a single matrix product does the whole layer:

    cols (K + 1, M)  with K = fw*fw*c, M = n*oh*ow
    Z = cols.T @ [W; b]                  (M, nf), reshaped to (n, oh, ow, nf)

The last row of cols is all ones and the last row of [W; b] is the bias
(the spec's "bias tacked onto the weights"), so the bias costs nothing
extra, and dW and db come out of ONE product in the backward pass:
[dW; db] = cols @ dZ.

Pooling.  The fw*fw "offset views" x[:, a::s, q::s] (one per window
element (a, q), each (n, oh, ow, c)) stacked give every window's elements
along one axis: the maximum, its first position (np.argmax) and the mean
are taken along it.

Same shapes as the other engines: x (n, ih, iw, c), W (fw, fw, c, nf).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .columns import add_window_gradients, window_matrix
from .geometry import output_size


def window_view(x: np.ndarray, fw: int, stride: int) -> np.ndarray:
    """Read-only view of every window: (n, oh, ow, fw, fw, c), no copy."""
    n, ih, iw, c = x.shape
    sn, sh, sw, sc = x.strides
    oh, ow = output_size(ih, fw, stride), output_size(iw, fw, stride)
    return as_strided(x, (n, oh, ow, fw, fw, c), (sn, sh * stride, sw * stride, sh, sw, sc),
                      writeable=False)


def conv_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray,
                 stride: int) -> tuple[np.ndarray, tuple]:
    """Z = cols.T @ [W; b], reshaped to (n, oh, ow, nf).  Returns (Z, cache)."""
    fw, nf = W.shape[0], W.shape[3]
    windows = window_view(x, fw, stride)
    cols = window_matrix(windows)  # (K + 1, M)
    Z = cols.T @ np.concatenate([W.reshape(-1, nf), b[None, :]])
    return Z.reshape(*windows.shape[:-3], nf), (x.shape, cols, W, stride)


def conv_backward(dZ: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dx, dW, db) from dZ (n, oh, ow, nf).

    [dW; db] = cols @ dZ in one product.  dx: each window's share of
    dZ @ W.T is added back at its place, one product and one strided add per
    window element (a, q): the col2im step (columns.add_window_gradients).
    """
    x_shape, cols, W, stride = cache
    fw, nf = W.shape[0], W.shape[3]
    dZ2 = dZ.reshape(-1, nf)  # (M, nf), rows in the order of cols' columns
    dWb = cols @ dZ2
    dW, db = dWb[:-1].reshape(W.shape), dWb[-1]
    dx = np.zeros(x_shape, dtype=dZ.dtype)
    add_window_gradients(dZ2, W, offset_views(dx, fw, stride))
    return dx, dW, db


def offset_views(x: np.ndarray, fw: int, stride: int) -> list[np.ndarray]:
    """For each window element (a, q) in row-major order, the (n, oh, ow, c) view
    x[:, a + s*i, q + s*j]: element (a, q) of every window at once."""
    oh, ow = output_size(x.shape[1], fw, stride), output_size(x.shape[2], fw, stride)
    return [x[:, a : a + stride * (oh - 1) + 1 : stride, q : q + stride * (ow - 1) + 1 : stride]
            for a in range(fw) for q in range(fw)]


def max_pool_forward(x: np.ndarray, fw: int, stride: int) -> tuple[np.ndarray, tuple]:
    """out = max over each window.  Returns (out, cache).

    x (n, ih, iw, c) -> out (n, oh, ow, c).  The cache keeps the index k of
    each window's FIRST maximum in row-major order (np.argmax's rule, and
    PyTorch's for ties): the backward pass sends the gradient there.
    """
    elements = np.stack(offset_views(x, fw, stride))  # (fw*fw, n, oh, ow, c)
    out, index = elements.max(axis=0), elements.argmax(axis=0)
    return out, (x.shape, index, fw, stride)


def max_pool_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """dx (shape of x): window element k gets dout where k is the window's first
    maximum, else 0 (added: where windows overlap, an input element collects from
    several)."""
    x_shape, index, fw, stride = cache
    dx = np.zeros(x_shape, dtype=dout.dtype)
    for k, view in enumerate(offset_views(dx, fw, stride)):
        view += np.where(index == k, dout, 0)
    return dx


def avg_pool_forward(x: np.ndarray, fw: int, stride: int) -> tuple[np.ndarray, tuple]:
    """out = mean over each window: the mean of the fw*fw offset views."""
    out = np.stack(offset_views(x, fw, stride)).mean(axis=0)
    return out, (x.shape, fw, stride)


def avg_pool_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """dx (shape of x): every window element gets dout / fw^2."""
    x_shape, fw, stride = cache
    dx = np.zeros(x_shape, dtype=dout.dtype)
    for view in offset_views(dx, fw, stride):
        view += dout / (fw * fw)
    return dx
