"""BatchNorm: normalize each channel over the batch, then scale and shift."""

from __future__ import annotations

import numbers

import numpy as np
import numpy.typing as npt

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
    param_names = ("gamma", "beta")
    buffer_names = ("running_mean", "running_var")

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

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(input_shape)

    def param_shapes(self, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        return {"gamma": (input_shape[-1],), "beta": (input_shape[-1],)}

    def buffer_shapes(self, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        return {"running_mean": (input_shape[-1],), "running_var": (input_shape[-1],)}

    def build(self, input_shape: tuple[int, ...], rng: np.random.Generator,
              dtype: npt.DTypeLike) -> None:
        super().build(input_shape, rng, dtype)
        c = input_shape[-1]
        self.gamma, self.beta = np.ones(c, dtype=dtype), np.zeros(c, dtype=dtype)
        self.running_mean, self.running_var = np.zeros(c, dtype=dtype), np.ones(c, dtype=dtype)

    def check_buffers(self) -> None:
        if (self.running_var < 0).any():
            raise ValueError("BatchNorm: running_var has negative values")

    def forward_propagate(self, A_prev: np.ndarray) -> np.ndarray:
        """A_prev (n, h, w, c) or (n, k) -> A, the same shape; keeps x_hat and std."""
        if np.shape(A_prev)[1:] != self.input_shape:  # the first batch, or a new sample shape
            self._check_input(A_prev)
            self._ensure_built(A_prev)
        x = A_prev.reshape(-1, A_prev.shape[-1])  # (m, c): one row per value of a channel
        m = x.shape[0]
        if self.training:
            if m < 2:
                raise ValueError(f"BatchNorm: training needs more than one value per channel, "
                                 f"got input of shape {A_prev.shape}; use batches of 2 or more")
            mu = x.mean(axis=0)
            var = ((x - mu) ** 2).mean(axis=0)
            self.running_mean *= 1 - self.momentum
            self.running_mean += self.momentum * mu
            self.running_var *= 1 - self.momentum
            self.running_var += self.momentum * var * (m / (m - 1))
        else:
            mu, var = self.running_mean, self.running_var
        self.std = np.sqrt(var + self.eps)
        self.x_hat = (x - mu) / self.std
        A = self.gamma * self.x_hat + self.beta
        return A.reshape(A_prev.shape)

    def backpropagate(self, dA: np.ndarray) -> np.ndarray:
        """dA (like A) -> dA_prev (like A_prev); stores dgamma and dbeta."""
        d = dA.reshape(self.x_hat.shape)  # (m, c)
        m = d.shape[0]
        self.dbeta = d.sum(axis=0)
        self.dgamma = (d * self.x_hat).sum(axis=0)
        if self.training:
            dx = self.gamma / self.std * (d - self.dbeta / m - self.x_hat * self.dgamma / m)
        else:
            dx = self.gamma / self.std * d
        return dx.reshape(dA.shape)

    def _check_input(self, A_prev: np.ndarray) -> None:
        """ValueError unless A_prev is (n, h, w, c) or (n, k) with the channels the layer
        was built for."""
        if not isinstance(A_prev, np.ndarray) or A_prev.ndim not in (2, 4) \
                or A_prev.shape[0] == 0:
            raise ValueError("BatchNorm: expected a non-empty (n, height, width, channels) or "
                             f"(n, features) array, got "
                             f"{getattr(A_prev, 'shape', type(A_prev).__name__)}")
        if self.built and A_prev.shape[-1] != self.gamma.shape[0]:
            raise ValueError(f"BatchNorm: built for {self.gamma.shape[0]} channels, got input "
                             f"of shape {A_prev.shape}")

