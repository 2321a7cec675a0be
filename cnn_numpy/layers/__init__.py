"""The layers: what each computes forward and backward, and the weights it owns."""

from .base import Layer
from .conv import ConvLayer, ConvLayer_ReLU
from .dense import FCLayer, FCLayer_ReLU, FCLayer_Sigmoid, FCLayer_Softmax, OutputLayer
from .flat import FlatLayer
from .pool import PoolLayer, PoolLayer_Avg, PoolLayer_Max

__all__ = [
    "Layer", "ConvLayer", "ConvLayer_ReLU", "PoolLayer", "PoolLayer_Max", "PoolLayer_Avg",
    "FlatLayer", "FCLayer", "FCLayer_ReLU", "FCLayer_Sigmoid", "FCLayer_Softmax", "OutputLayer",
]
