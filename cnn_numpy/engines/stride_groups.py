"""The stride-group engine: the spec's technique, one big array operation per group.

A filter of width fw moving with stride s visits windows that overlap
whenever neighbouring positions are less than fw apart.  Windows that are
k = ceil(fw / s) positions apart never overlap.  So split the output
positions into k * k *stride groups*: group (r, q) holds the outputs
(r + k*i, q + k*j).  Inside one group the windows tile the input with a
step of k * s, and a plain slice + reshape turns the input into an array
of all of the group's windows at once, without copying:

    x[:, top : top + rows*step, left : left + cols*step]      (n, rows*step, cols*step, c)
      .reshape(n, rows, step, cols, step, c)[:, :, :fw, :, :fw]  (n, rows, fw, cols, fw, c)

Each group is then ONE matrix product with the filters, forward and backward,
and the loop runs over at most ceil(fw / s)^2 groups, however large the
batch, the image or the channel count.  For "2x2 pooling" (fw = s) there
is exactly one group.

Same shapes as the naive engine: x (n, ih, iw, c), W (fw, fw, c, nf),
b (nf,), Z (n, oh, ow, nf).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .columns import add_window_gradients, window_matrix
from .geometry import output_size


@dataclass(frozen=True)
class StrideGroup:
    """Output positions (row + every*i, col + every*j), i < rows, j < cols."""

    row: int
    col: int
    rows: int
    cols: int


@dataclass(frozen=True)
class GroupPlan:
    """How a (fw, s) window sweep over an (oh, ow) output splits into groups.

    `every` is k = ceil(fw / s), the output distance between members of a
    group; `step` = k * s is their distance in the input.  `height` and
    `width` are the input size the group slices reach: up to step - fw more
    than the input has, so the engine pads that many zero rows or columns.
    """

    filter_width: int
    stride: int
    every: int
    groups: tuple[StrideGroup, ...]
    height: int
    width: int

    @property
    def step(self) -> int:
        return self.every * self.stride


def _members(first: int, out_size: int, every: int) -> int:
    """How many of first, first + every, ... are < out_size."""
    return -(-(out_size - first) // every)


@lru_cache(maxsize=256)
def plan_stride_groups(filter_width: int, stride: int, out_h: int, out_w: int) -> GroupPlan:
    """Stride groups for a sweep with out_h x out_w positions (cached per shape)."""
    every = -(-filter_width // stride)
    step = every * stride
    row_starts = range(min(every, out_h))
    col_starts = range(min(every, out_w))
    groups = tuple(
        StrideGroup(r, q, _members(r, out_h, every), _members(q, out_w, every))
        for r in row_starts
        for q in col_starts
    )
    height = max(r * stride + _members(r, out_h, every) * step for r in row_starts)
    width = max(q * stride + _members(q, out_w, every) * step for q in col_starts)
    return GroupPlan(filter_width, stride, every, groups, height, width)


def _plan_for(input_shape: tuple[int, ...], fw: int, stride: int) -> GroupPlan:
    _, ih, iw, _ = input_shape
    return plan_stride_groups(fw, stride, output_size(ih, fw, stride), output_size(iw, fw, stride))


def _reach(x: np.ndarray, plan: GroupPlan) -> np.ndarray:
    """x with zero rows/columns appended so every group's slice fits (x itself if none)."""
    extra_h, extra_w = plan.height - x.shape[1], plan.width - x.shape[2]
    if extra_h <= 0 and extra_w <= 0:
        return x
    return np.pad(x, ((0, 0), (0, max(extra_h, 0)), (0, max(extra_w, 0)), (0, 0)))


def _zeros_reaching(shape: tuple[int, ...], plan: GroupPlan, dtype) -> np.ndarray:
    n, ih, iw, c = shape
    return np.zeros((n, max(ih, plan.height), max(iw, plan.width), c), dtype=dtype)


def _windows(x: np.ndarray, group: StrideGroup, plan: GroupPlan) -> np.ndarray:
    """A view of one group's windows: (n, rows, fw, cols, fw, c).

    Writing to the view writes to x, which the backward passes rely on.
    """
    n, c = x.shape[0], x.shape[3]
    step, fw = plan.step, plan.filter_width
    top, left = group.row * plan.stride, group.col * plan.stride
    block = x[:, top : top + group.rows * step, left : left + group.cols * step]
    block = block.reshape(n, group.rows, step, group.cols, step, c)
    return block[:, :, :fw, :, :fw]


def _outputs(a: np.ndarray, group: StrideGroup, plan: GroupPlan) -> np.ndarray:
    """A view of the group's output positions in a (n, oh, ow, ...) array."""
    return a[:, group.row :: plan.every, group.col :: plan.every]


def _group_windows(x: np.ndarray, group: StrideGroup, plan: GroupPlan) -> np.ndarray:
    """The group's windows as (n, rows, cols, fw, fw, c): still a view, axes reordered."""
    return _windows(x, group, plan).transpose(0, 1, 3, 2, 4, 5)


def conv_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray,
                 stride: int) -> tuple[np.ndarray, tuple]:
    """Z = x (*) W + b, one matrix product per stride group.  Returns (Z, cache).

    Per group: its windows copied into a (K + 1, windows) matrix (last row
    ones), times [W; b] (K + 1, nf): every filter element meets every input
    element it multiplies in this group at once.  The cache keeps these
    matrices: the backward pass needs them again for dW.
    """
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


def conv_backward(dZ: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dx, dW, db) from dZ (n, oh, ow, nf), one product per group and gradient.

    [dW; db] sums window * dZ over every position: per group, the group's
    window matrix (kept by the forward pass) times its dZ rows.  dx gets
    dZ . W^T for each window; windows in a group do not overlap, so adding
    into the view is safe.
    """
    x_shape, matrices, W, stride = cache
    fw, nf = W.shape[0], W.shape[3]
    plan = _plan_for(x_shape, fw, stride)
    W2 = W.reshape(-1, nf)
    dWb = np.zeros((W2.shape[0] + 1, nf), dtype=W.dtype)
    dx = _zeros_reaching(x_shape, plan, dZ.dtype)
    for group, cols in zip(plan.groups, matrices, strict=True):
        dZ_g = _outputs(dZ, group, plan).reshape(-1, nf)  # (M_g, nf)
        dWb += cols @ dZ_g
        # each window element's share, at its place in the group's windows
        add_window_gradients(dZ_g, W, _elements(_windows(dx, group, plan)))
    return dx[:, : x_shape[1], : x_shape[2]], dWb[:-1].reshape(W.shape), dWb[-1]


def _elements(w: np.ndarray) -> list[np.ndarray]:
    """A group's windows (n, rows, fw, cols, fw, c) as fw*fw views (n, rows, cols, c):
    view k is window element k (row-major) of every window in the group: the
    input that filter element k meets, or that pooling compares at k."""
    fw = w.shape[2]
    return [w[:, :, a, :, q] for a in range(fw) for q in range(fw)]


def max_pool_forward(x: np.ndarray, fw: int, stride: int) -> tuple[np.ndarray, tuple]:
    """out = max over each fw x fw window, per channel.  Returns (out, cache).

    Per group: its fw*fw window elements stacked along one axis, and along
    it the maximum and the index k of each window's FIRST maximum in
    row-major order (np.argmax's rule, and PyTorch's for ties), which the
    cache keeps for the backward pass.
    """
    plan = _plan_for(x.shape, fw, stride)
    n, ih, iw, c = x.shape
    out = np.empty((n, output_size(ih, fw, stride), output_size(iw, fw, stride), c), x.dtype)
    index = np.empty(out.shape, dtype=np.intp)
    xr = _reach(x, plan)
    for group in plan.groups:
        elements = np.stack(_elements(_windows(xr, group, plan)))  # (fw*fw, n, rows, cols, c)
        _outputs(out, group, plan)[...] = elements.max(axis=0)
        _outputs(index, group, plan)[...] = elements.argmax(axis=0)
    return out, (x.shape, index, fw, stride)


def max_pool_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """dx (shape of x): each window's gradient goes to its first maximum.

    Per group, per window element k: dout where k is the window's first
    maximum, else 0.  Windows in a group do not overlap, but those of
    different groups may, so each adds its share.
    """
    x_shape, index, fw, stride = cache
    plan = _plan_for(x_shape, fw, stride)
    dx = _zeros_reaching(x_shape, plan, dout.dtype)
    for group in plan.groups:
        dout_g, index_g = _outputs(dout, group, plan), _outputs(index, group, plan)
        for k, element in enumerate(_elements(_windows(dx, group, plan))):
            element += np.where(index_g == k, dout_g, 0)
    return dx[:, : x_shape[1], : x_shape[2]]


def avg_pool_forward(x: np.ndarray, fw: int, stride: int) -> tuple[np.ndarray, tuple]:
    """out = mean over each fw x fw window, per channel.  Returns (out, cache)."""
    plan = _plan_for(x.shape, fw, stride)
    n, ih, iw, c = x.shape
    out = np.empty((n, output_size(ih, fw, stride), output_size(iw, fw, stride), c), x.dtype)
    xr = _reach(x, plan)
    for group in plan.groups:
        _outputs(out, group, plan)[...] = _windows(xr, group, plan).mean(axis=(2, 4))
    return out, (x.shape, fw, stride)


def avg_pool_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """dx (shape of x): every window element gets dout / fw^2."""
    x_shape, fw, stride = cache
    plan = _plan_for(x_shape, fw, stride)
    dx = _zeros_reaching(x_shape, plan, dout.dtype)
    for group in plan.groups:
        share = _outputs(dout, group, plan) / (fw * fw)  # (n, rows, cols, c)
        _windows(dx, group, plan)[...] += share[:, :, None, :, None, :]
    return dx[:, : x_shape[1], : x_shape[2]]
