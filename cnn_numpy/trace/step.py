"""trace_step: one training step, taken by net.train itself, with every array it computed
kept by name."""

from __future__ import annotations

from typing import Any

import numpy as np

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
    PoolLayer,
    PoolLayer_Avg,
    PoolLayer_Max,
    ReLULayer,
    SigmoidLayer,
    TanhLayer,
)
from ..net import Net, TrainResult
from . import batchnorm, conv, dense, elementwise, update
from .explanation import Explanation, source
from .records import Family, LayerTrace, StepContext, given

#: What the trace knows of each shipped layer type (exact types: a subclass may compute
#: something else).
FAMILIES: dict[type, Family] = {
    ConvLayer: conv.CONV, ConvLayer_ReLU: conv.CONV, PoolLayer_Max: conv.MAX_POOL,
    PoolLayer_Avg: conv.AVG_POOL, FlatLayer: elementwise.FLAT, FCLayer: dense.DENSE,
    FCLayer_ReLU: dense.DENSE_RELU, FCLayer_Sigmoid: dense.SIGMOID_HIDDEN,
    FCLayer_Softmax: dense.SOFTMAX_HIDDEN, BatchNorm: batchnorm.BATCHNORM,
    Dropout: elementwise.DROPOUT, ReLULayer: elementwise.RELU,
    LeakyReLULayer: elementwise.LEAKY_RELU, TanhLayer: elementwise.TANH,
    SigmoidLayer: elementwise.SIGMOID,
}
OUTPUT_FAMILIES = {FCLayer_Softmax: dense.SOFTMAX_OUTPUT, FCLayer_Sigmoid: dense.SIGMOID_OUTPUT}
#: Arrays the shipped layers keep from their forward pass that the trace copies.
KEPT = ("Z", "x_hat", "std", "mask")
_MISSING = object()


def trace_step(net: Net, X: np.ndarray, Y: np.ndarray, learning_rate: float) -> Trace:
    """Train `net` one step on the batch (X, Y), as net.train(X, Y, learning_rate) does,
    and return the Trace of everything the step computed.

    The step is net.train itself, on the plain loop (Net._forward and Net._backward: each
    layer's own forward_propagate and backpropagate, in turn).  While it runs, every
    layer's passes are watched (see _Watch) and what goes in and comes out is copied.
    With Net(fast=False) the plain loop is what net.train always runs: the weights after
    trace_step are those of net.train on a copy, bit for bit.  A Net with fast=True
    (the default) takes this one step on the plain loop as well, as its first step always
    does; its fast path gives the same numbers to rounding only.  Errors are net.train's
    (the step is then not taken, or not completed, as net.train leaves it).
    """
    if len({id(layer) for layer in net.layers}) != len(net.layers):
        raise ValueError("trace_step: the net holds the same layer object twice; its "
                         "arrays would be overwritten by its second use")
    optimizer = net.optimizer
    before = {key: value.copy() for key, value in optimizer.state.items()}
    fast, net.fast = net.fast, False
    try:
        with _Watch(net) as watch:
            result = net.train(X, Y, learning_rate)
    finally:
        net.fast = fast
    return Trace(net, watch.records, result, float(learning_rate), before)


class _Watch:
    """Observers on every layer's passes for one step: instance attributes that shadow
    forward_propagate, backpropagate (backpropagate_dZ and loss for the output layer)
    and, for a layer not built yet, build, each calling the method it stands for and
    copying its arguments and results into records[layer number].  Removed on exit."""

    def __init__(self, net: Net):
        self.net = net
        self.records: list[dict[str, Any]] = [{} for _ in net.layers]
        self._installed: list[tuple[object, str, object]] = []

    def __enter__(self) -> _Watch:
        last = len(self.net.layers) - 1
        for layer, record in zip(self.net.layers, self.records, strict=True):
            watched = ["forward_propagate"] + ["build"] * (not layer.built) + (
                ["backpropagate_dZ", "loss"] if layer is self.net.layers[last]
                else ["backpropagate"])
            for name in watched:
                self._install(layer, record, name)
        return self

    def __exit__(self, *exc) -> None:
        for layer, name, before in reversed(self._installed):
            if before is _MISSING:
                delattr(layer, name)
            else:
                setattr(layer, name, before)
        self._installed.clear()

    def _install(self, layer, record: dict, name: str) -> None:
        original, observer = getattr(layer, name), self.OBSERVERS[name]
        self._installed.append((layer, name, vars(layer).get(name, _MISSING)))
        setattr(layer, name, lambda *args: observer(layer, original, record, *args))

    @staticmethod
    def _build(layer, original, record, *args):
        original(*args)
        record["buffers"] = {k: v.copy() for k, v in layer.buffers().items()}

    @staticmethod
    def _forward(layer, original, record, A_prev):
        if layer.built:
            record["buffers"] = {k: v.copy() for k, v in layer.buffers().items()}
        A = original(A_prev)
        record["A_prev"], record["A"] = A_prev.copy(), A.copy()
        record["kept"] = {name: np.array(getattr(layer, name)) for name in KEPT
                          if getattr(layer, name, None) is not None
                          and getattr(layer, name) is not A_prev}
        record["params"] = {k: v.copy() for k, v in layer.params().items()}
        return A

    @staticmethod
    def _backward(layer, original, record, gradient):
        dA_prev = original(gradient)
        arriving = "dZ" if "Y" in record else "dA"  # the loss gave the output layer dZ
        record[arriving], record["dA_prev"] = gradient.copy(), dA_prev.copy()
        record["grads"] = {k: np.array(v) for k, v in layer.grads().items()}
        return dA_prev

    @staticmethod
    def _loss(layer, original, record, Y):
        cce, dZ = original(Y)
        record["Y"], record["cce"] = Y.copy(), cce
        return cce, dZ

    OBSERVERS = {"forward_propagate": _forward, "build": _build, "backpropagate": _backward,
                 "backpropagate_dZ": _backward, "loss": _loss}


class Trace:
    """Every array of one training step, layer by layer, and explain() for any number.

        trace = trace_step(net, X, y, 0.1)
        trace.layers[0].names()        # ['A_prev', 'A', 'Z', 'W', 'b', 'dW', ...]
        trace[0, "Z"]                  # the first layer's Z, (n, oh, ow, n_f)
        trace.explain(0, "Z", (0, 3, 4, 7)).equation()

    Attributes: layers (a LayerTrace per layer, by the names of its docstring), X and Y
    (the batch as the net took it: a channel axis, one-hot labels), learning_rate,
    cce and ce (what net.train returned), loss (each sample's), dZ (the output layer's),
    and the update's settings: optimizer (its name), optimizer_type, optimizer_config,
    steps (the optimizer's step count t, this step included), weight_decay.
    """

    def __init__(self, net: Net, records: list[dict], result: TrainResult,
                 learning_rate: float, state_before: dict[str, np.ndarray]):
        optimizer = net.optimizer
        self.learning_rate, self.weight_decay = learning_rate, net.weight_decay
        self.cce, self.ce = result.cce, result.ce
        self.optimizer, self.optimizer_type = optimizer.name, type(optimizer)
        self.optimizer_config, self.steps = optimizer.config(), optimizer.steps
        self.dtype = net.dtype
        self.layers = [_layer_trace(i, layer, record, net, state_before, learning_rate)
                       for i, (layer, record) in enumerate(zip(net.layers, records,
                                                               strict=True))]
        self.layers[-1].arrays["cce"] = np.asarray(self.cce)

    @property
    def X(self) -> np.ndarray:
        return self.layers[0]["A_prev"]

    @property
    def Y(self) -> np.ndarray:
        return self.layers[-1]["Y"]

    @property
    def loss(self) -> np.ndarray:
        """Each sample's loss (n,); cce is their mean."""
        return self.layers[-1]["loss"]

    @property
    def dZ(self) -> np.ndarray:
        """The output layer's dZ = (A - Y) / n, where backpropagation starts."""
        return self.layers[-1]["dZ"]

    def __getitem__(self, key: tuple[int, str]) -> np.ndarray:
        layer, name = key
        return self.layers[layer][name]

    def names(self, layer: int) -> list[str]:
        """The names layer number `layer`'s arrays answer to."""
        return self.layers[layer].names()

    def __repr__(self) -> str:
        kinds = ", ".join(lt.kind for lt in self.layers)
        return (f"Trace(<{len(self.layers)} layers: {kinds}>, n={len(self.X)}, "
                f"cce={self.cce:.4f}, optimizer={self.optimizer}, lr={self.learning_rate:g})")

    @property
    def _context(self) -> StepContext:
        return StepContext(self.learning_rate, self.weight_decay, self.optimizer_type,
                           self.optimizer_config, self.steps)

    def explain(self, layer: int, name: str, index: Any = ()) -> Explanation:
        """How the number `name`[index] of layer number `layer` was made: an Explanation
        with its value, the terms that add up to it, the equation with their values, and
        the line of code that computed it.

        A_prev is the previous layer's A (layer 0's is the batch X), and the gradient
        arriving from above (dA, or dZ for a linear layer) the next layer's dA_prev: those
        are explained where they were computed (asked_as says what was asked).
        """
        if not -len(self.layers) <= layer < len(self.layers):
            raise ValueError(f"layer must be 0..{len(self.layers) - 1}, got {layer}")
        lt = self.layers[layer % len(self.layers)]
        canonical = lt.resolve(name)
        index = lt.check_index(canonical, index)
        found = self._explain(lt, canonical, index)
        if (found.layer, found.name) != (lt.number, name):
            found.asked_as = f"layer {lt.number}'s {name}"
        return found

    def _explain(self, lt: LayerTrace, name: str, index: tuple) -> Explanation:
        last = len(self.layers) - 1
        if name == "A_prev":
            if lt.number == 0:
                return given(lt, "A_prev", index, "X: the batch as Net._check_X gives it (the "
                             "net's dtype, a channel axis)",
                             [source(Net._check_X, "X = np.asarray(X, dtype=self.dtype)")])
            return self.explain(lt.number - 1, "A", index)
        if name == lt.arriving and lt.number < last:
            return self.explain(lt.number + 1, "dA_prev", index)
        if update.parse(lt, name):
            return update.explain_update(lt, name, index, self._context)
        family = _family(lt.layer, lt.number == last)
        if family is None or name not in family.explainers:
            raise ValueError(f"no explanation for layer {lt.number}'s {name} "
                             f"({lt.kind}): only the shipped layer types are explained")
        return family.explainers[name](lt, index, self._context)


def _family(layer, last: bool) -> Family | None:
    if last and type(layer) in OUTPUT_FAMILIES:
        return OUTPUT_FAMILIES[type(layer)]
    return FAMILIES.get(type(layer))


def _layer_trace(i: int, layer, record: dict, net: Net, state_before: dict,
                 lr: float) -> LayerTrace:
    """Layer number i's LayerTrace from what the observers recorded and what the step
    left in the layer and the optimizer."""
    arrays = {"A_prev": record["A_prev"], "A": record["A"], **record.get("kept", {})}
    for name in ("dA", "dZ", "dA_prev", "Y"):
        if name in record:
            arrays[name] = record[name]
    for name, before in record.get("buffers", {}).items():
        arrays[name], arrays[f"{name}_after"] = before, layer.buffers()[name].copy()
    for name, before in record.get("params", {}).items():
        grad = layer.grads()[name]
        arrays.update({name: before, "d" + name: record["grads"][name],
                       f"{name}_grad": grad.copy(), f"{name}_after": layer.params()[name].copy()})
        terms = update.optimizer_arrays(net.optimizer, f"{i}/{name}", before, grad,
                                        state_before, lr)
        arrays.update({f"{name}_{suffix}": value for suffix, value in terms.items()})
    engine = layer.engine if isinstance(layer, (ConvLayer, PoolLayer)) else None
    lt = LayerTrace(i, layer, engine, arrays)
    family = _family(layer, i == len(net.layers) - 1)
    if family is not None:
        family.complete(lt)
    return lt
