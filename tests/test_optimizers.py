"""The optimizers' updates against their formulas written plainly."""

from __future__ import annotations

import numpy as np
import pytest

from cnn_numpy import SGD, Adam, Momentum


def plain_steps(name: str, param, grads, lr):
    """The update rules as plain NumPy expressions (a new array per operation)."""
    param, m, v = param.copy(), np.zeros_like(param), np.zeros_like(param)
    for t, g in enumerate(grads, start=1):
        if name == "sgd":
            param -= lr * g
        elif name == "momentum":
            v = 0.9 * v + g
            param -= lr * v
        else:
            m = 0.9 * m + (1 - 0.9) * g
            v = 0.999 * v + (1 - 0.999) * g * g
            param -= lr * (m / (1 - 0.9**t)) / (np.sqrt(v / (1 - 0.999**t)) + 1e-8)
    return param


@pytest.mark.parametrize("make", [SGD, Momentum, Adam], ids=["sgd", "momentum", "adam"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_updates_compute_the_formulas_numbers(make, dtype):
    """Bit for bit, over a few steps, updating the weights in place."""
    rng = np.random.default_rng(0)
    param = rng.standard_normal((30, 7)).astype(dtype)
    grads = [rng.standard_normal(param.shape).astype(dtype) for _ in range(4)]
    optimizer = make()
    weights = param.copy()
    for g in grads:
        optimizer.step([("0/W", weights, g.copy())], 0.01)
    expected = plain_steps(optimizer.name, param, grads, 0.01)
    assert weights.dtype == dtype
    np.testing.assert_array_equal(weights, expected)
    if optimizer.name == "adam":
        assert sorted(optimizer.state) == ["0/W/m", "0/W/v"]
    else:
        assert sorted(optimizer.state) == ([] if optimizer.name == "sgd" else ["0/W"])
