"""cnn-numpy -> ONNX: to_onnx(net, path), built with the onnx package alone.

The graph takes cnn-numpy's own layout, images (n, height, width, channels)
float32 with any n, turns it into ONNX's (n, c, h, w) for the convolutions
and pooling, and back to (n, h, w, c) before flattening, so every dense
weight is used exactly as stored.  It runs in inference mode: BatchNorm
with its running statistics, Dropout as nothing.  The output is the class
probabilities, as Net.predict gives them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..files import atomic_write
from ..layers import (
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
    PoolLayer_Avg,
    PoolLayer_Max,
    ReLULayer,
    SigmoidLayer,
    TanhLayer,
)
from ..net import Net
from .common import require

OPSET = 17
IR_VERSION = 8  # what ONNX Runtime releases of the last years all read


class _Graph:
    """The nodes and weights of an ONNX graph being built, one op at a time."""

    def __init__(self, onnx):
        self.onnx, self.nodes, self.weights = onnx, [], []

    def weight(self, name: str, value: np.ndarray) -> str:
        value = np.ascontiguousarray(value, dtype=np.float32)
        self.weights.append(self.onnx.numpy_helper.from_array(value, name))
        return name

    def op(self, op_type: str, inputs: list[str], name: str, **attributes) -> str:
        self.nodes.append(self.onnx.helper.make_node(op_type, inputs, [name], name=name,
                                                     **attributes))
        return name


def to_onnx(net: Net, path) -> None:
    """Write `net` (built) as an ONNX model to `path`, atomically.

    Input "images": float32 (batch, height, width, channels); output
    "probabilities": float32 (batch, k).  The model passes onnx.checker; a
    layer with no ONNX counterpart here (one you wrote) is a ValueError.
    """
    onnx = require("onnx", "onnx")
    if not isinstance(net, Net):
        raise ValueError(f"to_onnx: expected a cnn_numpy Net, got {type(net).__name__}")
    if net.input_shape is None:
        raise ValueError("to_onnx: the net has no weights yet; train or build it first")
    g = _Graph(onnx)
    sample = net.input_shape if len(net.input_shape) != 2 else (*net.input_shape, 1)
    x, channels_first = "images", False
    shapes = [sample, *net.shapes(sample)]
    last = len(net.layers) - 1
    for i, (layer, shape) in enumerate(zip(net.layers, shapes, strict=False)):
        kind, name = type(layer), f"layer{i}"
        needs_nchw = kind in (ConvLayer, ConvLayer_ReLU, PoolLayer_Max, PoolLayer_Avg) or (
            kind is BatchNorm and len(shape) == 3)
        if needs_nchw and not channels_first:
            x, channels_first = g.op("Transpose", [x], f"{name}_nchw", perm=[0, 3, 1, 2]), True
        if kind in (ConvLayer, ConvLayer_ReLU):
            (top, bottom), (left, right) = layer.pads(shape[0], shape[1])
            fw, s = layer.filter_width, layer.stride
            x = g.op("Conv", [x, g.weight(f"{name}_W", layer.W.transpose(3, 2, 0, 1)),
                              g.weight(f"{name}_b", layer.b)], name, kernel_shape=[fw, fw],
                     strides=[s, s], pads=[top, left, bottom, right])
            if kind is ConvLayer_ReLU:
                x = g.op("Relu", [x], f"{name}_relu")
        elif kind in (PoolLayer_Max, PoolLayer_Avg):
            fw, s = layer.filter_width, layer.stride
            x = g.op("MaxPool" if kind is PoolLayer_Max else "AveragePool", [x], name,
                     kernel_shape=[fw, fw], strides=[s, s])
        elif kind is FlatLayer:
            if channels_first:  # back to (n, h, w, c): FlatLayer's order
                x, channels_first = g.op("Transpose", [x], f"{name}_nhwc",
                                         perm=[0, 2, 3, 1]), False
            x = g.op("Flatten", [x], name, axis=1)
        elif kind in (FCLayer, FCLayer_ReLU, FCLayer_Sigmoid, FCLayer_Softmax):
            x = g.op("Gemm", [x, g.weight(f"{name}_W", layer.W[:, :-1]),
                              g.weight(f"{name}_b", layer.W[:, -1])], name, transB=1)
            if kind is FCLayer_ReLU:
                x = g.op("Relu", [x], f"{name}_relu")
            elif kind is FCLayer_Sigmoid:
                x = g.op("Sigmoid", [x], "probabilities" if i == last else f"{name}_sigmoid")
            elif kind is FCLayer_Softmax:
                x = g.op("Softmax", [x], "probabilities" if i == last else f"{name}_softmax",
                         axis=1)
        elif kind is BatchNorm:
            x = g.op("BatchNormalization", [
                x, g.weight(f"{name}_gamma", layer.gamma), g.weight(f"{name}_beta", layer.beta),
                g.weight(f"{name}_mean", layer.running_mean),
                g.weight(f"{name}_var", layer.running_var)], name, epsilon=layer.eps)
        elif kind is Dropout:
            continue  # inference: nothing to do
        elif kind in (ReLULayer, TanhLayer, SigmoidLayer):
            op = {ReLULayer: "Relu", TanhLayer: "Tanh", SigmoidLayer: "Sigmoid"}[kind]
            x = g.op(op, [x], name)
        elif kind is LeakyReLULayer:
            x = g.op("LeakyRelu", [x], name, alpha=layer.alpha)
        else:
            raise ValueError(f"to_onnx: layer {i} ({kind.__name__}) has no ONNX counterpart "
                             "here; only cnn-numpy's own layers convert")
        if channels_first and kind not in (ConvLayer, ConvLayer_ReLU, PoolLayer_Max,
                                           PoolLayer_Avg, BatchNorm, ReLULayer, TanhLayer,
                                           SigmoidLayer, LeakyReLULayer):
            raise ValueError(f"to_onnx: layer {i} ({kind.__name__}) gets images")
    if x != "probabilities":
        raise ValueError("to_onnx: the last layer must be FCLayer_Softmax or FCLayer_Sigmoid")
    helper, tensor = onnx.helper, onnx.TensorProto.FLOAT
    graph = helper.make_graph(
        g.nodes, "cnn_numpy", [helper.make_tensor_value_info("images", tensor,
                                                             ["batch", *sample])],
        [helper.make_tensor_value_info("probabilities", tensor,
                                       ["batch", net.output_layer.num_neurons])],
        initializer=g.weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="cnn-numpy")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model, full_check=True)
    atomic_write(Path(path), lambda f: f.write(model.SerializeToString()))
