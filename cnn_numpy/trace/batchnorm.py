"""Explanations for BatchNorm in training mode: the batch's mean and variance of each
channel, the normalised value, the output, the gradients and the running statistics,
each with the batch's m numbers of that channel written out."""

from __future__ import annotations

import math

import numpy as np

from ..layers import BatchNorm
from .explanation import Explanation, constant, function_of, product, source
from .records import Family, LayerTrace, given


def _channel(lt: LayerTrace, c: int) -> np.ndarray:
    """The indices (m, ndim) into A_prev of every value of channel c."""
    shape = lt["A_prev"].shape
    rows = np.indices(shape[:-1]).reshape(len(shape) - 1, -1).T
    return np.column_stack([rows, np.full(len(rows), c)])


def _m(lt: LayerTrace) -> int:
    return lt["A_prev"].size // lt["A_prev"].shape[-1]


def _mu(lt: LayerTrace, index: tuple, step) -> Explanation:
    m = _m(lt)
    return lt.explanation("mu", index, "mu[c] = sum of channel c's m values of A_prev / m",
                          [product(lt.operands("A_prev", _channel(lt, index[0])),
                                   constant("1/m", 1 / m))],
                          [source(BatchNorm.forward_propagate, "mu = x.mean(")], {"m": m})


def _var(lt: LayerTrace, index: tuple, step) -> Explanation:
    m, mu = _m(lt), lt.operand("mu", index)
    x = lt.operands("A_prev", _channel(lt, index[0]))
    values = (x.values - float(mu.values)) ** 2 / m
    return lt.explanation("var", index, "var[c] = sum of (A_prev - mu[c])^2 over channel c's"
                          " m values / m (the biased variance)",
                          [function_of("({0} - {1})^2 / {2}", values, x, mu, constant("m", m))],
                          [source(BatchNorm.forward_propagate, "var = ((x - mu) ** 2)")],
                          {"m": m, "mu": float(mu.values)})


def _std(lt: LayerTrace, index: tuple, step) -> Explanation:
    var, eps = lt.value("var", index), lt.layer.eps
    return lt.explanation("std", index, "std[c] = sqrt(var[c] + eps)",
                          [function_of("sqrt({0} + {1})", math.sqrt(var + eps),
                                       lt.operand("var", index), constant("eps", eps))],
                          [source(BatchNorm.forward_propagate, "self.std = np.sqrt(")])


def _x_hat(lt: LayerTrace, index: tuple, step) -> Explanation:
    c = (index[-1],)
    x, mu, std = (lt.value(name, at) for name, at in (("A_prev", index), ("mu", c), ("std", c)))
    group = function_of("({0} - {1}) / {2}", (x - mu) / std, lt.operand("A_prev", index),
                        lt.operand("mu", c), lt.operand("std", c))
    return lt.explanation("x_hat", index, "x_hat = (A_prev - mu[c]) / std[c]", [group],
                          [source(BatchNorm.forward_propagate, "self.x_hat = (x - mu)")],
                          {"mu": mu, "var": lt.value("var", c), "std": std, "m": _m(lt)})


def _a(lt: LayerTrace, index: tuple, step) -> Explanation:
    c = (index[-1],)
    return lt.explanation("A", index, "A = gamma[c] * x_hat + beta[c]",
                          [product(lt.operand("gamma", c), lt.operand("x_hat", index)),
                           product(lt.operand("beta", c))],
                          [source(BatchNorm.forward_propagate, "A = self.gamma * self.x_hat")])


def _dbeta(lt: LayerTrace, index: tuple, step) -> Explanation:
    return lt.explanation("dbeta", index, "dbeta[c] = sum of dA over channel c's m values",
                          [product(lt.operands("dA", _channel(lt, index[0])))],
                          [source(BatchNorm.backpropagate, "self.dbeta = d.sum(")])


def _dgamma(lt: LayerTrace, index: tuple, step) -> Explanation:
    at = _channel(lt, index[0])
    return lt.explanation("dgamma", index, "dgamma[c] = sum of dA * x_hat over channel c's m "
                          "values", [product(lt.operands("dA", at), lt.operands("x_hat", at))],
                          [source(BatchNorm.backpropagate, "self.dgamma = (d * self.x_hat)")])


def _da_prev(lt: LayerTrace, index: tuple, step) -> Explanation:
    c, m = (index[-1],), _m(lt)
    gamma, std, dA, x_hat, dbeta, dgamma = (
        lt.operand(name, at) for name, at in (("gamma", c), ("std", c), ("dA", index),
                                              ("x_hat", index), ("dbeta", c), ("dgamma", c)))
    scale = float(gamma.values) / float(std.values)
    count = constant("m", m)
    groups = [function_of("{0} / {1} * {2}", scale * float(dA.values), gamma, std, dA),
              function_of("-{0} / {1} * {2} / {3}", -scale * float(dbeta.values) / m,
                          gamma, std, dbeta, count),
              function_of("-{0} / {1} * {2} * {3} / {4}",
                          -scale * float(x_hat.values) * float(dgamma.values) / m,
                          gamma, std, x_hat, dgamma, count)]
    details = {"m": m, "mu": lt.value("mu", c), "var": lt.value("var", c),
               "std": float(std.values), "x_hat": float(x_hat.values),
               "dbeta": float(dbeta.values), "dgamma": float(dgamma.values)}
    return lt.explanation("dA_prev", index, "dA_prev = gamma / std * (dA - dbeta / m - x_hat "
                          "* dgamma / m): mu and var depend on every value of the channel, "
                          "hence the two batch terms", groups,
                          [source(BatchNorm.backpropagate, "dx = self.gamma / self.std *")],
                          details)


def _running(lt: LayerTrace, index: tuple, name: str, stat: str, factor: float,
             marker: str) -> Explanation:
    momentum = lt.layer.momentum
    shown = stat if factor == 1 else f"{stat} * m / (m - 1)"
    unbiased = [constant("m / (m - 1)", factor)] if factor != 1 else []
    groups = [product(constant("1 - momentum", 1 - momentum), lt.operand(name, index)),
              product(constant("momentum", momentum), lt.operand(stat, index), *unbiased)]
    return lt.explanation(f"{name}_after", index, f"{name} after = (1 - momentum) * {name} "
                          f"+ momentum * {shown}", groups,
                          [source(BatchNorm.forward_propagate, marker)],
                          {"momentum": momentum})


def _running_mean_after(lt: LayerTrace, index: tuple, step) -> Explanation:
    return _running(lt, index, "running_mean", "mu", 1.0,
                    "self.running_mean += self.momentum")


def _running_var_after(lt: LayerTrace, index: tuple, step) -> Explanation:
    m = _m(lt)
    return _running(lt, index, "running_var", "var", m / (m - 1),
                    "self.running_var += self.momentum")


def _running_before(name: str):
    def explain(lt: LayerTrace, index: tuple, step) -> Explanation:
        return given(lt, name, index, f"{name} before this step: the previous step's "
                     f"{name}_after, or its start value", [source(BatchNorm.build, name)])
    return explain


def _complete(lt: LayerTrace) -> None:
    arrays = lt.arrays
    x = arrays["A_prev"].reshape(-1, arrays["A_prev"].shape[-1])
    arrays["mu"] = x.mean(axis=0)  # as BatchNorm.forward_propagate computes them
    arrays["var"] = ((x - arrays["mu"]) ** 2).mean(axis=0)
    arrays["x_hat"] = arrays["x_hat"].reshape(arrays["A_prev"].shape)


BATCHNORM = Family(_complete, {
    "mu": _mu, "var": _var, "std": _std, "x_hat": _x_hat, "A": _a, "dbeta": _dbeta,
    "dgamma": _dgamma, "dA_prev": _da_prev, "running_mean": _running_before("running_mean"),
    "running_var": _running_before("running_var"), "running_mean_after": _running_mean_after,
    "running_var_after": _running_var_after})
