"""The im2col engine's convolution and max pooling (cnn_numpy/engines/im2col.py) as the
fast path runs them: the same maths, with the speed and determinism of columns.py and
two flags the reference does without:

    conv_forward(x, W, b, stride)            -> (Z, cache)
    conv_backward(dZ, cache, need_dx)        -> (dx or None, dW, db)
    max_pool_forward(x, fw, stride, argmax)  -> (out, cache)
    max_pool_backward(dout, cache)           -> dx

need_dx=False skips the input gradient (the Net's first layer: nobody uses
it); argmax=False (prediction) skips finding each window's first maximum,
which a backward pass, if one comes, finds from x and out.
"""

from __future__ import annotations

import numpy as np

from ..engines.columns import add_window_gradients
from ..engines.im2col import offset_views
from .columns import (
    first_max_index,
    route_to_max,
    weight_gradient,
    window_matrix,
    window_max,
    window_view,
)


def conv_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray,
                 stride: int) -> tuple[np.ndarray, tuple]:
    """Z = cols.T @ [W; b], reshaped to (n, oh, ow, nf).  Returns (Z, cache)."""
    fw, nf = W.shape[0], W.shape[3]
    windows = window_view(x, fw, stride)
    cols = window_matrix(windows)
    Z = cols.T @ np.concatenate([W.reshape(-1, nf), b[None, :]])
    return Z.reshape(*windows.shape[:-3], nf), (x.shape, cols, W, stride)


def conv_backward(dZ: np.ndarray, cache: tuple,
                  need_dx: bool) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """(dx or None, dW, db) from dZ (n, oh, ow, nf): [dW; db] by
    columns.weight_gradient, dx as the engine's (col2im)."""
    x_shape, cols, W, stride = cache
    nf = W.shape[3]
    dZ2 = dZ.reshape(-1, nf)  # rows in the order of cols' columns
    dWb = weight_gradient(cols, dZ2)
    dW, db = dWb[:-1].reshape(W.shape), dWb[-1]
    if not need_dx:
        return None, dW, db
    dx = np.zeros(x_shape, dtype=dZ.dtype)
    add_window_gradients(dZ2, W, offset_views(dx, W.shape[0], stride))
    return dx, dW, db


def max_pool_forward(x: np.ndarray, fw: int, stride: int,
                     argmax: bool) -> tuple[np.ndarray, tuple]:
    """out (n, oh, ow, c), the maximum of each window; the cache keeps x, out and, with
    argmax, the index of each window's first maximum."""
    views = offset_views(x, fw, stride)
    out = window_max(views)
    return out, (x, out, first_max_index(views, out) if argmax else None, fw, stride)


def max_pool_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """dx (shape of x): each window's gradient at its first maximum.  Where the windows
    do not overlap (stride fw or more), each dx element in one is written once; where
    they also tile x (stride fw, fw dividing its size), dx needs no zeros first."""
    x, out, index, fw, stride = cache
    if index is None:
        index = first_max_index(offset_views(x, fw, stride), out)
    tiled = stride == fw and x.shape[1] % fw == 0 and x.shape[2] % fw == 0
    dx = (np.empty if tiled else np.zeros)(x.shape, dtype=dout.dtype)
    route_to_max(dout, index, offset_views(dx, fw, stride), write=stride >= fw)
    return dx
