"""The update: weight decay added to each gradient, then the optimizer's rule with its
state.  For a trained array P (W, b, gamma, beta) of a layer the trace keeps

    P          the weights before the step          dP        the gradient backprop gave
    P_grad     what the optimizer was given: dP + weight_decay * P where decay applies
    P_step     what the optimizer subtracted         P_after   P - P_step
    momentum:  P_v (the velocity after), P_v_before
    Adam:      P_m, P_v (after), P_m_before, P_v_before, P_m_hat, P_v_hat

computed as the optimizers compute them (cnn_numpy/optimizers.py), so P - P_step is
P_after bit for bit.
"""

from __future__ import annotations

import numpy as np

from ..net import Net
from ..optimizers import SGD, Adam, Momentum, Optimizer
from .explanation import Explanation, constant, function_of, product, source
from .records import LayerTrace, StepContext, given

SUFFIXES = ("grad", "step", "after", "v", "v_before", "m", "m_before", "m_hat", "v_hat")


def optimizer_arrays(optimizer: Optimizer, key: str, param: np.ndarray, grad: np.ndarray,
                     before: dict[str, np.ndarray], lr: float) -> dict[str, np.ndarray]:
    """The optimizer's terms for the param under `key` ("0/W") after its step, with grad
    the gradient it was given and `before` its state before the step (by suffix)."""
    state = optimizer.state
    if type(optimizer) is SGD:
        return {"step": lr * grad}
    if type(optimizer) is Momentum:
        v = state[key].copy()
        return {"v_before": before.get(key, np.zeros_like(param)), "v": v, "step": lr * v}
    if type(optimizer) is Adam:
        m, v = state[f"{key}/m"].copy(), state[f"{key}/v"].copy()
        m_hat = m / (1 - optimizer.beta1 ** optimizer.steps)
        v_hat = v / (1 - optimizer.beta2 ** optimizer.steps)
        return {"m_before": before.get(f"{key}/m", np.zeros_like(param)),
                "v_before": before.get(f"{key}/v", np.zeros_like(param)), "m": m, "v": v,
                "m_hat": m_hat, "v_hat": v_hat,
                "step": lr * m_hat / (np.sqrt(v_hat) + optimizer.eps)}
    return {}  # an optimizer of your own: P_grad and P_after only


def parse(lt: LayerTrace, name: str) -> tuple[str, str] | None:
    """(param, suffix) for a name of the update ("W_step" -> ("W", "step"), "W" -> ("W",
    "")), or None."""
    for param in lt.layer.param_names:
        if name == param:
            return param, ""
        if name.startswith(param + "_") and name[len(param) + 1:] in SUFFIXES:
            return param, name[len(param) + 1:]
    return None


def explain_update(lt: LayerTrace, name: str, index: tuple, step: StepContext) -> Explanation:
    """The explanation of one number of the update (a name `parse` accepts)."""
    param, suffix = parse(lt, name)
    kind = step.optimizer_type
    if suffix == "":
        return given(lt, param, index, f"{param} before this step: the previous step's "
                     f"{param}_after, or the initial weights", [_update_line(kind, "param -=")])
    if suffix == "grad":
        return _grad(lt, param, index, step)
    if suffix == "after":
        return lt.explanation(name, index, f"{name} = {param} - {param}_step",
                              [product(lt.operand(param, index)),
                               product(constant("-1", -1.0), lt.operand(f"{param}_step", index))],
                              [_update_line(kind, "param -=")])
    if suffix == "step":
        return _step(lt, param, index, step)
    if kind is Momentum and suffix in ("v", "v_before"):
        return _velocity(lt, param, suffix, index, step)
    return _adam(lt, param, suffix, index, step)


def _update_line(kind: type, *markers: str):
    return source(kind.update, *markers)


def _grad(lt: LayerTrace, param: str, index: tuple, step: StepContext) -> Explanation:
    name, decay = f"{param}_grad", step.weight_decay
    dP = product(lt.operand("d" + param, index))
    mask = lt.decayed.get(param)
    if decay and mask is not None and mask[index]:
        return lt.explanation(name, index, f"{name} = d{param} + weight_decay * {param}: the "
                              f"gradient of the loss + weight_decay / 2 * sum({param}^2)",
                              [dP, product(constant("weight_decay", decay),
                                           lt.operand(param, index))],
                              [source(Net.train, "grad += self.weight_decay * weights")],
                              {"weight_decay": decay})
    why = "no weight decay" if not decay else "weight decay leaves this entry alone"
    return lt.explanation(name, index, f"{name} = d{param} ({why})", [dP],
                          [source(Net.param_triples, "layer.grads()[name]")],
                          {"weight_decay": decay})


def _step(lt: LayerTrace, param: str, index: tuple, step: StepContext) -> Explanation:
    kind, lr, name = step.optimizer_type, constant("lr", step.learning_rate), f"{param}_step"
    if kind is SGD:
        return lt.explanation(name, index, f"{name} = lr * {param}_grad",
                              [product(lr, lt.operand(f"{param}_grad", index))],
                              [_update_line(kind, "param -= lr * grad")])
    if kind is Momentum:
        return lt.explanation(name, index, f"{name} = lr * {param}_v",
                              [product(lr, lt.operand(f"{param}_v", index))],
                              [_update_line(kind, "param -= lr * v")])
    m_hat, v_hat = lt.operand(f"{param}_m_hat", index), lt.operand(f"{param}_v_hat", index)
    eps = step.optimizer_config["eps"]
    value = step.learning_rate * float(m_hat.values) / (np.sqrt(float(v_hat.values)) + eps)
    group = function_of("{0} * {1} / (sqrt({2}) + {3})", value, lr, m_hat, v_hat,
                        constant("eps", eps))
    return lt.explanation(name, index, f"{name} = lr * m_hat / (sqrt(v_hat) + eps)", [group],
                          [_update_line(kind, "param -= lr * m_hat")])


def _velocity(lt: LayerTrace, param: str, suffix: str, index: tuple,
              step: StepContext) -> Explanation:
    name = f"{param}_{suffix}"
    if suffix == "v_before":
        return given(lt, name, index, f"{name}: the velocity the previous step left (0 at "
                     "first)", [_update_line(Momentum, "v += grad")])
    mu = step.optimizer_config["momentum"]
    return lt.explanation(name, index, f"{name} = momentum * {param}_v_before + {param}_grad",
                          [product(constant("momentum", mu), lt.operand(f"{name}_before", index)),
                           product(lt.operand(f"{param}_grad", index))],
                          [_update_line(Momentum, "v *= self.momentum"),
                           _update_line(Momentum, "v += grad")], {"momentum": mu})


def _adam(lt: LayerTrace, param: str, suffix: str, index: tuple, step: StepContext) -> Explanation:
    name, config, t = f"{param}_{suffix}", step.optimizer_config, step.steps
    if suffix.endswith("_before"):
        moment = suffix[0]
        return given(lt, name, index, f"{name}: the moment the previous step left (0 at "
                     "first)", [_update_line(Adam, f"{moment}[...] =")])
    if suffix.endswith("_hat"):
        moment = suffix[0]
        beta = config["beta1" if moment == "m" else "beta2"]
        stored = lt.operand(f"{param}_{moment}", index)
        return lt.explanation(name, index, f"{name} = {param}_{moment} / (1 - beta^t): the "
                              "bias correction", [function_of(
                                  "{0} / (1 - {1}^{2})", float(stored.values) / (1 - beta ** t),
                                  stored, constant("beta", beta), constant("t", t))],
                              [_update_line(Adam, f"{moment}_hat =")], {"t": t, "beta": beta})
    beta = config["beta1" if suffix == "m" else "beta2"]
    g = lt.operand(f"{param}_grad", index)
    new = product(constant("1 - beta", 1 - beta), g, *([g] if suffix == "v" else []))
    square = " ** 2" if suffix == "v" else ""
    return lt.explanation(name, index, f"{name} = beta * {name}_before + (1 - beta) * "
                          f"{param}_grad{square}",
                          [product(constant("beta", beta), lt.operand(f"{name}_before", index)),
                           new], [_update_line(Adam, f"{suffix}[...] =")], {"beta": beta, "t": t})
