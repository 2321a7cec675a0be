"""The Net API: results, seeds, engines, labels, and that the reference CNN learns."""

from __future__ import annotations

import numpy as np
import pytest

from cnn_numpy import (
    ENGINES,
    Adam,
    ConvLayer,
    ConvLayer_ReLU,
    FCLayer_ReLU,
    FCLayer_Softmax,
    FlatLayer,
    Momentum,
    Net,
    Network,
    PoolLayer_Avg,
    PoolLayer_Max,
)


def reference_cnn(**kwargs) -> Net:
    return Net([ConvLayer_ReLU(32, 3), PoolLayer_Max(2), FlatLayer(), FCLayer_ReLU(100),
                FCLayer_Softmax(10)], **kwargs)


@pytest.fixture
def batch():
    rng = np.random.default_rng(0)
    return rng.random((16, 12, 12)).astype(np.float32), rng.integers(0, 10, 16)


def test_train_evaluate_predict_shapes_and_types(batch):
    X, y = batch
    net = reference_cnn(seed=1)
    result = net.train(X, y, 0.1)
    assert result.layers == net.layers and result.layers is not net.layers
    assert isinstance(result.cce, float) and result.cce > 0
    assert result.ce in {i / 16 for i in range(17)}
    A, cce, ce = net.evaluate(X, y)
    assert A.shape == (16, 10) and A.dtype == np.float32
    np.testing.assert_allclose(A.sum(axis=1), 1, rtol=1e-5)
    assert ce == np.mean(A.argmax(1) != y)
    np.testing.assert_allclose(cce, -np.mean(np.log(A[np.arange(16), y])), rtol=1e-5)
    np.testing.assert_array_equal(net.predict(X), A)  # predict: the output, unchanged
    assert Network is Net


def test_weight_layouts_follow_the_spec(batch):
    X, y = batch
    net = reference_cnn(seed=0)
    net.predict(X)
    conv, _, _, fc1, fc2 = net.layers
    assert conv.W.shape == (3, 3, 1, 32) and conv.b.shape == (32,)
    assert fc1.W.shape == (100, 5 * 5 * 32 + 1)  # bias as the last column
    assert fc2.W.shape == (10, 101)
    np.testing.assert_array_equal(fc1.W[:, -1], 0)
    # He scale for ReLU layers, Glorot for the softmax layer (not the spec's tiny uniform)
    assert conv.W.std() == pytest.approx(np.sqrt(2 / 9), rel=0.25)
    assert fc1.W[:, :-1].std() == pytest.approx(np.sqrt(2 / 800), rel=0.05)
    assert fc2.W[:, :-1].std() == pytest.approx(np.sqrt(2 / 110), rel=0.15)


def test_integer_labels_and_one_hot_give_the_same_step(batch):
    X, y = batch
    a, b = reference_cnn(seed=3), reference_cnn(seed=3)
    ra = a.train(X, y, 0.1)
    rb = b.train(X, np.eye(10)[y], 0.1)
    assert ra.cce == rb.cce and ra.ce == rb.ce
    np.testing.assert_array_equal(a.layers[0].W, b.layers[0].W)


def test_three_dims_mean_one_channel(batch):
    X, y = batch
    a, b = reference_cnn(seed=4), reference_cnn(seed=4)
    np.testing.assert_array_equal(a.predict(X), b.predict(X[..., None]))


@pytest.mark.parametrize("engine", [e for e in ENGINES if e != "naive"])
def test_same_seed_same_weights_whatever_the_engine(batch, engine):
    X, y = batch
    a, b = reference_cnn(seed=7, engine="naive"), reference_cnn(seed=7, engine=engine)
    a.predict(X[:2])
    b.predict(X[:2])
    for (ka, pa, _), (kb, pb, _) in zip(a.param_triples(), b.param_triples(), strict=True):
        assert ka == kb
        np.testing.assert_array_equal(pa, pb)
    c = reference_cnn(seed=8)
    c.predict(X[:2])
    assert not np.array_equal(c.layers[0].W, a.layers[0].W)


def test_net_engine_applies_to_conv_and_pool_layers():
    layers = [ConvLayer(4, 3, engine="naive"), PoolLayer_Avg(2), FlatLayer(), FCLayer_Softmax(3)]
    net = Net(layers, engine="stride_groups")
    assert [getattr(layer, "engine", "-") for layer in layers] == \
        ["stride_groups", "stride_groups", "-", "-"]
    own = [ConvLayer(4, 3, engine="naive"), PoolLayer_Avg(2), FlatLayer(), FCLayer_Softmax(3)]
    Net(own)
    assert own[0].engine == "naive" and own[1].engine is None
    with pytest.raises(ValueError, match="unknown engine"):
        Net(layers, engine="turbo")
    with pytest.raises(ValueError, match="unknown engine"):
        ConvLayer(4, 3, engine="turbo")
    assert net.engine == "stride_groups"


def test_using_engine_lasts_one_block():
    own = [ConvLayer(4, 3, engine="naive"), PoolLayer_Avg(2), FlatLayer(), FCLayer_Softmax(3)]
    net = Net(own)
    with net.using_engine("im2col"):
        assert (net.engine, own[0].engine, own[1].engine) == ("im2col", "im2col", "im2col")
    assert (net.engine, own[0].engine, own[1].engine) == (None, "naive", None)
    with pytest.raises(ValueError, match="unknown engine"), net.using_engine("turbo"):
        pass
    assert (net.engine, own[0].engine) == (None, "naive")


def test_engines_train_identically(batch):
    """Same seed, different engines: the same losses step after step (float64)."""
    X, y = batch
    nets = [reference_cnn(seed=5, engine=e, dtype=np.float64) for e in ENGINES]
    for _ in range(3):
        results = [net.train(X[:4], y[:4], 0.1) for net in nets]
        for r in results[1:]:
            assert r.cce == pytest.approx(results[0].cce, rel=1e-10)


@pytest.mark.parametrize("optimizer", ["momentum", "adam", Momentum(0.5), Adam(beta1=0.8)])
def test_optimizers_reduce_the_loss(batch, optimizer):
    X, y = batch
    net = reference_cnn(seed=2, optimizer=optimizer)
    lr = 0.01 if "adam" in repr(optimizer).lower() else 0.05
    first = net.train(X, y, lr).cce
    for _ in range(15):
        last = net.train(X, y, lr).cce
    assert last < first * 0.5


def test_unknown_optimizer_and_bad_dtype():
    with pytest.raises(ValueError, match="unknown optimizer"):
        reference_cnn(optimizer="rmsprop")
    with pytest.raises(ValueError, match="float32 or float64"):
        reference_cnn(dtype=np.int32)


def test_sigmoid_output_learns_to_say_no():
    """A sigmoid output layer is trained on binary cross-entropy, so the outputs for the
    wrong classes go down, and its loss matches PyTorch's formula written out."""
    from cnn_numpy import FCLayer_Sigmoid

    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 6))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0)  # 3 classes
    net = Net([FCLayer_ReLU(16), FCLayer_Sigmoid(3)], seed=0, dtype=np.float64)
    A0, loss0, _ = net.evaluate(X, y)
    Y = np.eye(3)[y]
    assert loss0 == pytest.approx(-np.mean(np.sum(Y * np.log(A0) + (1 - Y) * np.log(1 - A0), 1)))
    for _ in range(300):
        net.train(X, y, 0.5)
    A, loss, ce = net.evaluate(X, y)
    assert loss < loss0 / 3 and ce < 0.1
    assert A[Y == 0].mean() < 0.2 and A[Y == 1].mean() > 0.7


def test_summary_of_the_deep_model_counts_running_statistics_apart():
    from cnn_numpy.models import build_model

    net = build_model("deep", weight_decay=0.0005)
    net.build((28, 28, 1))
    text = net.summary(print_fn=None)
    assert "weight decay 0.0005" in text.splitlines()[0]
    assert ("1: BatchNorm         -       conv+batch_norm+relu+max_pool (0-3)  "
            "(None, 26, 26, 32)       64") in text
    assert "11: BatchNorm        -       batch_norm on shards" in text
    # 2 x (32 + 64 + 128) running means and variances, not counted as parameters
    assert text.endswith("Total params: 225,482\nNot trained by gradients: 448 (running "
                         "statistics)")
    assert sum(p.size for _, p, _ in net.param_triples()) == 225_482


def test_the_fast_path_overwrites_only_gradients_nobody_else_holds():
    """A ReLU's mask may overwrite the dA a shipped layer made for it, never one from a
    user's layer (which might keep it): the user's kept array stays as it was, and the
    gradients are the reference path's."""
    from cnn_numpy import ReLULayer
    from cnn_numpy.layers import Layer

    class Keep(Layer):  # a user's layer that hands back an array it keeps
        def output_shape(self, input_shape):
            return tuple(input_shape)

        def forward_propagate(self, A_prev):
            return A_prev

        def backpropagate(self, dA):
            self.kept = dA.copy()
            return self.kept

    X, y = np.random.default_rng(0).random((8, 9, 9)), np.arange(8)
    grads = []
    for fast in (True, False):
        net = Net([ConvLayer_ReLU(4, 3), PoolLayer_Max(2), FlatLayer(), ReLULayer(), Keep(),
                   FCLayer_Softmax(10)], seed=0, dtype=np.float64, fast=fast)
        net.build((9, 9, 1))
        net.train(X, y, 0.0)
        kept = net.layers[4].kept.copy()
        net.train(X, y, 0.0)
        np.testing.assert_array_equal(net.layers[4].kept, kept)  # the ReLU left it alone
        grads.append([g.copy() for _, _, g in net.param_triples()])
    for a, b in zip(*grads, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-15)


def test_a_conv_relu_layer_shows_its_relu_output_and_layer_outputs_each_layers_own():
    """On the reference path A is what its name says after a step; layer_outputs runs
    the layers one by one and ends with what predict returns."""
    layers = [ConvLayer_ReLU(4, 3), PoolLayer_Max(2), FlatLayer(), FCLayer_Softmax(10)]
    net = Net(layers, seed=0, dtype=np.float64, fast=False)
    X = np.random.default_rng(4).random((8, 12, 12))
    net.train(X, np.arange(8), 0.1)
    assert layers[0].A.min() == 0 and layers[0].Z.min() < 0
    np.testing.assert_array_equal(layers[0].A, np.maximum(layers[0].Z, 0))
    outputs = net.layer_outputs(X)
    assert outputs[0].shape == (8, 10, 10, 4) and outputs[0].min() == 0
    np.testing.assert_array_equal(outputs[1], outputs[0].reshape(8, 5, 2, 5, 2, 4).max(axis=(2, 4)))
    net.fast = True
    np.testing.assert_allclose(outputs[-1], net.predict(X), rtol=1e-12, atol=1e-15)


def test_a_reference_step_runs_at_most_40_functions_whatever_the_batch():
    """Issue 21: one net.train of the spec's CNN on the naive engine with fast=False runs
    at most 40 distinct cnn_numpy functions (benchmarks/reference_trace.py), the same ones
    for any batch: a step checks nothing the Net checked once."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "reference_trace.py"
    spec = importlib.util.spec_from_file_location("reference_trace", path)
    trace = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(trace)
    small, larger = (trace.functions_of_one_step(False, "naive", n) for n in (2, 3))
    assert small == larger
    assert len(small) <= 40, sorted(small)
    per_layer_checks = {"_check_input", "check_ndim", "_ensure_built", "check_engine"}
    assert not {name for name in small if name.split(".")[-1].split(":")[-1]
                in per_layer_checks}
