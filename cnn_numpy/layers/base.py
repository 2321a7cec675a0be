"""What a layer is: a forward pass, a backward pass, and the weights it owns."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt


class Layer:
    """One step of a network.

    forward_propagate(A_prev) -> A    computes the output and keeps what the
                                      backward pass will need (plain
                                      attributes such as A, Z, cache);
    backpropagate(dA) -> dA_prev      takes dL/dA of the output, stores the
                                      gradients of the layer's own weights,
                                      and returns dL/dA_prev;
    output_shape(shape) -> shape      the shape of one output sample for one
                                      input sample (no batch axis), so a Net
                                      can check a whole architecture before
                                      it sees data.

    A layer checks a batch, and builds its weights from it (`build`, so nobody
    has to give input sizes), only when the batch's sample shape is not the
    `input_shape` it was built for: in a Net every step brings that shape
    (the Net checks X, and Net.shapes checked the layers once), so a step
    runs no checks.

    Layers with weights create them in `build` and name them in
    `param_names` (ConvLayer: W and b); the backward pass stores each one's
    gradient under "d" + the name (dW, db).  `params()` and `grads()` give
    them by name, and the Net, not the layer, applies the update.  State that
    is learned but not trained by gradients (BatchNorm's running statistics)
    is named in `buffer_names` and given by `buffers()`; model files keep both.
    A layer that keeps its arrays otherwise overrides the three methods.

    `training` is True while a Net trains and False in evaluate and predict:
    layers that behave differently (Dropout, BatchNorm) read it.

    A layer knows nothing of its neighbours, of threads or of the fast path
    (cnn_numpy/fast/): a Net on the fast path runs the shipped layers with
    its own operations, and then leaves their cached arrays (A, Z, ...) at
    None rather than at values that would mean something else.
    """

    built: bool = False
    #: The shape of one input sample (no batch axis) the layer was built for; None before.
    input_shape: tuple[int, ...] | None = None
    #: True during Net.train; False for evaluate/predict.  Set by the Net.
    training: bool = False
    #: The sample dimensions (batch axis not counted) the layer accepts; None: any.
    input_ndims: tuple[int, ...] | None = None
    #: Random source for initial weights; a Net sets its own seeded one.
    rng: np.random.Generator | None = None
    #: The attributes that hold the trainable arrays; their gradients are "d" + name.
    param_names: tuple[str, ...] = ()
    #: The attributes that hold learned arrays not trained by gradients.
    buffer_names: tuple[str, ...] = ()

    def build(self, input_shape: tuple[int, ...], rng: np.random.Generator,
              dtype: npt.DTypeLike) -> None:
        """Create weights for inputs of `input_shape`; layers without weights need nothing."""
        self.input_shape = tuple(input_shape[1:])
        self.built = True

    def forward_propagate(self, A_prev: np.ndarray) -> np.ndarray:
        raise NotImplementedError(self._missing("forward_propagate(self, A_prev) -> A"))

    def backpropagate(self, dA: np.ndarray) -> np.ndarray:
        raise NotImplementedError(self._missing("backpropagate(self, dA) -> dA_prev"))

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of one output sample for one input sample of `input_shape`."""
        raise NotImplementedError(self._missing(
            "output_shape(self, input_shape) -> the shape of one output sample, e.g. "
            "return tuple(input_shape) for a layer that keeps the shape"))

    def _missing(self, method: str) -> str:
        return (f"{type(self).__name__} must define {method} (see 'Write your own layer' in "
                "the README)")

    def param_shapes(self, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        """Shapes of the weights build() creates for one input sample of `input_shape`."""
        return {}

    def params(self) -> dict[str, np.ndarray]:
        """Trainable arrays by name (updated in place by the optimizer), once built."""
        return {name: getattr(self, name) for name in self.param_names} if self.built else {}

    def grads(self) -> dict[str, np.ndarray]:
        """Gradients from the last backpropagate, keyed like params(): dW under "W"."""
        return {name: getattr(self, "d" + name) for name in self.param_names}

    def buffer_shapes(self, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        """Shapes of the buffers build() creates for one input sample of `input_shape`."""
        return {}

    def buffers(self) -> dict[str, np.ndarray]:
        """Learned arrays that are not trained by gradients (e.g. running statistics)."""
        return {name: getattr(self, name) for name in self.buffer_names} if self.built else {}

    def check_buffers(self) -> None:
        """ValueError if loaded buffers hold values the layer cannot use."""

    def decayed(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(weights, gradient) views that L2 weight decay applies to, after backpropagate.

        Only multiplicative weights: biases and normalization scales are left
        alone, as is usual (decaying them only limits what the layer can express).
        """
        return []

    def config(self) -> dict:
        """The constructor arguments, enough to build the same layer again."""
        return {}

    def _check_input(self, A_prev: np.ndarray) -> None:
        """ValueError unless A_prev is a non-empty array with a batch axis; layers that need
        more (a number of dimensions, of channels) check more."""
        if not isinstance(A_prev, np.ndarray) or A_prev.ndim < 2 or A_prev.shape[0] == 0:
            raise ValueError(f"{type(self).__name__}: expected a non-empty NumPy array with a "
                             f"batch axis, got {getattr(A_prev, 'shape', type(A_prev).__name__)}")

    def _ensure_built(self, A_prev: np.ndarray) -> None:
        """Lazy initialisation from the first batch, after the layer checked it."""
        if not self.built:
            self.build(A_prev.shape, self.rng or np.random.default_rng(), A_prev.dtype)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


def positive_int(value: object, what: str, layer: str) -> int:
    """`value` as an int >= 1, or a ValueError naming the layer and argument."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{layer}: {what} must be a positive integer, got {value!r}")
    return int(value)


def check_ndim(A: np.ndarray, ndim: int, layer: str, expected: str) -> None:
    """ValueError unless A is a NumPy array with `ndim` dimensions."""
    if not isinstance(A, np.ndarray):
        raise ValueError(f"{layer}: expected a NumPy array {expected}, got {type(A).__name__}")
    if A.ndim != ndim:
        raise ValueError(f"{layer}: expected input {expected}, got shape {A.shape}")
    if A.shape[0] == 0:
        raise ValueError(f"{layer}: the batch is empty (shape {A.shape}); pass at least one sample")
