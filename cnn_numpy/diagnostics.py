"""Diagnostics a learner (or the page) computes on a net: how each layer behaves, how big
a step is, what a few images are taken for, how long the naive engine would take.

    layer_statistics(net, X)     per layer: mean and spread of its output, dead ReLU units
    gradient_norms(net)          per layer: |dW| of the last backward pass
    update_ratios(net, before)   per layer: |W after - W before| / |W after| of a step
    top_classes(net, X, k=3)     each image's k most probable classes
    most_probable(p, k=3)        the same from probabilities already computed
    confusion_matrix(t, p, k)    counts[t][p]: images of true class t predicted as p
    worst_mistakes(P, t, true, predicted)   those images, the most confident first
    first_filters(net)           the first conv layer's W and dW, input channel 0
    naive_seconds_per_image(net, image_shape)   one training step on the naive engine

Each runs the layers' own passes (visual.saliency for the maps and gradients of one
image); none changes a weight.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterable

import numpy as np

from .layers import ConvLayer, ConvLayer_ReLU, FCLayer_ReLU, ReLULayer
from .net import Net
from .visual import saliency


def _is_relu(layer) -> bool:
    return isinstance(layer, (ConvLayer_ReLU, FCLayer_ReLU, ReLULayer))


def layer_statistics(net: Net, X: np.ndarray) -> list[dict]:
    """For X (n, h, w, c) in inference mode, per layer: "mean" and "std" of its output
    A, and for a ReLU output "dead", the share of units that are 0 for every image
    (None for other layers)."""
    outputs = saliency.forward(net, X)
    return [{"mean": float(A.mean()), "std": float(A.std()),
             "dead": float((A.reshape(len(A), -1) <= 0).all(axis=0).mean())
             if _is_relu(layer) else None}
            for layer, A in zip(net.layers, outputs, strict=True)]


def norm(arrays: Iterable[np.ndarray]) -> float:
    """The Euclidean norm of several arrays taken together."""
    return float(math.sqrt(sum(float(np.vdot(a, a)) for a in arrays)))


def gradient_norms(net: Net) -> list[float | None]:
    """Per layer, the norm of the gradients of its weights from the last backward pass
    (None for a layer without weights)."""
    return [norm(layer.grads().values()) if layer.params() else None for layer in net.layers]


def trained_weights(net: Net) -> list[np.ndarray]:
    """A copy of every layer's weights, in order (the `before` of update_ratios)."""
    return [W.copy() for layer in net.layers for W in layer.params().values()]


def update_ratios(net: Net, before: list[np.ndarray]) -> list[float | None]:
    """Per layer, |W after - W before| / |W after| over its weights, with `before` from
    trained_weights (None: no weights, or all zero).  CS231n's rule of thumb: about
    1e-3 is healthy; far above, the learning rate is too high, far below, too low."""
    ratios, k = [], 0
    for layer in net.layers:
        weights = list(layer.params().values())
        if not weights:
            ratios.append(None)
            continue
        old = before[k : k + len(weights)]
        k += len(weights)
        size = norm(weights)
        ratios.append(norm([w - o for w, o in zip(weights, old, strict=True)]) / size
                      if size else None)
    return ratios


def top_classes(net: Net, X: np.ndarray, k: int = 3) -> list[list[tuple[int, float]]]:
    """Each image's k most probable classes, most probable first: [(class, p), ...]."""
    return [most_probable(p, k) for p in net.predict(X)]


def most_probable(probabilities: np.ndarray, k: int = 3) -> list[tuple[int, float]]:
    """One image's k most probable classes (probabilities (classes,)), most probable
    first: [(class, p), ...]."""
    return [(int(c), float(probabilities[c])) for c in np.argsort(-probabilities)[:k]]


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, k: int) -> np.ndarray:
    """counts (k, k), int64: counts[t, p] images of true class t (labels (n,)) predicted
    as p (predicted (n,))."""
    counts = np.zeros((k, k), np.int64)
    np.add.at(counts, (labels, predicted), 1)
    return counts


def worst_mistakes(probabilities: np.ndarray, labels: np.ndarray, true: int,
                   predicted: int) -> np.ndarray:
    """The indices of the images of true class `true` predicted as `predicted`
    (probabilities (n, classes), labels (n,)), highest loss -log p[true] first: the most
    confident mistakes (ties in index order)."""
    where = np.flatnonzero((labels == true) & (probabilities.argmax(axis=1) == predicted))
    loss = -np.log(np.maximum(probabilities[where, true], 1e-30))
    return where[np.argsort(-loss, kind="stable")]


def first_filters(net: Net) -> dict | None:
    """The first conv layer's index, its W and its last dW (or None), each for input
    channel 0: (fw, fw, n_filters).  None for a net without a convolution."""
    for i, layer in enumerate(net.layers):
        if isinstance(layer, ConvLayer):
            dW = getattr(layer, "dW", None)
            return {"layer": i, "W": layer.W[:, :, 0, :],
                    "dW": None if dW is None else dW[:, :, 0, :]}
    return None


def naive_seconds_per_image(net: Net, image_shape: tuple[int, ...]) -> float:
    """How long one training step takes per image on a copy of `net` with every layer on
    the naive engine (two images, timed after a step that builds the weights)."""
    probe = copy.deepcopy(net)
    probe.engine = "naive"
    X = np.random.default_rng(0).random((2, *image_shape), dtype=np.float32)
    y = np.array([0, 1])
    probe.train(X, y, 0.0)  # builds the weights
    start = time.perf_counter()
    probe.train(X, y, 0.0)
    return (time.perf_counter() - start) / 2
