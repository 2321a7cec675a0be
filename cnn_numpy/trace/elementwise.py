"""Explanations for what works element by element: the activations (of the activation
layers and inside conv and dense layers), FlatLayer and Dropout."""

from __future__ import annotations

import math

import numpy as np

from ..layers import (
    Dropout,
    FlatLayer,
    LeakyReLULayer,
    ReLULayer,
    SigmoidLayer,
    TanhLayer,
)
from ..layers import activations as act
from .explanation import Explanation, Source, TermGroup, constant, function_of, product, source
from .records import Family, LayerTrace


def _sigmoid(z: float) -> float:
    """1 / (1 + exp(-z)) in float64, without overflow."""
    if z >= 0:
        return 1 / (1 + math.exp(-z))
    e = math.exp(z)
    return e / (1 + e)


def relu_terms(lt: LayerTrace, index: tuple, z: str, sources: list[Source]) -> Explanation:
    """A = max(Z, 0), as Z * [Z > 0]."""
    positive = float(lt.value(z, index) > 0)
    return lt.explanation("A", index, "A = max(Z, 0): Z where Z > 0, else 0",
                          [product(lt.operand(z, index), constant("[Z > 0]", positive))],
                          sources)


def relu_backward_terms(lt: LayerTrace, index: tuple, name: str,
                        sources: list[Source]) -> Explanation:
    """dZ = dA * [Z > 0] (named `name`: dZ, or an activation layer's dA_prev)."""
    positive = float(lt.value("Z", index) > 0)
    return lt.explanation(name, index, "dZ = dA where Z > 0, else 0 (the derivative at 0 "
                          "is taken as 0)",
                          [product(lt.operand("dA", index), constant("[Z > 0]", positive))],
                          sources, {"Z": lt.value("Z", index)})


def sigmoid_terms(lt: LayerTrace, index: tuple, z: str, sources: list[Source]) -> Explanation:
    """A = 1 / (1 + exp(-Z))."""
    value = _sigmoid(lt.value(z, index))
    return lt.explanation("A", index, "A = 1 / (1 + exp(-Z))",
                          [function_of("1 / (1 + exp(-{0}))", value, lt.operand(z, index))],
                          sources)


def sigmoid_backward_terms(lt: LayerTrace, index: tuple, name: str,
                           sources: list[Source]) -> Explanation:
    """dZ = dA * A * (1 - A)."""
    dA, A = lt.value("dA", index), lt.value("A", index)
    group = function_of("{0} * {1} * (1 - {1})", dA * A * (1 - A), lt.operand("dA", index),
                        lt.operand("A", index))
    return lt.explanation(name, index, "dZ = dA * A * (1 - A)", [group], sources)


# -- the activation layers: Z (their input) -> A, and dA -> dZ (their dA_prev) ---------

def _relu_a(lt: LayerTrace, index: tuple, step) -> Explanation:
    return relu_terms(lt, index, "Z", [source(ReLULayer.function, "act.relu("),
                                       source(act.relu, "np.maximum")])


def _relu_dz(lt: LayerTrace, index: tuple, step) -> Explanation:
    return relu_backward_terms(lt, index, "dA_prev", [
        source(ReLULayer.derivative, "relu_backward("),
        source(act.relu_backward, "dA * (Z > 0)")])


def _slope(lt: LayerTrace, index: tuple) -> tuple[str, float]:
    if lt.value("Z", index) > 0:
        return "1 (Z > 0)", 1.0
    return "alpha (Z <= 0)", lt.layer.alpha


def _leaky_a(lt: LayerTrace, index: tuple, step) -> Explanation:
    group = product(lt.operand("Z", index), constant(*_slope(lt, index)))
    return lt.explanation("A", index, "A = Z where Z > 0, else alpha * Z", [group],
                          [source(LeakyReLULayer.function, "np.where(")],
                          {"alpha": lt.layer.alpha})


def _leaky_dz(lt: LayerTrace, index: tuple, step) -> Explanation:
    group = product(lt.operand("dA", index), constant(*_slope(lt, index)))
    return lt.explanation("dA_prev", index, "dZ = dA where Z > 0, else alpha * dA", [group],
                          [source(LeakyReLULayer.derivative, "np.where(")],
                          {"alpha": lt.layer.alpha, "Z": lt.value("Z", index)})


def _tanh_a(lt: LayerTrace, index: tuple, step) -> Explanation:
    group = function_of("tanh({0})", math.tanh(lt.value("Z", index)), lt.operand("Z", index))
    return lt.explanation("A", index, "A = tanh(Z)", [group],
                          [source(TanhLayer.function, "np.tanh(")])


def _tanh_dz(lt: LayerTrace, index: tuple, step) -> Explanation:
    dA, A = lt.value("dA", index), lt.value("A", index)
    group = function_of("{0} * (1 - {1}^2)", dA * (1 - A * A), lt.operand("dA", index),
                        lt.operand("A", index))
    return lt.explanation("dA_prev", index, "dZ = dA * (1 - A^2)", [group],
                          [source(TanhLayer.derivative, "(1 - self.A * self.A)")])


def _sigmoid_a(lt: LayerTrace, index: tuple, step) -> Explanation:
    return sigmoid_terms(lt, index, "Z", [source(SigmoidLayer.function, "act.sigmoid("),
                                          source(act.sigmoid, "np.where(")])


def _sigmoid_dz(lt: LayerTrace, index: tuple, step) -> Explanation:
    return sigmoid_backward_terms(lt, index, "dA_prev", [
        source(SigmoidLayer.derivative, "sigmoid_backward("),
        source(act.sigmoid_backward, "dA * A * (1 - A)")])


def _complete_activation(lt: LayerTrace) -> None:
    """An activation layer's docstring calls its input Z and its dA_prev dZ."""
    lt.aliases.update(Z="A_prev", dZ="dA_prev")


RELU = Family(_complete_activation, {"A": _relu_a, "dA_prev": _relu_dz})
LEAKY_RELU = Family(_complete_activation, {"A": _leaky_a, "dA_prev": _leaky_dz})
TANH = Family(_complete_activation, {"A": _tanh_a, "dA_prev": _tanh_dz})
SIGMOID = Family(_complete_activation, {"A": _sigmoid_a, "dA_prev": _sigmoid_dz})


# -- FlatLayer -------------------------------------------------------------------------

def _flat_a(lt: LayerTrace, index: tuple, step) -> Explanation:
    i, j = index
    at = (i, *np.unravel_index(j, lt["A_prev"].shape[1:]))
    group = TermGroup("{0}", (lt.operand("A_prev", at),),
                      np.asarray([lt.value("A_prev", at)], np.float64))
    return lt.explanation("A", index, "A[i, j] = A_prev[i, h, w, c] with j = (h * width + w)"
                          " * channels + c (row-major)", [group],
                          [source(FlatLayer.forward_propagate, "A_prev.reshape(")])


def _flat_da_prev(lt: LayerTrace, index: tuple, step) -> Explanation:
    j = int(np.ravel_multi_index(index[1:], lt["A_prev"].shape[1:]))
    at = (index[0], j)
    group = TermGroup("{0}", (lt.operand("dA", at),), np.asarray([lt.value("dA", at)], np.float64))
    return lt.explanation("dA_prev", index, "dA_prev[i, h, w, c] = dA[i, j] with j = (h * width"
                          " + w) * channels + c (row-major)", [group],
                          [source(FlatLayer.backpropagate, "dA.reshape(")])


FLAT = Family(lambda lt: None, {"A": _flat_a, "dA_prev": _flat_da_prev})


# -- Dropout ---------------------------------------------------------------------------

def _dropout_a(lt: LayerTrace, index: tuple, step) -> Explanation:
    if "mask" not in lt.arrays:  # rate 0: nothing dropped, no mask drawn
        group = TermGroup("{0}", (lt.operand("A_prev", index),),
                          np.asarray([lt.value("A_prev", index)], np.float64))
        return lt.explanation("A", index, "A = A_prev (rate 0: no mask)", [group],
                              [source(Dropout.forward_propagate, "return A_prev\n")])
    return lt.explanation("A", index, "A = A_prev * mask",
                          [product(lt.operand("A_prev", index), lt.operand("mask", index))],
                          [source(Dropout.forward_propagate, "A_prev * self.mask")])


def _dropout_mask(lt: LayerTrace, index: tuple, step) -> Explanation:
    rate = lt.layer.rate
    kept = float(lt.value("mask", index) != 0)
    group = product(constant("[u >= rate]", kept), constant("1/(1 - rate)", 1 / (1 - rate)))
    return lt.explanation("mask", index, "mask = [u >= rate] / (1 - rate), u drawn uniform in"
                          " [0, 1) from the Net's generator", [group],
                          [source(Dropout.forward_propagate, "self.mask = keep *")],
                          {"rate": rate, "kept": bool(kept)})


def _dropout_da_prev(lt: LayerTrace, index: tuple, step) -> Explanation:
    if "mask" not in lt.arrays:
        group = TermGroup("{0}", (lt.operand("dA", index),),
                          np.asarray([lt.value("dA", index)], np.float64))
        return lt.explanation("dA_prev", index, "dA_prev = dA (rate 0: no mask)", [group],
                              [source(Dropout.backpropagate, "return dA if")])
    return lt.explanation("dA_prev", index, "dA_prev = dA * mask",
                          [product(lt.operand("dA", index), lt.operand("mask", index))],
                          [source(Dropout.backpropagate, "dA * self.mask")])


DROPOUT = Family(lambda lt: None, {"A": _dropout_a, "mask": _dropout_mask,
                                   "dA_prev": _dropout_da_prev})
