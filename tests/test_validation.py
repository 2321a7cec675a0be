"""Bad input to the API: a ValueError naming the layer and the shapes, raised before any
weight changes."""

from __future__ import annotations

import numpy as np
import pytest

from cnn_numpy import (
    ConvLayer,
    ConvLayer_ReLU,
    FCLayer,
    FCLayer_ReLU,
    FCLayer_Softmax,
    FlatLayer,
    Net,
    PoolLayer_Avg,
    PoolLayer_Max,
)


def reference_cnn() -> Net:
    return Net([ConvLayer_ReLU(4, 3), PoolLayer_Max(2), FlatLayer(), FCLayer_ReLU(10),
                FCLayer_Softmax(3)], seed=0)


@pytest.fixture
def built():
    net = reference_cnn()
    X = np.random.default_rng(0).random((4, 10, 10, 1), dtype=np.float32)
    net.train(X, np.array([0, 1, 2, 0]), 0.1)
    return net, X


def weights(net):
    return [p.copy() for _, p, _ in net.param_triples()]


@pytest.mark.parametrize("make_input, message", [
    (lambda X: X.reshape(4, -1), r"Net: built for 10 x 10 x 1 images \(height x width x "
                                 r"channels\), got 100;"),
    (lambda X: np.concatenate([X, X], axis=3), r"built for 10 x 10 x 1 images .*, got "
                                               r"10 x 10 x 2"),
    (lambda X: X[:0], "empty batch"),
    (lambda X: np.where(X > 0.5, np.nan, X), "NaN or infinite"),
    (lambda X: np.full_like(X, np.inf), "NaN or infinite"),
    (lambda X: X.tolist(), "must be a NumPy array, got list"),
    (lambda X: X.astype(str), "must hold numbers"),
    (lambda X: X[:, :2, :2], r"built for 10 x 10 x 1 images .*, got 2 x 2 x 1"),
    (lambda X: X[:, :, :, :, None], r"must be \(n, height, width, channels\)"),
])
def test_bad_X_is_refused_before_any_weight_changes(built, make_input, message):
    net, X = built
    before = weights(net)
    with pytest.raises(ValueError, match=message):
        net.train(make_input(X), np.array([0, 1, 2, 0]), 0.1)
    for a, b in zip(before, weights(net), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("Y, message", [
    (np.array([0, 1, 2]), "X has 4 samples but Y has shape"),
    (np.array([0, 1, 2, 3]), r"labels must be in 0..2 for a 3-neuron output layer"),
    (np.array([0, -1, 2, 0]), r"labels must be in 0..2"),
    (np.array([0.0, 1.0, 2.0, 0.0]), "integer labels"),
    (np.eye(4), r"one-hot Y must be \(n, 3\)"),
    (np.full((4, 3), np.nan), "Y contains NaN"),
    ([0, 1, 2, 0], "Y must be a NumPy array"),
])
def test_bad_Y_is_refused(built, Y, message):
    net, X = built
    before = weights(net)
    with pytest.raises(ValueError, match=message):
        net.train(X, Y, 0.1)
    with pytest.raises(ValueError, match=message):
        net.evaluate(X, Y)
    for a, b in zip(before, weights(net), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("lr", [-0.1, float("nan"), float("inf"), "0.1", None, True])
def test_bad_learning_rate(built, lr):
    net, X = built
    with pytest.raises(ValueError, match="learning_rate must be a finite number >= 0"):
        net.train(X, np.array([0, 1, 2, 0]), lr)


@pytest.mark.parametrize("make, message", [
    (lambda: ConvLayer(0, 3), "ConvLayer: num_filters must be a positive integer, got 0"),
    (lambda: ConvLayer(4, -2), "filter_width must be a positive integer"),
    (lambda: ConvLayer(4, 3, stride=0), "stride must be a positive integer"),
    (lambda: ConvLayer(4, 3, padding=-1), "padding must be an int >= 0"),
    (lambda: ConvLayer(4, 3, padding="full"), "padding must be an int >= 0, 'valid' or 'same'"),
    (lambda: ConvLayer(4.5, 3), "num_filters must be a positive integer, got 4.5"),
    (lambda: PoolLayer_Max(0), "PoolLayer_Max: filter_width must be a positive integer"),
    (lambda: PoolLayer_Avg(2, stride=-1), "stride must be a positive integer"),
    (lambda: FCLayer_ReLU(0), "FCLayer_ReLU: num_neurons must be a positive integer"),
    (lambda: Net([]), "non-empty list of layer objects"),
    (lambda: Net(["conv"]), "non-empty list of layer objects"),
])
def test_bad_layer_arguments(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_layer_shape_errors_name_the_layer():
    with pytest.raises(ValueError, match="FCLayer: expected input of shape .* put a FlatLayer"):
        FCLayer(3).forward_propagate(np.zeros((2, 4, 4, 1)))
    fc = FCLayer(3)
    fc.forward_propagate(np.zeros((2, 5)))
    with pytest.raises(ValueError, match=r"built for 5 inputs per sample, got input of shape"):
        fc.forward_propagate(np.zeros((2, 6)))
    with pytest.raises(ValueError, match=r"PoolLayer_Max: a 3x3 window does not fit"):
        PoolLayer_Max(3).forward_propagate(np.zeros((1, 2, 5, 1)))
    net = Net([ConvLayer(2, 3), FCLayer_Softmax(2)])
    with pytest.raises(ValueError, match=r"layer 1 \(FCLayer_Softmax\) needs samples with "
                                         r"1 dimension\(s\), gets shape \(6, 6, 2\); "
                                         r"put a FlatLayer"):
        net.build((8, 8, 1))
    with pytest.raises(ValueError, match="the last layer is FCLayer_ReLU"):
        Net([FlatLayer(), FCLayer_ReLU(3)]).train(np.zeros((2, 2, 2)), np.array([0, 1]), 0.1)
    with pytest.raises(ValueError, match="shapes are not known yet"):
        reference_cnn().summary()



def test_a_built_layer_checks_a_batch_of_another_sample_shape():
    """Layers check only a sample shape they were not built for (a Net's steps bring the
    one they were built for): another one is still checked, every time."""
    conv = ConvLayer(2, 3)
    conv.forward_propagate(np.zeros((1, 6, 6, 1)))
    assert conv.forward_propagate(np.zeros((2, 8, 8, 1))).shape == (2, 6, 6, 2)
    for _ in range(2):
        with pytest.raises(ValueError, match=r"ConvLayer: built for 1 input channels"):
            conv.forward_propagate(np.zeros((1, 6, 6, 3)))
    with pytest.raises(ValueError, match=r"ConvLayer: a 3x3 filter does not fit"):
        conv.forward_propagate(np.zeros((1, 2, 2, 1)))
    assert conv.forward_propagate(np.zeros((1, 6, 6, 1))).shape == (1, 4, 4, 2)


@pytest.mark.parametrize("layer, shape", [(ConvLayer(2, 3), (1, 6, 6, 1)),
                                          (FCLayer(3), (2, 4)), (FlatLayer(), (2, 3, 3)),
                                          (PoolLayer_Max(2), (1, 4, 4, 1))],
                         ids=lambda v: type(v).__name__ if not isinstance(v, tuple) else "")
def test_a_built_layer_given_no_array_is_a_value_error(layer, shape):
    layer.forward_propagate(np.zeros(shape))
    with pytest.raises(ValueError, match=rf"^{type(layer).__name__}: .*got str"):
        layer.forward_propagate("not an array")


def test_summary_counts_the_reference_cnn_parameters():
    net = Net([ConvLayer_ReLU(32, 3), PoolLayer_Max(2), FlatLayer(), FCLayer_ReLU(100),
               FCLayer_Softmax(10)])
    net.build((28, 28, 1))
    text = net.summary(print_fn=None)
    assert "Total params: 542,230" in text
    rows = [line.split() for line in text.splitlines() if line[:2] in {"0:", "3:", "4:"}]
    assert [r[-1] for r in rows] == ["320", "540,900", "1,010"]
    assert "(None, 13, 13, 32)" in text and "im2col" in text


def test_a_batch_that_does_not_fit_builds_nothing():
    """The first batch's shape is checked against every layer before any weight exists."""
    net = Net([ConvLayer_ReLU(4, 3), PoolLayer_Max(5), FlatLayer(), FCLayer_Softmax(3)], seed=0)
    with pytest.raises(ValueError, match=r"layer 1 \(PoolLayer_Max\) turns samples of shape "
                                         r"\(4, 4, 4\)"):
        net.train(np.zeros((2, 6, 6, 3), np.float32), np.array([0, 1]), 0.1)
    assert not any(layer.built for layer in net.layers)
    net.train(np.zeros((2, 12, 12, 1), np.float32), np.array([0, 1]), 0.1)  # still usable
    assert net.input_shape == (12, 12, 1)


def test_numpy_scalars_are_numbers_and_booleans_are_not_labels(built, tmp_path):
    net, X = built
    net.train(X, np.array([0, 1, 2, 0], dtype=np.int64), np.float32(0.01))
    with pytest.raises(ValueError, match="integer labels"):
        net.train(X, np.array([True, False, True, False]), 0.01)
    seeded = Net([FlatLayer(), FCLayer_Softmax(2)], seed=np.int64(3))
    seeded.predict(np.zeros((1, 2, 2)))
    seeded.save(tmp_path / "m.npz")
    assert Net.load(tmp_path / "m.npz").seed == 3


@pytest.mark.parametrize("batch_size", [0, -5, 2.5, "10", True])
def test_bad_batch_size_for_predict_and_evaluate(built, batch_size):
    net, X = built
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        net.predict(X, batch_size=batch_size)
    with pytest.raises(ValueError, match="batch_size must be an integer >= 1"):
        net.evaluate(X, np.arange(4) % 3, batch_size=batch_size)


@pytest.mark.parametrize("kwargs, message", [
    ({"seed": -1}, "seed must be None or an integer >= 0, got -1"),
    ({"seed": 1.5}, "seed must be None or an integer >= 0, got 1.5"),
    ({"dtype": "junk"}, "dtype must be float32 or float64, got 'junk'"),
])
def test_bad_net_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Net([FlatLayer(), FCLayer_Softmax(3)], **kwargs)


def test_a_layer_moved_from_first_place_passes_its_gradient_back():
    """The fast path skips the first layer's input gradient; a layer that was first in one
    Net still hands it back in another."""
    conv = ConvLayer(2, 3)
    X = np.random.default_rng(0).random((4, 6, 6, 1), dtype=np.float32)
    first = Net([conv, FlatLayer(), FCLayer_Softmax(3)], seed=0)  # no input gradient
    first.train(X, np.arange(4) % 3, 0.1)
    first.train(X, np.arange(4) % 3, 0.1)
    weights = conv.W.copy(), conv.b.copy()
    losses = []
    for fast in (True, False):
        conv.W[...], conv.b[...] = weights
        net = Net([PoolLayer_Avg(1), conv, FlatLayer(), FCLayer_Softmax(3)], seed=0, fast=fast)
        # the second step runs on the fast path: conv must hand its dx to the pool
        losses.append([net.train(X, np.arange(4) % 3, 0.1).cce for _ in range(3)])
    np.testing.assert_allclose(losses[0], losses[1], rtol=1e-5)


def test_a_refused_batch_leaves_running_statistics_alone():
    from cnn_numpy import BatchNorm

    net = Net([ConvLayer(2, 3), BatchNorm(), FlatLayer(), FCLayer(4), BatchNorm(),
               FCLayer_Softmax(3)], seed=0)
    rng = np.random.default_rng(0)
    net.train(rng.random((4, 6, 6, 1), dtype=np.float32), np.arange(4) % 3, 0.1)
    before = [b.copy() for layer in net.layers for b in layer.buffers().values()]
    with pytest.raises(ValueError, match="BatchNorm"):  # one image: no batch statistics
        net.train(rng.random((1, 6, 6, 1), dtype=np.float32), np.array([0]), 0.1)
    after = [b for layer in net.layers for b in layer.buffers().values()]
    for b0, b1 in zip(before, after, strict=True):
        np.testing.assert_array_equal(b0, b1)


def test_check_layer_refuses_a_float32_layer():
    from cnn_numpy import BatchNorm
    from cnn_numpy.testing import check_layer

    layer = BatchNorm()
    Net([FlatLayer(), layer, FCLayer_Softmax(3)], seed=0).predict(np.ones((2, 4), np.float32))
    gamma = layer.gamma.copy()
    with pytest.raises(ValueError, match="built with float32 weights; numerical gradients "
                                         "need float64: pass a new layer"):
        check_layer(layer, (3, 4))
    np.testing.assert_array_equal(layer.gamma, gamma)  # its weights are left alone


@pytest.mark.parametrize("fast", [True, False])
def test_a_diverging_plain_loop_is_stopped_with_the_learning_rate_named(fast):
    """Any loop of net.train, not only the command line's: an overflowing step or a
    non-finite loss is a DivergenceError naming the learning rate, not NaN losses."""
    from cnn_numpy import DivergenceError

    rng = np.random.default_rng(0)
    X, y = rng.random((32, 10, 10), dtype=np.float32), np.arange(32) % 3
    net = Net([ConvLayer(4, 3), FlatLayer(), FCLayer_Softmax(3)], seed=0, fast=fast)
    with pytest.raises(DivergenceError, match=r"^Net: (training diverged \(overflow .*\)|the "
                                              r"loss became (nan|inf)); lower the learning "
                                              r"rate \(now 1e\+30\)$"):
        for _ in range(20):
            net.train(X, y, 1e30)
    net.layers[2].W[...] = np.float32(np.inf)  # a net already broken: caught at the loss
    with pytest.raises(DivergenceError, match="lower the learning rate"):
        net.train(X, y, 0.1)
