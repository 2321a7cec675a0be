"""Net: a list of layers trained on the mean categorical cross-entropy."""

from __future__ import annotations

import numbers
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, NamedTuple

import numpy as np
import numpy.typing as npt

from . import saving
from .engines import DEFAULT_ENGINE, check_engine
from .fast import FastPath
from .layers import ConvLayer, Layer, OutputLayer, PoolLayer
from .optimizers import Optimizer, make_optimizer

if TYPE_CHECKING:
    from .files import PathLike
    from .training import Callback, History


class DivergenceError(RuntimeError):
    """The loss became NaN or infinite, or a step overflowed: the learning rate is too high."""


class TrainResult(NamedTuple):
    """What Net.train returns: the layers (after the update), the batch's CCE and CE."""

    layers: list[Layer]
    cce: float
    ce: float

    def __repr__(self) -> str:
        return (f"TrainResult(layers=<{len(self.layers)} layers>, cce={_short(self.cce)}, "
                f"ce={_short(self.ce)})")


class EvalResult(NamedTuple):
    """What Net.evaluate returns: the output A (n, k), the mean CCE and the error rate."""

    A: np.ndarray
    cce: float
    ce: float

    def __repr__(self) -> str:
        A = self.A
        shown = f"<{A.shape} {A.dtype}>" if isinstance(A, np.ndarray) else repr(A)
        return f"EvalResult(A={shown}, cce={_short(self.cce)}, ce={_short(self.ce)})"


def _short(value) -> str:
    """A loss or an error rate in a result's repr: 4 decimals, or repr when not a number."""
    return f"{value:.4f}" if isinstance(value, numbers.Real) else repr(value)


def _layout_advice(given: tuple[int, ...], built: tuple[int, ...]) -> str | None:
    """For X of shape `given` that a Net built for samples of shape `built` refuses: what to
    do if X is channels-first or one image without the batch axis (else None)."""
    if len(built) != 3:
        return None
    h, w, c = built
    takes = f"the net takes X as (n, height, width, channels) = (n, {h}, {w}, {c})"
    if given == built or (c == 1 and given == (h, w)):
        return (f"Net: X has shape {given}: one image without the batch axis; {takes}: give a "
                "batch of one with x[None]")
    if given == (c, h, w):
        return (f"Net: X has shape {given}: one image, channels-first, without the batch axis; "
                f"{takes}: use x.transpose(1, 2, 0)[None]")
    if given[1:] == (c, h, w):
        return (f"Net: X has shape {given}, channels-first (n, channels, height, width); "
                f"{takes}: reorder the axes with x.transpose(0, 2, 3, 1)")
    return None


def _label_dtype_error(Y: np.ndarray, k: int) -> str:
    """What is wrong with labels Y (n,) that are not integers, and how to make them so."""
    wanted = f"Net: Y must be integer labels 0..{k - 1} (n,) or one-hot rows (n, {k})"
    kind, first = Y.dtype.kind, Y[:3].tolist()
    names = "map class names to integers with `names, y = np.unique(y, return_inverse=True)`"
    if kind in "US":
        return f"{wanted}, got dtype {Y.dtype} (e.g. {first}); {names}"
    if kind == "O":
        return (f"{wanted}, got dtype object (e.g. {first}); convert whole numbers with "
                f"y.astype(int), or {names}")
    if kind == "b":
        return (f"{wanted}, got dtype bool; for two classes convert them with y.astype(int) "
                "(False is 0, True is 1)")
    if kind == "f":
        if not np.isfinite(Y).all():
            return f"{wanted}, got dtype {Y.dtype} with NaN or infinite values"
        if np.array_equal(Y, np.round(Y)):
            return (f"{wanted}, got dtype {Y.dtype} (whole values {Y.min()}..{Y.max()}); "
                    "convert them with y.astype(int)")
        fraction = Y[Y != np.round(Y)][0]
        return (f"{wanted}, got dtype {Y.dtype} with fractional values (e.g. {fraction}); "
                "labels are class numbers, and scores or probabilities go in rows (n, "
                f"{k})")
    return f"{wanted}, got dtype {Y.dtype}"


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
    optimizer 'sgd' (default: the spec's rule, W -= lr * dW), 'momentum', 'adam'
             or an Optimizer instance.  The command line trains its models with
             Adam at 0.001 (cnn_numpy/models.py), which learns about ten times
             faster than SGD at that rate: Net keeps the spec's SGD so that
             net.train(X, Y, lr) does what the spec describes;
    weight_decay  L2 regularization strength lambda: the loss trained on is
             CCE + lambda/2 * sum(W^2) over the conv and dense weights (not
             biases, not BatchNorm's gamma and beta), so each step adds
             lambda * W to dW before the optimizer sees it.  This is the
             "coupled" form for every optimizer, Adam included (PyTorch's
             Adam(weight_decay=...), not AdamW): it is the gradient of one
             well-defined loss, so gradient checks and cross-checks see the
             same function whatever the optimizer.  The CCE that train and
             evaluate report leaves the penalty out.

    fast     True (default): run the layers through the fast path
             (cnn_numpy/fast/: fused operations, batch shards on worker
             threads), which gives the numbers the plain loop gives, to
             rounding, and the same ones for any thread count; False: the
             plain loop of _forward and _backward, layer after layer.  The first
             fast step asks glibc's allocator to keep freed memory for the next
             step, for the whole process; set CNN_NUMPY_KEEP_MEMORY=0 before it
             to leave the allocator alone (fast/threads.py, keep_freed_memory).

    The random generator `rng` (seeded by `seed`) draws the initial weights
    and, while training, Dropout's masks.  `train` runs the layers in
    training mode (Dropout active, BatchNorm on batch statistics);
    `evaluate` and `predict` in inference mode.
    """

    def __init__(self, layers: Sequence[Layer], engine: str | None = None,
                 seed: int | None = None, dtype: npt.DTypeLike = np.float32,
                 optimizer: str | Optimizer | None = None, weight_decay: float = 0.0,
                 fast: bool = True):
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
        for layer in layers:
            layer.rng = self.rng
        if not isinstance(fast, bool):
            raise ValueError(f"Net: fast must be True or False, got {fast!r}")
        self.fast = fast
        self._fast_path = FastPath(self.layers)
        self.engine = engine
        self.optimizer = make_optimizer(optimizer)
        if isinstance(weight_decay, bool) or not isinstance(weight_decay, numbers.Real) \
                or not 0 <= weight_decay < np.inf:
            raise ValueError(f"Net: weight_decay must be a finite number >= 0, "
                             f"got {weight_decay!r}")
        self.weight_decay = float(weight_decay)
        #: What each output means, e.g. ("cat", "dog"): set by training on a dataset that
        #: names its classes, kept in model files (None: the classes are their numbers).
        self.class_names: tuple[str, ...] | None = None
        #: How a picture becomes an input: "digits" (MNIST style: the ink centred in a 28 x
        #: 28 square, white on black) or "resized" (the whole picture resized to the input).
        self.images_as = "digits"
        self._warned_range = False
        # True once every layer has its weights (after the first pass): see _passes.
        self._passed = all(layer.built for layer in layers)

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
    def using_engine(self, name: str | None) -> Iterator[None]:
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

    def class_name(self, k: int) -> str:
        """The name of output k: class_names[k], or the number itself."""
        return str(k) if self.class_names is None else self.class_names[k]

    def set_classes(self, names: Sequence[str] | None, images_as: str | None = None) -> None:
        """Name the outputs (a sequence of as many strings as the last layer has outputs,
        or None) and say how pictures become inputs ("digits" or "resized")."""
        if names is not None:
            names = tuple(str(name) for name in names)
            k = self.output_layer.num_neurons
            if len(names) != k:
                raise ValueError(f"Net: {len(names)} class names for a last layer of {k} "
                                 f"outputs; end the network with {type(self.layers[-1]).__name__}"
                                 f"({len(names)}) to learn these classes")
        if images_as not in (None, "digits", "resized"):
            raise ValueError(f"Net: images_as must be 'digits' or 'resized', got {images_as!r}")
        self.class_names = names
        self.images_as = images_as or self.images_as

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
        self._passed = True

    def summary(self, print_fn: Callable[[str], object] | None = print) -> str:
        """A table of the layers: type, engine, what runs it while training, output shape,
        parameter count, totals.

        "Runs as" names the fast path's operation that computes the layer
        (with the layers it spans), or "its own passes"; with fast=False every
        layer runs as its own passes.  Needs the input shape, so call it after
        build() or the first batch.  Prints the table with print_fn (None
        prints nothing) and returns it.
        """
        if self.input_shape is None:
            raise ValueError("Net.summary: shapes are not known yet; call net.build((28, 28, 1))"
                             " or train on a batch first")
        runs = self._fast_path.describe() if self.fast else ["its own passes"] * len(self.layers)
        rows = [("Layer", "Engine", "Runs as", "Output shape", "Params")]
        total = 0
        for i, (layer, shape) in enumerate(zip(self.layers, self.shapes(self.input_shape),
                                               strict=True)):
            count = sum(p.size for p in layer.params().values())
            total += count
            engine = (layer.engine or DEFAULT_ENGINE) \
                if isinstance(layer, (ConvLayer, PoolLayer)) else "-"
            rows.append((f"{i}: {type(layer).__name__}", engine, runs[i], str((None, *shape)),
                         f"{count:,}"))
        widths = [max(len(r[c]) for r in rows) for c in range(5)]
        line = "-" * (sum(widths) + 8)

        def fmt(r):
            return "  ".join([*(r[c].ljust(widths[c]) for c in range(4)), r[4].rjust(widths[4])])

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

    def describe(self) -> str:
        """The layers as text, e.g. "ConvLayer_ReLU(32, 3), PoolLayer_Max(2), ...": what
        `cnn-numpy train --layers` and architecture.parse_layers read back (ValueError
        for a layer that is not cnn-numpy's)."""
        from .architecture import describe_layers

        return describe_layers(self.layers)

    def save(self, path: PathLike) -> None:
        """Write the architecture and weights to one .npz file, atomically (see saving.py)."""
        saving.save(self, path)

    @classmethod
    def load(cls, path: PathLike) -> Net:
        """Rebuild a Net from a file written by save() (or a training checkpoint).

        Raises ValueError naming the file if it is missing, damaged or foreign.
        """
        return saving.read(path, cls)[0]

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
        # Both ends are NaN when X holds a NaN, and one is infinite when X holds an infinity:
        # two reductions, which the range check needs anyway, rather than a third pass.
        low, high = X.min(), X.max()
        if not (np.isfinite(low) and np.isfinite(high)):
            raise ValueError("Net: X contains NaN or infinite values; clean the input first")
        if not self._warned_range and high > 25 and low >= 0:
            self._warned_range = True
            warnings.warn(f"Net: X holds values up to {high:g}, like raw 0..255 pixels; "
                          "cnn-numpy's models expect images scaled to [0, 1] (divide by 255)",
                          UserWarning, stacklevel=3)
        given = X.shape
        # (n, h, w) gets its channel axis, unless the Net was built for (h, w) samples
        X = X[..., None] if X.ndim == 3 and given[1:] != self.input_shape else X
        if self.input_shape is None:
            self._check_first_shape(given, X.shape[1:])
        elif X.shape[1:] != self.input_shape:
            advice = _layout_advice(given, self.input_shape)
            if advice:
                raise ValueError(advice)
            built, got = (" x ".join(map(str, shape)) for shape in (self.input_shape, X.shape[1:]))
            raise ValueError(f"Net: built for {built} images (height x width x channels), got "
                             f"{got}; give it images of the size it was trained on")
        return X

    def _check_first_shape(self, given: tuple[int, ...], sample: tuple[int, ...]) -> None:
        """Before any weight exists: X of shape `given` (samples of shape `sample`) must fit
        every layer, and must not look channels-first."""
        if len(given) == 4 and given[1] in (1, 3) and min(given[2:]) > 4:
            raise ValueError(
                f"Net: X has shape {given}, which looks channels-first (n, channels, height, "
                "width); cnn-numpy takes X as (n, height, width, channels): reorder the axes "
                f"with x.transpose(0, 2, 3, 1) (if these really are images {given[1]} pixel(s) "
                f"high with {given[3]} channels, call net.build({given[1:]}) first)")
        try:
            self.shapes(sample)  # check every layer fits before any weight exists
        except ValueError as exc:
            one_image = given + (1,) * (len(given) == 2)
            # one image without the batch axis: it would fit, and is not long and thin like a
            # batch of flattened images (n, 784)
            if len(given) in (2, 3) and max(given[:2]) <= 4 * min(given[:2]) \
                    and self._fits(one_image):
                raise ValueError(f"{exc}; if X is one image of shape {given}, give a batch of "
                                 "one with x[None] (X is (n, height, width, channels) or "
                                 "(n, height, width))") from None
            raise

    def _fits(self, sample: tuple[int, ...]) -> bool:
        try:
            self.shapes(sample)
        except ValueError:
            return False
        return True

    def _check_Y(self, Y, n: int) -> np.ndarray:
        """Y as one-hot (n, k) in the Net's dtype."""
        k = self.output_layer.num_neurons
        if not isinstance(Y, np.ndarray):
            raise ValueError(f"Net: Y must be a NumPy array, got {type(Y).__name__}")
        if Y.shape[0:1] != (n,):
            raise ValueError(f"Net: X has {n} samples but Y has shape {Y.shape}; "
                             "give one label per sample")
        if Y.ndim == 1:
            if Y.dtype.kind not in "iu":
                raise ValueError(_label_dtype_error(Y, k))
            if Y.size and (Y.min() < 0 or Y.max() >= k):
                raise ValueError(f"Net: integer labels must be in 0..{k - 1} for a {k}-neuron "
                                 f"output layer, got dtype {Y.dtype} and values "
                                 f"{Y.min()}..{Y.max()}")
            onehot = np.zeros((n, k), dtype=self.dtype)
            onehot[np.arange(n), Y] = 1
            return onehot
        if Y.ndim != 2 or Y.shape[1] != k:
            raise ValueError(f"Net: one-hot Y must be (n, {k}) to match the {k}-neuron output "
                             f"layer, got shape {Y.shape}")
        if Y.dtype.kind not in "biuf":
            raise ValueError(f"Net: one-hot Y must hold numbers (a 1 in each row's class column), "
                             f"got dtype {Y.dtype}")
        Y = np.asarray(Y, dtype=self.dtype)
        if not np.isfinite(Y).all():
            raise ValueError("Net: Y contains NaN or infinite values")
        return Y

    # -- passes ---------------------------------------------------------------
    def _forward(self, X: np.ndarray, training: bool = False) -> np.ndarray:
        """The plain loop: X (n, ...) through every layer in turn -> the output A (n, k)."""
        A = X
        for layer in self.layers:
            layer.training = training
            A = layer.forward_propagate(A)
        self._passed = True  # every layer has seen a batch, so has its weights
        return A

    def _backward(self, dZ: np.ndarray) -> None:
        """The plain loop back: dZ (n, k) of the last layer through every layer in reverse;
        each layer keeps the gradients of its weights."""
        dA = self.output_layer.backpropagate_dZ(dZ)
        for layer in reversed(self.layers[:-1]):
            dA = layer.backpropagate(dA)

    def _passes(self):
        """(forward, backward) to run now: the fast path's once the weights exist (the
        first pass, on the plain loop, builds them from the first batch), else the plain
        loop's."""
        if self.fast and self._passed:
            return self._fast_path.forward, self._fast_path.backward
        return self._forward, self._backward

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
        Input errors are raised before any weight changes.  A step that overflows,
        or a loss that is NaN or infinite, raises DivergenceError naming the
        learning rate (a healthy step never overflows: softmax, sigmoid and the
        loss are written not to); a non-finite loss is caught before the update.
        """
        if isinstance(learning_rate, bool) or not isinstance(learning_rate, numbers.Real) \
                or not np.isfinite(learning_rate) or learning_rate < 0:
            raise ValueError(f"Net: learning_rate must be a finite number >= 0, "
                             f"got {learning_rate!r}")
        X = self._check_X(X)
        Y = self._check_Y(Y, X.shape[0])
        forward, backward = self._passes()
        kept = [(b, b.copy()) for layer in self.layers for b in layer.buffers().values()]
        advice = f"lower the learning rate (now {learning_rate:g})"
        try:
            with np.errstate(over="raise", invalid="raise", divide="raise"):
                try:
                    A = forward(X, training=True)
                except ValueError:
                    for buffer, before in kept:  # a layer refused the batch: undo updates
                        buffer[...] = before
                    raise
                cce, dZ = self.output_layer.loss(Y)
                if not np.isfinite(cce):
                    raise DivergenceError(f"Net: the loss became {cce}: training diverged; "
                                          f"{advice}")
                backward(dZ)
                if self.weight_decay:
                    for layer in self.layers:
                        for weights, grad in layer.decayed():
                            grad += self.weight_decay * weights
                self.optimizer.step(self.param_triples(), float(learning_rate))
        except FloatingPointError as exc:
            raise DivergenceError(f"Net: training diverged ({exc}); {advice}") from None
        return TrainResult(list(self.layers), cce, self._error_rate(A, Y))

    def fit(self, x: np.ndarray, y: np.ndarray, *, epochs: int = 1, batch_size: int = 32,
            learning_rate: float = 0.001, schedule: str = "constant", augment: int = 0,
            validation_split: float = 0.0,
            validation_data: tuple[np.ndarray, np.ndarray] | None = None,
            seed: int | None = None, checkpoint: PathLike | None = None,
            callbacks: Sequence[Callback] = (), progress: bool | None = None,
            class_names: Sequence[str] | None = None,
            images_as: str | None = None) -> History:
        """Train for `epochs` passes over (x, y) in shuffled batches: the command line's
        loop (cnn_numpy/training/), so the same settings give the same weights.

        schedule  'constant', 'step' or 'cosine' (the rate over the run);
        augment   random shifts of up to that many pixels, every batch;
        validation_split  a fraction of (x, y), drawn with the seed, held out and
                  evaluated after every epoch; or validation_data=(x_val, y_val);
        seed      the shuffling's (default: the Net's seed, else 0);
        checkpoint  a path written after every epoch (`cnn-numpy train --resume` goes on);
        callbacks  training.Callback objects (e.g. training.EarlyStopping(patience=3)),
                  called after every batch and epoch; any returning True stops the run;
        progress  None: a line per epoch, and a progress bar when stderr is a terminal;
                  True: the bar always; False: nothing;
        class_names  what each output means (one name per output), kept in model files;
        images_as  how `cnn-numpy predict` reads a picture for the saved model: 'digits'
                  (MNIST's way, a new Net's) or 'resized' (data.load_images's way: give
                  it when x comes from load_images or load_npz); None keeps the Net's.

        Returns a training.History: per epoch train_cce, train_ce, val_cce, val_ce,
        learning_rate and images_per_s (history["val_ce"], history.history,
        history.plot(path)).  The learning rate's default suits Adam
        (Net(..., optimizer="adam"), as the command line trains); the spec's plain SGD,
        the Net's default optimizer, learns far more slowly at 0.001: give it about 0.1.
        """
        from .training import fit  # here: the training package imports this module

        return fit(self, x, y, epochs=epochs, batch_size=batch_size,
                   learning_rate=learning_rate, schedule=schedule, augment=augment,
                   validation_split=validation_split, validation_data=validation_data,
                   seed=seed, checkpoint=checkpoint, callbacks=callbacks, progress=progress,
                   class_names=class_names, images_as=images_as)

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
        outputs = []
        for i in range(0, X.shape[0], batch_size):
            if self.fast and self._passed:  # no loss to compute: the last layer may take shards
                outputs.append(self._fast_path.forward(X[i : i + batch_size], training=False,
                                                       whole_last=False))
            else:
                outputs.append(self._passes()[0](X[i : i + batch_size], training=False))
        return np.concatenate(outputs)

    def layer_outputs(self, X: np.ndarray) -> list[np.ndarray]:
        """Every layer's output for X, in inference mode, on the plain loop.

        X (n, ...) as for predict -> [A_1 (n, ...), ..., A_L (n, k)]; the last is what
        predict(X) returns, to rounding.
        """
        A, outputs = self._check_X(X), []
        for layer in self.layers:
            layer.training = False
            A = layer.forward_propagate(A)
            outputs.append(A)
        return outputs

    def evaluate(self, X: np.ndarray, Y: np.ndarray, batch_size: int = 1000) -> EvalResult:
        """(A, cce, ce) on a labelled set, without changing any weight."""
        batch_size = self._check_batch_size(batch_size)
        X = self._check_X(X)
        Y = self._check_Y(Y, X.shape[0])
        A = np.empty((X.shape[0], Y.shape[1]), dtype=self.dtype)
        total = 0.0
        for i in range(0, X.shape[0], batch_size):
            A[i : i + batch_size] = self._passes()[0](X[i : i + batch_size], training=False)
            cce, _ = self.output_layer.loss(Y[i : i + batch_size])
            total += cce * A[i : i + batch_size].shape[0]
        return EvalResult(A, total / X.shape[0], self._error_rate(A, Y))


Network = Net
