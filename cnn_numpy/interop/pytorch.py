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

import numpy as np

from ..engines.geometry import same_padding
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
from .common import hwc_order, require


def _torch():
    return require("torch", "torch")


def to_torch(net: Net, probabilities: bool = False):
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
    nn = torch.nn
    if not isinstance(net, Net):
        raise ValueError(f"to_torch: expected a cnn_numpy Net, got {type(net).__name__}")
    if net.input_shape is None:
        raise ValueError("to_torch: the net has no weights yet; train or build it first")
    dtype = torch.float64 if net.dtype == np.float64 else torch.float32

    def tensor(a: np.ndarray):
        return torch.tensor(np.ascontiguousarray(a), dtype=dtype)

    modules, order = [], None  # order: a flattening's permutation, until the next dense layer
    shapes = [net.input_shape, *net.shapes(net.input_shape)]
    last = len(net.layers) - 1
    for i, (layer, shape) in enumerate(zip(net.layers, shapes, strict=False)):
        kind = type(layer)
        if kind in (ConvLayer, ConvLayer_ReLU):
            (top, bottom), (left, right) = layer.pads(shape[0], shape[1])
            padding = (top, left)
            if (top, left) != (bottom, right):
                modules.append(nn.ZeroPad2d((left, right, top, bottom)))
                padding = 0
            conv = nn.Conv2d(shape[2], layer.num_filters, layer.filter_width, layer.stride,
                             padding, dtype=dtype)
            conv.weight.data = tensor(layer.W.transpose(3, 2, 0, 1))
            conv.bias.data = tensor(layer.b)
            modules += [conv, nn.ReLU()] if kind is ConvLayer_ReLU else [conv]
        elif kind in (PoolLayer_Max, PoolLayer_Avg):
            pool = nn.MaxPool2d if kind is PoolLayer_Max else nn.AvgPool2d
            modules.append(pool(layer.filter_width, layer.stride))
        elif kind is FlatLayer:
            modules.append(nn.Flatten())
            order = hwc_order(shape)
        elif kind in (FCLayer, FCLayer_ReLU, FCLayer_Sigmoid, FCLayer_Softmax):
            W = layer.W[:, :-1] if order is None else layer.W[:, :-1][:, order]
            order = None
            linear = nn.Linear(W.shape[1], W.shape[0], dtype=dtype)
            linear.weight.data, linear.bias.data = tensor(W), tensor(layer.W[:, -1])
            modules.append(linear)
            if kind is FCLayer_ReLU:
                modules.append(nn.ReLU())
            elif kind is not FCLayer and (i < last or probabilities):
                modules.append(nn.Sigmoid() if kind is FCLayer_Sigmoid else nn.Softmax(dim=1))
        elif kind is BatchNorm:
            norm = (nn.BatchNorm2d if len(shape) == 3 else nn.BatchNorm1d)(
                shape[-1], eps=layer.eps, momentum=layer.momentum, dtype=dtype)
            pick = slice(None) if order is None or len(shape) != 1 else order
            norm.weight.data, norm.bias.data = tensor(layer.gamma[pick]), tensor(layer.beta[pick])
            norm.running_mean.data = tensor(layer.running_mean[pick])
            norm.running_var.data = tensor(layer.running_var[pick])
            modules.append(norm)
        elif kind is Dropout:
            modules.append(nn.Dropout(layer.rate))
        elif kind is ReLULayer:
            modules.append(nn.ReLU())
        elif kind is LeakyReLULayer:
            modules.append(nn.LeakyReLU(layer.alpha))
        elif kind is TanhLayer:
            modules.append(nn.Tanh())
        elif kind is SigmoidLayer:
            modules.append(nn.Sigmoid())
        else:
            raise ValueError(f"to_torch: layer {i} ({kind.__name__}) has no PyTorch "
                             "counterpart here; only cnn-numpy's own layers convert")
    model = nn.Sequential(*modules)
    model.eval()  # like a Net outside train(): call model.train() to train it
    model.cnn_numpy_output = "sigmoid" if isinstance(net.output_layer, FCLayer_Sigmoid) \
        else "softmax"
    model.cnn_numpy_input_shape = tuple(net.input_shape)
    return model


def export_torch(net: Net, path) -> None:
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


def from_torch(module, input_shape: tuple[int, ...] | None = None,
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
    nn = torch.nn
    if not isinstance(module, nn.Sequential) or len(module) == 0:
        raise ValueError(f"from_torch: expected a non-empty torch.nn.Sequential, got "
                         f"{type(module).__name__}")
    try:
        shape = tuple(int(d) for d in input_shape)
    except (TypeError, ValueError):
        shape = ()
    if not 1 <= len(shape) <= 3 or min(shape) < 1 or tuple(input_shape) != shape:
        raise ValueError(f"from_torch: input_shape must be one sample's shape, e.g. (28, 28, 1) "
                         f"(height, width, channels) or (784,), got {input_shape!r}")
    for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        if tensor.is_floating_point() and (tensor.is_meta or tensor.dtype not in (
                torch.float32, torch.float64)):
            raise ValueError(f"from_torch: {name} is a {tensor.dtype} tensor on {tensor.device};"
                             f" convert the model with model.float().cpu() first")
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise ValueError(f"from_torch: {name} contains NaN or infinite values")
    modules = list(module)
    layers, arrays, order = [], [], None
    pad = None  # a ZeroPad2d waiting for its Conv2d
    dtype = np.float32
    i = 0
    while i < len(modules):
        m = modules[i]
        nxt = modules[i + 1] if i + 1 < len(modules) else None
        where = f"from_torch: module {i} ({m!r})"
        kind = type(m)
        consumed = 1
        if pad is not None and kind is not nn.Conv2d:
            raise ValueError(f"from_torch: module {i - 1} (ZeroPad2d) must be followed by a "
                             "Conv2d")
        if kind is nn.ZeroPad2d:
            pad = tuple(m.padding)  # (left, right, top, bottom)
            i += 1
            continue
        if kind is nn.Conv2d:
            layer, weights = _conv(m, shape, pad, nn, where, nxt)
            pad = None
            consumed += isinstance(layer, ConvLayer_ReLU)
        elif kind in (nn.MaxPool2d, nn.AvgPool2d):
            layer, weights = _pool(m, kind is nn.MaxPool2d, where), {}
        elif kind is nn.Flatten:
            if (m.start_dim, m.end_dim) != (1, -1):
                raise ValueError(f"{where}: only Flatten(start_dim=1, end_dim=-1) converts")
            layer, weights = FlatLayer(), {}
            order = hwc_order(shape)
        elif kind is nn.Linear:
            if m.bias is None:
                raise ValueError(f"{where}: a Linear without bias has no cnn-numpy counterpart")
            W = m.weight.detach().cpu().numpy()
            if len(shape) != 1 or shape[0] != W.shape[1]:
                raise ValueError(f"{where}: takes {W.shape[1]} inputs, but gets samples of "
                                 f"shape {shape}; check input_shape and the layers before it")
            if order is not None:
                unpermuted = np.empty_like(W)
                unpermuted[:, order] = W
                W, order = unpermuted, None
            ends = nxt is None or (type(nxt) in (nn.Softmax, nn.Sigmoid) and i + 2 == len(modules))
            if ends:
                sigmoid = type(nxt) is nn.Sigmoid or (nxt is None and output == "sigmoid")
                if type(nxt) is nn.Softmax and nxt.dim not in (1, -1):
                    raise ValueError(f"from_torch: the final Softmax must be over dim 1, got "
                                     f"dim={nxt.dim}")
                layer = (FCLayer_Sigmoid if sigmoid else FCLayer_Softmax)(W.shape[0])
                consumed += nxt is not None
            elif type(nxt) is nn.ReLU:
                layer, consumed = FCLayer_ReLU(W.shape[0]), 2
            else:
                layer = FCLayer(W.shape[0])
            weights = {"W": np.hstack([W, m.bias.detach().cpu().numpy()[:, None]])}
            dtype = W.dtype
        elif kind in (nn.BatchNorm1d, nn.BatchNorm2d):
            layer, weights = _batchnorm(m, shape, order, kind is nn.BatchNorm2d, where)
        elif kind is nn.Dropout:
            layer, weights = Dropout(m.p), {}
        elif kind in (nn.ReLU, nn.Tanh, nn.Sigmoid):
            layer = {nn.ReLU: ReLULayer, nn.Tanh: TanhLayer, nn.Sigmoid: SigmoidLayer}[kind]()
            weights = {}
        elif kind is nn.LeakyReLU:
            layer, weights = LeakyReLULayer(m.negative_slope), {}
        elif kind is nn.Softmax:
            raise ValueError(f"{where}: a Softmax converts only at the end, after a Linear")
        else:
            raise ValueError(f"{where}: no cnn-numpy layer does what {kind.__name__} does")
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
        shape = out
        layers.append(layer)
        arrays.append(weights)
        i += consumed
    if pad is not None:
        raise ValueError("from_torch: the model ends with a ZeroPad2d")
    if not isinstance(layers[-1], (FCLayer_Softmax, FCLayer_Sigmoid)):
        raise ValueError("from_torch: the model must end with a Linear (optionally followed by "
                         f"Softmax or Sigmoid), not {type(modules[-1]).__name__}")
    net = Net(layers, dtype=np.float64 if dtype == np.float64 else np.float32)
    net.build(tuple(int(d) for d in input_shape))
    for layer, weights in zip(net.layers, arrays, strict=True):
        stored = {**layer.params(), **layer.buffers()}
        for name, value in weights.items():
            stored[name][...] = value
    return net


def _square(value, what: str, where: str) -> int:
    pair = (value, value) if isinstance(value, int) else tuple(value)
    if len(pair) != 2 or pair[0] != pair[1]:
        raise ValueError(f"{where}: {what} {value} is not square; cnn-numpy's windows are")
    return int(pair[0])


def _conv(m, shape, pad, nn, where, nxt):
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
    if isinstance(m.padding, str):
        padding = 0 if m.padding == "valid" else "same"
    else:
        padding = _square(m.padding, "padding", where)
    if pad is not None:
        if padding != 0:
            raise ValueError(f"{where}: padded twice (ZeroPad2d and its own padding)")
        left, right, top, bottom = pad
        if (top, bottom) == same_padding(shape[0], fw, stride) and \
                (left, right) == same_padding(shape[1], fw, stride):
            padding = "same"
        elif len(set(pad)) == 1:
            padding = left
        else:
            raise ValueError(f"{where}: the ZeroPad2d before it, {pad}, is neither even nor "
                             "TensorFlow's 'same' padding")
    cls = ConvLayer_ReLU if type(nxt) is nn.ReLU else ConvLayer
    weights = {"W": m.weight.detach().cpu().numpy().transpose(2, 3, 1, 0),
               "b": m.bias.detach().cpu().numpy()}
    return cls(m.out_channels, fw, stride=stride, padding=padding), weights


def _pool(m, is_max: bool, where: str):
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
    if not m.affine or not m.track_running_stats or m.momentum is None:
        raise ValueError(f"{where}: only affine BatchNorm with running statistics and a "
                         "momentum converts")
    if (len(shape) == 3) != is_2d or m.num_features != shape[-1]:
        raise ValueError(f"{where}: gets samples of shape {shape}")
    weights = {"gamma": m.weight, "beta": m.bias, "running_mean": m.running_mean,
               "running_var": m.running_var}
    weights = {k: v.detach().cpu().numpy() for k, v in weights.items()}
    if order is not None and not is_2d:
        for key, value in weights.items():
            unpermuted = np.empty_like(value)
            unpermuted[order] = value
            weights[key] = unpermuted
    return BatchNorm(momentum=m.momentum, eps=m.eps), weights
