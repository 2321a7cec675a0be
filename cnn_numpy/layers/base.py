"""What a layer is: a forward pass, a backward pass, and the weights it owns."""

from __future__ import annotations

import numpy as np


class Layer:
    """One step of a network.

    forward_propagate(A_prev) -> A    computes the output and remembers what
                                      the backward pass will need;
    backpropagate(dA) -> dA_prev      takes dL/dA of the output, stores the
                                      gradients of the layer's own weights,
                                      and returns dL/dA_prev.

    Layers with weights create them in `build`, from the shape of the first
    batch they see (so nobody has to give input sizes), and list them in
    `params()`, with their gradients under the same keys in `grads()`.  The
    Net, not the layer, applies the update.  State that is learned but not
    trained by gradients (BatchNorm's running statistics) is in `buffers()`;
    model files keep both.

    `training` is True while a Net trains and False in evaluate and predict:
    layers that behave differently (Dropout, BatchNorm) read it.
    """

    built: bool = False
    #: True during Net.train; False for evaluate/predict.  Set by the Net.
    training: bool = False
    #: The sample dimensions (batch axis not counted) the layer accepts; None: any.
    input_ndims: tuple[int, ...] | None = None
    #: Random source for initial weights; a Net sets its own seeded one.
    rng: np.random.Generator | None = None
    #: Set to False by a Net for its first layer, whose input needs no gradient.
    needs_input_grad: bool = True
    #: Set to True by a Net when the dA that backpropagate receives is a new array
    #: that nothing else holds (the next layer made it): it may be overwritten.
    owns_grad: bool = False

    def build(self, input_shape: tuple[int, ...], rng: np.random.Generator, dtype) -> None:
        """Create weights for inputs of `input_shape`; layers without weights need nothing."""
        self.input_shape = tuple(input_shape[1:])
        self.built = True

    def forward_propagate(self, A_prev: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backpropagate(self, dA: np.ndarray) -> np.ndarray | None:
        raise NotImplementedError

    def per_sample(self) -> bool:
        """True when, in the current mode, output sample i depends on input sample i
        alone and the passes change nothing but the layer's own cache and gradients.

        Then a Net may run the layer on shards of the batch at the same time
        (cnn_numpy/parallel.py), each shard with a shallow copy of the layer,
        and add the shards' gradients.  False, the safe answer, unless a layer
        says otherwise.
        """
        return False

    def takes_shards(self) -> bool:
        """True when, in the current mode, the layer needs the whole batch (per_sample is
        False) but can take it as the Net's shards: forward_shards and
        backpropagate_shards then compute what the plain passes compute on the
        whole batch.  BatchNorm while training says so: its statistics are sums
        that the shards' sums add up to.  False unless a layer says otherwise.
        """
        return False

    def forward_shards(self, parts: list[np.ndarray]) -> list[np.ndarray]:
        """The forward pass of one batch given as shards [A_prev (n_s, ...), ...] -> each
        shard's A (n_s, ...), for layers whose takes_shards() is True."""
        raise NotImplementedError

    def backpropagate_shards(self, dparts: list[np.ndarray]) -> list[np.ndarray] | None:
        """Each shard's dA (n_s, ...) -> its dA_prev, after forward_shards on the same
        shards; stores the whole batch's weight gradients."""
        raise NotImplementedError

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape of one output sample for one input sample of `input_shape`."""
        raise NotImplementedError

    def param_shapes(self, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        """Shapes of the weights build() creates for one input sample of `input_shape`."""
        return {}

    def params(self) -> dict[str, np.ndarray]:
        """Trainable arrays by name (updated in place by the optimizer)."""
        return {}

    def grads(self) -> dict[str, np.ndarray]:
        """Gradients from the last backpropagate, keyed like params()."""
        return {}

    def buffer_shapes(self, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        """Shapes of the buffers build() creates for one input sample of `input_shape`."""
        return {}

    def buffers(self) -> dict[str, np.ndarray]:
        """Learned arrays that are not trained by gradients (e.g. running statistics)."""
        return {}

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

    def _ensure_built(self, A_prev: np.ndarray) -> None:
        """Lazy initialisation from the first batch, after the layer checked it."""
        if not self.built:
            self.build(A_prev.shape, self.rng or np.random.default_rng(), A_prev.dtype)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


#: What a Net may set on a layer to work together with its neighbour (see Net.__init__),
#: and the value each has for a layer on its own (Net.layer_outputs, testing.check_layer):
#: a ReLU left to the max pool after it, a convolution's output arranged by pool window.
PAIRING_FLAGS = {"leaves_relu_to_pool": False, "applies_relu": False,
                 "pool_window": 1, "reads_by_window": False}


def unpair(layer: Layer) -> dict[str, object]:
    """Give the layer the PAIRING_FLAGS it has on its own; returns the values they had."""
    before = {}
    for flag, alone in PAIRING_FLAGS.items():
        if hasattr(layer, flag):
            before[flag] = getattr(layer, flag)
            setattr(layer, flag, alone)
    return before


def positive_int(value, what: str, layer: str) -> int:
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
