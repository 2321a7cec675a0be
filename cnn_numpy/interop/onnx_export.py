"""cnn-numpy -> ONNX: to_onnx(net, path), built with the onnx package alone.

The graph takes cnn-numpy's own layout, images (n, height, width, channels)
float32 with any n, turns it into ONNX's (n, c, h, w) for the convolutions
and pooling, and back to (n, h, w, c) before flattening, so every dense
weight is used exactly as stored.  It runs in inference mode: BatchNorm
with its running statistics, Dropout as nothing.  The output is the class
probabilities, as Net.predict gives them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..extras import require
from ..files import PathLike, atomic_write
from ..layers import (
    BatchNorm,
    ConvLayer_ReLU,
    Dropout,
    FCLayer_ReLU,
    FCLayer_Sigmoid,
    FCLayer_Softmax,
    FlatLayer,
    LeakyReLULayer,
    PoolLayer_Max,
    ReLULayer,
    SigmoidLayer,
    TanhLayer,
)
from ..net import Net
from .common import (
    CONV_LAYERS,
    DENSE_LAYERS,
    POOL_LAYERS,
    check_built,
    no_counterpart,
    walk_layers,
)

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


def to_onnx(net: Net, path: PathLike) -> None:
    """Write `net` (built) as an ONNX model to `path`, atomically.

    Input "images": float32 (batch, height, width, channels); output
    "probabilities": float32 (batch, k); a net with class names keeps them in the
    model's metadata ("class_names", a JSON list).  The model passes onnx.checker; a
    layer with no ONNX counterpart here (one you wrote) is a ValueError.
    """
    onnx = require("onnx", "onnx")
    check_built(net, "to_onnx")
    g = _Graph(onnx)
    sample = net.input_shape if len(net.input_shape) != 2 else (*net.input_shape, 1)
    if _add_layers(g, net, sample) != "probabilities":
        raise ValueError("to_onnx: the last layer must be FCLayer_Softmax or FCLayer_Sigmoid")
    model = _model(onnx, g, sample, net.output_layer.num_neurons)
    if net.class_names is not None:  # what each output means, for whoever loads the file
        onnx.helper.set_model_props(model, {"class_names": json.dumps(list(net.class_names))})
    onnx.checker.check_model(model, full_check=True)
    atomic_write(Path(path), lambda f: f.write(model.SerializeToString()))


# The layers that take images (n, c, h, w) in the graph, as ONNX's ops want them; Dropout
# adds nothing, so it takes whatever it gets.
_NCHW_LAYERS = (*CONV_LAYERS, *POOL_LAYERS)
_TAKE_IMAGES = (*_NCHW_LAYERS, BatchNorm, ReLULayer, TanhLayer, SigmoidLayer, LeakyReLULayer,
                Dropout)


def _add_layers(g: _Graph, net: Net, sample: tuple[int, ...]) -> str:
    """Add the net's layers to g, from the input "images" (batch, *sample) on; the name of
    the last output ("probabilities" when the net ends with an output layer).

    Images are transposed to (n, c, h, w) before the first layer that needs
    it, and back to (n, h, w, c) before flattening.
    """
    x, channels_first = "images", False
    last = len(net.layers) - 1
    for i, layer, shape in walk_layers(net, sample):
        kind, name = type(layer), f"layer{i}"
        if not channels_first and (kind in _NCHW_LAYERS or (kind is BatchNorm and
                                                            len(shape) == 3)):
            x, channels_first = g.op("Transpose", [x], f"{name}_nchw", perm=[0, 3, 1, 2]), True
        if channels_first and kind is FlatLayer:  # back to (n, h, w, c): FlatLayer's order
            x, channels_first = g.op("Transpose", [x], f"{name}_nhwc", perm=[0, 2, 3, 1]), False
        x = _add_layer(g, i, layer, x, shape, i == last)
        if channels_first and kind not in _TAKE_IMAGES:
            raise ValueError(f"to_onnx: layer {i} ({kind.__name__}) gets images")
    return x


def _add_layer(g: _Graph, i: int, layer, x: str, shape: tuple[int, ...], is_last: bool) -> str:
    """Add the nodes of layer number i, taking x (samples of shape `shape`), to g; the name
    of their output."""
    kind, name = type(layer), f"layer{i}"
    if kind in CONV_LAYERS:
        return _add_conv(g, layer, x, shape, name)
    if kind in POOL_LAYERS:
        fw, s = layer.filter_width, layer.stride
        return g.op("MaxPool" if kind is PoolLayer_Max else "AveragePool", [x], name,
                    kernel_shape=[fw, fw], strides=[s, s])
    if kind is FlatLayer:
        return g.op("Flatten", [x], name, axis=1)
    if kind in DENSE_LAYERS:
        return _add_dense(g, layer, x, name, is_last)
    if kind is BatchNorm:
        return g.op("BatchNormalization", [
            x, g.weight(f"{name}_gamma", layer.gamma), g.weight(f"{name}_beta", layer.beta),
            g.weight(f"{name}_mean", layer.running_mean),
            g.weight(f"{name}_var", layer.running_var)], name, epsilon=layer.eps)
    if kind is Dropout:
        return x  # inference: nothing to do
    if kind in (ReLULayer, TanhLayer, SigmoidLayer):
        op = {ReLULayer: "Relu", TanhLayer: "Tanh", SigmoidLayer: "Sigmoid"}[kind]
        return g.op(op, [x], name)
    if kind is LeakyReLULayer:
        return g.op("LeakyRelu", [x], name, alpha=layer.alpha)
    raise no_counterpart("to_onnx", i, layer, "ONNX")


def _add_conv(g: _Graph, layer, x: str, shape: tuple[int, ...], name: str) -> str:
    """Conv (its weights (n_f, c_in, fw, fw), as ONNX wants them), then Relu for
    ConvLayer_ReLU.  Takes and gives images (n, c, h, w); shape: one sample's (h, w, c)."""
    (top, bottom), (left, right) = layer.pads(shape[0], shape[1])
    fw, s = layer.filter_width, layer.stride
    x = g.op("Conv", [x, g.weight(f"{name}_W", layer.W.transpose(3, 2, 0, 1)),
                      g.weight(f"{name}_b", layer.b)], name, kernel_shape=[fw, fw],
             strides=[s, s], pads=[top, left, bottom, right])
    return g.op("Relu", [x], f"{name}_relu") if type(layer) is ConvLayer_ReLU else x


def _add_dense(g: _Graph, layer, x: str, name: str, is_last: bool) -> str:
    """Gemm with the weights as stored (the bias is their last column), then the layer's
    activation; the output layer's is named "probabilities"."""
    kind = type(layer)
    x = g.op("Gemm", [x, g.weight(f"{name}_W", layer.W[:, :-1]),
                      g.weight(f"{name}_b", layer.W[:, -1])], name, transB=1)
    if kind is FCLayer_ReLU:
        return g.op("Relu", [x], f"{name}_relu")
    if kind is FCLayer_Sigmoid:
        return g.op("Sigmoid", [x], "probabilities" if is_last else f"{name}_sigmoid")
    if kind is FCLayer_Softmax:
        return g.op("Softmax", [x], "probabilities" if is_last else f"{name}_softmax", axis=1)
    return x


def _model(onnx, g: _Graph, sample: tuple[int, ...], k: int):
    """The checked-format ModelProto of graph g: "images" (batch, *sample) in,
    "probabilities" (batch, k) out, opset OPSET, IR version IR_VERSION."""
    helper, tensor = onnx.helper, onnx.TensorProto.FLOAT
    graph = helper.make_graph(
        g.nodes, "cnn_numpy", [helper.make_tensor_value_info("images", tensor,
                                                             ["batch", *sample])],
        [helper.make_tensor_value_info("probabilities", tensor, ["batch", k])],
        initializer=g.weights)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="cnn-numpy")
    model.ir_version = IR_VERSION
    return model
