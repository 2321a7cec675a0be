"""The reference CNN learns: real MNIST digits (the bundled sample), loss going down."""

from __future__ import annotations

import numpy as np

from cnn_numpy import ConvLayer_ReLU, FCLayer_ReLU, FCLayer_Softmax, FlatLayer, Net, PoolLayer_Max
from cnn_numpy.data import load_dataset


def test_reference_cnn_learns_mnist_digits():
    data = load_dataset("mnist-sample", progress=False)
    X, y = data.x_train[:1500], data.y_train[:1500]
    net = Net([ConvLayer_ReLU(32, 3), PoolLayer_Max(2), FlatLayer(), FCLayer_ReLU(100),
               FCLayer_Softmax(10)], seed=0)
    before = net.evaluate(data.x_test, data.y_test)
    assert before.cce > 2.0 and before.ce > 0.7  # chance level: log(10) = 2.3, 90% wrong
    order = np.random.default_rng(0).permutation(len(X))
    for _ in range(2):
        for i in range(0, len(X), 32):
            idx = order[i : i + 32]
            net.train(X[idx], y[idx], 0.05)
    after = net.evaluate(data.x_test, data.y_test)
    assert after.cce < 0.5 and after.ce < 0.15
