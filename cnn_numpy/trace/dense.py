"""Explanations for the dense layers (FCLayer, FCLayer_ReLU, FCLayer_Sigmoid,
FCLayer_Softmax) and for the loss the output layer computes.  W keeps the bias as its last
column, so W[j, -1] is neuron j's bias and dW[j, -1] its gradient."""

from __future__ import annotations

import math

import numpy as np

from ..layers import FCLayer, FCLayer_ReLU, FCLayer_Sigmoid, FCLayer_Softmax
from ..layers import activations as act
from ..net import Net
from .elementwise import (
    relu_backward_terms,
    relu_terms,
    sigmoid_backward_terms,
    sigmoid_terms,
)
from .explanation import Explanation, constant, function_of, operand, product, source
from .records import Family, LayerTrace, given


def _column(*values) -> np.ndarray:
    """Index rows (count, len(values)) from scalars and 1-d arrays, broadcast."""
    return np.stack(np.broadcast_arrays(*values), axis=-1)


def _z(lt: LayerTrace, index: tuple, step) -> Explanation:
    i, j = index
    k = np.arange(lt["A_prev"].shape[1])
    bias = (j, len(k))
    return lt.explanation(
        "Z", index, "Z[i, j] = sum over k of A_prev[i, k] * W[j, k] + W[j, -1] (the bias "
        "column)", [product(lt.operands("A_prev", _column(i, k)), lt.operands("W", _column(j, k))),
                    product(lt.operand("W", bias))],
        [source(FCLayer._linear_forward, "self.Z = A_prev @")], {"bias": lt.value("W", bias)})


def _dw(lt: LayerTrace, index: tuple, step) -> Explanation:
    j, k = index
    i = np.arange(lt["dZ"].shape[0])
    dz = lt.operands("dZ", _column(i, j))
    if k == lt["A_prev"].shape[1]:  # the bias column
        return lt.explanation("dW", index, "dW[j, -1] = sum over i of dZ[i, j] (the bias "
                              "column)", [product(dz)],
                              [source(FCLayer.backpropagate_dZ, "self.dW[:, -1] =")])
    return lt.explanation("dW", index, "dW[j, k] = sum over i of dZ[i, j] * A_prev[i, k]",
                          [product(dz, lt.operands("A_prev", _column(i, k)))],
                          [source(FCLayer.backpropagate_dZ, "self.dW[:, :-1] =")])


def _da_prev(lt: LayerTrace, index: tuple, step) -> Explanation:
    i, k = index
    j = np.arange(lt["dZ"].shape[1])
    return lt.explanation("dA_prev", index, "dA_prev[i, k] = sum over j of dZ[i, j] * W[j, k]"
                          " (the bias column passes nothing back)",
                          [product(lt.operands("dZ", _column(i, j)),
                                   lt.operands("W", _column(j, k)))],
                          [source(FCLayer.backpropagate_dZ, "return dZ @ self.W")])


def _relu_a(lt: LayerTrace, index: tuple, step) -> Explanation:
    return relu_terms(lt, index, "Z", [source(FCLayer_ReLU.forward_propagate, "act.relu("),
                                       source(act.relu, "np.maximum")])


def _relu_dz(lt: LayerTrace, index: tuple, step) -> Explanation:
    return relu_backward_terms(lt, index, "dZ", [
        source(FCLayer_ReLU.backpropagate, "relu_backward("),
        source(act.relu_backward, "dA * (Z > 0)")])


def _sigmoid_a(lt: LayerTrace, index: tuple, step) -> Explanation:
    return sigmoid_terms(lt, index, "Z", [source(FCLayer_Sigmoid.forward_propagate,
                                                 "act.sigmoid("),
                                          source(act.sigmoid, "np.where(")])


def _sigmoid_dz(lt: LayerTrace, index: tuple, step) -> Explanation:
    return sigmoid_backward_terms(lt, index, "dZ", [
        source(FCLayer_Sigmoid.backpropagate, "sigmoid_backward("),
        source(act.sigmoid_backward, "dA * A * (1 - A)")])


def _softmax_a(lt: LayerTrace, index: tuple, step) -> Explanation:
    i, j = index
    row = lt["Z"][i].astype(np.float64)
    top, total = float(row.max()), float(np.exp(row - row.max()).sum())
    value = math.exp(row[j] - top) / total
    group = function_of("exp({0} - {1}) / {2}", value, lt.operand("Z", index),
                        constant("max(Z[i])", top), constant("sum(exp(Z[i] - max))", total))
    return lt.explanation("A", index, "A[i, j] = exp(Z[i, j] - max(Z[i])) / sum over l of "
                          "exp(Z[i, l] - max(Z[i])) (the max taken out so no exp overflows)",
                          [group], [source(FCLayer_Softmax.forward_propagate, "act.softmax("),
                                    source(act.softmax, "e / e.sum")],
                          {"Z_row": row.tolist(), "max": top, "exp_sum": total})


def _softmax_dz(lt: LayerTrace, index: tuple, step) -> Explanation:
    """A hidden softmax: dZ = A * (dA - sum(dA * A)) over the row."""
    i, j = index
    ls = np.arange(lt["A"].shape[1])
    cross = product(constant("-1", -1.0), lt.operand("A", index),
                    lt.operands("dA", _column(i, ls)), lt.operands("A", _column(i, ls)),
                    count=len(ls))
    return lt.explanation("dZ", index, "dZ[i, j] = A[i, j] * (dA[i, j] - sum over l of "
                          "dA[i, l] * A[i, l])",
                          [product(lt.operand("A", index), lt.operand("dA", index)), cross],
                          [source(FCLayer_Softmax.backpropagate, "softmax_backward("),
                           source(act.softmax_backward, "A * (dA -")])


# -- the loss (output layers) --------------------------------------------------------

def _output_dz(lt: LayerTrace, index: tuple, step) -> Explanation:
    i, j = index
    n = lt["Y"].shape[0]
    if isinstance(lt.layer, FCLayer_Softmax):
        terms = [product(lt.operand("A", index), constant("sum(Y[i])", lt["Y"][i].sum()),
                         constant("1/n", 1 / n)),
                 product(constant("-1/n", -1 / n), lt.operand("Y", index))]
        line = source(FCLayer_Softmax.loss, "dZ = (self.A * Y.sum")
    else:
        terms = [product(lt.operand("A", index), constant("1/n", 1 / n)),
                 product(constant("-1/n", -1 / n), lt.operand("Y", index))]
        line = source(FCLayer_Sigmoid.loss, "((self.A - Y) / n)")
    return lt.explanation("dZ", index, "dZ = (A - Y) / n: the loss's gradient for Z, "
                          "softmax's Jacobian and the log folded together (one-hot Y sums "
                          "to 1 in every row)", terms,
                          [source(Net.train, "self.output_layer.loss(Y)"), line],
                          {"n": n})


def _loss(lt: LayerTrace, index: tuple, step) -> Explanation:
    (i,) = index
    js = np.arange(lt["Y"].shape[1])
    Z = lt["Z"][i].astype(np.float64)
    y = lt.operands("Y", _column(i, js))
    if isinstance(lt.layer, FCLayer_Softmax):
        log_a = Z - Z.max() - np.log(np.exp(Z - Z.max()).sum())
        terms = [product(constant("-1", -1.0), y,
                         operand("log softmax(Z)", log_a, None, _column(i, js)))]
        formula, line = ("loss[i] = -sum over j of Y[i, j] * log softmax(Z)[i, j]",
                         source(FCLayer_Softmax.loss, "Y * act.log_softmax"))
    else:
        not_y = operand("1 - Y", 1 - y.values, lt.number, y.indices)
        terms = [product(constant("-1", -1.0), y,
                         operand("log sigmoid(Z)", -np.logaddexp(0, -Z), None, _column(i, js))),
                 product(constant("-1", -1.0), not_y,
                         operand("log sigmoid(-Z)", -np.logaddexp(0, Z), None, _column(i, js)))]
        formula, line = ("loss[i] = -sum over j of Y log sigmoid(Z) + (1 - Y) log sigmoid(-Z)",
                         source(FCLayer_Sigmoid.loss, "log_likelihood ="))
    return lt.explanation("loss", index, formula + " (the batch's loss is its mean)", terms,
                          [line])


def _cce(lt: LayerTrace, index: tuple, step) -> Explanation:
    n = lt["loss"].shape[0]
    line = source(type(lt.layer).loss, "cce = -float(", "loss = -float(")
    return lt.explanation("cce", index, "cce = sum over i of loss[i] / n: the batch's mean "
                          "loss, what net.train returns",
                          [product(lt.operands("loss", np.arange(n)[:, None]),
                                   constant("1/n", 1 / n))], [line], {"n": n})


def _y(lt: LayerTrace, index: tuple, step) -> Explanation:
    return given(lt, "Y", index, "Y: the labels as one-hot rows (n, k)",
                 [source(Net._check_Y, "onehot[np.arange(n), Y] = 1")])


def per_sample_loss(layer: FCLayer, Z: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Each sample's loss (n,): what the output layer's loss averages, computed as it
    computes the whole batch's (in the net's dtype, summed in float64)."""
    if isinstance(layer, FCLayer_Softmax):
        return -np.sum(Y * act.log_softmax(Z), axis=1, dtype=np.float64)
    log_likelihood = Y * act.log_sigmoid(Z) + (1 - Y) * act.log_sigmoid(-Z)
    return -np.sum(log_likelihood, axis=1, dtype=np.float64)


def _complete(lt: LayerTrace) -> None:
    layer, arrays = lt.layer, lt.arrays
    lt.decayed["W"] = np.ones(arrays["W"].shape, dtype=bool)
    lt.decayed["W"][:, -1] = False  # FCLayer.decayed: not the bias column
    if "Y" in arrays:  # the output layer: the loss gave dZ
        arrays["loss"] = per_sample_loss(layer, arrays["Z"], arrays["Y"])
        lt.arriving = "dZ"
    elif type(layer) is FCLayer:
        del arrays["A"]
        arrays["dZ"] = arrays.pop("dA")
        lt.arriving = "dZ"
        lt.aliases.update(A="Z", dA="dZ")
    else:
        derivative = {FCLayer_ReLU: lambda dA: act.relu_backward(dA, arrays["Z"]),
                      FCLayer_Sigmoid: lambda dA: act.sigmoid_backward(dA, arrays["A"]),
                      FCLayer_Softmax: lambda dA: act.softmax_backward(dA, arrays["A"])}
        arrays["dZ"] = derivative[type(layer)](arrays["dA"])


_COMMON = {"Z": _z, "dW": _dw, "dA_prev": _da_prev}
_OUTPUT = {"dZ": _output_dz, "loss": _loss, "cce": _cce, "Y": _y}

DENSE = Family(_complete, _COMMON)
DENSE_RELU = Family(_complete, {**_COMMON, "A": _relu_a, "dZ": _relu_dz})
SIGMOID_HIDDEN = Family(_complete, {**_COMMON, "A": _sigmoid_a, "dZ": _sigmoid_dz})
SOFTMAX_HIDDEN = Family(_complete, {**_COMMON, "A": _softmax_a, "dZ": _softmax_dz})
SIGMOID_OUTPUT = Family(_complete, {**_COMMON, "A": _sigmoid_a, **_OUTPUT})
SOFTMAX_OUTPUT = Family(_complete, {**_COMMON, "A": _softmax_a, **_OUTPUT})
