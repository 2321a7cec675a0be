"""BatchNorm: normalize each channel over the batch, then scale and shift."""

from __future__ import annotations

import math
import numbers
from functools import partial, reduce

import numpy as np

from .. import parallel
from .base import Layer


class BatchNorm(Layer):
    """Batch normalization (Ioffe & Szegedy, 2015) with PyTorch's conventions.

    Per channel c of an (n, h, w, c) input (statistics over n, h and w), or
    per feature of an (n, k) input (statistics over n); m values each:

        training:   mu = mean(x),  var = mean((x - mu)^2)            (biased)
                    running_mean <- (1 - momentum) running_mean + momentum mu
                    running_var  <- (1 - momentum) running_var + momentum var m / (m - 1)
        otherwise:  mu = running_mean,  var = running_var
        x_hat = (x - mu) / sqrt(var + eps),   A = gamma x_hat + beta

    Backward, with sums over the same m values:
        dbeta = sum(dA),  dgamma = sum(dA x_hat)
        training:   dx = gamma / sqrt(var + eps) (dA - dbeta / m - x_hat dgamma / m)
                    (mu and var depend on x too: the two extra terms)
        otherwise:  dx = gamma / sqrt(var + eps) dA

    Shapes: A_prev (n, h, w, c) or (n, k) -> A the same;
            gamma, beta (trained), running_mean, running_var (buffers): (c,) or (k,)

    The running statistics start at mean 0 and variance 1 and after k
    training batches still hold (1 - momentum)^k of that start: a net trained
    for only a few dozen batches predicts poorly in inference mode until they
    have caught up with the data.
    """

    input_ndims = (1, 3)

    def __init__(self, momentum: float = 0.1, eps: float = 1e-5):
        for what, value, ok in (("momentum", momentum, lambda v: 0 <= v <= 1),
                                ("eps", eps, lambda v: 0 < v < np.inf)):
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not ok(value):
                raise ValueError(f"BatchNorm: {what} must be a number "
                                 f"{'in [0, 1]' if what == 'momentum' else '> 0'}, "
                                 f"got {value!r}")
        self.momentum, self.eps = float(momentum), float(eps)
        self.gamma = self.beta = self.dgamma = self.dbeta = None
        self.running_mean = self.running_var = None

    def config(self) -> dict:
        return {"momentum": self.momentum, "eps": self.eps}

    def per_sample(self) -> bool:
        return not self.training  # training normalizes with statistics of the whole batch

    def takes_shards(self) -> bool:
        return self.training  # the statistics are sums, which shards can add up

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(input_shape)

    def param_shapes(self, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        return {"gamma": (input_shape[-1],), "beta": (input_shape[-1],)}

    def buffer_shapes(self, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        return {"running_mean": (input_shape[-1],), "running_var": (input_shape[-1],)}

    def build(self, input_shape, rng, dtype) -> None:
        super().build(input_shape, rng, dtype)
        c = input_shape[-1]
        self.gamma, self.beta = np.ones(c, dtype=dtype), np.zeros(c, dtype=dtype)
        self.running_mean, self.running_var = np.zeros(c, dtype=dtype), np.ones(c, dtype=dtype)

    def params(self) -> dict[str, np.ndarray]:
        return {"gamma": self.gamma, "beta": self.beta} if self.built else {}

    def grads(self) -> dict[str, np.ndarray]:
        return {"gamma": self.dgamma, "beta": self.dbeta}

    def buffers(self) -> dict[str, np.ndarray]:
        return {"running_mean": self.running_mean, "running_var": self.running_var} \
            if self.built else {}

    def check_buffers(self) -> None:
        if (self.running_var < 0).any():
            raise ValueError("BatchNorm: running_var has negative values")

    def forward_propagate(self, A_prev: np.ndarray) -> np.ndarray:
        """A_prev (n, h, w, c) or (n, k) -> A, the same shape."""
        return self.forward_shards([A_prev])[0]

    def backpropagate(self, dA: np.ndarray) -> np.ndarray | None:
        """dA (like A) -> dA_prev (like A_prev); stores dgamma and dbeta."""
        dx = self.backpropagate_shards([dA])
        return None if dx is None else dx[0]

    def forward_shards(self, parts: list[np.ndarray]) -> list[np.ndarray]:
        """The forward pass of one batch given as shards (n_s, ...) -> each shard's A.

        The same function as forward_propagate on the whole batch, computed
        on the thread pool: each shard's column sums and squared deviations
        from its own mean first, combined in shard order (Chan, Golub and
        LeVeque's pairwise formula, as stable as two passes over the whole
        batch), then each shard is normalized with the batch's statistics:

            mu = sum_s m_s mu_s / m,   m var = sum_s (M2_s + m_s (mu_s - mu)^2)

        where shard s has m_s values per channel, mean mu_s and squared
        deviations M2_s.  With one shard this is the plain two-pass formula.
        """
        for A_prev in parts:
            self._check_input(A_prev)
        self._ensure_built(parts[0])
        xs = [A_prev.reshape(-1, A_prev.shape[-1]) for A_prev in parts]  # (m_s, c) each
        m = sum(x.shape[0] for x in xs)
        if self.training:
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
            self.running_mean *= 1 - self.momentum
            self.running_mean += self.momentum * mu
            self.running_var *= 1 - self.momentum
            self.running_var += self.momentum * var * (m / (m - 1))
        else:
            centered = [_minus(x, self.running_mean) for x in xs]
            var = self.running_var
        # x_hat = centered * inv_std is never stored: the backward pass works from centered.
        self._centered, self._batch_statistics, self._m = list(centered), self.training, m
        self._inv_std = (1 / np.sqrt(var + self.eps)).astype(xs[0].dtype, copy=False)
        scale = self.gamma * self._inv_std
        outs = _on_shards(lambda c: _scale_shift(c, scale, self.beta), self._centered)
        return [A.reshape(A_prev.shape) for A, A_prev in zip(outs, parts, strict=True)]

    def backpropagate_shards(self, dparts: list[np.ndarray]) -> list[np.ndarray] | None:
        """Each shard's dA -> its dA_prev (None for the first layer of a Net), after
        forward_shards on the same shards; stores the batch's dgamma and dbeta, summed
        over the shards in shard order."""
        ds = [dA.reshape(c.shape) for dA, c in zip(dparts, self._centered, strict=True)]
        inv_std = self._inv_std
        sums = _on_shards(lambda d, c: (_column_sums(d), np.einsum("ij,ij->j", d, c)),
                          ds, self._centered)
        self.dbeta = _add([s[0] for s in sums])
        self.dgamma = _add([s[1] for s in sums]) * inv_std  # sum(dA * x_hat)
        if not self.needs_input_grad:
            return None
        scale = self.gamma * inv_std
        if self._batch_statistics:  # mu and var depend on x too: the two extra terms
            shift = scale * self.dbeta / self._m
            slope = scale * inv_std * self.dgamma / self._m
        else:
            shift = slope = None

        def dx(d: np.ndarray, centered: np.ndarray) -> np.ndarray:
            if shift is None:
                d_wide, scale_wide = _channelwise(d, scale)
                return (d_wide * scale_wide).reshape(d.shape)
            d_wide, centered, scale_wide, shift_wide, slope_wide = _channelwise(
                d, centered, scale, shift, slope)
            out = d_wide * scale_wide
            out -= shift_wide
            out -= centered * slope_wide
            return out.reshape(d.shape)

        dxs = _on_shards(dx, ds, self._centered)
        return [d.reshape(dA.shape) for d, dA in zip(dxs, dparts, strict=True)]

    def _check_input(self, A_prev: np.ndarray) -> None:
        if not isinstance(A_prev, np.ndarray) or A_prev.ndim not in (2, 4) \
                or A_prev.shape[0] == 0:
            raise ValueError("BatchNorm: expected a non-empty (n, height, width, channels) or "
                             f"(n, features) array, got "
                             f"{getattr(A_prev, 'shape', type(A_prev).__name__)}")
        if self.built and A_prev.shape[-1] != self.gamma.shape[0]:
            raise ValueError(f"BatchNorm: built for {self.gamma.shape[0]} channels, got input "
                             f"of shape {A_prev.shape}")


def _on_shards(fn, *shard_lists):
    """[fn(*args) for each shard's args], on the thread pool (parallel.run_all)."""
    return parallel.run_all([partial(fn, *args) for args in zip(*shard_lists, strict=True)])


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


def _minus(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """x (m, c) - y (c,), a new array (m, c)."""
    x_wide, y_wide = _channelwise(x, y)
    return (x_wide - y_wide).reshape(x.shape)


def _subtract(x: np.ndarray, y: np.ndarray) -> None:
    """x (m, c) -= y (c,), in place."""
    x_wide, y_wide = _channelwise(x, y)
    x_wide -= y_wide


def _deviations(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """x (m, c) -> (column sums (c,), x minus its column means (m, c), the sums of their
    squares (c,))."""
    sums = _column_sums(x)
    centered = _minus(x, sums / x.shape[0])
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
