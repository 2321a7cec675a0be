"""The layers: what each computes forward and backward, and the weights it owns."""

from .activation_layers import (
    ActivationLayer,
    LeakyReLULayer,
    ReLULayer,
    SigmoidLayer,
    TanhLayer,
)
from .base import Layer
from .conv import ConvLayer, ConvLayer_ReLU
from .dense import FCLayer, FCLayer_ReLU, FCLayer_Sigmoid, FCLayer_Softmax, OutputLayer
from .dropout import Dropout
from .flat import FlatLayer
from .normalization import BatchNorm
from .pool import PoolLayer, PoolLayer_Avg, PoolLayer_Max

__all__ = [
    "Layer", "ConvLayer", "ConvLayer_ReLU", "PoolLayer", "PoolLayer_Max", "PoolLayer_Avg",
    "FlatLayer", "FCLayer", "FCLayer_ReLU", "FCLayer_Sigmoid", "FCLayer_Softmax", "OutputLayer",
    "Dropout", "BatchNorm", "ActivationLayer", "ReLULayer", "LeakyReLULayer", "TanhLayer",
    "SigmoidLayer",
]
