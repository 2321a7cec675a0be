"""Pooling layers: PoolLayer_Max and PoolLayer_Avg (no weights)."""

from __future__ import annotations

import numpy as np

from ..engines import check_engine, get_engine
from ..engines.geometry import output_size
from .base import Layer, check_ndim, positive_int


class PoolLayer(Layer):
    """Slides an fw x fw window with stride s over each channel and reduces it.

    Shapes:  A_prev (n, ih, iw, c)  ->  A (n, oh, ow, c),  oh = (ih - fw) // s + 1

    stride defaults to filter_width, so PoolLayer_Max(2) is the usual
    non-overlapping 2x2 pooling; any stride >= 1 works, overlapping included.
    Subclasses name the engine functions to use.
    """

    _forward_name: str
    _backward_name: str
    input_ndims = (3,)

    def __init__(self, filter_width: int, stride: int | None = None, engine: str | None = None):
        name = type(self).__name__
        self.filter_width = positive_int(filter_width, "filter_width", name)
        self.stride = self.filter_width if stride is None else positive_int(stride, "stride", name)
        self.engine = check_engine(engine)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        ih, iw, c = input_shape
        fw, s = self.filter_width, self.stride
        return output_size(ih, fw, s), output_size(iw, fw, s), c

    def config(self) -> dict:
        return {"filter_width": self.filter_width, "stride": self.stride, "engine": self.engine}

    def _check_input(self, A_prev: np.ndarray) -> None:
        """ValueError unless A_prev is (n, ih, iw, c) with room for the window."""
        name = type(self).__name__
        check_ndim(A_prev, 4, name, "of shape (n, height, width, channels)")
        if min(A_prev.shape[1], A_prev.shape[2]) < self.filter_width:
            raise ValueError(f"{name}: a {self.filter_width}x{self.filter_width} window does not "
                             f"fit in the input of shape {A_prev.shape}; use a smaller window")

    def forward_propagate(self, A_prev: np.ndarray) -> np.ndarray:
        """A_prev (n, ih, iw, c) -> A (n, oh, ow, c); keeps A and the engine's cache."""
        if np.shape(A_prev)[1:] != self.input_shape:  # the first batch, or a new sample shape
            self._check_input(A_prev)
            self._ensure_built(A_prev)
        forward = getattr(get_engine(self.engine), self._forward_name)
        self.A, self.cache = forward(A_prev, self.filter_width, self.stride)
        return self.A

    def backpropagate(self, dA: np.ndarray) -> np.ndarray:
        """dA (n, oh, ow, c) -> dA_prev (n, ih, iw, c)."""
        return getattr(get_engine(self.engine), self._backward_name)(dA, self.cache)


class PoolLayer_Max(PoolLayer):
    """A[i, h, w, c] = max of the window; its gradient goes to the window's FIRST
    maximum in row-major order (PyTorch's rule, so ties never split engines)."""

    _forward_name = "max_pool_forward"
    _backward_name = "max_pool_backward"


class PoolLayer_Avg(PoolLayer):
    """A[i, h, w, c] = mean of the window; each element gets dA / fw^2 back."""

    _forward_name = "avg_pool_forward"
    _backward_name = "avg_pool_backward"
