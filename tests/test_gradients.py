"""Numerical gradient checks of every layer type in float64 (max relative error < 1e-6)."""

from __future__ import annotations

import numpy as np
import pytest
from gradcheck import numerical_gradient, relative_error

from cnn_numpy import (
    ConvLayer,
    ConvLayer_ReLU,
    FCLayer,
    FCLayer_ReLU,
    FCLayer_Sigmoid,
    FCLayer_Softmax,
    FlatLayer,
    Net,
    PoolLayer_Avg,
    PoolLayer_Max,
)

TOL = 1e-6


def check_layer(layer, X: np.ndarray, seed: int = 0) -> None:
    """Compare backpropagate's dX and weight gradients with central differences of
    L = sum(G * layer(X)) for a random fixed G."""
    rng = np.random.default_rng(seed)
    layer.rng = np.random.default_rng(seed + 1)
    out = layer.forward_propagate(X)
    G = rng.standard_normal(out.shape)
    # Random weights AND biases: with b = 0 a window that lies wholly in the zero
    # padding gives Z = 0 exactly, on the ReLU's kink, where no derivative exists.
    for param in layer.params().values():
        param[...] = rng.standard_normal(param.shape)

    def loss() -> float:
        return float(np.sum(G * layer.forward_propagate(X)))

    loss()
    dX = layer.backpropagate(G)
    grads = {k: v.copy() for k, v in layer.grads().items()}
    assert relative_error(dX, numerical_gradient(loss, X)) < TOL
    for name, param in layer.params().items():
        assert relative_error(grads[name], numerical_gradient(loss, param)) < TOL, name


# (n, ih, iw, c, filters, fw, stride, padding): strides 1-3, widths 1-5, paddings, odd sizes
CONV_CASES = [
    (2, 5, 5, 1, 2, 1, 1, 0),
    (2, 6, 6, 2, 3, 2, 1, 0),
    (1, 7, 6, 3, 2, 3, 2, 1),
    (2, 8, 7, 1, 2, 3, 3, "valid"),
    (1, 7, 7, 2, 2, 4, 2, "same"),
    (1, 6, 5, 2, 3, 5, 1, "same"),
    (2, 5, 6, 2, 2, 2, 3, 2),
    (1, 9, 9, 1, 2, 5, 3, 1),
    (1, 4, 4, 2, 2, 2, 2, "same"),
]


@pytest.mark.parametrize("engine", ["naive", "stride_groups"])
@pytest.mark.parametrize("case", CONV_CASES, ids=str)
@pytest.mark.parametrize("cls", [ConvLayer, ConvLayer_ReLU])
def test_conv_gradients(cls, case, engine):
    n, ih, iw, c, nf, fw, s, p = case
    X = np.random.default_rng(1).standard_normal((n, ih, iw, c))
    layer = cls(nf, fw, stride=s, padding=p, engine=engine)
    check_layer(layer, X)
    assert layer.W.shape == (fw, fw, c, nf) and layer.b.shape == (nf,)


# (n, ih, iw, c, fw, stride): non-overlapping, overlapping, stride > width, odd sizes
POOL_CASES = [
    (2, 4, 4, 2, 2, None),
    (2, 7, 5, 1, 2, None),
    (1, 6, 6, 3, 3, 1),
    (2, 7, 7, 2, 3, 2),
    (1, 8, 9, 2, 2, 3),
    (1, 9, 9, 1, 5, 2),
    (2, 5, 5, 2, 1, 1),
]


@pytest.mark.parametrize("engine", ["naive", "stride_groups"])
@pytest.mark.parametrize("case", POOL_CASES, ids=str)
@pytest.mark.parametrize("cls", [PoolLayer_Max, PoolLayer_Avg])
def test_pool_gradients(cls, case, engine):
    n, ih, iw, c, fw, s = case
    X = np.random.default_rng(2).standard_normal((n, ih, iw, c))
    check_layer(cls(fw, stride=s, engine=engine), X)


@pytest.mark.parametrize("cls", [FCLayer, FCLayer_ReLU, FCLayer_Sigmoid, FCLayer_Softmax])
@pytest.mark.parametrize("shape", [(3, 4, 5), (1, 7, 2), (5, 3, 10)])
def test_fc_gradients(cls, shape):
    n, k, neurons = shape
    X = np.random.default_rng(3).standard_normal((n, k))
    layer = cls(neurons)
    check_layer(layer, X)
    assert layer.W.shape == (neurons, k + 1)


def test_flat_gradient():
    X = np.random.default_rng(4).standard_normal((2, 3, 4, 2))
    check_layer(FlatLayer(), X)


def test_sigmoid_and_softmax_extreme_inputs_stay_finite():
    """No overflow warnings (pytest turns them into errors) and sane values at +-1000."""
    Z = np.array([[-1000.0, 0.0, 1000.0]])
    for cls in (FCLayer_Sigmoid, FCLayer_Softmax):
        layer = cls(3)
        layer.build((1, 3), np.random.default_rng(0), np.float64)
        layer.W[:] = np.hstack([np.eye(3), np.zeros((3, 1))])
        A = layer.forward_propagate(Z)
        assert np.all(np.isfinite(A))
        cce, dZ = layer.loss(np.array([[1.0, 0.0, 0.0]]))
        assert np.isfinite(cce) and np.all(np.isfinite(dZ))
        # softmax: -log A_0 = 2000; sigmoid: -log A_0 - log(1 - A_1) - log(1 - A_2)
        assert cce == pytest.approx(2000.0 if cls is FCLayer_Softmax else 2000.0 + np.log(2))


@pytest.mark.parametrize("out_cls", [FCLayer_Softmax, FCLayer_Sigmoid])
def test_whole_net_gradient_of_mean_cce(out_cls):
    """The Net's combined output-layer gradient and the full chain agree with central
    differences of the mean CCE, for every weight of a small reference-style CNN."""
    rng = np.random.default_rng(5)
    X = rng.standard_normal((4, 7, 7, 2))
    y = np.array([0, 2, 1, 2])
    net = Net([ConvLayer_ReLU(3, 3, padding=1), PoolLayer_Max(2), ConvLayer(2, 2, stride=1),
               FlatLayer(), FCLayer_ReLU(5), out_cls(3)], seed=0, dtype=np.float64)
    net.train(X, y, learning_rate=0.0)  # computes every gradient, changes nothing
    for key, param, grad in net.param_triples():
        analytic = grad.copy()
        numeric = numerical_gradient(lambda: net.evaluate(X, y).cce, param)
        assert relative_error(analytic, numeric) < TOL, key
