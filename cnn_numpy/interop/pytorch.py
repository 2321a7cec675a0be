"""cnn-numpy <-> PyTorch: to_torch(net), from_torch(module), export_torch(net, path).

The layouts differ, and the converters translate them:

| cnn-numpy                                     | PyTorch                                |
|-----------------------------------------------|----------------------------------------|
| images (n, h, w, c)                           | (n, c, h, w)                           |
| conv W (fw, fw, c_in, n_f), b (n_f,)          | weight (n_f, c_in, fw, fw), bias       |
| dense W (n_out, n_in + 1), bias last column   | weight (n_out, n_in), bias (n_out,)    |
| FlatLayer flattens (h, w, c)                  | Flatten flattens (c, h, w)             |

Because of the last row, the first dense layer after a flattening gets its
columns permuted (and a BatchNorm in between, its parameters), so that both
compute the same numbers.  The softmax of the output layer is left out by
default: PyTorch's losses take logits.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..engines.geometry import same_padding
from ..extras import require
from ..files import PathLike, atomic_write
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
from .common import (
    CONV_LAYERS,
    DENSE_LAYERS,
    POOL_LAYERS,
    check_built,
    from_chw_order,
    hwc_order,
    no_counterpart,
    walk_layers,
)

if TYPE_CHECKING:
    import torch


def _torch():
    return require("torch", "torch")


def to_torch(net: Net, probabilities: bool = False) -> torch.nn.Sequential:
    """An equivalent, trainable torch.nn.Sequential for a built Net.

    The model takes PyTorch's usual (n, channels, height, width) input and
    returns the output layer's logits (n, k); probabilities=True appends the
    output layer's Softmax (or Sigmoid).  Weights are copied, in the Net's
    dtype; BatchNorm brings its running statistics, Dropout its rate.
    The model also carries the Net's output layer and input shape as the
    attributes cnn_numpy_output ("softmax" or "sigmoid") and
    cnn_numpy_input_shape, so from_torch(to_torch(net)) gives the same Net
    back without extra arguments.  A layer with no PyTorch counterpart (for
    example one you wrote) is a ValueError naming it.
    """
    torch = _torch()
    check_built(net, "to_torch")
    dtype = torch.float64 if net.dtype == np.float64 else torch.float32
    writer = _TorchWriter(torch, dtype, probabilities, last=len(net.layers) - 1)
    modules = []
    for i, layer, shape in walk_layers(net, net.input_shape):
        modules += writer.modules(i, layer, shape)
    model = torch.nn.Sequential(*modules)
    model.eval()  # like a Net outside train(): call model.train() to train it
    model.cnn_numpy_output = "sigmoid" if isinstance(net.output_layer, FCLayer_Sigmoid) \
        else "softmax"
    model.cnn_numpy_input_shape = tuple(net.input_shape)
    return model


class _TorchWriter:
    """Turns a Net's layers, one at a time and in order, into torch.nn modules.

    It remembers a FlatLayer's permutation (hwc_order) until the next dense
    layer or BatchNorm after it has used it: those get their weights in
    PyTorch's (c, h, w) flattening order.
    """

    def __init__(self, torch, dtype, probabilities: bool, last: int):
        self.torch, self.nn, self.dtype = torch, torch.nn, dtype
        self.probabilities, self.last = probabilities, last
        self.order: np.ndarray | None = None  # a flattening's, until the next dense layer

    def tensor(self, a: np.ndarray):
        """a as a torch tensor in the model's dtype."""
        return self.torch.tensor(np.ascontiguousarray(a), dtype=self.dtype)

    def modules(self, i: int, layer, shape: tuple[int, ...]) -> list:
        """The modules doing what layer number i does to samples of shape `shape`."""
        kind, nn = type(layer), self.nn
        if kind in CONV_LAYERS:
            return self.conv(layer, shape)
        if kind in POOL_LAYERS:
            pool = nn.MaxPool2d if kind is PoolLayer_Max else nn.AvgPool2d
            return [pool(layer.filter_width, layer.stride)]
        if kind is FlatLayer:
            self.order = hwc_order(shape)
            return [nn.Flatten()]
        if kind in DENSE_LAYERS:
            return self.dense(i, layer)
        if kind is BatchNorm:
            return [self.batchnorm(layer, shape)]
        simple = {Dropout: lambda: nn.Dropout(layer.rate), ReLULayer: nn.ReLU,
                  LeakyReLULayer: lambda: nn.LeakyReLU(layer.alpha), TanhLayer: nn.Tanh,
                  SigmoidLayer: nn.Sigmoid}
        if kind in simple:
            return [simple[kind]()]
        raise no_counterpart("to_torch", i, layer, "PyTorch")

    def conv(self, layer, shape: tuple[int, ...]) -> list:
        """[ZeroPad2d if the padding is uneven,] Conv2d[, ReLU]."""
        nn, modules = self.nn, []
        (top, bottom), (left, right) = layer.pads(shape[0], shape[1])
        padding = (top, left)
        if (top, left) != (bottom, right):
            modules.append(nn.ZeroPad2d((left, right, top, bottom)))
            padding = 0
        conv = nn.Conv2d(shape[2], layer.num_filters, layer.filter_width, layer.stride,
                         padding, dtype=self.dtype)
        conv.weight.data = self.tensor(layer.W.transpose(3, 2, 0, 1))
        conv.bias.data = self.tensor(layer.b)
        return modules + ([conv, nn.ReLU()] if type(layer) is ConvLayer_ReLU else [conv])

    def dense(self, i: int, layer) -> list:
        """Linear, then the layer's activation: left out for the output layer (number
        self.last) unless probabilities were asked for."""
        nn, kind = self.nn, type(layer)
        W = layer.W[:, :-1] if self.order is None else layer.W[:, :-1][:, self.order]
        self.order = None
        linear = nn.Linear(W.shape[1], W.shape[0], dtype=self.dtype)
        linear.weight.data, linear.bias.data = self.tensor(W), self.tensor(layer.W[:, -1])
        if kind is FCLayer_ReLU:
            return [linear, nn.ReLU()]
        if kind is not FCLayer and (i < self.last or self.probabilities):
            return [linear, nn.Sigmoid() if kind is FCLayer_Sigmoid else nn.Softmax(dim=1)]
        return [linear]

    def batchnorm(self, layer, shape: tuple[int, ...]):
        """BatchNorm2d for images, BatchNorm1d for vectors (permuted after a flattening)."""
        nn = self.nn
        norm = (nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d)(
            shape[-1], eps=layer.eps, momentum=layer.momentum, dtype=self.dtype)
        pick = slice(None) if self.order is None or len(shape) != 1 else self.order
        norm.weight.data = self.tensor(layer.gamma[pick])
        norm.bias.data = self.tensor(layer.beta[pick])
        norm.running_mean.data = self.tensor(layer.running_mean[pick])
        norm.running_var.data = self.tensor(layer.running_var[pick])
        return norm


def export_torch(net: Net, path: PathLike) -> None:
    """Write to_torch(net, probabilities=True) as a torch.export program (.pt2), atomically.

    The file needs PyTorch alone, not cnn-numpy:
        program = torch.export.load(path)
        probabilities = program.module()(images_nchw)     # any batch size
    """
    torch = _torch()
    model = to_torch(net, probabilities=True)
    h, w, c = _image_shape(net)
    example = torch.zeros((2, c, h, w), dtype=next(model.parameters()).dtype)
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    atomic_write(Path(path), lambda f: torch.export.save(program, f))


def _image_shape(net: Net) -> tuple[int, int, int]:
    shape = net.input_shape
    if shape is None or len(shape) not in (2, 3):
        raise ValueError(f"the net takes samples of shape {shape}, not images")
    return (*shape, 1) if len(shape) == 2 else shape


def from_torch(module: torch.nn.Module, input_shape: tuple[int, ...] | None = None,
               output: str | None = None) -> Net:
    """A Net with the layers and weights of a torch.nn.Sequential.

    input_shape is one input sample in cnn-numpy's layout, (height, width,
    channels): by default the one a model from to_torch carries, else
    MNIST's (28, 28, 1).  Conv2d (square kernel and stride, with
    bias, no dilation or groups, zero padding), ZeroPad2d before a Conv2d,
    ReLU, LeakyReLU, Tanh, Sigmoid, MaxPool2d, AvgPool2d (square, no
    padding), Flatten, Linear, BatchNorm1d/2d (affine, with running
    statistics) and Dropout map onto cnn-numpy layers; the model must end
    with a Linear, optionally followed by Softmax (or Sigmoid, giving
    FCLayer_Sigmoid).  A model that ends with the Linear (logits, as
    to_torch makes by default) gets the output layer `output` names:
    "softmax" (FCLayer_Softmax) or "sigmoid" (FCLayer_Sigmoid); by default
    the one a model from to_torch carries, else "softmax".  Anything else
    is a ValueError naming the module and what is wrong.
    """
    if input_shape is None:
        input_shape = getattr(module, "cnn_numpy_input_shape", (28, 28, 1))
    if output is None:
        output = getattr(module, "cnn_numpy_output", "softmax")
    if output not in ("softmax", "sigmoid"):
        raise ValueError(f"from_torch: output must be 'softmax' or 'sigmoid', got {output!r}")
    torch = _torch()
    if not isinstance(module, torch.nn.Sequential) or len(module) == 0:
        raise ValueError(f"from_torch: expected a non-empty torch.nn.Sequential, got "
                         f"{type(module).__name__}")
    shape = _sample_shape(input_shape)
    _check_tensors(torch, module)
    reader = _TorchReader(torch.nn, shape, output)
    reader.read(list(module))
    net = Net(reader.layers, dtype=np.float64 if reader.dtype == np.float64 else np.float32)
    net.build(shape)
    for layer, weights in zip(net.layers, reader.weights, strict=True):
        stored = {**layer.params(), **layer.buffers()}
        for name, value in weights.items():
            stored[name][...] = value
    return net


def _sample_shape(input_shape) -> tuple[int, ...]:
    """input_shape as a tuple of 1 to 3 positive ints, or a ValueError saying what it must be."""
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        shape = ()
    if not 1 <= len(shape) <= 3 or min(shape) < 1 or tuple(input_shape) != shape:
        raise ValueError(f"from_torch: input_shape must be one sample's shape, e.g. (28, 28, 1) "
                         f"(height, width, channels) or (784,), got {input_shape!r}")
    return shape


def _check_tensors(torch, module) -> None:
    """ValueError unless every floating-point parameter and buffer is a finite float32 or
    float64 tensor with data (not on the meta device)."""
    for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        if tensor.is_floating_point() and (tensor.is_meta or tensor.dtype not in (
                torch.float32, torch.float64)):
            raise ValueError(f"from_torch: {name} is a {tensor.dtype} tensor on {tensor.device};"
                             f" convert the model with model.float().cpu() first")
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ValueError(f"from_torch: {name} contains NaN or infinite values")


class _TorchReader:
    """Reads a Sequential's modules in order into cnn-numpy layers and their weights.

    After read(): layers, one weights dict per layer (name -> array), and
    dtype, the last Linear's.  shape follows one sample through the layers;
    order is a Flatten's permutation (hwc_order), until the next Linear.
    """

    def __init__(self, nn, shape: tuple[int, ...], output: str):
        self.nn, self.shape, self.output = nn, shape, output
        self.order: np.ndarray | None = None
        self.dtype = np.float32
        self.layers: list = []
        self.weights: list[dict[str, np.ndarray]] = []

    def read(self, modules: list) -> None:
        """Convert all modules; a ReLU (or Softmax, Sigmoid) a layer takes in is consumed."""
        pad = None  # a ZeroPad2d's (left, right, top, bottom), waiting for its Conv2d
        i = 0
        while i < len(modules):
            m = modules[i]
            if pad is not None and type(m) is not self.nn.Conv2d:
                raise ValueError(f"from_torch: module {i - 1} (ZeroPad2d) must be followed by "
                                 "a Conv2d")
            if type(m) is self.nn.ZeroPad2d:
                pad = tuple(m.padding)
                i += 1
                continue
            nxt = modules[i + 1] if i + 1 < len(modules) else None
            ends = nxt is None or (type(nxt) in (self.nn.Softmax, self.nn.Sigmoid)
                                   and i + 2 == len(modules))
            where = f"from_torch: module {i} ({m!r})"
            layer, weights, consumed = self.convert(m, nxt, ends, pad, where)
            pad = None
            self.add(layer, weights, where)
            i += consumed
        if pad is not None:
            raise ValueError("from_torch: the model ends with a ZeroPad2d")
        if not isinstance(self.layers[-1], (FCLayer_Softmax, FCLayer_Sigmoid)):
            raise ValueError("from_torch: the model must end with a Linear (optionally followed "
                             f"by Softmax or Sigmoid), not {type(modules[-1]).__name__}")

    def convert(self, m, nxt, ends: bool, pad, where: str):
        """(layer, weights, how many modules it takes) for module m, followed by nxt; ends:
        m is the last module, but for a Softmax or Sigmoid."""
        nn, kind = self.nn, type(m)
        if kind is nn.Conv2d:
            layer, weights = _conv(m, self.shape, pad, nn, where, nxt)
            return layer, weights, 1 + isinstance(layer, ConvLayer_ReLU)
        if kind is nn.Linear:
            return self.linear(m, nxt, ends, where)
        if kind in (nn.BatchNorm1d, nn.BatchNorm2d):
            layer, weights = _batchnorm(m, self.shape, self.order, kind is nn.BatchNorm2d, where)
            return layer, weights, 1
        if kind in (nn.MaxPool2d, nn.AvgPool2d):
            return _pool(m, kind is nn.MaxPool2d, where), {}, 1
        if kind is nn.Flatten:
            if (m.start_dim, m.end_dim) != (1, -1):
                raise ValueError(f"{where}: only Flatten(start_dim=1, end_dim=-1) converts")
            self.order = hwc_order(self.shape)
            return FlatLayer(), {}, 1
        return _weightless(nn, m, where), {}, 1

    def linear(self, m, nxt, ends: bool, where: str):
        """(dense layer, {"W": weights with the bias as last column}, modules it takes)."""
        if m.bias is None:
            raise ValueError(f"{where}: a Linear without bias has no cnn-numpy counterpart")
        W = m.weight.detach().cpu().numpy()
        if len(self.shape) != 1 or self.shape[0] != W.shape[1]:
            raise ValueError(f"{where}: takes {W.shape[1]} inputs, but gets samples of "
                             f"shape {self.shape}; check input_shape and the layers before it")
        if self.order is not None:
            W, self.order = from_chw_order(W, self.order), None
        layer, consumed = self.dense_layer(W.shape[0], nxt, ends)
        self.dtype = W.dtype
        return layer, {"W": np.hstack([W, m.bias.detach().cpu().numpy()[:, None]])}, consumed

    def dense_layer(self, n_out: int, nxt, ends: bool):
        """(the dense layer for a Linear followed by nxt, how many modules it takes)."""
        nn = self.nn
        if ends:
            sigmoid = type(nxt) is nn.Sigmoid or (nxt is None and self.output == "sigmoid")
            if type(nxt) is nn.Softmax and nxt.dim not in (1, -1):
                raise ValueError(f"from_torch: the final Softmax must be over dim 1, got "
                                 f"dim={nxt.dim}")
            return (FCLayer_Sigmoid if sigmoid else FCLayer_Softmax)(n_out), 1 + (nxt is not None)
        if type(nxt) is nn.ReLU:
            return FCLayer_ReLU(n_out), 2
        return FCLayer(n_out), 1

    def add(self, layer, weights: dict[str, np.ndarray], where: str) -> None:
        """Append layer after checking that it takes samples of the current shape."""
        shape = self.shape
        if layer.input_ndims is not None and len(shape) not in layer.input_ndims:
            raise ValueError(f"{where}: gets samples of shape {shape}, which "
                             f"{type(layer).__name__} cannot take")
        try:
            out = layer.output_shape(shape)
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
        if min(out) < 1:
            raise ValueError(f"{where}: its window does not fit in samples of shape {shape}; "
                             "check input_shape")
        self.shape = out
        self.layers.append(layer)
        self.weights.append(weights)


def _weightless(nn, m, where: str):
    """The cnn-numpy layer for a module without weights: Dropout or an activation."""
    kind = type(m)
    if kind is nn.Dropout:
        return Dropout(m.p)
    if kind in (nn.ReLU, nn.Tanh, nn.Sigmoid):
        return {nn.ReLU: ReLULayer, nn.Tanh: TanhLayer, nn.Sigmoid: SigmoidLayer}[kind]()
    if kind is nn.LeakyReLU:
        return LeakyReLULayer(m.negative_slope)
    if kind is nn.Softmax:
        raise ValueError(f"{where}: a Softmax converts only at the end, after a Linear")
    raise ValueError(f"{where}: no cnn-numpy layer does what {kind.__name__} does")


def _square(value, what: str, where: str) -> int:
    """The side of a square window setting: an int, or a pair of equal ints."""
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or pair[0] != pair[1]:
        raise ValueError(f"{where}: {what} {value} is not square; cnn-numpy's windows are")
    return int(pair[0])


def _conv(m, shape, pad, nn, where, nxt):
    """(ConvLayer or, when nxt is a ReLU, ConvLayer_ReLU; {"W", "b"}) for a Conv2d m taking
    samples of shape (h, w, c); pad: the ZeroPad2d before it, if any."""
    if len(shape) != 3 or m.in_channels != shape[2]:
        raise ValueError(f"{where}: expects {m.in_channels} input channels, gets samples of "
                         f"shape {shape}")
    for what, value, ok in (("dilation", m.dilation, (1, 1)), ("groups", m.groups, 1),
                            ("padding_mode", m.padding_mode, "zeros")):
        if value != ok:
            raise ValueError(f"{where}: {what}={value!r} has no cnn-numpy counterpart")
    if m.bias is None:
        raise ValueError(f"{where}: a Conv2d without bias has no cnn-numpy counterpart")
    fw = _square(m.kernel_size, "kernel size", where)
    stride = _square(m.stride, "stride", where)
    padding = _conv_padding(m, shape, pad, fw, stride, where)
    cls = ConvLayer_ReLU if type(nxt) is nn.ReLU else ConvLayer
    weights = {"W": m.weight.detach().cpu().numpy().transpose(2, 3, 1, 0),
               "b": m.bias.detach().cpu().numpy()}
    return cls(m.out_channels, fw, stride=stride, padding=padding), weights


def _conv_padding(m, shape, pad, fw: int, stride: int, where: str) -> int | str:
    """The ConvLayer padding (an int or "same") for Conv2d m's own padding, or for pad,
    the (left, right, top, bottom) of a ZeroPad2d before it."""
    if isinstance(m.padding, str):
        padding = 0 if m.padding == "valid" else "same"
    else:
        padding = _square(m.padding, "padding", where)
    if pad is None:
        return padding
    if padding != 0:
        raise ValueError(f"{where}: padded twice (ZeroPad2d and its own padding)")
    left, right, top, bottom = pad
    if (top, bottom) == same_padding(shape[0], fw, stride) and \
            (left, right) == same_padding(shape[1], fw, stride):
        return "same"
    if len(set(pad)) == 1:
        return left
    raise ValueError(f"{where}: the ZeroPad2d before it, {pad}, is neither even nor "
                     "TensorFlow's 'same' padding")


def _pool(m, is_max: bool, where: str):
    """PoolLayer_Max (is_max) or PoolLayer_Avg for a MaxPool2d or AvgPool2d m."""
    fw = _square(m.kernel_size, "kernel size", where)
    stride = _square(m.stride if m.stride is not None else m.kernel_size, "stride", where)
    if _square(m.padding, "padding", where) != 0 or m.ceil_mode:
        raise ValueError(f"{where}: padding and ceil_mode have no cnn-numpy counterpart")
    if is_max and (_square(m.dilation, "dilation", where) != 1 or m.return_indices):
        raise ValueError(f"{where}: dilation and return_indices have no cnn-numpy counterpart")
    if not is_max and m.divisor_override is not None:
        raise ValueError(f"{where}: divisor_override has no cnn-numpy counterpart")
    return (PoolLayer_Max if is_max else PoolLayer_Avg)(fw, stride=stride)


def _batchnorm(m, shape, order, is_2d: bool, where: str):
    """(BatchNorm, its weights) for a BatchNorm1d or BatchNorm2d (is_2d) m; order: a
    Flatten's permutation before a BatchNorm1d, to undo."""
    if not m.affine or not m.track_running_stats or m.momentum is None:
        raise ValueError(f"{where}: only affine BatchNorm with running statistics and a "
                         "momentum converts")
    if (len(shape) == 3) != is_2d or m.num_features != shape[-1]:
        raise ValueError(f"{where}: gets samples of shape {shape}")
    weights = {"gamma": m.weight, "beta": m.bias, "running_mean": m.running_mean,
               "running_var": m.running_var}
    weights = {k: v.detach().cpu().numpy() for k, v in weights.items()}
    if order is not None and not is_2d:
        weights = {k: from_chw_order(v, order) for k, v in weights.items()}
    return BatchNorm(momentum=m.momentum, eps=m.eps), weights
