"""Pooling layers: PoolLayer_Max and PoolLayer_Avg (no weights)."""

from __future__ import annotations

import numpy as np

from ..engines import check_engine, get_engine, im2col
from ..engines.geometry import output_size
from .activations import relu_backward
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
    #: Set to True by a Net together with the ConvLayer before's pool_window: the
    #: input may then come arranged by window element.
    reads_by_window: bool = False

    def __init__(self, filter_width: int, stride: int | None = None, engine: str | None = None):
        name = type(self).__name__
        self.filter_width = positive_int(filter_width, "filter_width", name)
        self.stride = self.filter_width if stride is None else positive_int(stride, "stride", name)
        self.engine = check_engine(engine)

    def per_sample(self) -> bool:
        return True

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        ih, iw, c = input_shape
        fw, s = self.filter_width, self.stride
        return output_size(ih, fw, s), output_size(iw, fw, s), c

    def config(self) -> dict:
        return {"filter_width": self.filter_width, "stride": self.stride, "engine": self.engine}

    def forward_propagate(self, A_prev: np.ndarray) -> np.ndarray:
        """A_prev (n, ih, iw, c) -> A (n, oh, ow, c).

        With reads_by_window, A_prev may come arranged by window element,
        (fw, fw, n, oh, ow, c), from the ConvLayer before; the im2col engine
        reads that layout, whatever this layer's engine.
        """
        if self._by_window(A_prev):
            _, _, n, oh, ow, c = A_prev.shape  # windows tile the input: stride == fw
            if not self.built:
                self.build((n, oh * self.filter_width, ow * self.filter_width, c), self.rng,
                           A_prev.dtype)
            self._engine = im2col
        else:
            self._check_input(A_prev)
            self._ensure_built(A_prev)
            self._engine = get_engine(self.engine)
        forward = getattr(self._engine, self._forward_name)
        self.A, self._cache = forward(A_prev, self.filter_width, self.stride,
                                      **self._forward_options())
        return self.A

    def _check_input(self, A_prev: np.ndarray) -> None:
        name = type(self).__name__
        check_ndim(A_prev, 4, name, "of shape (n, height, width, channels)")
        if min(A_prev.shape[1], A_prev.shape[2]) < self.filter_width:
            raise ValueError(f"{name}: a {self.filter_width}x{self.filter_width} window does not "
                             f"fit in the input of shape {A_prev.shape}; use a smaller window")

    def _by_window(self, A_prev: np.ndarray) -> bool:
        """True if A_prev is a ConvLayer's output arranged by this layer's window elements."""
        fw = self.filter_width
        return (self.reads_by_window and isinstance(A_prev, np.ndarray)
                and A_prev.ndim == 6 and A_prev.shape[:2] == (fw, fw) and self.stride == fw)

    def _forward_options(self) -> dict:
        """Keyword arguments for the engine's forward function."""
        return {}

    def backpropagate(self, dA: np.ndarray) -> np.ndarray | None:
        """dA (n, oh, ow, c) -> dA_prev (n, ih, iw, c), in the layout A_prev came in."""
        if not self.needs_input_grad:
            return None
        return getattr(self._engine, self._backward_name)(dA, self._cache)


class PoolLayer_Max(PoolLayer):
    """A[i, h, w, c] = max of the window; its gradient goes to the window's FIRST
    maximum in row-major order (PyTorch's rule, so ties never split engines)."""

    _forward_name = "max_pool_forward"
    _backward_name = "max_pool_backward"
    #: Set to True by a Net when the layer before is a ReLU (ReLULayer, ConvLayer_ReLU).
    #: In the Net's passes this layer then takes that ReLU over: max pooling and ReLU
    #: commute, max(relu(Z)) = relu(max(Z)), so the ReLU runs on the pooled
    #: output and its mask on the pooled gradient, fw*fw times fewer numbers each,
    #: and the layer before passes Z on unchanged.
    applies_relu: bool = False

    def _forward_options(self) -> dict:
        return {"argmax": self.training}  # where each maximum is: training needs it

    def forward_propagate(self, A_prev: np.ndarray) -> np.ndarray:
        """A_prev (n, ih, iw, c) -> A (n, oh, ow, c), then the ReLU if applies_relu."""
        A = super().forward_propagate(A_prev)
        if self.applies_relu:
            np.maximum(A, 0, out=A)
        return A

    def backpropagate(self, dA: np.ndarray) -> np.ndarray | None:
        """dA (n, oh, ow, c) -> dA_prev (n, ih, iw, c), through the ReLU first if
        applies_relu: zero where A is 0.  A window whose maximum is positive
        sends its gradient to an input that the ReLU kept, so routing after
        the mask gives what the ReLU's own mask would."""
        if self.applies_relu and self.needs_input_grad:
            dA = relu_backward(dA, self.A, overwrite=self.owns_grad)
        return super().backpropagate(dA)


class PoolLayer_Avg(PoolLayer):
    """A[i, h, w, c] = mean of the window; each element gets dA / fw^2 back."""

    _forward_name = "avg_pool_forward"
    _backward_name = "avg_pool_backward"
