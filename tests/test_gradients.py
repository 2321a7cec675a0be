"""Numerical gradient checks of every layer type in float64 (max relative error < 1e-6), with
the public cnn_numpy.testing.check_layer, and tests that check_layer catches what it promises."""

from __future__ import annotations

import numpy as np
import pytest

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
from cnn_numpy.testing import check_layer, numerical_gradient, relative_error

TOL = 1e-6


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
    layer = cls(nf, fw, stride=s, padding=p, engine=engine)
    check_layer(layer, (n, ih, iw, c))
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
    check_layer(cls(fw, stride=s, engine=engine), (n, ih, iw, c))


@pytest.mark.parametrize("cls", [FCLayer, FCLayer_ReLU, FCLayer_Sigmoid, FCLayer_Softmax])
@pytest.mark.parametrize("shape", [(3, 4, 5), (1, 7, 2), (5, 3, 10)])
def test_fc_gradients(cls, shape):
    n, k, neurons = shape
    layer = cls(neurons)
    check_layer(layer, (n, k))
    assert layer.W.shape == (neurons, k + 1)


def test_flat_gradient():
    check_layer(FlatLayer(), (2, 3, 4, 2))


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


@pytest.mark.parametrize("shape", [(3, 4, 5, 2), (2, 3, 3, 1), (4, 3), (2, 6)], ids=str)
@pytest.mark.parametrize("momentum", [0.1, 1.0])
def test_batchnorm_gradients(shape, momentum):
    """Training mode (batch statistics: the two extra terms of dx) and inference mode."""
    layer = BatchNorm(momentum=momentum)
    check_layer(layer, shape)
    assert layer.gamma.shape == layer.running_var.shape == (shape[-1],)


@pytest.mark.parametrize("rate", [0.0, 0.3, 0.8])
@pytest.mark.parametrize("shape", [(3, 4, 4, 2), (5, 6)], ids=str)
def test_dropout_gradients(rate, shape):
    check_layer(Dropout(rate), shape)


@pytest.mark.parametrize("layer", [ReLULayer(), LeakyReLULayer(), LeakyReLULayer(0.3),
                                   TanhLayer(), SigmoidLayer()], ids=repr)
@pytest.mark.parametrize("shape", [(2, 3, 3, 2), (4, 5)], ids=str)
def test_activation_layer_gradients(layer, shape):
    check_layer(layer, shape)


def test_whole_net_with_batchnorm_gradient_in_training_mode():
    """conv -> BatchNorm -> ReLU -> pool -> dense -> BatchNorm -> tanh -> softmax: every
    weight's gradient is that of the training-mode loss (batch statistics)."""
    rng = np.random.default_rng(6)
    X = rng.standard_normal((5, 6, 6, 2))
    y = np.array([0, 2, 1, 2, 1])
    net = Net([ConvLayer(3, 3), BatchNorm(), ReLULayer(), PoolLayer_Max(2), FlatLayer(),
               FCLayer(4), BatchNorm(), TanhLayer(), FCLayer_Softmax(3)], seed=0,
              dtype=np.float64)
    net.train(X, y, learning_rate=0.0)  # computes every gradient, changes no weight

    def training_loss() -> float:
        net._forward(X, training=True)
        return net.output_layer.loss(np.eye(3)[y])[0]

    for key, param, grad in net.param_triples():
        analytic = grad.copy()
        numeric = numerical_gradient(training_loss, param)
        if key == "0/b":  # BatchNorm subtracts the mean: the conv bias has no effect at all
            np.testing.assert_allclose(analytic, 0, atol=1e-12)
            np.testing.assert_allclose(numeric, 0, atol=1e-8)
        else:
            assert relative_error(analytic, numeric) < TOL, key


class _WrongSlope(ReLULayer):
    def derivative(self, dA):
        return dA * (self.Z > 0) * 1.01


class _InPlace(ReLULayer):
    def derivative(self, dA):
        dA *= self.Z > 0
        return dA


class _WrongBiasGradient(FCLayer):
    def backpropagate(self, dA):
        dA_prev = super().backpropagate(dA)
        self.dW[:, -1] *= 2
        return dA_prev


class _WrongShape(ReLULayer):
    def output_shape(self, input_shape):
        return (1, *input_shape)


@pytest.mark.parametrize("layer, message", [
    (_WrongSlope(), r"_WrongSlope: the gradient of the input \(training mode\) is wrong at "
                    r"index \(\d+, \d+\): backpropagate gives .*central differences "
                    r".*relative error"),
    (_InPlace(), "_InPlace: backpropagate changed the gradient it was given"),
    (_WrongBiasGradient(3), r"_WrongBiasGradient: the gradient of W \(training mode\) is wrong "
                            r"at index \(\d+, 4\)"),
    (_WrongShape(), r"_WrongShape: output shape \(3, 4\), but output_shape\(\) promises"),
], ids=["input gradient", "changes its argument", "weight gradient", "output shape"])
def test_check_layer_names_what_is_wrong(layer, message):
    with pytest.raises(AssertionError, match=message):
        check_layer(layer, (3, 4))
