"""The im2col engine: every window copied into one column of a matrix, then one matmul.

Convolution.  A strided view (numpy.lib.stride_tricks) shows the input as
(n, oh, ow, fw, fw, c) windows without copying; copying it once gives the
"columns" matrix, one column per output position and one row per window
element (a, q, channel), and a single matrix product does the whole layer:

    cols (K + 1, M)  with K = fw*fw*c, M = n*oh*ow
    Z = cols.T @ [W; b]                  (M, nf), reshaped to (n, oh, ow, nf)

The last row of cols is all ones and the last row of [W; b] is the bias
(the spec's "bias tacked onto the weights"), so the bias costs nothing
extra, and dW and db come out of ONE product in the backward pass:
[dW; db] = cols @ dZ.

Pooling.  The fw*fw "offset views" x[:, a::s, q::s] (one per window
element (a, q), each (n, oh, ow, c)) let max and mean run as fw*fw
elementwise steps over whole arrays.  When stride == fw the views come from
a plain reshape; when, in addition, fw divides the input size, every input
element is in exactly one window and the backward pass writes instead of
adding.

Same shapes as the other engines: x (n, ih, iw, c), W (fw, fw, c, nf).
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import as_strided

from .columns import (
    add_window_gradients,
    chunked_product,
    first_max_index,
    route_to_max,
    window_matrix,
    window_max,
)
from .geometry import output_size


def window_view(x: np.ndarray, fw: int, stride: int) -> np.ndarray:
    """Read-only view of every window: (n, oh, ow, fw, fw, c), no copy."""
    n, ih, iw, c = x.shape
    sn, sh, sw, sc = x.strides
    oh, ow = output_size(ih, fw, stride), output_size(iw, fw, stride)
    return as_strided(x, (n, oh, ow, fw, fw, c), (sn, sh * stride, sw * stride, sh, sw, sc),
                      writeable=False)


def conv_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray, stride: int):
    """Z = cols.T @ [W; b], reshaped to (n, oh, ow, nf).  Returns (Z, cache)."""
    fw, nf = W.shape[0], W.shape[3]
    windows = window_view(x, fw, stride)
    cols = window_matrix(windows)  # the one copy of the input
    Z = cols.T @ np.concatenate([W.reshape(-1, nf), b[None, :]])
    return Z.reshape(*windows.shape[:-3], nf), (x.shape, cols, W, stride)


#: conv_backward sums [dW; db] of at most THIN numbers over CHUNK windows at a time
#: (OpenBLAS runs a product of THIN x CHUNK on one thread).
THIN, CHUNK = 512, 512


def conv_backward(dZ: np.ndarray, cache, need_dx: bool = True):
    """(dx or None, dW, db) from dZ (n, oh, ow, nf).

    [dW; db] = cols @ dZ in one product.  dx: each window's share of
    dZ @ W.T is added back at its place, one product and one strided add per
    window element (a, q): the col2im step (columns.add_window_gradients).
    """
    x_shape, cols, W, stride = cache
    fw, nf = W.shape[0], W.shape[3]
    dZ2 = dZ.reshape(-1, nf)  # rows in the order of cols' columns
    # np.dot, not `@`: matmul keeps the GIL for this long product.  A thin one (few
    # weights) is summed over fixed chunks of windows, in order: OpenBLAS may split its
    # long sums between threads one way or another, so the bits would depend on the
    # thread count; a chunk is small enough for one thread.
    if cols.shape[0] * nf <= THIN:
        dWb = chunked_product(cols, dZ2, CHUNK)
    else:
        dWb = np.dot(cols, dZ2)
    dW, db = dWb[:-1].reshape(W.shape), dWb[-1]
    if not need_dx:
        return None, dW, db
    dx = np.zeros(x_shape, dtype=dZ.dtype)
    add_window_gradients(dZ2, W, offset_views(dx, fw, stride))
    return dx, dW, db


def offset_views(x: np.ndarray, fw: int, stride: int) -> list[np.ndarray]:
    """For each window element (a, q) in row-major order, the (n, oh, ow, c) view
    x[:, a + s*i, q + s*j]: element (a, q) of every window at once."""
    n, ih, iw, c = x.shape
    oh, ow = output_size(ih, fw, stride), output_size(iw, fw, stride)
    if stride == fw:  # windows tile x[:, :oh*fw, :ow*fw] exactly: a reshape shows them
        tiles = x[:, : oh * fw, : ow * fw].reshape(n, oh, fw, ow, fw, c)
        return [tiles[:, :, a, :, q] for a in range(fw) for q in range(fw)]
    return [x[:, a : a + stride * (oh - 1) + 1 : stride, q : q + stride * (ow - 1) + 1 : stride]
            for a in range(fw) for q in range(fw)]


def max_pool_forward(x: np.ndarray, fw: int, stride: int, argmax: bool = True):
    """out = max over each window (columns.window_max).  Returns (out, cache).

    x (n, ih, iw, c) -> out (n, oh, ow, c).  The cache keeps x,
    out and, with argmax, the index of each window's first maximum
    (columns.first_max_index); without it (prediction) the backward pass, if
    one comes, finds it from x and out.
    """
    views = offset_views(x, fw, stride)
    out = window_max(views)
    return out, (x, out, first_max_index(views, out) if argmax else None, fw, stride)


def _tiled(x_shape: tuple[int, ...], fw: int, stride: int) -> bool:
    """True when the windows cover every input element exactly once."""
    return stride == fw and x_shape[1] % fw == 0 and x_shape[2] % fw == 0


def max_pool_backward(dout: np.ndarray, cache) -> np.ndarray:
    """dx (shape of x): each window's gradient goes to its first maximum (in
    row-major order: columns.first_max_index)."""
    x, out, argmax, fw, stride = cache
    if argmax is None:
        argmax = first_max_index(offset_views(x, fw, stride), out)
    tiled = _tiled(x.shape, fw, stride)  # every dx element is written exactly once
    dx = (np.empty if tiled else np.zeros)(x.shape, dtype=dout.dtype)
    route_to_max(dout, argmax, offset_views(dx, fw, stride), write=tiled)
    return dx


def avg_pool_forward(x: np.ndarray, fw: int, stride: int):
    """out = mean over each window: the sum of the fw*fw offset views / fw^2."""
    views = offset_views(x, fw, stride)
    out = views[0].copy()
    for view in views[1:]:
        out += view
    out /= fw * fw
    return out, (x.shape, fw, stride)


def avg_pool_backward(dout: np.ndarray, cache) -> np.ndarray:
    """dx (shape of x): every window element gets dout / fw^2."""
    x_shape, fw, stride = cache
    share = dout / (fw * fw)
    tiled = _tiled(x_shape, fw, stride)
    dx = (np.empty if tiled else np.zeros)(x_shape, dtype=dout.dtype)
    for view in offset_views(dx, fw, stride):
        if tiled:
            view[...] = share
        else:
            view += share
    return dx
