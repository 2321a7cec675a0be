"""FlatLayer: turns each sample's feature map into one vector."""

from __future__ import annotations

import math

import numpy as np

from .base import Layer


class FlatLayer(Layer):
    """Reshape (n, h, w, c) -> (n, h*w*c), row-major; backward reshapes back.

    Any input with two or more dimensions is accepted: all axes after the
    first are flattened.
    """

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (math.prod(input_shape),)

    def forward_propagate(self, A_prev: np.ndarray) -> np.ndarray:
        """A_prev (n, ...) -> A (n, prod(...))."""
        if np.shape(A_prev)[1:] != self.input_shape:  # the first batch, or a new sample shape
            self._check_input(A_prev)
            self._ensure_built(A_prev)
        self.input_batch_shape = A_prev.shape
        return A_prev.reshape(A_prev.shape[0], -1)

    def backpropagate(self, dA: np.ndarray) -> np.ndarray:
        """dA (n, k) -> dA_prev with the input's shape."""
        return dA.reshape(self.input_batch_shape)
