"""Standalone activation layers, for writing ConvLayer -> BatchNorm -> ReLULayer.

Each applies one function elementwise to an input of any shape and has no
weights:  A = g(Z),  dZ = dA * g'(Z).
"""

from __future__ import annotations

import numbers

import numpy as np

from . import activations as act
from .base import Layer


class ActivationLayer(Layer):
    """Base of the activation layers: Z (n, ...) -> A = g(Z) (n, ...), the same shape.

    Subclasses define `function(Z)` and `derivative(dA)`, which returns
    dA * g'(Z) from what forward_propagate kept.
    """

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(input_shape)

    def function(self, Z: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def derivative(self, dA: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def forward_propagate(self, A_prev: np.ndarray) -> np.ndarray:
        """Z (n, ...) -> A (n, ...)."""
        if np.shape(A_prev)[1:] != self.input_shape:  # the first batch, or a new sample shape
            self._check_input(A_prev)
            self._ensure_built(A_prev)
        self.Z = A_prev
        self.A = self.function(A_prev)
        return self.A

    def backpropagate(self, dA: np.ndarray) -> np.ndarray:
        """dA (n, ...) -> dZ (n, ...)."""
        return self.derivative(dA)


class ReLULayer(ActivationLayer):
    """A = max(Z, 0);  dZ = dA where Z > 0, else 0."""

    def function(self, Z: np.ndarray) -> np.ndarray:
        return act.relu(Z)

    def derivative(self, dA: np.ndarray) -> np.ndarray:
        return act.relu_backward(dA, self.Z)


class LeakyReLULayer(ActivationLayer):
    """A = Z where Z > 0, else alpha * Z;  dZ = dA where Z > 0, else alpha * dA."""

    def __init__(self, alpha: float = 0.01):
        if isinstance(alpha, bool) or not isinstance(alpha, numbers.Real) \
                or not np.isfinite(alpha):
            raise ValueError(f"LeakyReLULayer: alpha must be a finite number, got {alpha!r}")
        self.alpha = float(alpha)

    def config(self) -> dict:
        return {"alpha": self.alpha}

    def function(self, Z: np.ndarray) -> np.ndarray:
        return np.where(Z > 0, Z, Z * np.asarray(self.alpha, dtype=Z.dtype))

    def derivative(self, dA: np.ndarray) -> np.ndarray:
        return np.where(self.Z > 0, dA, dA * np.asarray(self.alpha, dtype=dA.dtype))


class TanhLayer(ActivationLayer):
    """A = tanh(Z);  dZ = dA * (1 - A^2)."""

    def function(self, Z: np.ndarray) -> np.ndarray:
        return np.tanh(Z)

    def derivative(self, dA: np.ndarray) -> np.ndarray:
        return dA * (1 - self.A * self.A)


class SigmoidLayer(ActivationLayer):
    """A = 1 / (1 + exp(-Z)), computed without overflow;  dZ = dA * A * (1 - A)."""

    def function(self, Z: np.ndarray) -> np.ndarray:
        return act.sigmoid(Z)

    def derivative(self, dA: np.ndarray) -> np.ndarray:
        return act.sigmoid_backward(dA, self.A)
