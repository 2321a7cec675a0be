"""The stride-group engine's convolution and max pooling
(cnn_numpy/engines/stride_groups.py) as the fast path runs them: the same groups and
maths, with the speed of columns.py and the flags of the fast path's im2col.py:

    conv_forward(x, W, b, stride)            -> (Z, cache)
    conv_backward(dZ, cache, need_dx)        -> (dx or None, dW, db)
    max_pool_forward(x, fw, stride, argmax)  -> (out, cache)
    max_pool_backward(dout, cache)           -> dx

The groups' plan and views are the engine's own.
"""

from __future__ import annotations

import numpy as np

from ..engines.columns import add_window_gradients
from ..engines.geometry import output_size
from ..engines.stride_groups import (
    _elements,
    _group_windows,
    _outputs,
    _plan_for,
    _reach,
    _windows,
    _zeros_reaching,
)
from .columns import first_max_index, index_dtype, route_to_max, window_matrix, window_max


def conv_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray,
                 stride: int) -> tuple[np.ndarray, tuple]:
    """Z = x (*) W + b, one matrix product per stride group.  Returns (Z, cache)."""
    fw, nf = W.shape[0], W.shape[3]
    plan = _plan_for(x.shape, fw, stride)
    n, ih, iw, _ = x.shape
    Z = np.empty((n, output_size(ih, fw, stride), output_size(iw, fw, stride), nf), x.dtype)
    Wb = np.concatenate([W.reshape(-1, nf), b[None, :]])
    xr = _reach(x, plan)
    matrices = []
    for group in plan.groups:
        cols = window_matrix(_group_windows(xr, group, plan))  # (K + 1, n*rows*cols)
        _outputs(Z, group, plan)[...] = (cols.T @ Wb).reshape(n, group.rows, group.cols, nf)
        matrices.append(cols)
    return Z, (x.shape, matrices, W, stride)


def conv_backward(dZ: np.ndarray, cache: tuple,
                  need_dx: bool) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """(dx or None, dW, db) from dZ (n, oh, ow, nf), one product per group and gradient."""
    x_shape, matrices, W, stride = cache
    fw, nf = W.shape[0], W.shape[3]
    plan = _plan_for(x_shape, fw, stride)
    dWb = np.zeros((W.size // nf + 1, nf), dtype=W.dtype)
    dx = _zeros_reaching(x_shape, plan, dZ.dtype) if need_dx else None
    for group, cols in zip(plan.groups, matrices, strict=True):
        dZ_g = np.ascontiguousarray(_outputs(dZ, group, plan)).reshape(-1, nf)  # (M_g, nf)
        dWb += np.dot(cols, dZ_g)  # not `@`: matmul keeps Python's lock for this long product
        if need_dx:
            add_window_gradients(dZ_g, W, _elements(_windows(dx, group, plan)))
    if need_dx:
        dx = dx[:, : x_shape[1], : x_shape[2]]
    return dx, dWb[:-1].reshape(W.shape), dWb[-1]


def max_pool_forward(x: np.ndarray, fw: int, stride: int,
                     argmax: bool) -> tuple[np.ndarray, tuple]:
    """out (n, oh, ow, c), the maximum of each window, written group by group; with
    argmax, the index of each window's first maximum too."""
    plan = _plan_for(x.shape, fw, stride)
    n, ih, iw, c = x.shape
    out = np.empty((n, output_size(ih, fw, stride), output_size(iw, fw, stride), c), x.dtype)
    index = np.empty(out.shape, index_dtype(fw * fw)) if argmax else None
    xr = _reach(x, plan)
    for group in plan.groups:
        elements = _elements(_windows(xr, group, plan))
        top = window_max(elements, out=_outputs(out, group, plan))
        if argmax:
            first_max_index(elements, top, out=_outputs(index, group, plan))
    return out, (xr, x.shape, out, index, fw, stride)


def max_pool_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """dx (shape of x): each window's gradient at its first maximum.  With one group no
    input element is in two windows, so the gradient is written, not added; windows
    that tile x exactly leave no element of dx to zero first."""
    xr, x_shape, out, index, fw, stride = cache
    plan = _plan_for(x_shape, fw, stride)
    tiled = stride == fw and x_shape[1] % fw == 0 and x_shape[2] % fw == 0
    dx = np.empty(x_shape, dout.dtype) if tiled else _zeros_reaching(x_shape, plan, dout.dtype)
    for group in plan.groups:
        if index is None:
            argmax = first_max_index(_elements(_windows(xr, group, plan)),
                                     _outputs(out, group, plan))
        else:
            argmax = _outputs(index, group, plan)
        route_to_max(_outputs(dout, group, plan), argmax, _elements(_windows(dx, group, plan)),
                     write=len(plan.groups) == 1)
    return dx[:, : x_shape[1], : x_shape[2]]
