"""The inspector's walk through one traced step: its stages in order (forward layer by
layer, the loss, backward layer by layer, the update of each layer with weights), the
arrays each stage shows with what they are, and the words that introduce each stage."""

from __future__ import annotations

import numpy as np

from ..net import Net
from ..trace import LayerTrace, Trace
from .live import _labels, packed

#: Arrays with one entry per sample of the batch (their first axis): shown one sample at a
#: time.  The per-sample losses are shown whole, as a row over the batch.
BATCH = frozenset({"A_prev", "A", "Z", "dA", "dZ", "dA_prev", "x_hat", "mask", "Y"})
#: Arrays up to this many values (for one sample) are drawn at once; larger ones on a click.
SHOWN_VALUES = 60_000

FORWARD = ("A_prev", "W", "b", "gamma", "beta", "running_mean", "running_var", "mu", "var",
           "std", "x_hat", "mask", "Z", "A", "running_mean_after", "running_var_after")
LOSS = ("A", "Y", "loss", "cce", "dZ")
BACKWARD = ("dA", "dZ", "dW", "db", "dgamma", "dbeta", "dA_prev")
UPDATE = ("", "d", "_grad", "_v_before", "_m_before", "_m", "_v", "_m_hat", "_v_hat", "_step",
          "_after")
#: The array a stage always draws (the others too when small enough).
KEY = {"forward": ("A",), "loss": LOSS, "backward": ("dW", "dA_prev"), "update": ("_step",)}

WHAT = {"A_prev": "the layer's input", "Z": "before the activation", "A": "the layer's output",
        "W": "weights before the step", "b": "biases before the step",
        "gamma": "scale before the step", "beta": "shift before the step",
        "mu": "the batch's mean, per channel", "var": "the batch's variance, per channel",
        "std": "sqrt(var + eps)", "x_hat": "normalised: (A_prev - mu) / std",
        "mask": "which units are kept (scaled by 1 / (1 - rate))",
        "running_mean": "running mean before the step",
        "running_var": "running variance before the step",
        "running_mean_after": "running mean after", "running_var_after": "running variance after",
        "Y": "the label, one-hot", "loss": "each sample's loss: -log p(true class)",
        "cce": "the step's loss: the mean of the samples' losses",
        "dA": "the gradient arriving from above: dL/dA", "dZ": "dL/dZ",
        "dA_prev": "the gradient passed down: dL/dA_prev"}
SUFFIX = {"": "before the step", "d": "its gradient from backpropagation",
          "_grad": "what the optimizer is given: the gradient plus weight_decay times it",
          "_v_before": "before the step", "_m_before": "the first moment before the step",
          "_m": "the first moment: beta1 m + (1 - beta1) grad", "_m_hat": "m / (1 - beta1^t)",
          "_v_hat": "v / (1 - beta2^t)", "_step": "what the optimizer subtracts",
          "_after": "after the step: before minus the step"}

FORWARD_TEXT = {
    "ConvLayer": "Each Z[h, w, f] is the input window under filter f times the filter's "
                 "weights W, summed, plus the bias b[f].",
    "ConvLayer_ReLU": "Each Z[h, w, f] is the input window under filter f times the filter's "
                      "weights W, summed, plus the bias b[f]; then A = max(Z, 0).",
    "PoolLayer_Max": "Each output is the largest value of its window, channel by channel.",
    "PoolLayer_Avg": "Each output is the mean of its window, channel by channel.",
    "FlatLayer": "The maps laid out as one vector: row by row, the channels innermost.",
    "FCLayer": "Z = each input times its weight, summed, plus the bias (W's last column).",
    "FCLayer_ReLU": "Z = each input times its weight, summed, plus the bias (W's last "
                    "column); then A = max(Z, 0).",
    "FCLayer_Sigmoid": "Z = the inputs times the weights plus the bias (W's last column); "
                       "then A = 1 / (1 + exp(-Z)).",
    "FCLayer_Softmax": "Z = the inputs times the weights plus the bias (W's last column); "
                       "then A = softmax(Z) = exp(Z - max) / sum: the class probabilities.",
    "BatchNorm": "Each channel is normalised with the batch's mean mu and variance var: "
                 "x_hat = (A_prev - mu) / std, then A = gamma * x_hat + beta. The running "
                 "statistics (for predictions) move toward the batch's.",
    "Dropout": "Each unit is kept with probability 1 - rate and scaled by 1 / (1 - rate): "
               "A = A_prev * mask. Predictions use every unit.",
    "ReLULayer": "A = max(A_prev, 0).", "LeakyReLULayer": "A = A_prev where positive, "
    "slope * A_prev where not.", "TanhLayer": "A = tanh(A_prev).",
    "SigmoidLayer": "A = 1 / (1 + exp(-A_prev)).",
}
LOSS_TEXT = ("Each sample's loss is -log of the probability the network gave its true class "
             "(Y, one-hot); the step's loss, cce, is their mean. Backpropagation starts from "
             "dZ = (A - Y) / n, the gradient of that mean with respect to Z.")
BACKWARD_TEXT = ("The gradient arriving from above, dA (dZ for a layer without an "
                 "activation), becomes the gradients of this layer's weights, summed over the "
                 "batch, and the gradient it passes down, dA_prev.")
UPDATE_TEXT = {
    "sgd": "SGD: P_step = lr * P_grad, and P_after = P - P_step.",
    "momentum": "Momentum: v = momentum * v_before + P_grad (the velocity), P_step = lr * v, "
                "and P_after = P - P_step.",
    "adam": "Adam: m = beta1 m_before + (1 - beta1) g and v = beta2 v_before + (1 - beta2) g^2 "
            "(g = P_grad), their bias corrections m_hat and v_hat, P_step = lr * m_hat / "
            "(sqrt(v_hat) + eps), and P_after = P - P_step.",
}


def describe(lt: LayerTrace, name: str, optimizer: str) -> str:
    """What one array of the layer is, in words."""
    if (lt.number, name) == (0, "A_prev"):
        return "the batch's images, X"
    if name in WHAT:
        return WHAT[name]
    for param in lt.layer.param_names:
        for suffix, text in SUFFIX.items():
            if name == (f"d{param}" if suffix == "d" else param + suffix):
                if suffix in ("_v", "_v_before"):
                    kind = "the velocity" if optimizer == "momentum" else "the second moment"
                    return kind + (" before the step" if suffix == "_v_before" else "")
                return text
    return ""


def _entry(lt: LayerTrace, name: str, kind: str, optimizer: str) -> dict:
    values = lt.arrays[name]
    batch = name in BATCH and values.ndim >= 1
    shape = list(values.shape[1:] if batch else values.shape)
    key = any(name == k or (k.startswith("_") and name.endswith(k)) for k in KEY[kind])
    return {"layer": lt.number, "name": name, "shape": shape, "batch": batch,
            "label": "X" if (lt.number, name) == (0, "A_prev") else name,
            "what": describe(lt, name, optimizer),
            "shown": key or int(np.prod(shape)) <= SHOWN_VALUES}


def _stage(kind: str, lt: LayerTrace, names, title: str, text: str, optimizer: str) -> dict:
    arrays = [_entry(lt, name, kind, optimizer) for name in names if name in lt.arrays]
    return {"kind": kind, "layer": lt.number, "title": title, "text": text, "arrays": arrays}


def stage_list(trace: Trace) -> list[dict]:
    """The stages of the step, in the order a step computes them."""
    optimizer, last = trace.optimizer, len(trace.layers) - 1
    out = []
    for lt in trace.layers:
        names = [n for n in FORWARD if not (lt.number == last and n in ("Y", "dZ"))]
        out.append(_stage("forward", lt, names, f"Forward, layer {lt.number}: {lt.kind}",
                          FORWARD_TEXT.get(lt.kind, ""), optimizer))
    out.append(_stage("loss", trace.layers[last], LOSS, "The loss", LOSS_TEXT, optimizer))
    for lt in reversed(trace.layers):
        out.append(_stage("backward", lt, BACKWARD, f"Backward, layer {lt.number}: {lt.kind}",
                          BACKWARD_TEXT, optimizer))
    decay = (f" Weight decay {trace.weight_decay:g}: P_grad = dP + {trace.weight_decay:g} "
             "* P for the weights (not biases)." if trace.weight_decay else
             " No weight decay: P_grad is dP.")
    for lt in trace.layers:
        names = [("d" + p if s == "d" else p + s) for p in lt.layer.param_names for s in UPDATE]
        if lt.layer.param_names:
            out.append(_stage("update", lt, names, f"Update, layer {lt.number}: {lt.kind}",
                              UPDATE_TEXT.get(optimizer, "") + decay, optimizer))
    return out


def summary(trace: Trace, net: Net, batch: dict, about: dict) -> dict:
    """The traced step for the page: where its weights come from, the batch (images,
    labels, each sample's prediction and loss), the optimizer's settings, the stages."""
    X, probabilities = trace.X, trace.layers[-1]["A"]
    images = X[..., 0] if X.ndim == 4 and X.shape[-1] == 1 else X
    return {"where": about["where"], "batch": batch["what"], "source": batch["source"],
            "dataset": about["dataset"], "n": len(X),
            "indices": [int(i) for i in batch["indices"]],
            "images": packed(images) if images.ndim == 3 else None,
            "labels": [int(k) for k in _labels(trace.Y)],
            "predictions": [int(k) for k in probabilities.argmax(axis=1)],
            "loss": [float(v) for v in trace.loss], "cce": float(trace.cce),
            "learning_rate": trace.learning_rate, "optimizer": trace.optimizer,
            "optimizer_config": trace.optimizer_config, "steps": trace.steps,
            "weight_decay": trace.weight_decay,
            "class_names": None if net.class_names is None else list(net.class_names),
            "layers": [{"number": lt.number, "kind": lt.kind} for lt in trace.layers],
            "stages": stage_list(trace)}
