"""BatchNorm while training, on a batch given as shards: the statistics are sums, which
the shards' own sums add up to (ShardStatistics).

BatchNormOnShards replaces cnn_numpy.layers.BatchNorm's training passes
(forward_propagate with training=True, then backpropagate); inference is per
sample and runs as the layer's own passes.  Faster than the layer's code for
three reasons: each shard's sums run on the thread pool; x_hat is never
stored (the backward pass works from x less each shard's own mean); and
elementwise work with a per-channel vector runs on wide views of the data
(_channelwise).

ConvBatchNormMaxPool does the same inside the `deep` network's blocks
(conv + BatchNorm + ReLU + max pool), fused with the layers around it.
"""

from __future__ import annotations

import math
from functools import partial, reduce

import numpy as np

from ..layers import Layer
from . import conv_pool, threads
from .ops import JointOp, fast_engine, in_window_order, pad, relu_mask, unpad


class BatchNormOnShards(JointOp):
    """A BatchNorm's training passes on the shards of one batch:
    [A_prev (n_s, ...), ...] -> [A (n_s, ...), ...]."""

    name = "batch_norm on shards"

    def __init__(self, bn: Layer):
        super().__init__(bn)

    def forward_parts(self, parts: list[np.ndarray]) -> list[np.ndarray]:
        """Each shard's A_prev -> its A, normalized with the whole batch's statistics
        (ShardStatistics)."""
        bn = self.layers[0]
        xs = [A_prev.reshape(-1, A_prev.shape[-1]) for A_prev in parts]  # (m_s, c) each
        self.stats = ShardStatistics(bn, _on_shards(_deviations, xs), parts[0].shape)
        outs = _on_shards(self.stats.normalize, range(len(xs)))
        return [A.reshape(A_prev.shape) for A, A_prev in zip(outs, parts, strict=True)]

    def backward_parts(self, dparts: list[np.ndarray], owned: bool,
                       need_dx: bool) -> list[np.ndarray] | None:
        """Each shard's dA -> its dA_prev (None without need_dx), after forward_parts on
        the same shards; dgamma and dbeta summed over the shards in shard order."""
        stats = self.stats
        ds = [dA.reshape(c.shape) for dA, c in zip(dparts, stats.centered, strict=True)]
        sums = _on_shards(lambda s, d: stats.gradient_sums(s, d, _column_sums(d)),
                          range(len(ds)), ds)
        self.grads = stats.gradients(sums)
        if not need_dx:
            return None
        dxs = _on_shards(lambda s, d: stats.input_gradient(s, d if owned else d.copy()),
                         range(len(ds)), ds)
        return [d.reshape(dA.shape) for d, dA in zip(dxs, dparts, strict=True)]

    def gradients(self):
        return [self.grads]


class ConvBatchNormMaxPool(JointOp):
    """ConvLayer + BatchNorm [+ ReLULayer] + PoolLayer_Max while training, on the shards of
    one batch together (the `deep` network's blocks).

    Faster than the four operations apart, for three reasons:
      - two meetings of the shards each way instead of four and three: the
        convolution and the statistics' sums in one task per shard; the
        normalization, ReLU and pool in the next (forward).  Backward, the
        ReLU mask, the pool's routing and the gradient sums in one, then
        BatchNorm's input gradient written over dA and the convolution's
        backward pass;
      - on im2col, with a p x p pool of stride p that tiles Z, the convolution
        writes Z in pool window order (conv_pool.py); BatchNorm is per channel,
        so it runs on that order unchanged and the pool reads contiguous pieces;
      - the ReLU runs after the pool (as in ConvMaxPool), and sum(dA) comes from
        the pooled gradient, p*p times shorter.
    Each layer's engine is its own; the window order needs im2col for both.
    """

    def __init__(self, conv: Layer, bn: Layer, relu: Layer | None, pool: Layer):
        super().__init__(*(layer for layer in (conv, bn, relu, pool) if layer is not None))
        self.conv, self.bn, self.pool, self.relu = conv, bn, pool, relu is not None
        self.name = "conv+batch_norm+relu+max_pool" if self.relu else "conv+batch_norm+max_pool"

    def forward_parts(self, parts: list[np.ndarray]) -> list[np.ndarray]:
        """Each shard's A_prev (n_s, ih, iw, c) -> its pooled output (n_s, ph, pw, nf)."""
        conv, pool = self.conv, self.pool
        self.conv_engine, self.pool_engine = fast_engine(conv), fast_engine(pool)
        self.pads = conv.pads(parts[0].shape[1], parts[0].shape[2])
        oh, ow, nf = conv.output_shape(parts[0].shape[1:])
        self.window_order = in_window_order(conv, pool, parts[0].shape[1:])
        convolved = _on_shards(self._convolve, parts)
        self.conv_caches, self.shapes, deviations = zip(*convolved, strict=True)
        self.stats = ShardStatistics(self.bn, deviations, (len(parts[0]), oh, ow, nf))
        pooled = _on_shards(self._normalize_and_pool, range(len(parts)))
        self.pool_caches, self.outputs = zip(*pooled, strict=True)
        return list(self.outputs)

    def _convolve(self, A: np.ndarray):
        """One shard: (the convolution's cache, Z's shape, _deviations of Z)."""
        conv, x = self.conv, pad(A, self.pads)
        if self.window_order:
            Z, cache = conv_pool.conv_forward(x, conv.W, conv.b, conv.stride,
                                              self.pool.filter_width)
        else:
            Z, cache = self.conv_engine.conv_forward(x, conv.W, conv.b, conv.stride)
        return cache, Z.shape, _deviations(Z.reshape(-1, Z.shape[-1]))

    def _normalize_and_pool(self, s: int):
        """Shard s: (the pool's cache, the pooled output with the ReLU applied)."""
        Y = self.stats.normalize(s).reshape(self.shapes[s])
        if self.window_order:
            P, cache = conv_pool.max_pool_forward(Y, argmax=True)
        else:
            P, cache = self.pool_engine.max_pool_forward(Y, self.pool.filter_width,
                                                         self.pool.stride, argmax=True)
        return cache, (np.maximum(P, 0, out=P) if self.relu else P)

    def backward_parts(self, dparts: list[np.ndarray], owned: bool,
                       need_dx: bool) -> list[np.ndarray | None]:
        """Each shard's dA (n_s, ph, pw, nf) -> its dA_prev (n_s, ih, iw, c), or None
        without need_dx; the layers' gradients in gradients()."""
        shards = range(len(dparts))
        routed = _on_shards(lambda s, dA: self._route(s, dA, owned), shards, dparts)
        self.bn_grads = self.stats.gradients([sums for _, sums in routed])
        dxs = _on_shards(self._conv_backward, shards, [d for d, _ in routed],
                         [need_dx] * len(dparts))
        dWs, dbs = [dW for _, dW, _ in dxs], [db for _, _, db in dxs]
        self.conv_grads = {"dW": _add(dWs), "db": _add(dbs)}
        return None if not need_dx else [dx for dx, _, _ in dxs]

    def _route(self, s: int, dA: np.ndarray, owned: bool):
        """Shard s: dA through the ReLU and the pool -> (BatchNorm's dA (m_s, nf), its sums)."""
        if self.relu:
            dA = relu_mask(dA, self.outputs[s], owned)
        if self.window_order:
            d = conv_pool.max_pool_backward(dA, self.pool_caches[s])
        else:
            d = self.pool_engine.max_pool_backward(dA, self.pool_caches[s])
        d = d.reshape(-1, d.shape[-1])
        # Every pooled gradient lands on one element of Z, so sum(d) is sum(dA).
        return d, self.stats.gradient_sums(s, d, _column_sums(dA.reshape(-1, dA.shape[-1])))

    def _conv_backward(self, s: int, d: np.ndarray, need_dx: bool):
        """Shard s: BatchNorm's dA -> (the conv's dA_prev or None, dW, db)."""
        dZ = self.stats.input_gradient(s, d).reshape(self.shapes[s])
        if self.window_order:
            dx, dW, db = conv_pool.conv_backward(dZ, self.conv_caches[s], need_dx)
        else:
            dx, dW, db = self.conv_engine.conv_backward(dZ, self.conv_caches[s], need_dx)
        return unpad(dx, self.pads), dW, db

    def gradients(self):
        return [self.conv_grads, self.bn_grads] + [{} for _ in self.layers[2:]]


class ShardStatistics:
    """One BatchNorm's training statistics over the shards of a batch, from each shard's
    column sums and squared deviations from its own mean (_deviations), combined in
    shard order (Chan, Golub and LeVeque's pairwise formula, as stable as two
    passes over the whole batch):

        mu = sum_s m_s mu_s / m,   m var = sum_s (M2_s + m_s (mu_s - mu)^2)

    where shard s has m_s values per channel, mean mu_s and squared deviations
    M2_s.  Each shard keeps x - mu_s (`centered`); x - mu is that less
    delta_s = mu - mu_s, which the per-channel terms below take in instead of
    a pass over the data.  With one shard delta is 0: the plain two-pass formula.
    Updates the layer's running statistics.
    """

    def __init__(self, bn: Layer, deviations: list[tuple[np.ndarray, np.ndarray, np.ndarray]],
                 shape: tuple[int, ...]):
        sums, centered, squares = zip(*deviations, strict=True)
        counts = [c.shape[0] for c in centered]
        m = sum(counts)
        if m < 2:  # shape: the first shard's input, for the message
            raise ValueError(f"BatchNorm: training needs more than one value per channel, "
                             f"got input of shape {shape}; use batches of 2 or more")
        means = [total / k for total, k in zip(sums, counts, strict=True)]
        mu = _add(sums) / m
        spread = _add([k * (mean - mu) ** 2 for k, mean in zip(counts, means, strict=True)])
        var = (_add(squares) + spread) / m if len(counts) > 1 else squares[0] / m
        bn.running_mean *= 1 - bn.momentum
        bn.running_mean += bn.momentum * mu
        bn.running_var *= 1 - bn.momentum
        bn.running_var += bn.momentum * var * (m / (m - 1))
        self.bn, self.m, self.centered = bn, m, list(centered)
        self.deltas = [mu - mean for mean in means]
        self.inv_std = (1 / np.sqrt(var + bn.eps)).astype(centered[0].dtype, copy=False)
        self.scale = bn.gamma * self.inv_std

    def normalize(self, s: int) -> np.ndarray:
        """Shard s's A (m_s, c) = (x - mu) * gamma / std + beta."""
        shift = self.bn.beta - self.deltas[s] * self.scale
        return _scale_shift(self.centered[s], self.scale, shift)

    def gradient_sums(self, s: int, d: np.ndarray, dbeta: np.ndarray):
        """Shard s's (sum(dA), sum(dA (x - mu))) per channel, from its dA (m_s, c) and
        its sum dbeta."""
        return dbeta, np.einsum("ij,ij->j", d, self.centered[s]) - self.deltas[s] * dbeta

    def gradients(self, sums) -> dict[str, np.ndarray]:
        """The batch's dbeta = sum(dA) and dgamma = sum(dA x_hat) from the shards' sums."""
        self.dbeta = _add([s[0] for s in sums])
        self.dgamma = _add([s[1] for s in sums]) * self.inv_std
        return {"dgamma": self.dgamma, "dbeta": self.dbeta}

    def input_gradient(self, s: int, d: np.ndarray) -> np.ndarray:
        """Shard s's dx = gamma / std (dA - dbeta / m - x_hat dgamma / m), written over its
        dA d (m_s, c), after gradients."""
        slope = self.scale * self.inv_std * self.dgamma / self.m
        shift = self.scale * self.dbeta / self.m - self.deltas[s] * slope
        d_wide, centered, scale, shift, slope = _channelwise(
            d, self.centered[s], self.scale, shift, slope)
        d_wide *= scale
        d_wide -= shift
        d_wide -= centered * slope
        return d


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
