"""cnn_numpy: a convolutional neural network in NumPy that you can read end to end.

    from cnn_numpy import Net, ConvLayer_ReLU, PoolLayer_Max, FlatLayer, FCLayer_ReLU, \\
        FCLayer_Softmax
    net = Net([ConvLayer_ReLU(32, 3), PoolLayer_Max(2), FlatLayer(),
               FCLayer_ReLU(100), FCLayer_Softmax(10)], seed=0)
    layers, cce, ce = net.train(X_batch, y_batch, learning_rate=0.1)
"""

from .engines import DEFAULT_ENGINE, ENGINES
from .fast.threads import get_threads, set_threads
from .layers import (
    ActivationLayer,
    BatchNorm,
    ConvLayer,
    ConvLayer_ReLU,
    Dropout,
    FCLayer,
    FCLayer_ReLU,
    FCLayer_Sigmoid,
    FCLayer_Softmax,
    FlatLayer,
    Layer,
    LeakyReLULayer,
    PoolLayer_Avg,
    PoolLayer_Max,
    ReLULayer,
    SigmoidLayer,
    TanhLayer,
)
from .net import DivergenceError, EvalResult, Net, Network, TrainResult
from .optimizers import SGD, Adam, Momentum, Optimizer

__version__ = "0.1.0"

__all__ = [
    "ConvLayer", "ConvLayer_ReLU", "PoolLayer_Max", "PoolLayer_Avg", "FlatLayer", "FCLayer",
    "FCLayer_ReLU", "FCLayer_Sigmoid", "FCLayer_Softmax", "Layer", "Net", "Network",
    "TrainResult", "EvalResult", "DivergenceError", "Optimizer", "SGD", "Momentum", "Adam",
    "ENGINES",
    "DEFAULT_ENGINE", "Dropout", "BatchNorm", "ActivationLayer", "ReLULayer", "LeakyReLULayer",
    "TanhLayer", "SigmoidLayer", "get_threads", "set_threads",
]
