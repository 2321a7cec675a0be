"""The fast path (cnn_numpy/fast/) against the reference path (Net(fast=False)): the same
outputs, gradients and layer state, on every shipped layer and on drawn architectures
with a user's layers mixed in."""

from __future__ import annotations

import re

import numpy as np
import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from cnn_numpy import (
    BatchNorm,
    ConvLayer,
    ConvLayer_ReLU,
    Dropout,
    FCLayer,
    FCLayer_ReLU,
    FCLayer_Sigmoid,
    FCLayer_Softmax,
    FlatLayer,
    LeakyReLULayer,
    Net,
    PoolLayer_Avg,
    PoolLayer_Max,
    ReLULayer,
    SigmoidLayer,
    TanhLayer,
)
from cnn_numpy.data import load_dataset
from cnn_numpy.engines import get_engine, im2col
from cnn_numpy.fast import blocks, conv_chain, conv_pool, ops, threads, winograd
from cnn_numpy.fast.columns import (
    CHUNK,
    ROWS,
    THIN,
    THIN_WEIGHTS,
    WINDOWS,
    by_element_product,
    first_max_index,
    route_to_max,
    weight_gradient,
    window_max,
    windows_product,
)
from cnn_numpy.layers import Layer

#: Agreement asked for: this share of each array's largest magnitude.
TOL = {np.float32: 1e-5, np.float64: 1e-12}


class Scale(Layer):
    """A user's layer with a weight: A = A_prev * s, one s per channel."""

    def build(self, input_shape, rng, dtype):
        super().build(input_shape, rng, dtype)
        self.s = (1 + 0.1 * rng.standard_normal(input_shape[-1])).astype(dtype)
        self.ds = None

    def output_shape(self, input_shape):
        return tuple(input_shape)

    def params(self):
        return {"s": self.s} if self.built else {}

    def grads(self):
        return {"s": self.ds}

    def forward_propagate(self, A_prev):
        self._ensure_built(A_prev)
        self.A_prev = A_prev
        return A_prev * self.s

    def backpropagate(self, dA):
        self.ds = (dA * self.A_prev).reshape(-1, self.s.size).sum(axis=0)
        return dA * self.s


def close(a: np.ndarray, b: np.ndarray, dtype, what: str, floor: float = 0.0,
          truth: np.ndarray | None = None, loose: float = 1) -> None:
    """|a - b| <= loose * TOL of b's largest magnitude (or of floor, if that is larger).

    truth, the reference's float64 result beside a float32 comparison, may decide
    instead: a passes if it is within the tolerance of it, or no farther from it
    than twice b is.
    """
    tol = TOL[dtype] * loose
    scale = max(float(np.abs(b).max(initial=0)), floor, 1e-30)
    error = float(np.abs(a - b).max(initial=0)) / scale
    if error > tol and truth is not None:
        if np.abs(a - truth).max() <= max(2 * np.abs(b - truth).max(), tol * scale):
            return
    assert error <= tol, f"{what}: differs by {error:.2e} of its largest magnitude"


def _spy_on_terms(layer) -> list[float]:
    """[the largest over channels of sum |dZ|] of the reference layer's last backward
    pass, kept up to date by wrapping the layer's backpropagate (the layer still runs):
    the size of the terms its bias gradient sums."""
    terms = [0.0]
    backpropagate = layer.backpropagate

    def recorded(dA):
        terms[0] = float(np.abs(dA).reshape(-1, dA.shape[-1]).sum(axis=0).max())
        return backpropagate(dA)

    layer.backpropagate = recorded
    return terms


def bias_before_batchnorm(layers: list, index: int) -> bool:
    """True when layer `index` is a ConvLayer or FCLayer whose output reaches a BatchNorm
    only through layers that keep a constant shift constant (Flat, dense, average pool,
    a convolution without padding): BatchNorm takes each channel's mean out, so the
    bias's gradient is exactly 0, and each path's is only the rounding of sums of dZ."""
    if type(layers[index]) not in (ConvLayer, FCLayer):
        return False
    for after in layers[index + 1:]:
        if type(after) is BatchNorm:
            return True
        if type(after) not in (FlatLayer, FCLayer, PoolLayer_Avg) \
                and not (type(after) is ConvLayer and after.padding in (0, "valid")):
            return False
    return False


def compare(make, X, y, dtype, lr=0.05, steps=2, shards=False, block=1, winograd=False):
    """Train a fast and a reference copy of the same Net (same seed) side by side and
    compare everything a step leaves; shards=True cuts even small batches into shards.
    Either way a dense layer on the whole batch cuts its products into blocks, and a
    convolution works on blocks of images holding about `block` numbers (1: an image
    each), so that these small images take the many-block paths of large ones.
    winograd: a 3 x 3 stride-1 convolution takes Winograd's convolution whatever its
    channels (blocks.WINOGRAD_CHANNELS), where its output's sides are even.

    In float32 a float64 reference runs beside them (see close).  With a
    BatchNorm the tolerance is 100 times larger: on these small batches a feature
    can vary little, BatchNorm divides by its spread, and its backward pass
    subtracts nearly equal sums, so either path's rounding is magnified (drawn
    architectures reached 5e-11 in float64).  A wrong gradient is off by far more.
    Outputs after the steps are compared at 10 times the tolerance per step: both
    paths' weights carry their own rounding from every update.
    """
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(threads, "MIN_SHARD", 4)
        patch.setattr(ops.Dense, "MIN_BLOCK_WORK", 1)  # whole, BLAS on one thread: blocks
        patch.setattr(blocks, "BLOCK", block)
        patch.setattr(blocks, "LARGE", 1)
        patch.setattr(blocks, "CACHE_LARGE", 1)  # on shards too
        if winograd:
            patch.setattr(blocks, "WINOGRAD_CHANNELS", 1)
        if shards:
            patch.setattr(threads, "MIN_SAMPLE_SIZE", 1)
        nets = [make(fast, dtype) for fast in (True, False)]
        if dtype == np.float32:
            nets.append(make(False, np.float64))
        layers = nets[1].layers
        loose = 100 if any(type(a) is BatchNorm for a in layers) else 1
        rng = np.random.default_rng(0)
        for net in nets:
            net.build(X.shape[1:])
        terms = {i: _spy_on_terms(layer) for i, layer in enumerate(layers)
                 if bias_before_batchnorm(layers, i)}
        for triples in zip(*(net.param_triples() for net in nets), strict=True):
            # Biases and BatchNorm's beta moved off 0 (the same in each net), so no ReLU
            # input sits exactly on the kink, where either side is right.
            value = triples[-1][1] + 0.1 * rng.standard_normal(triples[-1][1].shape)
            for _, array, _ in triples:
                array[...] = value
        for step in range(steps):
            losses = [np.array(net.train(X, y, lr).cce) for net in nets]
            close(losses[0], losses[1], dtype, f"step {step}: loss",
                  truth=losses[2] if len(losses) > 2 else None, loose=10 * loose)
            # A gradient that is 0 but for rounding (BatchNorm's gamma before another) is
            # measured against the net's largest; a weight against its layer's largest.
            largest = max(float(np.abs(g).max()) for *_, g in nets[1].param_triples())
            for triples in zip(*(net.param_triples() for net in nets), strict=True):
                (key, p, g), (_, p_ref, g_ref) = triples[:2]
                _, p_64, g_64 = triples[2] if len(triples) > 2 else (None, None, None)
                index = int(key.split("/")[0])
                conv_bias, dense = key.endswith("/b"), type(layers[index]) is FCLayer
                if (conv_bias or dense) and bias_before_batchnorm(layers, index):
                    # Its rounding is that of a sum of dZ, whose terms can be far larger
                    # than any gradient (BatchNorm divides by a small spread).
                    bias = (slice(None),) if conv_bias else (slice(None), -1)
                    zero = max(1e3 * TOL[dtype] * largest, TOL[dtype] * terms[index][0])
                    assert max(np.abs(g[bias]).max(), np.abs(g_ref[bias]).max()) <= zero, key
                    if conv_bias:
                        continue
                    g, g_ref = g[:, :-1], g_ref[:, :-1]  # the dense layer's weights
                    g_64 = None if g_64 is None else g_64[:, :-1]
                close(g, g_ref, dtype, f"step {step}: gradient {key}", largest, g_64, loose)
                # The step moved the weights by lr * dW, whose rounding is as above.
                floor = max([float(np.abs(w).max()) for w in layers[index].params().values()]
                            + [2 * lr * largest])  # momentum: up to 1.9 lr dW
                close(p, p_ref, dtype, f"step {step}: weights {key}", floor, p_64, loose)
            for i, (layer, ref) in enumerate(zip(nets[0].layers, nets[1].layers, strict=True)):
                floor = max([float(np.abs(b).max()) for b in ref.buffers().values()] + [0])
                for name, buffer in layer.buffers().items():  # a running mean ~0: its layer's
                    close(buffer, ref.buffers()[name], dtype, f"step {step}: {i}/{name}", floor,
                          loose=loose)
        truth = nets[2].predict(X) if len(nets) > 2 else None
        close(nets[0].predict(X, batch_size=7), nets[1].predict(X), dtype, "predict",
              truth=truth, loose=10 * steps * loose)
        A, A_ref = (net.evaluate(X, y).A for net in nets[:2])
        close(A, A_ref, dtype, "evaluate", truth=truth, loose=10 * steps * loose)
    return nets


def images(n, size, channels, dtype, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, size, size, channels)).astype(dtype), rng.integers(0, 5, n)


SHIPPED = {
    "conv-relu-pool": lambda: [ConvLayer_ReLU(6, 3), PoolLayer_Max(2), FlatLayer(),
                               FCLayer_ReLU(12), FCLayer_Softmax(5)],
    "conv-relu-layer-pool-odd": lambda: [ConvLayer(4, 3, padding=1), ReLULayer(),
                                         PoolLayer_Max(3, stride=2), FlatLayer(),
                                         FCLayer(8), FCLayer_Sigmoid(5)],
    "conv-bn-relu-pool": lambda: [ConvLayer(6, 3, padding="same"), BatchNorm(), ReLULayer(),
                                  PoolLayer_Max(2), ConvLayer_ReLU(4, 2, stride=2),
                                  PoolLayer_Avg(2), FlatLayer(), Dropout(0.3),
                                  FCLayer_ReLU(10), BatchNorm(), FCLayer_Softmax(5)],
    "deep-blocks": lambda: [ConvLayer(6, 3), BatchNorm(), ReLULayer(), PoolLayer_Max(2),
                            ConvLayer(4, 2, engine="stride_groups"), BatchNorm(),
                            PoolLayer_Max(2, engine="stride_groups"), FlatLayer(),
                            FCLayer_Softmax(5)],
    "activations": lambda: [ConvLayer(3, 3), TanhLayer(), PoolLayer_Max(2, stride=1),
                            LeakyReLULayer(0.1), FlatLayer(), SigmoidLayer(),
                            FCLayer_ReLU(7), FCLayer_Softmax(5)],
    "stride-groups": lambda: [ConvLayer_ReLU(5, 3, engine="stride_groups"),
                              PoolLayer_Max(2, engine="stride_groups"), FlatLayer(),
                              FCLayer_Softmax(5)],
    # pools whose windows leave a border of their input out (9 x 9 by 2, 4 x 4 by 3)
    "pools-leaving-a-border": lambda: [ConvLayer_ReLU(4, 2), PoolLayer_Max(2),
                                       PoolLayer_Max(3), FlatLayer(), FCLayer_Softmax(5)],
    "avg-pool-leaving-a-border": lambda: [ConvLayer(3, 2), TanhLayer(), PoolLayer_Avg(2),
                                          FlatLayer(), FCLayer_Softmax(5)],
    # pools of more than conv_chain.MANY elements: global ones, and ones of 5 x 5 that
    # leave a border of 9 x 9
    "global-average-pool": lambda: [ConvLayer_ReLU(4, 3, padding=1), PoolLayer_Avg(10),
                                    FlatLayer(), FCLayer_Softmax(5)],
    "wide-average-pool-leaving-a-border": lambda: [ConvLayer(3, 2), TanhLayer(),
                                                   PoolLayer_Avg(5), FlatLayer(),
                                                   FCLayer_Softmax(5)],
    "global-max-pool": lambda: [ConvLayer_ReLU(4, 3, padding=1), PoolLayer_Max(10),
                                FlatLayer(), FCLayer_Softmax(5)],
    "wide-max-pool-leaving-a-border": lambda: [ConvLayer(20, 2), TanhLayer(),
                                               PoolLayer_Max(5), FlatLayer(),
                                               FCLayer_Softmax(5)],
    # 32 channels into a 5 x 5 "same" convolution: Winograd's F(2 x 2, 5 x 5) whatever the
    # test asks, its input gradient too (32 filters), under a pool in window order
    "wide-5x5": lambda: [ConvLayer_ReLU(32, 5, padding="same"),
                         ConvLayer_ReLU(32, 5, padding="same"), PoolLayer_Max(2),
                         FlatLayer(), FCLayer_Softmax(5)],
    "naive-and-user": lambda: [ConvLayer_ReLU(2, 3, engine="naive"), Scale(),
                               PoolLayer_Max(2, engine="naive"), FlatLayer(),
                               FCLayer_Softmax(5)],
}


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("shards", [False, True], ids=["whole", "shards"])
@pytest.mark.parametrize("name", list(SHIPPED))
def test_the_fast_path_gives_what_the_reference_gives(name, shards, dtype):
    X, y = images(12, 10, 2, dtype)
    compare(lambda fast, dtype: Net(SHIPPED[name](), seed=3, dtype=dtype, fast=fast,
                                    optimizer="momentum"), X, y, dtype, shards=shards)


@st.composite
def architectures(draw, size=12):
    """A random architecture that fits size x size x 2 inputs, users' layers included:
    the zoo's shapes ('same' padding, strides, average pools, filters and pools that do
    not tile the map, activations between a convolution and its pool).

    Not drawn: one-filter convolutions and a BatchNorm right after another, which
    normalize a channel with almost no spread: either path's float32 rounding was
    then magnified to a fifth of the largest gradient, and no tolerance can tell
    that from a wrong answer."""
    engines = st.sampled_from([None, "im2col", "stride_groups"])
    layers = []
    for _ in range(draw(st.integers(1, 2))):
        fw = draw(st.integers(1, min(5, size)))
        kind = draw(st.sampled_from([ConvLayer, ConvLayer_ReLU]))
        layers.append(kind(draw(st.integers(2, 5)), fw, padding=draw(st.sampled_from(
            [0, 1, "same"])), stride=draw(st.integers(1, 3)), engine=draw(engines)))
        shape = layers[-1].output_shape((size, size, 1))
        size = shape[0]
        for extra in draw(st.lists(st.sampled_from(["bn", "relu", "tanh", "leaky", "sigmoid",
                                                    "scale"]), max_size=2, unique=True)):
            layers.append({"bn": BatchNorm, "relu": ReLULayer, "tanh": TanhLayer,
                           "leaky": lambda: LeakyReLULayer(0.1), "sigmoid": SigmoidLayer,
                           "scale": Scale}[extra]())
        if size >= 2 and draw(st.booleans()):
            fw = draw(st.integers(1, min(3, size)))
            pool = draw(st.sampled_from([PoolLayer_Max, PoolLayer_Avg]))
            layers.append(pool(fw, stride=draw(st.integers(1, fw)), engine=draw(engines)))
            size = layers[-1].output_shape((size, size, 1))[0]
    layers.append(FlatLayer())
    for _ in range(draw(st.integers(0, 2))):
        layers.append(draw(st.sampled_from([FCLayer, FCLayer_ReLU]))(draw(st.integers(1, 9))))
        if draw(st.booleans()):
            layers.append(draw(st.sampled_from([BatchNorm(), Dropout(0.25), Scale(),
                                                ReLULayer()])))
    layers.append(draw(st.sampled_from([FCLayer_Softmax, FCLayer_Sigmoid]))(5))
    return layers


#: Image sizes drawn: odd ones, where windows of 2 and strides of 2 leave a rest.
SIZES = st.sampled_from([11, 12, 13])


@settings(max_examples=40, deadline=None)
@given(sized=SIZES.flatmap(lambda size: st.tuples(st.just(size), architectures(size))),
       dtype=st.sampled_from([np.float64, np.float32]), shards=st.booleans(),
       block=st.sampled_from([1, 600, blocks.BLOCK]), winograd=st.booleans(),
       seed=st.integers(0, 2**16))
# Found by the search: in float32 the reference's gradient of the 1 x 1 conv before
# BatchNorm was 6% off (the fast path's matched float64), so predictions differed by 4%.
@example(sized=(12, [ConvLayer(2, 3, padding=1), ConvLayer(3, 1, padding=1), ReLULayer(),
                     BatchNorm(), FlatLayer(), FCLayer_Sigmoid(5)]),
         dtype=np.float32, shards=False, block=blocks.BLOCK, winograd=False, seed=46121)
# Found by a longer search: a 1 x 1 convolution down to one pixel before BatchNorm, whose
# nine values per channel barely differed; dZ reached 15,000 and its float32 sum, the
# bias gradient, 0.004 (0 in float64), more than the net's largest gradient allowed.
@example(sized=(12, [ConvLayer_ReLU(2, 1, stride=3), PoolLayer_Avg(3, stride=1),
                     ConvLayer(2, 1, stride=2), BatchNorm(), FlatLayer(), FCLayer(5),
                     BatchNorm(), FCLayer(1), FCLayer_Softmax(5)]),
         dtype=np.float32, shards=False, block=1, winograd=False, seed=7294)
def test_drawn_architectures_agree_on_both_paths(sized, dtype, shards, block, winograd, seed):
    """Blocks of one image, of a few, and of the whole batch."""
    size, layers = sized
    X, y = images(9, size, 2, dtype, seed)
    config = [(type(layer), layer.config()) for layer in layers]
    compare(lambda fast, dtype: Net([kind(**args) for kind, args in config], seed=seed,
                                    dtype=dtype, fast=fast, optimizer="momentum",
                                    weight_decay=1e-3),
            X, y, dtype, shards=shards, block=block, winograd=winograd)



@st.composite
def deep_blocks(draw):
    """One or two blocks of conv + BatchNorm [+ ReLU] + max pool (the fast path's fused
    deep block), on either fast engine, any padding, stride and pool, then softmax."""
    engines = st.sampled_from([None, "im2col", "stride_groups"])
    layers, size = [], 12
    for _ in range(draw(st.integers(1, 2))):
        fw = draw(st.integers(1, min(3, size)))
        layers.append(ConvLayer(draw(st.integers(2, 5)), fw, padding=draw(st.sampled_from(
            [0, 1, "same"])), stride=draw(st.integers(1, 2)), engine=draw(engines)))
        size = layers[-1].output_shape((size, size, 1))[0]
        layers.append(BatchNorm(momentum=draw(st.sampled_from([0.1, 0.5]))))
        if draw(st.booleans()):
            layers.append(ReLULayer())
        if size < 2:
            break
        p = draw(st.integers(2, min(3, size)))
        layers.append(PoolLayer_Max(p, stride=draw(st.integers(1, p)), engine=draw(engines)))
        size = layers[-1].output_shape((size, size, 1))[0]
    return layers + [FlatLayer(), FCLayer_Softmax(5)]


@settings(max_examples=25, deadline=None)
@given(layers=deep_blocks(), dtype=st.sampled_from([np.float64, np.float32]),
       shards=st.booleans(), winograd=st.booleans(), seed=st.integers(0, 2**16))
# Found by hypothesis: a padded 1 x 1 convolution on a mostly zero input, so that some
# images' means are far from the batch's.  The blocks' BatchNorm sums used to subtract
# two large, nearly equal numbers there, and dW lost three digits in float32.
@example(layers=[ConvLayer(3, 2, padding=1), BatchNorm(), ReLULayer(),
                 PoolLayer_Max(2, stride=1, engine="stride_groups"),
                 ConvLayer(4, 1, padding=1), BatchNorm(), PoolLayer_Max(3, stride=1),
                 FlatLayer(), FCLayer_Softmax(5)],
         dtype=np.float32, shards=False, winograd=False, seed=20424)
def test_drawn_deep_blocks_agree_on_both_paths(layers, dtype, shards, winograd, seed):
    X, y = images(9, 12, 2, dtype, seed)
    config = [(type(layer), layer.config()) for layer in layers]
    compare(lambda fast, dtype: Net([kind(**args) for kind, args in config], seed=seed,
                                    dtype=dtype, fast=fast, optimizer="momentum"),
            X, y, dtype, shards=shards, winograd=winograd)


def test_a_fused_block_on_one_value_per_channel_says_what_the_reference_says():
    messages = []
    for fast in (True, False):
        net = Net([ConvLayer(4, 3), BatchNorm(), ReLULayer(), PoolLayer_Max(1), FlatLayer(),
                   FCLayer_Softmax(3)], seed=0, fast=fast)
        X = np.random.default_rng(0).random((4, 3, 3, 1))
        net.train(X, np.array([0, 1, 2, 0]), 0.1)  # builds the net: the next step is fast
        with pytest.raises(ValueError) as error:
            net.train(X[:1], np.array([0]), 0.1)
        messages.append(str(error.value))
    assert messages[0] == messages[1]
    assert "got input of shape (1, 1, 1, 4); use batches of 2 or more" in messages[0]

def test_200_steps_in_float64_give_the_same_losses():
    data = load_dataset("mnist-sample")
    X, y = data.x_train[:640], data.y_train[:640]
    losses = []
    for fast in (True, False):
        net = Net([ConvLayer_ReLU(4, 3), PoolLayer_Max(2), FlatLayer(), FCLayer_ReLU(16),
                   FCLayer_Softmax(10)], seed=0, dtype=np.float64, fast=fast)
        losses.append([net.train(X[i % 20 * 32:][:32], y[i % 20 * 32:][:32], 0.1).cce
                       for i in range(200)])
    np.testing.assert_allclose(losses[0], losses[1], rtol=0, atol=1e-9)
    assert losses[0][-1] < losses[0][0] / 3  # it learned: the comparison is not of noise


def test_cached_arrays_are_the_reference_values_or_none():
    """After a fast step a layer's A is what the reference left, or None: never the pooled
    input of a ReLU that has not run, nor one shard's."""
    X, y = images(130, 10, 1, np.float32)
    make = SHIPPED["conv-bn-relu-pool"]
    fast, ref = (Net(make(), seed=0, fast=f) for f in (True, False))
    for net in (fast, ref):
        net.build(X.shape[1:])
        net.train(X, y, 0.1)
    for layer, other in zip(fast.layers, ref.layers, strict=True):
        for name in ("A", "Z", "x_hat", "mask"):
            value = getattr(layer, name, None)
            if value is not None:
                # BatchNorm divides by the batch's spread, which magnifies float32 rounding
                # in the sums before it: the softmax output was seen 1.0001e-5 apart.
                close(value, getattr(other, name), np.float32, f"{type(layer).__name__}.{name}",
                      loose=3)
    assert getattr(fast.layers[0], "Z", None) is None  # fused: absent
    assert getattr(fast.layers[3], "A", None) is None
    assert fast.layers[-1].A is not None  # the output layer runs as its own passes
    assert ref.layers[2].A.min() == 0  # the reference ReLU's output is a ReLU's output


def test_summary_says_what_runs_each_layer():
    net = Net([ConvLayer_ReLU(4, 3), PoolLayer_Max(2), ConvLayer(4, 3), BatchNorm(),
               ReLULayer(), PoolLayer_Max(2, engine="naive"), FlatLayer(), FCLayer_ReLU(8),
               Scale(), FCLayer_Softmax(3)])
    net.build((20, 20, 1))
    rows = net.summary(print_fn=None).splitlines()[4:14]
    columns = [re.split(r"\s{2,}", row) for row in rows]  # layer, engine, runs as, shape, params
    runs = [f"{layer.split(': ')[1]} / {runs_as}" for layer, _, runs_as, *_ in columns]
    assert runs == ["ConvLayer_ReLU / conv+relu+max_pool (0-1)",
                    "PoolLayer_Max / conv+relu+max_pool (0-1)",
                    "ConvLayer / conv+batch_norm+relu (2-4)",
                    "BatchNorm / conv+batch_norm+relu (2-4)",
                    "ReLULayer / conv+batch_norm+relu (2-4)", "PoolLayer_Max / its own passes",
                    "FlatLayer / its own passes",
                    "FCLayer_ReLU / dense+relu", "Scale / its own passes",
                    "FCLayer_Softmax / its own passes"]
    assert columns[5][1] == "naive" and columns[0][1] == "im2col" and columns[3][1] == "-"
    plain = Net(net.layers, fast=False).summary(print_fn=None)
    assert "conv+relu" not in plain and plain.count("its own passes") == 10


def test_a_naive_layer_runs_the_naive_loops_on_the_fast_path(monkeypatch):
    from cnn_numpy.engines import naive

    calls = []
    for name in ("conv_forward", "conv_backward", "max_pool_forward", "max_pool_backward"):
        original = getattr(naive, name)
        monkeypatch.setattr(naive, name, lambda *a, _f=original, _n=name, **k:
                            calls.append(_n) or _f(*a, **k))
    net = Net([ConvLayer_ReLU(2, 3, engine="naive"), PoolLayer_Max(2, engine="naive"),
               FlatLayer(), FCLayer_Softmax(3)], seed=0)
    X, y = images(4, 8, 1, np.float32)
    for _ in range(2):
        net.train(X, y % 3, 0.1)
    assert calls == ["conv_forward", "max_pool_forward", "max_pool_backward",
                     "conv_backward"] * 2


@settings(max_examples=60, deadline=None)
@given(p=st.integers(2, 3), n=st.integers(1, 3), c=st.integers(1, 3), ties=st.booleans(),
       dtype=st.sampled_from([np.float64, np.float32]), seed=st.integers(0, 2**16))
def test_max_pool_in_window_order_computes_what_im2col_computes(p, n, c, ties, dtype, seed):
    """conv_pool's max pool reads Z by p x p window element and gives the gradient back
    in it: the same pooled output and dZ as im2col's in the usual layout, exactly."""
    rng = np.random.default_rng(seed)
    oh, ow = p * rng.integers(1, 4), p * rng.integers(1, 4)
    Z = rng.standard_normal((n, oh, ow, c))
    if ties:  # many equal maxima, as after a ReLU
        Z = np.maximum(np.round(Z), 0)
    Z = Z.astype(dtype)
    Zw = np.ascontiguousarray(conv_pool.by_pool_window(Z, p))
    out, pool_cache = im2col.max_pool_forward(Z, p, p)
    for argmax in (True, False):
        out_w, pool_cache_w = conv_pool.max_pool_forward(Zw, argmax=argmax)
        np.testing.assert_array_equal(out_w, out)
        dout = rng.standard_normal(out.shape).astype(dtype)
        dZ = im2col.max_pool_backward(dout, pool_cache)
        dZw = conv_pool.max_pool_backward(dout, pool_cache_w)
        np.testing.assert_array_equal(dZw, conv_pool.by_pool_window(dZ, p))


@pytest.mark.parametrize("shape, fw, stride, pads", [
    ((2, 9, 11, 3), 3, 1, ((1, 1), (1, 1))),
    ((2, 16, 16, 2), 3, 2, ((0, 1), (0, 1))),
    ((1, 10, 13, 4), 2, 1, ((0, 0), (0, 0))),
])
def test_a_window_matrix_copied_channel_by_channel_is_the_window_matrix(shape, fw, stride,
                                                                         pads):
    """BlockedConv.columns of an element-major window matrix with several channels (copied
    from the block padded channel by channel) holds what window_matrix copies from the
    pixel-major padded block, exactly."""
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    conv = blocks.BlockedConv(shape, np.zeros((fw, fw, shape[3], 4), np.float32), stride,
                              pads)
    assert conv.columns_by_element()
    want = blocks.window_matrix(blocks.window_view(conv._padded(x), fw, stride))
    got = conv.columns(x)
    assert got.flags.c_contiguous and got.shape == want.shape
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("p", [5, 8])
@pytest.mark.parametrize("ties", [False, True])
def test_a_large_max_pool_in_whole_array_steps_computes_what_its_steps_compute(p, ties):
    """conv_chain's max pool over windows of more than MANY elements, by window element:
    the maxima, the first maximum's index and the routed gradient of window_max,
    first_max_index and route_to_max, exactly, with ties too."""
    rng = np.random.default_rng(p)
    Z = rng.standard_normal((p, p, 3, 2, 2, 4))
    if ties:  # many equal maxima, as after a ReLU
        Z = np.maximum(np.round(Z), 0)
    views = [Z[a, q] for a in range(p) for q in range(p)]
    out = window_max(views)
    index = first_max_index(views, out)
    out_whole, index_whole = np.empty_like(out), np.empty_like(index)
    conv_chain._max_by_element(Z, out_whole, index_whole)
    np.testing.assert_array_equal(out_whole, out)
    np.testing.assert_array_equal(index_whole, index)
    dP = rng.standard_normal(out.shape)
    dZ, dZ_whole = np.empty_like(Z), np.empty_like(Z)
    route_to_max(dP, index, [dZ[a, q] for a in range(p) for q in range(p)], write=True)
    conv_chain._route_by_element(dP, index, dZ_whole)
    np.testing.assert_array_equal(dZ_whole, dZ)


@settings(max_examples=80, deadline=None)
@given(fw=st.integers(1, 4), stride=st.integers(1, 3), padding=st.sampled_from([0, 1, 2, "same"]),
       size=st.tuples(st.integers(1, 9), st.integers(1, 9)), n=st.integers(1, 4),
       c=st.integers(1, 3), nf=st.integers(1, 3), order=st.integers(1, 3),
       block=st.sampled_from([1, 100, blocks.BLOCK]), dtype=st.sampled_from([np.float64,
                                                                             np.float32]),
       winograd=st.booleans(), seed=st.integers(0, 2**16))
# input gradients copied filter by filter (rows of 10 outputs, longer than 3 x 2 numbers)
@example(fw=3, stride=1, padding="same", size=(6, 10), n=3, c=2, nf=2, order=1, block=100,
         dtype=np.float64, winograd=False, seed=1)
@example(fw=2, stride=1, padding=0, size=(5, 9), n=2, c=3, nf=3, order=2,
         block=blocks.BLOCK, dtype=np.float32, winograd=False, seed=2)
def test_blocked_convolution_computes_what_im2col_computes(fw, stride, padding, size, n, c, nf,
                                                           order, block, dtype, winograd, seed):
    """blocks.py's convolution on blocks of images, with its padding written block by block,
    its output in pool window order or not, and its input gradient as a convolution of
    its own (stride 1) or added back window by window; with winograd, a 3 x 3 stride-1
    one with an even output as Winograd's F(2 x 2, 3 x 3) at any channel count: the
    engine's Z, dx, dW and db on the padded input, up to the order of sums."""
    with pytest.MonkeyPatch.context() as patch:
        if winograd:
            patch.setattr(blocks, "WINOGRAD_CHANNELS", 1)
        blocked_convolution(fw, stride, padding, size, n, c, nf, order, block, dtype,
                            winograd, seed)


def blocked_convolution(fw, stride, padding, size, n, c, nf, order, block, dtype, winograd,
                        seed):
    pads = ConvLayer(nf, fw, stride, padding).pads(*size)
    x_shape = (n, *size, c)
    padded = (size[0] + sum(pads[0]), size[1] + sum(pads[1]))
    assume(min(padded) >= fw)
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(x_shape).astype(dtype)
    W, b = rng.standard_normal((fw, fw, c, nf)).astype(dtype), rng.standard_normal(nf).astype(dtype)
    Z_ref, cache = im2col.conv_forward(np.pad(x, ((0, 0), *pads, (0, 0))), W, b, stride)
    assume(Z_ref.shape[1] % order == 0 and Z_ref.shape[2] % order == 0)
    geometry = blocks.BlockedConv(x_shape, W, stride, pads, order=order)
    Z = np.empty(geometry.out_shape(n), dtype=dtype)
    Wb = np.concatenate([W.reshape(-1, nf), b[None, :]])
    cuts = blocks.image_blocks(n, geometry.oh * geometry.ow * (geometry.k + 1), block)
    dZ_ref = rng.standard_normal(Z_ref.shape).astype(dtype)
    dx_ref, dW_ref, db_ref = im2col.conv_backward(dZ_ref, cache)
    dx_ref = ops.unpad(dx_ref, pads)
    arranged = conv_pool.by_pool_window if order > 1 else lambda a, p: a
    dZ = np.ascontiguousarray(arranged(dZ_ref, order))
    dx, dWb = np.empty(x_shape, dtype=dtype), 0
    for rows in cuts:
        part = (slice(None),) * (2 if order > 1 else 0) + (rows,)
        keep = geometry.keeps_columns()
        kept = geometry.forward(x[rows], Wb, Z[part], columns=keep)
        dWb = dWb + geometry.backward(x[rows], np.ascontiguousarray(dZ[part]), W, dx[rows],
                                      kept if keep else None)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    for got, want in [(Z, arranged(Z_ref, order)), (dx, dx_ref),
                      (dWb[:-1].reshape(W.shape), dW_ref), (dWb[-1], db_ref)]:
        assert got.dtype == dtype
        np.testing.assert_allclose(got, want, rtol=tol,
                                   atol=tol * max(1, float(np.abs(want).max())))


SAME, VALID, SHIFTED = ((1, 1), (1, 1)), ((0, 0), (0, 0)), ((2, 0), (0, 2))
SAME5, SHIFTED5 = ((2, 2), (2, 2)), ((4, 0), (0, 4))


@pytest.mark.parametrize("fw, pads, order, size", [
    (3, SAME, 1, (6, 10)), (3, SAME, 2, (6, 10)), (3, VALID, 1, (6, 10)),
    (3, SHIFTED, 2, (6, 10)), (3, SAME, 1, (8, 12)), (3, SAME, 2, (8, 12)),
    (3, SAME, 4, (8, 12)), (3, VALID, 1, (8, 12)), (3, SHIFTED, 2, (8, 12)),
    (5, SAME5, 1, (6, 10)), (5, SAME5, 2, (6, 10)), (5, VALID, 1, (8, 12)),
    (5, SHIFTED5, 2, (6, 10))])
@pytest.mark.parametrize("block", [1, 3])
def test_winograd_takes_a_wide_convolution_and_computes_what_im2col_computes(fw, pads, order,
                                                                             size, block):
    """From WINOGRAD_CHANNELS channels on, the forward pass, the weight gradient (from the
    transformed tiles the forward pass kept, or computed again) and the input gradient of
    a 3 x 3 stride-1 convolution run as Winograd's, F(4 x 4, 3 x 3) where the sides
    divide by 4, else F(2 x 2, 3 x 3), and those of a 5 x 5 one as F(2 x 2, 5 x 5) where
    the sides are even; in float64 they give the engine's numbers to 1e-12, and in
    float32 their error against float64 stays within twice the window matrix's own for
    F(2 x 2, 3 x 3), within 2e-5 of the largest value for the others (winograd.py says
    why), also in pool window order and on blocks of a batch."""
    n, c, nf = 3, blocks.WINOGRAD_CHANNELS, blocks.WINOGRAD_CHANNELS
    out = (size[0] + sum(pads[0]) - fw + 1, size[1] + sum(pads[1]) - fw + 1)
    m = winograd.tile_side(*out, fw)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((n, *size, c))
    W, b = rng.standard_normal((fw, fw, c, nf)) / np.sqrt(fw * fw * c), rng.standard_normal(nf)
    dZ = rng.standard_normal((n, *out, nf))
    arranged = conv_pool.by_pool_window if order > 1 else lambda a, p: a
    Z_ref, cache = im2col.conv_forward(np.pad(x, ((0, 0), *pads, (0, 0))), W, b, 1)
    dx_ref, dW_ref, db_ref = im2col.conv_backward(dZ, cache)
    dx_ref = ops.unpad(dx_ref, pads)
    results = {}
    for dtype, fast in [(np.float64, True), (np.float32, True), (np.float32, False)]:
        with pytest.MonkeyPatch.context() as patch:
            if not fast:
                patch.setattr(blocks, "WINOGRAD_CHANNELS", c + 1)
            *results[dtype, fast], took = _blocked_pass(x, W, b, dZ, pads, order, block,
                                                        dtype)
            assert took == (m if fast else 0)
    wants = (arranged(Z_ref, order), dx_ref, dW_ref, db_ref)
    for got, want in zip(results[np.float64, True], wants, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)
    # The tile side behind each result: Z's and dW's the forward pass's, dx's its own.
    sides = (m, winograd.tile_side(*size, fw), m, 0)
    for fast, direct, want, side in zip(results[np.float32, True],
                                        results[np.float32, False], wants, sides, strict=True):
        error, largest = np.abs(fast - want).max(), np.abs(want).max()
        if side and (side, fw) != (2, 3):
            assert error <= 2e-5 * largest
        else:
            assert error <= max(2 * np.abs(direct - want).max(), 1e-6 * largest)


def _blocked_pass(x, W, b, dZ, pads, order, block, dtype):
    """(Z, dx, dW, db, the tile side of the Winograd convolution that ran, or 0) of
    BlockedConv on blocks of `block` images, in dtype: the forward pass, then the
    backward pass, given what the forward pass kept (every other block) or not; Z in
    pool window order if order > 1."""
    n, nf = x.shape[0], W.shape[-1]
    geometry = blocks.BlockedConv(x.shape, W, 1, pads, order=order)
    Wb = np.concatenate([W.reshape(-1, nf), b[None, :]]).astype(dtype)
    Z, dx = np.empty(geometry.out_shape(n), dtype=dtype), np.empty(x.shape, dtype=dtype)
    arranged = conv_pool.by_pool_window(dZ, order) if order > 1 else dZ
    dZ = np.ascontiguousarray(arranged).astype(dtype)
    dWb = 0
    for i, rows in enumerate(threads.even_slices(n, n // block)):
        part = (slice(None),) * (2 if order > 1 else 0) + (rows,)
        kept = geometry.forward(x[rows].astype(dtype), Wb, Z[part], columns=i % 2 == 0)
        if i % 2:  # (the window matrix path returns its window matrix anyway)
            assert kept is None or not geometry.winograd
            kept = None
        dWb = dWb + geometry.backward(x[rows].astype(dtype), np.ascontiguousarray(dZ[part]),
                                      W.astype(dtype), dx[rows], kept)
    return Z, dx, dWb[:-1].reshape(W.shape), dWb[-1], geometry.winograd


@pytest.mark.parametrize("shape, conv, pool, rows, pads", [
    # the odd sizes' first chain: a 3 x 3 pool reads 24 x 24 of 26 x 26, from 27 x 27
    ((2, 29, 29, 3), ConvLayer(4, 4), PoolLayer_Max(3), 27, ((0, 0), (0, 0))),
    # its second: 3 x 3 by 2 reads 7 x 7 of 8 x 8, which need no padding below
    ((2, 8, 8, 16), ConvLayer(8, 3, padding=1), PoolLayer_Max(3, stride=2), 8,
     ((1, 0), (1, 0))),
    # 2 x 2 reads all of 26 x 26; a strided 'same' convolution's 32 x 32 likewise
    ((2, 28, 28, 1), ConvLayer(4, 3), PoolLayer_Max(2), 28, ((0, 0), (0, 0))),
    ((2, 64, 64, 3), ConvLayer(4, 3, stride=2, padding="same"), PoolLayer_Avg(2), 64,
     ((0, 1), (0, 1))),
])
def test_a_chain_convolves_only_what_its_pool_reads(shape, conv, pool, rows, pads):
    """conv_chain._under_pool: the rows and columns of the input, and the padding, that
    the outputs under the pool's windows need; the whole input where it reads them all."""
    conv.build(shape, np.random.default_rng(0), np.float32)
    A = np.zeros(shape, np.float32)
    used, used_pads = conv_chain._under_pool(A, conv.pads(*shape[1:3]), conv, pool)
    assert used.shape == (shape[0], rows, rows, shape[3])
    assert used_pads == pads
    assert (used is A) == (rows == shape[1] and pads == conv.pads(*shape[1:3]))


@pytest.mark.parametrize("pool", [PoolLayer_Max(2), PoolLayer_Avg(2), PoolLayer_Max(3, stride=2)])
@pytest.mark.parametrize("activation", [ReLULayer(), TanhLayer()])
def test_a_prediction_by_channel_gives_what_the_chain_gives_by_pixel(pool, activation):
    """A first convolution with few channels and filters, and a pool after it, predicts
    channel by channel (conv_chain.BY_CHANNEL): the numbers of the pixel-major chain and
    of the reference, with the pooled output back in (n, h, w, nf)."""
    X, _ = images(8, 12, 1, np.float64, seed=3)
    layers = [ConvLayer(4, 3), activation, pool, FlatLayer(), FCLayer_Softmax(5)]
    config = [(type(layer), layer.config()) for layer in layers]
    outputs, ways = [], []
    forward = conv_chain.ConvChain.forward

    def spied(chain, A, training):
        result = forward(chain, A, training)
        ways.append(chain.by_channel)
        return result

    for by_channel, fast in [(16, True), (0, True), (16, False)]:
        net = Net([kind(**args) for kind, args in config], seed=1, dtype=np.float64, fast=fast)
        net.train(X, np.arange(8) % 5, 0.1)  # builds the weights on the reference
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(conv_chain, "BY_CHANNEL", by_channel)
            patch.setattr(conv_chain.ConvChain, "forward", spied)
            outputs.append(net.predict(X))
    assert ways == [True, False]
    np.testing.assert_allclose(outputs[0], outputs[2], rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(outputs[1], outputs[2], rtol=1e-12, atol=1e-14)


def test_winograd_is_left_to_the_convolutions_it_suits():
    """F(4 x 4, 3 x 3) where the output's sides divide by 4, F(2 x 2, 3 x 3) where they are
    only even, F(2 x 2, 5 x 5) for 5 x 5 filters and an even output; none for a stride of
    2, another filter size, an odd output, fewer channels, or a pool order that a tile
    does not fill; and a pass that keeps what the forward
    pass returns (columns=True) gets its transformed tiles, not a window matrix."""
    wide = blocks.WINOGRAD_CHANNELS
    same = ((1, 1), (1, 1))

    def suits(shape, fw=3, stride=1, pads=same, order=1, nf=4):
        return blocks.BlockedConv(shape, np.zeros((fw, fw, shape[-1], nf), np.float32),
                                  stride, pads, order=order).winograd

    assert suits((2, 8, 8, wide)) == suits((2, 8, 8, wide), order=4) == 4
    assert suits((2, 6, 8, wide)) == suits((2, 6, 6, wide), order=2) == 2
    assert not suits((2, 8, 8, wide), stride=2)
    assert suits((2, 8, 8, wide), fw=5, pads=SAME5) == suits((2, 8, 8, wide), fw=5, pads=SAME5,
                                                             order=2) == 2
    assert not suits((2, 8, 8, wide), fw=5, pads=SAME5, order=4)
    assert not suits((2, 7, 8, wide), fw=5, pads=SAME5)
    assert not suits((2, 8, 8, wide), fw=4, pads=((1, 2), (1, 2)))
    assert not suits((2, 8, 8, wide), fw=7, pads=((3, 3), (3, 3)))
    assert not suits((2, 7, 8, wide))
    assert not suits((2, 8, 8, wide - 1))
    assert not suits((2, 6, 6, wide), order=3)
    assert not suits((2, 12, 12, wide), pads=((2, 2), (2, 2)), order=4)  # 14 x 14: 2 x 2 tiles
    geometry = blocks.BlockedConv((1, 4, 4, wide), np.ones((3, 3, wide, 2), np.float32), 1,
                                  same)
    kept = geometry.forward(np.ones((1, 4, 4, wide), np.float32),
                            np.ones((9 * wide + 1, 2), np.float32),
                            np.empty((1, 4, 4, 2), np.float32))
    assert geometry.keeps_columns() and kept.shape == (36, 1, wide)  # 6 x 6 elements, 1 tile


@pytest.mark.parametrize("engine", ["im2col", "stride_groups"])
@settings(max_examples=60, deadline=None)
@given(fw=st.integers(1, 4), stride=st.integers(1, 3), n=st.integers(1, 3),
       c=st.integers(1, 3), nf=st.integers(1, 3), extra=st.tuples(st.integers(0, 6),
                                                                   st.integers(0, 6)),
       ties=st.booleans(), dtype=st.sampled_from([np.float64, np.float32]),
       seed=st.integers(0, 2**16))
def test_the_fast_engines_compute_what_the_engines_compute(engine, fw, stride, n, c, nf,
                                                            extra, ties, dtype, seed):
    """fast/im2col.py and fast/stride_groups.py against the engines whose maths they run:
    the same Z, dx, dW and db up to the order of sums (no dx with need_dx=False), and the
    same pooled output and dx exactly, whether the forward pass found the maxima
    (argmax=True) or the backward pass does."""
    reference, fast = get_engine(engine), ops.ENGINES[engine]
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, fw + extra[0], fw + extra[1], c))
    W, b = rng.standard_normal((fw, fw, c, nf)), rng.standard_normal(nf)
    if ties:  # many equal maxima, as after a ReLU
        x = np.maximum(np.round(x), 0)
    x, W, b = x.astype(dtype), W.astype(dtype), b.astype(dtype)
    tol = dict(rtol=1e-4 if dtype == np.float32 else 1e-10)
    Z_ref, cache_ref = reference.conv_forward(x, W, b, stride)
    Z, cache = fast.conv_forward(x, W, b, stride)
    assert Z.dtype == dtype
    np.testing.assert_allclose(Z, Z_ref, atol=tol["rtol"] * max(1, float(np.abs(Z_ref).max())),
                               **tol)
    dZ = rng.standard_normal(Z.shape).astype(dtype)
    wants = reference.conv_backward(dZ, cache_ref)
    for need_dx in (True, False):
        gots = fast.conv_backward(dZ, cache, need_dx)
        assert (gots[0] is None) == (not need_dx)
        for got, want in zip(gots, wants, strict=True):
            if got is not None:
                assert got.shape == want.shape and got.dtype == dtype
                np.testing.assert_allclose(
                    got, want, atol=tol["rtol"] * max(1, float(np.abs(want).max())), **tol)
    out_ref, pool_cache_ref = reference.max_pool_forward(x, fw, stride)
    dout = rng.standard_normal(out_ref.shape).astype(dtype)
    dx_ref = reference.max_pool_backward(dout, pool_cache_ref)
    for argmax in (True, False):
        out, pool_cache = fast.max_pool_forward(x, fw, stride, argmax)
        np.testing.assert_array_equal(out, out_ref)
        np.testing.assert_array_equal(fast.max_pool_backward(dout, pool_cache), dx_ref)


@pytest.mark.parametrize("windows", [CHUNK - 1, 3 * CHUNK, 3000, 28 * 26 * 26 + 5])
def test_a_thin_weight_gradient_has_the_same_bits_on_any_number_of_blas_threads(windows):
    """A thin [dW; db] (at most THIN numbers) is summed over fixed chunks of windows,
    each product small enough for one thread (ONE_THREAD; chunks of fewer windows for
    more numbers), so how OpenBLAS splits a long sum between its threads cannot change
    its bits (a plain `cols @ dZ` of (10, 3000) x (3000, 32) did, on OpenBLAS 0.3.31,
    and so did chunks of 512 windows for a 127 x 16 [dW; db]); it is the product to
    rounding."""
    import threadpoolctl

    rng = np.random.default_rng(windows)
    for k, nf in [(10, 32), (17, 16), (2, 256), (73, 16), (127, 16), (256, 16)]:
        assert k * nf <= THIN
        cols = rng.standard_normal((k, windows)).astype(np.float32)
        dZ2 = rng.standard_normal((windows, nf)).astype(np.float32)
        results = []
        for count in (1, 2, 3):
            with threadpoolctl.threadpool_limits(limits=count, user_api="blas"):
                results.append(weight_gradient(cols, dZ2))
        for result in results[1:]:
            np.testing.assert_array_equal(result, results[0])
        exact = cols.astype(np.float64) @ dZ2.astype(np.float64)
        np.testing.assert_allclose(results[0], exact, rtol=1e-4, atol=1e-4 * np.sqrt(windows))


@pytest.mark.parametrize("windows", [WINDOWS - 1, WINDOWS, 3 * WINDOWS + 7])
@pytest.mark.parametrize("k, n", [(73, 8), (28, 32), (145, 32), (289, 32)])  # thin but the last
@pytest.mark.parametrize("window_major", [False, True])
def test_a_thin_windows_product_in_chunks_is_the_product(windows, k, n, window_major):
    """windows_product writes cols.T @ W into out for either memory order of cols and of
    out, the last windows past a whole chunk included; a product of more than
    THIN_WEIGHTS weights, or an out of other strides, is one plain product."""
    assert (k * n <= THIN_WEIGHTS) == (k != 289)  # both kinds are covered
    rng = np.random.default_rng(windows + k)
    cols = rng.standard_normal((windows, k) if window_major else (k, windows))
    cols = (cols.T if window_major else cols).astype(np.float32)
    W = rng.standard_normal((k, n)).astype(np.float32)
    expected = cols.T.astype(np.float64) @ W
    out = np.full((windows, n), np.nan, np.float32)
    windows_product(cols, W, out)
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-4)
    by_channel = np.full((n, windows), np.nan, np.float32)  # stored channel by channel
    windows_product(cols, W, by_channel.T)
    np.testing.assert_allclose(by_channel.T, expected, rtol=1e-5, atol=1e-4)
    strided = np.full((windows, 2 * n), np.nan, np.float32)[:, ::2]
    windows_product(cols, W, strided)
    np.testing.assert_allclose(strided, expected, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("k, n", [(73, 8), (145, 16), (28, 32), (145, 32), (288, 16)])
def test_the_chunked_products_have_the_same_bits_on_any_number_of_blas_threads(k, n):
    """windows_product and by_element_product, on thin products of the zoo's shapes (and
    a remainder past the last whole chunk): how OpenBLAS shares a chunk between its
    threads does not change a bit."""
    import threadpoolctl

    rng = np.random.default_rng(k)
    cols = rng.standard_normal((k, 20 * ROWS + 3)).astype(np.float32)
    W = rng.standard_normal((k, n)).astype(np.float32)
    dZ2 = rng.standard_normal((20 * ROWS + 3, n)).astype(np.float32)
    turned = rng.standard_normal((9, n, 6)).astype(np.float32)
    results = []
    for count in (1, 2, 3):
        with threadpoolctl.threadpool_limits(limits=count, user_api="blas"):
            out = np.empty((cols.shape[1], n), np.float32)
            windows_product(cols, W, out)
            results.append((out, by_element_product(dZ2, turned)))
    for out, slabs in results[1:]:
        np.testing.assert_array_equal(out, results[0][0])
        np.testing.assert_array_equal(slabs, results[0][1])


@pytest.mark.parametrize("rows", [ROWS - 1, 2 * ROWS, 2 * ROWS + 5])
def test_the_product_by_window_element_in_chunks_of_rows_is_the_stacked_product(rows):
    rng = np.random.default_rng(rows)
    dZ2 = rng.standard_normal((rows, 16)).astype(np.float32)
    W = rng.standard_normal((9, 16, 6)).astype(np.float32)
    slabs = by_element_product(dZ2, W)
    assert slabs.shape == (9, rows, 6)
    np.testing.assert_allclose(slabs, np.matmul(dZ2.astype(np.float64), W), rtol=1e-5,
                               atol=1e-5)


def test_by_pool_window_arranges_the_elements_of_each_window():
    a = np.arange(2 * 4 * 6 * 3).reshape(2, 4, 6, 3)
    w = conv_pool.by_pool_window(a, 2)
    assert w.shape == (2, 2, 2, 2, 3, 3) and np.shares_memory(w, a)
    for i in range(2):
        for j in range(2):
            np.testing.assert_array_equal(w[i, j], a[:, i::2, j::2])


@pytest.mark.parametrize("n, size, fw, c, nf, blocked", [
    (64, 32, 3, 32, 32, True),    # a small VGG's second convolution: 604 M multiply-adds
    (32, 32, 3, 32, 32, False),   # the same at batch 32: one block, BLAS's own threads
    (128, 14, 5, 6, 16, False),   # LeNet-5's second convolution: 30 M multiply-adds
    (16, 32, 3, 256, 8, True),    # a window matrix of 16 M numbers or more, at any batch
])
def test_a_convolution_runs_in_blocks_when_its_work_pays_for_them(n, size, fw, c, nf,
                                                                  blocked):
    W = np.zeros((fw, fw, c, nf), np.float32)
    conv = blocks.BlockedConv((n, size, size, c), W, 1, ((0, 0), (0, 0)))
    assert (len(conv.blocks) > 1) is blocked


@pytest.mark.parametrize("n, size, c, fw, count", [
    (32, 24, 16, 5, 16),  # 5 x 5 on 16 channels: 0.23 M numbers of windows, 2 images a block
    (32, 24, 32, 5, 11),  # on 32 channels: Winograd's tiles, 0.17 M numbers, 3 a block
    (32, 32, 32, 3, 5),   # a small VGG's second: Winograd's tiles, 74 K numbers, 7 a block
    (32, 28, 1, 3, 1),    # a LeNet's first: 0.25 M numbers of windows, in cache as one block
    (64, 32, 3, 3, 4),    # 3 channels on 32 x 32: 1.8 M numbers of windows, 18 images a block
])  # (32 filters: more than THIN_FILTERS, blocks of BLOCK numbers)
def test_a_prediction_on_a_shard_cuts_large_window_matrices_for_the_cache(n, size, c, fw,
                                                                          count):
    W = np.zeros((fw, fw, c, 32), np.float32)
    pads = ((fw // 2, fw // 2),) * 2
    conv = blocks.BlockedConv((n, size, size, c), W, 1, pads, on_shard=True, training=False)
    assert len(conv.blocks) == count
    assert len(blocks.BlockedConv((n, size, size, c), W, 1, pads).blocks) == 1


@pytest.mark.parametrize("fw, stride, pads, size", [
    (3, 2, ((0, 1), (0, 1)), (8, 8)),    # the strided network's "same" padding
    (3, 2, ((1, 1), (1, 1)), (7, 9)),
    (5, 3, ((2, 2), (0, 1)), (11, 8)),
    (2, 2, ((0, 0), (0, 0)), (9, 7)),    # the last row and column in no window
    (1, 2, ((0, 0), (0, 0)), (6, 6)),    # classes no window element reaches
    (4, 3, ((3, 0), (2, 1)), (7, 10)),   # more padding than the first class needs
])
def test_add_back_by_parity_adds_each_slab_where_the_window_views_would(fw, stride, pads,
                                                                       size):
    """With a stride, add_back sums each class of rows and columns (by their remainder)
    on its own: the same numbers, added in the same order, as adding every element's
    slab into a zeroed padded block through offset_views, exactly."""
    rng = np.random.default_rng(fw + stride)
    b, c, nf = 2, 3, 4
    W = rng.standard_normal((fw, fw, c, nf)).astype(np.float32)
    conv = blocks.BlockedConv((b, *size, c), W, stride, pads)
    dZ = rng.standard_normal((b, conv.oh, conv.ow, nf)).astype(np.float32)
    dx = np.full((b, *size, c), np.nan, np.float32)  # every number must be written
    conv.add_back(dZ, W, dx)
    by_element = np.ascontiguousarray(W.reshape(fw * fw, c, nf).transpose(0, 2, 1))
    slabs = by_element_product(dZ.reshape(-1, nf), by_element)
    (top, bottom), (left, right) = pads
    padded = np.zeros((b, top + size[0] + bottom, left + size[1] + right, c), np.float32)
    for slab, view in zip(slabs, im2col.offset_views(padded, fw, stride), strict=True):
        view += slab.reshape(view.shape)
    np.testing.assert_array_equal(dx, padded[:, top : top + size[0], left : left + size[1]])


@pytest.mark.parametrize("nf, count", [(8, 2), (16, 2), (32, 4)])
def test_a_thin_convolution_on_a_shard_takes_larger_blocks(nf, count):
    """64 images of 32 x 32 x 3 (1.8 M numbers of windows, 28 K an image): with
    THIN_FILTERS filters or fewer, blocks of SHARD_BLOCK numbers (36 images); with more,
    of BLOCK (18 images)."""
    W = np.zeros((3, 3, 3, nf), np.float32)
    conv = blocks.BlockedConv((64, 32, 32, 3), W, 1, ((1, 1), (1, 1)), on_shard=True,
                              training=False)
    assert len(conv.blocks) == count
    assert [s.start for s in conv.blocks[1:]] == [s.stop for s in conv.blocks[:-1]]
    assert (conv.blocks[0].start, conv.blocks[-1].stop) == (0, 64)


@pytest.mark.parametrize("n, count, even", [
    (10, 3, 4), (10, 4, 4), (10, 5, 6), (10, 1, 1), (3, 3, 3), (2, 2, 2), (3, 5, 3),
    (0, 1, 1)])
def test_blocks_for_the_pool_come_in_even_numbers(n, count, even):
    """Three blocks on two threads keep one idle for the last; four do not (unless there
    are only three images).  Even whatever the thread count, so sums stay the same."""
    cuts = blocks.pool_blocks(n, count)
    assert len(cuts) == even
    assert [s.start for s in cuts[1:]] == [s.stop for s in cuts[:-1]]
    assert (cuts[0].start, cuts[-1].stop) == (0, n)
    assert all(s.stop > s.start for s in cuts) or n == 0


def test_a_convolution_on_the_pool_takes_an_even_number_of_blocks():
    """A small VGG's third convolution at batch 64 (Winograd's tiles, 18 K numbers an
    image): three blocks of 21 or 22 images by size (blocks.BLOCK), four for the pool;
    on a shard, where they run in turn, three."""
    W = np.zeros((3, 3, 32, 64), np.float32)
    shape, pads = (64, 16, 16, 32), ((1, 1), (1, 1))
    conv = blocks.BlockedConv(shape, W, 1, pads)
    assert conv.winograd
    by_size = blocks.image_blocks(64, conv.held_per_image())
    assert len(by_size) == 3 and len(conv.blocks) == 4
    assert len(blocks.BlockedConv(shape, W, 1, pads, on_shard=True).blocks) == 3


@pytest.mark.parametrize("nf, shard, training, blocked", [
    (8, True, True, True),     # the narrow stack's: thin products, in blocks for the cache
    (16, True, True, True),    # blocks.THIN_FILTERS
    (32, True, True, False),   # wider: the window matrix whole, kept for the backward pass
    (32, True, False, True),   # any width in prediction
    (8, False, True, False),   # off a shard: one block
])
def test_a_thin_convolution_trained_on_a_shard_runs_in_blocks_for_the_cache(nf, shard,
                                                                           training,
                                                                           blocked):
    """32 images of 28 x 28 x 8: a window matrix of 1.8 M numbers (CACHE_LARGE or more, not
    LARGE), and too little work for blocks on the thread pool."""
    chain = conv_chain.ConvChain(ConvLayer_ReLU(nf, 3, padding="same"), None, None)
    chain.conv.build((32, 28, 28, 8), np.random.default_rng(0), np.float32)
    if shard:
        chain = chain.for_shard()
    chain.forward(np.zeros((32, 28, 28, 8), np.float32), training)
    assert (len(chain.blocks) > 1) is blocked
    assert chain.keep_cols is (training and not blocked)  # blocks copy their windows again


@pytest.mark.parametrize("c, fw, order, short", [
    (3, 4, 3, True),   # the odd sizes' first: window rows of 12 numbers, stored window by window
    (8, 3, 2, False),  # rows of 24 numbers
    (1, 5, 2, False),  # stored element-major: 8 positions a row, longer than a window row
    (3, 4, 1, False),  # element-major in plain order (24 positions a row)
])
def test_a_window_matrix_of_short_window_rows_is_kept_for_the_backward_pass(c, fw, order,
                                                                           short):
    """A convolution cut into blocks copies each block's windows again in the backward
    pass, unless its window matrix is stored window by window with window rows shorter
    than SHORT_ROW numbers (a slow copy): then the forward pass's is kept, and the
    backward pass gives the same bits from it as from a new copy."""
    rng = np.random.default_rng(0)
    n, side, nf = 64, 24 + fw - 1, 16
    x = rng.standard_normal((n, side, side, c)).astype(np.float32)
    W = rng.standard_normal((fw, fw, c, nf)).astype(np.float32)
    Wb = np.concatenate([W.reshape(-1, nf), np.ones((1, nf), np.float32)])
    conv = blocks.BlockedConv(x.shape, W, 1, VALID, order=order, share=True)
    assert len(conv.blocks) > 1
    assert conv.short_rows() is short and conv.keeps_columns() is short
    rows = conv.blocks[0]
    part = (slice(None),) * (2 if order > 1 else 0) + (rows,)
    Z = np.empty(conv.out_shape(n), np.float32)
    kept = conv.forward(x[rows], Wb, Z[part])
    dZ = np.ascontiguousarray(rng.standard_normal(Z[part].shape).astype(np.float32))
    dx_kept, dx_new = (np.empty_like(x[rows]) for _ in range(2))
    np.testing.assert_array_equal(conv.backward(x[rows], dZ, W, dx_kept, kept),
                                  conv.backward(x[rows], dZ, W, dx_new))
    np.testing.assert_array_equal(dx_kept, dx_new)


@pytest.mark.parametrize("n, size, c, nf, count", [
    (64, 32, 32, 32, 10),   # bn-stack's second convolution: 7 images of windows in 8 MB
    (64, 32, 3, 32, 4),     # its first: few channels, a small window matrix; Z in 2 MB each
    (32, 11, 32, 64, 2),    # deep's second at batch 32: 72 M multiply-adds, on both cores
    (32, 11, 32, 16, 1),    # 18 M: one block, BLAS's own threads
    (64, 16, 32, 64, 2),    # bn-stack's third: 3 by its size, rounded down to even
    (128, 32, 32, 32, 18),  # bn-stack's second at batch 128: 19 by size
])
def test_a_convolution_before_batch_norm_runs_in_larger_blocks(n, size, c, nf, count):
    """Its blocks hold about four times a plain convolution's windows (in an even number,
    rounded down), cover the shard in order and differ by one image at most."""
    from cnn_numpy.fast.batchnorm import bn_blocks

    cuts = bn_blocks((n, size, size, c), (size, size, nf), 3)
    assert len(cuts) == count
    assert [s.start for s in cuts[1:]] == [s.stop for s in cuts[:-1]]
    assert (cuts[0].start, cuts[-1].stop) == (0, n)
    sizes = {s.stop - s.start for s in cuts}
    assert max(sizes) - min(sizes) <= 1


@pytest.mark.parametrize("fw, stride", [(1, 1), (3, 1), (2, 2), (3, 2), (5, 1)])
def test_the_fast_window_view_is_the_reference_view(fw, stride):
    """columns.window_view builds its view with np.ndarray on a contiguous input, and
    falls back to the reference's as_strided on any other; both read-only."""
    from cnn_numpy.engines.im2col import window_view as reference
    from cnn_numpy.fast.columns import window_view

    x = np.random.default_rng(fw).random((3, 11, 10, 4), dtype=np.float32)
    for a in (x, x[:, :, ::-1], x[:0]):  # contiguous, strided, empty
        view = window_view(a, fw, stride)
        np.testing.assert_array_equal(view, reference(a, fw, stride))
        assert not view.flags.writeable


def test_a_small_convolution_in_a_pass_with_blas_on_one_thread_takes_both_cores():
    """share: the pass holds BLAS to one thread, so a convolution too small for blocks of
    its own still takes two when its work is SHARED_WORK or more (a batch of one image,
    or of 8 images here, 3.7 M multiply-adds, stays whole)."""
    W = np.zeros((3, 3, 3, 16), np.float32)
    pads = ((0, 1), (0, 1))
    assert len(blocks.BlockedConv((64, 64, 64, 3), W, 2, pads).blocks) == 1
    shared = blocks.BlockedConv((64, 64, 64, 3), W, 2, pads, share=True).blocks
    assert len(shared) >= 2 and shared[-1].stop == 64
    assert 64 * 32 * 32 * 28 * 16 >= blocks.SHARED_WORK > 8 * 32 * 32 * 28 * 16
    assert len(blocks.BlockedConv((8, 64, 64, 3), W, 2, pads, share=True).blocks) == 1
    assert len(blocks.BlockedConv((1, 64, 64, 3), W, 2, pads, share=True).blocks) == 1


@pytest.mark.parametrize("shape", [(0, 3), (7,), (3, 4, 5, 6), (700, 900), (1, 1_200_000)])
@pytest.mark.parametrize("layout", ["contiguous", "channels moved", "every other column",
                                    "transposed", "reversed"])
def test_relu_in_place_against_zeros_laid_out_as_its_input_is_max_with_0(shape, layout):
    """ops.relu reads an array of zeros with the input's own strides (in pieces when the
    input spans more than ZEROS_BYTES): the result is np.maximum(Z, 0) for any layout,
    written into Z, NaN kept."""
    base = np.random.default_rng(len(shape)).standard_normal(shape).astype(np.float32)
    if base.size:
        base.flat[5::97], base.flat[0] = np.nan, -1
    Z = {"contiguous": base, "channels moved": np.moveaxis(base, 0, -1),
         "every other column": base[..., ::2], "transposed": base.T,
         "reversed": base[::-1]}[layout]
    want = np.maximum(Z, 0)
    assert ops.relu(Z) is Z
    np.testing.assert_array_equal(Z, want)


@pytest.mark.parametrize("p", [2, 3, 4])
@pytest.mark.parametrize("c", [1, 6])
def test_an_average_pool_whose_windows_tile_its_input_adds_rows_then_columns(p, c):
    """conv_chain._tiled_mean (2 (p - 1) additions) gives what the pool's steps per window
    element give, on an array stored pixel by pixel and on one stored channel by channel
    (_as_stored); integer values, so the sums are exact in either order."""
    from cnn_numpy.engines.im2col import offset_views

    Z = np.random.default_rng(p * c).integers(-50, 50, (5, 4 * p, 3 * p, c)).astype(np.float64)
    want = np.empty((5, 4, 3, c))
    conv_chain._mean(offset_views(Z, p, p), want)
    out = np.empty_like(want)
    conv_chain._tiled_mean(Z, p, out)
    np.testing.assert_array_equal(out, want)
    by_channel = np.moveaxis(np.ascontiguousarray(np.moveaxis(Z, -1, 0)), 0, -1)
    pooled = np.moveaxis(np.empty((c, 5, 4, 3)), 0, -1)
    assert by_channel.flags.c_contiguous == (c == 1)  # one channel: the same layout
    conv_chain._tiled_mean(conv_chain._as_stored(by_channel, True), p,
                           conv_chain._as_stored(pooled, True))
    np.testing.assert_array_equal(pooled, want)


@pytest.mark.parametrize("p", [2, 4, 5])
def test_one_image_pooled_to_one_pixel_by_channel_is_what_the_plain_loop_gives(p):
    """A prediction of one image whose few-channel convolution runs by channel and whose
    average pool leaves 1 x 1: its arrays are contiguous read either way, so the chain
    must go by how it stored them (it once took the pooled output for pixel-major)."""
    X = np.random.default_rng(p).random((1, p + 1, p + 1, 1)).astype(np.float32)
    net = Net([ConvLayer(4, 2), PoolLayer_Avg(p), FlatLayer(), FCLayer_Softmax(3)])
    net.predict(X)  # builds it
    assert net._fast_path.describe(training=False)[0] == "conv+avg_pool (0-1)"
    np.testing.assert_allclose(net.predict(X), net.layer_outputs(X)[-1], rtol=1e-5)
