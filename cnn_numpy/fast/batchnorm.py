"""BatchNorm while training, on a batch given as shards: the statistics are sums, which
the shards' own sums add up to.

Replaces cnn_numpy.layers.BatchNorm's training passes (forward_propagate with
training=True, then backpropagate); inference is per sample and runs as the
layer's own passes.  Faster than the layer's code for three reasons: each
shard's sums run on the thread pool; x_hat is never stored (the backward
pass works from x - mu); and elementwise work with a per-channel vector runs
on wide views of the data (_channelwise).
"""

from __future__ import annotations

import math
from functools import partial, reduce

import numpy as np

from ..layers import Layer
from . import threads
from .ops import Op


class BatchNormOnShards(Op):
    """forward_parts / backward_parts: a BatchNorm's training passes on the shards of one
    batch [A_prev (n_s, ...), ...] -> [A (n_s, ...), ...]; forward / backward on a whole
    batch are the same with one shard."""

    name = "batch_norm on shards"

    def __init__(self, bn: Layer):
        super().__init__(bn)

    def forward(self, A, training):
        return self.forward_parts([A])[0]

    def backward(self, dA, owned, need_dx):
        dx = self.backward_parts([dA], need_dx)
        return None if dx is None else dx[0]

    def forward_parts(self, parts: list[np.ndarray]) -> list[np.ndarray]:
        """Each shard's column sums and squared deviations from its own mean first,
        combined in shard order (Chan, Golub and LeVeque's pairwise formula, as stable
        as two passes over the whole batch), then each shard is normalized with the
        batch's statistics:

            mu = sum_s m_s mu_s / m,   m var = sum_s (M2_s + m_s (mu_s - mu)^2)

        where shard s has m_s values per channel, mean mu_s and squared
        deviations M2_s.  With one shard this is the plain two-pass formula.
        """
        bn = self.layers[0]
        xs = [A_prev.reshape(-1, A_prev.shape[-1]) for A_prev in parts]  # (m_s, c) each
        m = sum(x.shape[0] for x in xs)
        if m < 2:
            raise ValueError(f"BatchNorm: training needs more than one value per channel, "
                             f"got input of shape {parts[0].shape}; use batches of 2 or more")
        sums, centered, squares = zip(*_on_shards(_deviations, xs), strict=True)
        mu, var = sums[0] / xs[0].shape[0], squares[0] / m
        if len(xs) > 1:  # combine the shards' statistics, in shard order
            counts = [x.shape[0] for x in xs]
            means = [total / k for total, k in zip(sums, counts, strict=True)]
            mu = _add(sums) / m
            spread = _add([k * (mean - mu) ** 2 for k, mean in zip(counts, means, strict=True)])
            var = (_add(squares) + spread) / m
            _on_shards(_subtract, centered, [mu - mean for mean in means])  # now x - mu
        bn.running_mean *= 1 - bn.momentum
        bn.running_mean += bn.momentum * mu
        bn.running_var *= 1 - bn.momentum
        bn.running_var += bn.momentum * var * (m / (m - 1))
        self.centered, self.m = list(centered), m
        self.inv_std = (1 / np.sqrt(var + bn.eps)).astype(xs[0].dtype, copy=False)
        scale = bn.gamma * self.inv_std
        outs = _on_shards(lambda c: _scale_shift(c, scale, bn.beta), self.centered)
        return [A.reshape(A_prev.shape) for A, A_prev in zip(outs, parts, strict=True)]

    def backward_parts(self, dparts: list[np.ndarray], need_dx: bool) -> list[np.ndarray] | None:
        """Each shard's dA -> its dA_prev (None without need_dx), after forward_parts on
        the same shards; dgamma and dbeta summed over the shards in shard order."""
        bn = self.layers[0]
        ds = [dA.reshape(c.shape) for dA, c in zip(dparts, self.centered, strict=True)]
        inv_std = self.inv_std
        sums = _on_shards(lambda d, c: (_column_sums(d), np.einsum("ij,ij->j", d, c)),
                          ds, self.centered)
        dbeta = _add([s[0] for s in sums])
        dgamma = _add([s[1] for s in sums]) * inv_std  # sum(dA * x_hat)
        self.grads = {"dgamma": dgamma, "dbeta": dbeta}
        if not need_dx:
            return None
        scale = bn.gamma * inv_std
        shift = scale * dbeta / self.m  # mu and var depend on x too: the two extra terms
        slope = scale * inv_std * dgamma / self.m

        def dx(d: np.ndarray, centered: np.ndarray) -> np.ndarray:
            d_wide, centered, scale_wide, shift_wide, slope_wide = _channelwise(
                d, centered, scale, shift, slope)
            out = d_wide * scale_wide
            out -= shift_wide
            out -= centered * slope_wide
            return out.reshape(d.shape)

        dxs = _on_shards(dx, ds, self.centered)
        return [d.reshape(dA.shape) for d, dA in zip(dxs, dparts, strict=True)]

    def gradients(self):
        return [self.grads]


def _on_shards(fn, *shard_lists):
    """[fn(*args) for each shard's args], on the thread pool (threads.run_all)."""
    return threads.run_all([partial(fn, *args) for args in zip(*shard_lists, strict=True)])


def _add(arrays: list[np.ndarray]) -> np.ndarray:
    """The sum of the arrays, added in list order (the first one itself if it is alone)."""
    return reduce(np.add, arrays)


def _channelwise(x: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """x (m, c) and others, (m, c) arrays or (c,) vectors, shaped for fast elementwise work:
    (m, c) -> a (m/k, k*c) view, (c,) -> tiled k times, k*c about 1,024 (k divides m).

    NumPy's inner loop runs along the last axis: on rows of a few dozen
    channels it restarts every few dozen numbers, and a product with a
    per-channel vector took twice as long.  Elementwise results on the
    wide shapes reshape back to (m, c); each number is computed as before.
    """
    m, c = x.shape
    arrays = [a for a in (x, *others) if a.ndim == 2]
    k = math.gcd(m, max(1, 1024 // c)) if all(a.flags.c_contiguous for a in arrays) else 1
    return [a.reshape(-1, k * c) if a.ndim == 2 else np.tile(a, k) for a in (x, *others)]


def _subtract(x: np.ndarray, y: np.ndarray) -> None:
    """x (m, c) -= y (c,), in place."""
    x_wide, y_wide = _channelwise(x, y)
    x_wide -= y_wide


def _deviations(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x (m, c) -> (column sums (c,), x minus its column means (m, c), the sums of their
    squares (c,))."""
    sums = _column_sums(x)
    x_wide, mean_wide = _channelwise(x, sums / x.shape[0])
    centered = (x_wide - mean_wide).reshape(x.shape)
    return sums, centered, np.einsum("ij,ij->j", centered, centered)


def _scale_shift(centered: np.ndarray, scale: np.ndarray, beta: np.ndarray) -> np.ndarray:
    """centered (m, c) * scale (c,) + beta (c,), in one new array (m, c)."""
    centered_wide, scale, beta = _channelwise(centered, scale, beta)
    A = centered_wide * scale
    A += beta
    return A.reshape(centered.shape)


def _column_sums(x: np.ndarray) -> np.ndarray:
    """x (m, c) -> the sum of each column (c,), as one BLAS product (several times faster
    than x.sum(axis=0) on a tall, narrow array, and summed in blocks, so more accurate)."""
    return np.ones(x.shape[0], dtype=x.dtype) @ x
