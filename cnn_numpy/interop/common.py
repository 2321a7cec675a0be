"""What the converters share: optional imports, the walk over a Net's layers, the layer
families they translate alike, and cnn-numpy's flattening order."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from ..layers import (
    ConvLayer,
    ConvLayer_ReLU,
    FCLayer,
    FCLayer_ReLU,
    FCLayer_Sigmoid,
    FCLayer_Softmax,
    Layer,
    PoolLayer_Avg,
    PoolLayer_Max,
)
from ..net import Net

CONV_LAYERS = (ConvLayer, ConvLayer_ReLU)
POOL_LAYERS = (PoolLayer_Max, PoolLayer_Avg)
DENSE_LAYERS = (FCLayer, FCLayer_ReLU, FCLayer_Sigmoid, FCLayer_Softmax)


def check_built(net: Net, who: str) -> None:
    """ValueError, starting with `who`, unless net is a cnn-numpy Net with weights."""
    if not isinstance(net, Net):
        raise ValueError(f"{who}: expected a cnn_numpy Net, got {type(net).__name__}")
    if net.input_shape is None:
        raise ValueError(f"{who}: the net has no weights yet; train or build it first")


def walk_layers(net: Net, sample: tuple[int, ...]) -> Iterator[tuple[int, Layer,
                                                                     tuple[int, ...]]]:
    """(index, layer, shape of one sample it takes) for each layer of a built net, in order;
    sample is the shape of one input sample."""
    shapes = [sample, *net.shapes(sample)]
    for i, (layer, shape) in enumerate(zip(net.layers, shapes, strict=False)):
        yield i, layer, shape


def no_counterpart(who: str, index: int, layer: Layer, library: str) -> ValueError:
    """The error for layer number `index`, which has no counterpart in `library`."""
    return ValueError(f"{who}: layer {index} ({type(layer).__name__}) has no {library} "
                      "counterpart here; only cnn-numpy's own layers convert")


def hwc_order(shape: tuple[int, ...]) -> np.ndarray:
    """For a sample shape (h, w, c): position j of the (c, h, w)-flattened vector that
    PyTorch's Flatten makes holds element hwc_order(shape)[j] of cnn-numpy's
    (h, w, c)-flattened one.  Shapes of other lengths: the identity."""
    size = int(np.prod(shape))
    if len(shape) != 3:
        return np.arange(size)
    return np.arange(size).reshape(shape).transpose(2, 0, 1).ravel()


def from_chw_order(values: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Undo values[..., order] (order from hwc_order): a copy of values whose last axis,
    in PyTorch's (c, h, w) flattening order, is put back in cnn-numpy's (h, w, c) one."""
    unpermuted = np.empty_like(values)
    unpermuted[..., order] = values
    return unpermuted
