"""Net: a list of layers trained on the mean categorical cross-entropy."""

from __future__ import annotations

import copy
import numbers
import warnings
from collections.abc import Sequence
from contextlib import contextmanager
from functools import partial
from typing import NamedTuple

import numpy as np

from . import parallel, saving
from .engines import DEFAULT_ENGINE, check_engine
from .layers import (
    BatchNorm,
    ConvLayer,
    ConvLayer_ReLU,
    Dropout,
    FCLayer,
    FCLayer_ReLU,
    FCLayer_Sigmoid,
    FCLayer_Softmax,
    FlatLayer,
    Layer,
    OutputLayer,
    PoolLayer,
    PoolLayer_Avg,
    PoolLayer_Max,
    ReLULayer,
)
from .layers.base import unpair
from .optimizers import Optimizer, make_optimizer


class TrainResult(NamedTuple):
    """What Net.train returns: the layers (after the update), the batch's CCE and CE."""

    layers: list[Layer]
    cce: float
    ce: float


class EvalResult(NamedTuple):
    """What Net.evaluate returns: the output A (n, k), the mean CCE and the error rate."""

    A: np.ndarray
    cce: float
    ce: float


class Net:
    """A sequential network: Net([ConvLayer_ReLU(32, 3), PoolLayer_Max(2), ...]).

    X is (n, height, width, channels), or (n, height, width) for one
    channel, with pixels scaled to [0, 1] as the datasets give them (raw
    0..255 values get a warning); Y is one-hot (n, k) or integer labels (n,).  The last layer
    must be an FCLayer_Softmax or FCLayer_Sigmoid (it defines the loss).

    engine   applies to every conv and pool layer (None keeps each layer's
             own choice, and the default where it has none);
    seed     makes the initial weights reproducible: the same seed gives the
             same weights whatever the engine or the thread count;
    dtype    float32 (fast) or float64 (for gradient checks);
    optimizer 'sgd' (default: W -= lr * dW), 'momentum', 'adam' or an
             Optimizer instance;
    weight_decay  L2 regularization strength lambda: the loss trained on is
             CCE + lambda/2 * sum(W^2) over the conv and dense weights (not
             biases, not BatchNorm's gamma and beta), so each step adds
             lambda * W to dW before the optimizer sees it.  This is the
             "coupled" form for every optimizer, Adam included (PyTorch's
             Adam(weight_decay=...), not AdamW): it is the gradient of one
             well-defined loss, so gradient checks and cross-checks see the
             same function whatever the optimizer.  The CCE that train and
             evaluate report leaves the penalty out.

    The random generator `rng` (seeded by `seed`) draws the initial weights
    and, while training, Dropout's masks.  `train` runs the layers in
    training mode (Dropout active, BatchNorm on batch statistics);
    `evaluate` and `predict` in inference mode.

    Batches of 128 or more are cut into shards that worker threads compute
    at the same time, layer runs that allow it (see _forward and
    cnn_numpy/parallel.py); the results are the same for any thread count.
    """

    def __init__(self, layers: Sequence[Layer], engine: str | None = None,
                 seed: int | None = None, dtype=np.float32,
                 optimizer: str | Optimizer | None = None, weight_decay: float = 0.0):
        layers = list(layers)
        if not layers or not all(isinstance(layer, Layer) for layer in layers):
            raise ValueError("Net: layers must be a non-empty list of layer objects, "
                             "e.g. [FlatLayer(), FCLayer_Softmax(10)]")
        try:
            self.dtype = np.dtype(dtype)
        except TypeError:
            raise ValueError(f"Net: dtype must be float32 or float64, got {dtype!r}") from None
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"Net: dtype must be float32 or float64, got {self.dtype}")
        self.layers = layers
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)
                                 or seed < 0):
            raise ValueError(f"Net: seed must be None or an integer >= 0, got {seed!r}")
        self.seed = int(seed) if isinstance(seed, np.integer) else seed
        self.rng = np.random.default_rng(seed)
        for layer in layers:  # a layer may come from another Net: reset what that one set
            layer.rng = self.rng
            layer.needs_input_grad = True
            unpair(layer)
        layers[0].needs_input_grad = False  # nobody uses the gradient of the data
        layers[-1].owns_grad = False
        for layer, following in zip(layers[-2::-1], layers[:0:-1], strict=True):
            # May layer.backpropagate overwrite the dA that `following` hands it?  Only
            # the shipped layers are known to hand back a new array; a user's might not.
            if type(following) in _PASS_GRADIENT_THROUGH:  # (a view of) the dA they got
                layer.owns_grad = following.owns_grad
            else:
                layer.owns_grad = type(following) in _NEW_GRADIENT
        for layer, following in zip(layers, layers[1:], strict=False):
            if type(following) is not PoolLayer_Max:
                continue
            # A max pool after a ReLU applies the ReLU to its smaller arrays,
            if type(layer) in (ConvLayer_ReLU, ReLULayer):
                layer.leaves_relu_to_pool = following.applies_relu = True
            # and reads a convolution's output arranged by window element when it can.
            if type(layer) in (ConvLayer, ConvLayer_ReLU) and \
                    following.stride == following.filter_width:
                layer.pool_window, following.reads_by_window = following.filter_width, True
        self.engine = engine
        self.optimizer = make_optimizer(optimizer)
        if isinstance(weight_decay, bool) or not isinstance(weight_decay, numbers.Real) \
                or not 0 <= weight_decay < np.inf:
            raise ValueError(f"Net: weight_decay must be a finite number >= 0, "
                             f"got {weight_decay!r}")
        self.weight_decay = float(weight_decay)
        self._warned_range = False
        self._passes: list[tuple[str, list[list[Layer]]]] = []  # see _forward
        self._passed = False  # True after the first forward pass: every layer is built

    # -- settings -------------------------------------------------------------
    @property
    def engine(self) -> str | None:
        return self._engine

    @engine.setter
    def engine(self, name: str | None) -> None:
        self._engine = check_engine(name)
        if name is not None:
            for layer in self.layers:
                if isinstance(layer, (ConvLayer, PoolLayer)):
                    layer.engine = name

    @contextmanager
    def using_engine(self, name: str | None):
        """`with net.using_engine("naive"): ...` runs the block with every conv and pool
        layer on that engine (None: as they are), then gives each layer its own engine
        back; setting net.engine instead lasts."""
        layers = [layer for layer in self.layers if isinstance(layer, (ConvLayer, PoolLayer))]
        before = self.engine, [layer.engine for layer in layers]
        try:
            if name is not None:
                self.engine = name
            yield self
        finally:
            self._engine = before[0]
            for layer, engine in zip(layers, before[1], strict=True):
                layer.engine = engine

    @property
    def output_layer(self) -> OutputLayer:
        last = self.layers[-1]
        if not isinstance(last, OutputLayer):
            raise ValueError(f"Net: the last layer is {type(last).__name__}; it must be "
                             "FCLayer_Softmax or FCLayer_Sigmoid to compute the loss")
        return last

    # -- shapes, summary, files ------------------------------------------------
    @property
    def input_shape(self) -> tuple[int, ...] | None:
        """Shape of one input sample, e.g. (28, 28, 1), once the weights exist."""
        first = self.layers[0]
        return first.input_shape if first.built else None

    def shapes(self, input_shape: tuple[int, ...]) -> list[tuple[int, ...]]:
        """The sample shape after each layer for samples of `input_shape`, checked.

        Pure arithmetic, nothing is allocated; a ValueError names the first
        layer that cannot take what it would be given.
        """
        shape, out = tuple(int(d) for d in input_shape), []
        for i, layer in enumerate(self.layers):
            needs = layer.input_ndims
            if needs is not None and len(shape) not in needs:
                wanted = " or ".join(map(str, needs))
                raise ValueError(f"Net: layer {i} ({type(layer).__name__}) needs samples with "
                                 f"{wanted} dimension(s), gets shape {shape}"
                                 + ("; put a FlatLayer before it" if needs == (1,) else ""))
            after = layer.output_shape(shape)
            if min(after) < 1:
                raise ValueError(f"Net: layer {i} ({type(layer).__name__}) turns samples of "
                                 f"shape {shape} into {after}; the window is too large")
            out.append(after)
            shape = after
        return out

    def build(self, input_shape: tuple[int, ...]) -> None:
        """Create every layer's weights for samples of `input_shape` (no batch axis).

        Training builds the Net from the first batch anyway; call this to get
        weights (or a summary) before any data is seen.
        """
        shape = tuple(int(d) for d in input_shape)
        for layer, after in zip(self.layers, self.shapes(shape), strict=True):
            if not layer.built:
                layer.build((1, *shape), self.rng, self.dtype)
            shape = after

    def summary(self, print_fn=print) -> str:
        """A table of the layers: type, engine, output shape, parameter count, totals.

        Needs the input shape, so call it after build() or the first batch.
        Prints the table with print_fn (None prints nothing) and returns it.
        """
        if self.input_shape is None:
            raise ValueError("Net.summary: shapes are not known yet; call net.build((28, 28, 1))"
                             " or train on a batch first")
        rows = [("Layer", "Engine", "Output shape", "Params")]
        total = 0
        for i, (layer, shape) in enumerate(zip(self.layers, self.shapes(self.input_shape),
                                               strict=True)):
            count = sum(p.size for p in layer.params().values())
            total += count
            engine = (layer.engine or DEFAULT_ENGINE) \
                if isinstance(layer, (ConvLayer, PoolLayer)) else "-"
            rows.append((f"{i}: {type(layer).__name__}", engine, str((None, *shape)),
                         f"{count:,}"))
        widths = [max(len(r[c]) for r in rows) for c in range(4)]
        line = "-" * (sum(widths) + 6)

        def fmt(r):
            return "  ".join([r[0].ljust(widths[0]), r[1].ljust(widths[1]),
                              r[2].ljust(widths[2]), r[3].rjust(widths[3])])

        buffers = sum(b.size for layer in self.layers for b in layer.buffers().values())
        footer = [f"Total params: {total:,}"] + \
            [f"Not trained by gradients: {buffers:,} (running statistics)"] * bool(buffers)
        text = "\n".join([f"Net: input {(None, *self.input_shape)} in [0, 1], {self.dtype.name}, "
                          f"optimizer {self.optimizer.name}"
                          + f", weight decay {self.weight_decay:g}" * bool(self.weight_decay),
                          line, fmt(rows[0]), line, *map(fmt, rows[1:]), line, *footer])
        if print_fn is not None:
            print_fn(text)
        return text

    def save(self, path) -> None:
        """Write the architecture and weights to one .npz file, atomically (see saving.py)."""
        saving.save(self, path)

    @classmethod
    def load(cls, path) -> Net:
        """Rebuild a Net from a file written by save() (or a training checkpoint).

        Raises ValueError naming the file if it is missing, damaged or foreign.
        """
        return saving.load(path)

    # -- inputs ---------------------------------------------------------------
    def _check_X(self, X) -> np.ndarray:
        if not isinstance(X, np.ndarray):
            raise ValueError(f"Net: X must be a NumPy array, got {type(X).__name__}")
        if X.dtype.kind not in "biuf":
            raise ValueError(f"Net: X must hold numbers, got dtype {X.dtype}")
        if X.ndim not in (2, 3, 4):
            raise ValueError(f"Net: X must be (n, height, width, channels) or (n, height, width),"
                             f" got shape {X.shape}")
        if X.shape[0] == 0:
            raise ValueError(f"Net: X is an empty batch (shape {X.shape})")
        X = np.asarray(X, dtype=self.dtype)
        if not np.isfinite(X).all():
            raise ValueError("Net: X contains NaN or infinite values; clean the input first")
        if not self._warned_range and X.max() > 25 and X.min() >= 0:
            self._warned_range = True
            warnings.warn(f"Net: X holds values up to {X.max():g}, like raw 0..255 pixels; "
                          "cnn-numpy's models expect images scaled to [0, 1] (divide by 255)",
                          UserWarning, stacklevel=3)
        X = X[..., None] if X.ndim == 3 else X
        if self.input_shape is None:
            self.shapes(X.shape[1:])  # check every layer fits before any weight exists
        return X

    def _check_Y(self, Y, n: int) -> np.ndarray:
        """Y as one-hot (n, k) in the Net's dtype."""
        k = self.output_layer.num_neurons
        if not isinstance(Y, np.ndarray):
            raise ValueError(f"Net: Y must be a NumPy array, got {type(Y).__name__}")
        if Y.shape[0:1] != (n,):
            raise ValueError(f"Net: X has {n} samples but Y has shape {Y.shape}; "
                             "give one label per sample")
        if Y.ndim == 1:
            if Y.dtype.kind not in "iu" or (Y.size and (Y.min() < 0 or Y.max() >= k)):
                raise ValueError(f"Net: integer labels must be in 0..{k - 1} for a {k}-neuron "
                                 f"output layer, got dtype {Y.dtype}"
                                 + (f" and values {Y.min()}..{Y.max()}" if Y.size else ""))
            onehot = np.zeros((n, k), dtype=self.dtype)
            onehot[np.arange(n), Y] = 1
            return onehot
        if Y.ndim != 2 or Y.shape[1] != k:
            raise ValueError(f"Net: one-hot Y must be (n, {k}) to match the {k}-neuron output "
                             f"layer, got shape {Y.shape}")
        Y = np.asarray(Y, dtype=self.dtype)
        if not np.isfinite(Y).all():
            raise ValueError("Net: Y contains NaN or infinite values")
        return Y

    # -- passes ---------------------------------------------------------------
    def _plan(self, X: np.ndarray, whole_last: bool) -> list[tuple[str, list[Layer]]]:
        """The layers in order as steps (how, layers) for the batch X:

            "whole"   one layer on the whole batch;
            "shards"  a run of consecutive per-sample layers, shard by shard on
                      the thread pool, each shard with its own copies of them;
            "joint"   one layer that needs the whole batch but takes it as
                      shards (Layer.takes_shards: BatchNorm while training).

        A stretch of consecutive "shards" and "joint" layers is cut into
        shards only if one of its samples is large (parallel.worth_sharding);
        dense layers on short vectors stay whole.
        """
        whole = [("whole", [layer]) for layer in self.layers]
        # The first pass builds the weights, on the whole batch: a shard's copy must not
        # build its own, and the weights come from the generator in layer order, as always.
        # (A user's layer without weights may never say it is built: one pass is enough.)
        if len(parallel.shard_slices(X.shape[0])) == 1 or not (
                self._passed or all(layer.built for layer in self.layers)):
            return whole
        try:
            sizes = [int(np.prod(shape)) for shape in self.shapes(X.shape[1:])]
        except ValueError:  # a layer refuses X: let it say why, on the whole batch
            return whole
        steps: list[tuple[str, list[Layer]]] = []
        stretch: list[Layer] = []  # consecutive layers that may take shards
        largest = size_in = int(np.prod(X.shape[1:]))  # largest: the stretch's largest sample
        for i, layer in enumerate(self.layers + [None]):  # None: the end, closes a stretch
            last = whole_last and i == len(self.layers) - 1
            if layer is not None and not last and (layer.per_sample() or layer.takes_shards()):
                largest = max(largest, sizes[i]) if stretch else max(size_in, sizes[i])
                stretch.append(layer)
            else:
                if stretch and parallel.worth_sharding(largest):
                    steps += _shard_steps(stretch)
                else:
                    steps += [("whole", [other]) for other in stretch]
                stretch = []
                if layer is not None:
                    steps.append(("whole", [layer]))
            if layer is not None:
                size_in = sizes[i]
        return steps

    def _forward(self, X: np.ndarray, training: bool = False,
                 whole_last: bool = True) -> np.ndarray:
        """X (n, ...) -> the last layer's output A (n, k), every layer in `training` mode.

        The steps of _plan: runs of per-sample layers compute shard by shard
        on the thread pool (cnn_numpy/parallel.py), with BLAS on one thread
        (parallel.blas_for_pass).  Shard 0 uses the layer objects themselves;
        every other shard a shallow copy: the same weight arrays, its own
        cache for the backward pass.  While training, self._passes keeps each
        step's layers per shard for _backward.  whole_last: the last layer
        sees the whole batch (the loss needs all of it).
        """
        for layer in self.layers:
            layer.training = training
        parallel.keep_freed_memory()
        slices = parallel.shard_slices(X.shape[0])
        passes: list[tuple[str, list[list[Layer]]]] = []
        A: np.ndarray | list[np.ndarray] = X
        plan = self._plan(X, whole_last)
        with parallel.blas_for_pass(any(how != "whole" for how, _ in plan)):
            for how, run in plan:
                if how == "whole":
                    A = _forward_through(run, _whole(A))
                    passes.append((how, [run]))
                    continue
                parts = A if isinstance(A, list) else [A[s] for s in slices]
                if how == "joint":
                    A = run[0].forward_shards(parts)
                    passes.append((how, [run]))
                    continue
                shards = [run] + [[copy.copy(layer) for layer in run] for _ in slices[1:]]
                A = parallel.run_all([partial(_forward_through, layers, part)
                                      for layers, part in zip(shards, parts, strict=True)])
                passes.append((how, shards))
            self._passes = passes if training else []
            self._passed = True
            return _whole(A)

    def _backward(self, dZ: np.ndarray) -> None:
        """From dZ of the last layer (whole batch) back to the first layer, after
        _forward(training=True); each layer's grads() hold the whole batch's
        gradients, the shards' added in shard order."""
        slices = parallel.shard_slices(dZ.shape[0])  # as _forward cut the batch
        with parallel.blas_for_pass(any(how != "whole" for how, _ in self._passes)):
            dA: np.ndarray | list | None = self.output_layer.backpropagate_dZ(dZ)
            for how, shards in reversed(self._passes[:-1]):
                if how == "whole":
                    dA = _backward_through(shards[0], _whole(dA))
                    continue
                parts = dA if isinstance(dA, list) else [dA[s] for s in slices]
                if how == "joint":
                    dA = shards[0][0].backpropagate_shards(parts)
                    continue
                dA = parallel.run_all([partial(_backward_through, layers, part)
                                       for layers, part in zip(shards, parts, strict=True)])
                for k, layer in enumerate(shards[0]):
                    for name, total in layer.grads().items():
                        for other in shards[1:]:
                            total += other[k].grads()[name]
        self._passes = []

    def param_triples(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """(key, weight array, its gradient) for every trainable array, keys like '0/W'."""
        return [(f"{i}/{name}", p, layer.grads()[name])
                for i, layer in enumerate(self.layers)
                for name, p in layer.params().items()]

    @staticmethod
    def _error_rate(A: np.ndarray, Y: np.ndarray) -> float:
        return float(np.mean(A.argmax(axis=1) != Y.argmax(axis=1)))

    def train(self, X: np.ndarray, Y: np.ndarray, learning_rate: float) -> TrainResult:
        """One step on the mini-batch (X, Y): forward, loss, backward, update.

        Returns (layers, cce, ce) measured on the batch BEFORE the update.
        Input errors are raised before any weight changes.
        """
        if isinstance(learning_rate, bool) or not isinstance(learning_rate, numbers.Real) \
                or not np.isfinite(learning_rate) or learning_rate < 0:
            raise ValueError(f"Net: learning_rate must be a finite number >= 0, "
                             f"got {learning_rate!r}")
        X = self._check_X(X)
        Y = self._check_Y(Y, X.shape[0])
        kept = [(b, b.copy()) for layer in self.layers for b in layer.buffers().values()]
        try:
            A = self._forward(X, training=True)
        except ValueError:
            for buffer, before in kept:  # a layer refused the batch: undo earlier updates
                buffer[...] = before
            raise
        cce, dZ = self.output_layer.loss(Y)
        self._backward(dZ)
        if self.weight_decay:
            for layer in self.layers:
                for weights, grad in layer.decayed():
                    grad += self.weight_decay * weights
        self.optimizer.step(self.param_triples(), float(learning_rate))
        return TrainResult(list(self.layers), cce, self._error_rate(A, Y))

    @staticmethod
    def _check_batch_size(batch_size) -> int:
        if isinstance(batch_size, bool) or not isinstance(batch_size, numbers.Integral) \
                or batch_size < 1:
            raise ValueError(f"Net: batch_size must be an integer >= 1, got {batch_size!r}")
        return int(batch_size)

    def predict(self, X: np.ndarray, batch_size: int = 1000) -> np.ndarray:
        """The last layer's output A (n, k) for X, computed batch_size samples at a time."""
        batch_size = self._check_batch_size(batch_size)
        X = self._check_X(X)
        return np.concatenate([self._forward(X[i : i + batch_size], whole_last=False)
                               for i in range(0, X.shape[0], batch_size)])

    def layer_outputs(self, X: np.ndarray) -> list[np.ndarray]:
        """Every layer's output for X, in inference mode: predict's computation, step by step.

        X (n, ...) as for predict -> [A_1 (n, ...), ..., A_L (n, k)]; the last is what
        predict(X) returns.  Computed in one batch, each layer on its own: a
        ReLU applied where it is, not left to the pool after it, and every
        output in the usual layout (see Net.__init__ and layers.base.PAIRING_FLAGS).
        """
        A, outputs = self._check_X(X), []
        paired = [unpair(layer) for layer in self.layers]  # the usual layout, ReLUs in place
        try:
            for layer in self.layers:
                layer.training = False
                A = layer.forward_propagate(A)
                outputs.append(A)
        finally:
            for layer, flags in zip(self.layers, paired, strict=True):
                for flag, value in flags.items():
                    setattr(layer, flag, value)
        return outputs

    def evaluate(self, X: np.ndarray, Y: np.ndarray, batch_size: int = 1000) -> EvalResult:
        """(A, cce, ce) on a labelled set, without changing any weight."""
        batch_size = self._check_batch_size(batch_size)
        X = self._check_X(X)
        Y = self._check_Y(Y, X.shape[0])
        A = np.empty((X.shape[0], Y.shape[1]), dtype=self.dtype)
        total = 0.0
        for i in range(0, X.shape[0], batch_size):
            A[i : i + batch_size] = self._forward(X[i : i + batch_size])
            cce, _ = self.output_layer.loss(Y[i : i + batch_size])
            total += cce * A[i : i + batch_size].shape[0]
        return EvalResult(A, total / X.shape[0], self._error_rate(A, Y))


# Layers whose backward pass returns a new array, and layers that return the dA they got.
_NEW_GRADIENT = {ConvLayer, ConvLayer_ReLU, PoolLayer_Max, PoolLayer_Avg, FCLayer, FCLayer_ReLU,
                 FCLayer_Softmax, FCLayer_Sigmoid, BatchNorm, ReLULayer}
_PASS_GRADIENT_THROUGH = {FlatLayer, Dropout}


def _shard_steps(stretch: list[Layer]) -> list[tuple[str, list[Layer]]]:
    """Layers that may take shards -> steps: runs of per-sample layers ("shards") and
    the layers that take the shards together ("joint")."""
    steps: list[tuple[str, list[Layer]]] = []
    for layer in stretch:
        if not layer.per_sample():
            steps.append(("joint", [layer]))
        elif steps and steps[-1][0] == "shards":
            steps[-1][1].append(layer)
        else:
            steps.append(("shards", [layer]))
    return steps


def _whole(A: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """A batch given whole or as shards, whole."""
    return np.concatenate(A) if isinstance(A, list) else A


def _forward_through(layers: list[Layer], A: np.ndarray) -> np.ndarray:
    for layer in layers:
        A = layer.forward_propagate(A)
    return A


def _backward_through(layers: list[Layer], dA: np.ndarray) -> np.ndarray | None:
    for layer in reversed(layers):
        dA = layer.backpropagate(dA)
    return dA


Network = Net
