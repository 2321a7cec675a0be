"""Dropout: randomly silence units while training, so no unit can rely on another."""

from __future__ import annotations

import numbers

import numpy as np

from .base import Layer


class Dropout(Layer):
    """Inverted dropout with drop probability `rate`.

    Training (Net.train):  mask = [u >= rate] / (1 - rate),  u ~ Uniform[0, 1) per element
                           A = A_prev * mask,   dA_prev = dA * mask
    Otherwise (evaluate, predict):  A = A_prev,  dA_prev = dA

    Kept units are scaled by 1 / (1 - rate) while training, so each unit's
    expected value is the same in both modes and inference needs no change.
    The masks come from `self.rng`, which a Net sets to its own seeded
    generator: a seeded run draws the same masks every time.

    Shapes: any (n, ...) -> the same shape.
    """

    def __init__(self, rate: float = 0.5):
        if isinstance(rate, bool) or not isinstance(rate, numbers.Real) or not 0 <= rate < 1:
            raise ValueError(f"Dropout: rate must be a number in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.mask: np.ndarray | None = None

    def config(self) -> dict:
        return {"rate": self.rate}

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return tuple(input_shape)

    def forward_propagate(self, A_prev: np.ndarray) -> np.ndarray:
        """A_prev (n, ...) -> A (n, ...)."""
        if np.shape(A_prev)[1:] != self.input_shape:  # the first batch, or a new sample shape
            self._check_input(A_prev)
            self._ensure_built(A_prev)
        if not self.training or self.rate == 0:
            self.mask = None
            return A_prev
        if self.rng is None:
            self.rng = np.random.default_rng()
        dtype = A_prev.dtype if A_prev.dtype in (np.float32, np.float64) else np.float64
        keep = self.rng.random(A_prev.shape, dtype=dtype) >= self.rate
        self.mask = keep * np.asarray(1 / (1 - self.rate), dtype=dtype)
        return A_prev * self.mask

    def backpropagate(self, dA: np.ndarray) -> np.ndarray:
        """dA (n, ...) -> dA_prev (n, ...): through the same mask as the forward pass."""
        return dA if self.mask is None else dA * self.mask
