"""What the interop tests share: one small net per shipped layer, and random weights."""

from __future__ import annotations

import numpy as np

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


def randomize(net: Net, seed: int = 0) -> Net:
    """Non-trivial weights and running statistics everywhere (BatchNorm's start at 0 and 1)."""
    rng = np.random.default_rng(seed)
    for layer in net.layers:
        for name, value in {**layer.params(), **layer.buffers()}.items():
            noise = rng.standard_normal(value.shape).astype(value.dtype)
            value[...] = np.abs(noise) + 0.5 if name == "running_var" else \
                value + 0.3 * noise
    return net


# One small net per shipped layer (and per padding kind), each ending in an output layer.
LAYER_NETS = {
    "ConvLayer": lambda: [ConvLayer(3, 3), FlatLayer(), FCLayer_Softmax(4)],
    "ConvLayer_ReLU stride 2 padding 1": lambda: [ConvLayer_ReLU(3, 3, stride=2, padding=1),
                                                  FlatLayer(), FCLayer_Softmax(4)],
    "ConvLayer same (uneven)": lambda: [ConvLayer(2, 4, stride=2, padding="same"), FlatLayer(),
                                        FCLayer_Softmax(4)],
    "PoolLayer_Max overlapping": lambda: [PoolLayer_Max(3, stride=2), FlatLayer(),
                                          FCLayer_Softmax(4)],
    "PoolLayer_Avg": lambda: [PoolLayer_Avg(2), FlatLayer(), FCLayer_Softmax(4)],
    "FlatLayer FCLayer": lambda: [FlatLayer(), FCLayer(5), FCLayer_Softmax(4)],
    "FCLayer_ReLU": lambda: [FlatLayer(), FCLayer_ReLU(5), FCLayer_Softmax(4)],
    "FCLayer_Sigmoid": lambda: [FlatLayer(), FCLayer(5), FCLayer_Sigmoid(4)],
    "BatchNorm 2d": lambda: [ConvLayer(3, 3), BatchNorm(momentum=0.3, eps=1e-3), FlatLayer(),
                             FCLayer_Softmax(4)],
    "BatchNorm 1d after flattening": lambda: [FlatLayer(), BatchNorm(), Dropout(0.3),
                                              FCLayer_Softmax(4)],
    "Dropout": lambda: [ConvLayer(2, 3), Dropout(0.5), FlatLayer(), FCLayer_Softmax(4)],
    "ReLULayer": lambda: [ConvLayer(2, 3), ReLULayer(), FlatLayer(), FCLayer_Softmax(4)],
    "LeakyReLULayer": lambda: [ConvLayer(2, 3), LeakyReLULayer(0.1), FlatLayer(),
                               FCLayer_Softmax(4)],
    "TanhLayer": lambda: [FlatLayer(), FCLayer(6), TanhLayer(), FCLayer_Softmax(4)],
    "SigmoidLayer": lambda: [FlatLayer(), FCLayer(6), SigmoidLayer(), FCLayer_Softmax(4)],
}
