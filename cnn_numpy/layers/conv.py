"""Convolution layers: ConvLayer (linear) and ConvLayer_ReLU."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from ..engines import check_engine, get_engine
from ..engines.geometry import output_size, same_padding
from .activations import relu, relu_backward
from .base import Layer, check_ndim, positive_int


class ConvLayer(Layer):
    """A convolution with no activation: its output is Z.

        Z[i, h, w, f] = sum_{a, b, k} X[i, h*s + a, w*s + b, k] * W[a, b, k, f] + b[f]

    where X is the input after zero padding.

    Shapes:  A_prev (n, ih, iw, c)  ->  Z (n, oh, ow, n_f),  oh = (ih + pad - fw) // s + 1
             W (fw, fw, c, n_f),  b (n_f,)

    padding is an int p (p zero rows/columns on every side), "valid" (0), or
    "same" (TensorFlow's: oh = ceil(ih / s), extra row/column at the end).
    engine picks how the sums are computed (see cnn_numpy.engines); None
    means the Net's choice or the default.
    """

    input_ndims = (3,)
    param_names = ("W", "b")

    def __init__(self, num_filters: int, filter_width: int, stride: int = 1,
                 padding: int | str = 0, engine: str | None = None):
        name = type(self).__name__
        self.num_filters = positive_int(num_filters, "num_filters", name)
        self.filter_width = positive_int(filter_width, "filter_width", name)
        self.stride = positive_int(stride, "stride", name)
        if isinstance(padding, str):
            if padding not in ("valid", "same"):
                raise ValueError(f"{name}: padding must be an int >= 0, 'valid' or 'same', "
                                 f"got {padding!r}")
        elif isinstance(padding, bool) or not isinstance(padding, (int, np.integer)) or padding < 0:
            raise ValueError(f"{name}: padding must be an int >= 0, 'valid' or 'same', "
                             f"got {padding!r}")
        self.padding = padding if isinstance(padding, str) else int(padding)
        self.engine = check_engine(engine)
        self.W: np.ndarray | None = None
        self.b: np.ndarray | None = None
        self.dW: np.ndarray | None = None
        self.db: np.ndarray | None = None

    # -- shapes -----------------------------------------------------------
    def pads(self, ih: int, iw: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """((top, bottom), (left, right)) zero padding for an ih x iw input."""
        if self.padding == "same":
            return (same_padding(ih, self.filter_width, self.stride),
                    same_padding(iw, self.filter_width, self.stride))
        p = 0 if self.padding == "valid" else self.padding
        return (p, p), (p, p)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        ih, iw = input_shape[0], input_shape[1]
        (top, bottom), (left, right) = self.pads(ih, iw)
        fw, s = self.filter_width, self.stride
        oh, ow = output_size(ih + top + bottom, fw, s), output_size(iw + left + right, fw, s)
        return oh, ow, self.num_filters

    # -- weights ----------------------------------------------------------
    def _init_std(self, fan_in: int, fan_out: int) -> float:
        """Glorot (Xavier) normal scale, right for a linear output."""
        return float(np.sqrt(2.0 / (fan_in + fan_out)))

    def param_shapes(self, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        fw, nf = self.filter_width, self.num_filters
        return {"W": (fw, fw, input_shape[2], nf), "b": (nf,)}

    def build(self, input_shape: tuple[int, ...], rng: np.random.Generator,
              dtype: npt.DTypeLike) -> None:
        super().build(input_shape, rng, dtype)
        shapes = self.param_shapes(self.input_shape)
        fw, _, c, nf = shapes["W"]
        std = self._init_std(fw * fw * c, fw * fw * nf)
        self.W = (rng.standard_normal(shapes["W"]) * std).astype(dtype)
        self.b = np.zeros(shapes["b"], dtype=dtype)

    def decayed(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(self.W, self.dW)]

    def config(self) -> dict:
        return {"num_filters": self.num_filters, "filter_width": self.filter_width,
                "stride": self.stride, "padding": self.padding, "engine": self.engine}

    # -- passes -----------------------------------------------------------
    def _check_input(self, A_prev: np.ndarray) -> None:
        """ValueError unless A_prev is (n, ih, iw, c) with the channels the layer was built
        for and room for the filter."""
        name = type(self).__name__
        check_ndim(A_prev, 4, name, "of shape (n, height, width, channels)")
        if self.built and A_prev.shape[3] != self.input_shape[2]:
            raise ValueError(f"{name}: built for {self.input_shape[2]} input channels, "
                             f"got input of shape {A_prev.shape}")
        (top, bottom), (left, right) = self.pads(A_prev.shape[1], A_prev.shape[2])
        if min(A_prev.shape[1] + top + bottom, A_prev.shape[2] + left + right) < self.filter_width:
            raise ValueError(f"{name}: a {self.filter_width}x{self.filter_width} filter does not "
                             f"fit in the padded input of shape {A_prev.shape} with padding "
                             f"{self.padding!r}; use a smaller filter or more padding")

    def forward_propagate(self, A_prev: np.ndarray) -> np.ndarray:
        """A_prev (n, ih, iw, c) -> Z (n, oh, ow, n_f); keeps Z and the engine's cache."""
        if np.shape(A_prev)[1:] != self.input_shape:  # the first batch, or a new sample shape
            self._check_input(A_prev)
            self._ensure_built(A_prev)
        (top, bottom), (left, right) = self._pads = self.pads(A_prev.shape[1], A_prev.shape[2])
        x = np.pad(A_prev, ((0, 0), (top, bottom), (left, right), (0, 0)))
        self.Z, self.cache = get_engine(self.engine).conv_forward(x, self.W, self.b, self.stride)
        return self.Z

    def backpropagate(self, dZ: np.ndarray) -> np.ndarray:
        """dZ (n, oh, ow, n_f) -> dA_prev (n, ih, iw, c); stores dW (like W) and db (like b).

            dW[a, b, k, f] = sum_{i, h, w} X[i, h*s + a, w*s + b, k] * dZ[i, h, w, f]
            db[f]          = sum_{i, h, w} dZ[i, h, w, f]
            dX[i, h*s + a, w*s + b, k] += W[a, b, k, f] * dZ[i, h, w, f]   (every h, w, f)

        and dA_prev is dX without its padding.
        """
        dx, self.dW, self.db = get_engine(self.engine).conv_backward(dZ, self.cache)
        (top, bottom), (left, right) = self._pads
        return dx[:, top : dx.shape[1] - bottom, left : dx.shape[2] - right]


class ConvLayer_ReLU(ConvLayer):
    """A ConvLayer followed by a ReLU: Z as in ConvLayer, then A = max(Z, 0).

    Shapes as ConvLayer; the output is A (n, oh, ow, n_f).  Weights use He
    initialisation, the scale that keeps ReLU activations from shrinking.
    """

    def _init_std(self, fan_in: int, fan_out: int) -> float:
        return float(np.sqrt(2.0 / fan_in))

    def forward_propagate(self, A_prev: np.ndarray) -> np.ndarray:
        """A_prev (n, ih, iw, c) -> A = max(Z, 0) (n, oh, ow, n_f); keeps Z and A."""
        self.A = relu(super().forward_propagate(A_prev))
        return self.A

    def backpropagate(self, dA: np.ndarray) -> np.ndarray:
        """dA (n, oh, ow, n_f) -> dA_prev (n, ih, iw, c): dZ = dA where Z > 0, then as
        ConvLayer."""
        return super().backpropagate(relu_backward(dA, self.Z))
