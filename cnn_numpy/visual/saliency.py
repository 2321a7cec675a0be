"""The backward pass down to the pixels: what each layer's output and the image itself
would have to change to move one class's score.

Everything here runs the layers' own passes, as Net's plain loop does: forward_propagate
through every layer (inference mode), then the output layer's backpropagate_dZ and every
other layer's backpropagate in reverse.  The only difference from training is that the
gradient reaching the image is kept instead of dropped, and no weight is updated (the
layers' dW are overwritten, so never run this on a net that is in the middle of a step).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ..net import Net

#: FGSM's step sizes tried, in image units (pixels are in [0, 1]).
FGSM_STEPS = np.round(np.arange(1, 101) * 0.005, 3)


def forward(net: Net, X: np.ndarray) -> list[np.ndarray]:
    """X (n, h, w, c) through every layer in inference mode -> [A_1, ..., A_L], each
    (n, ...); the layers keep what their backward pass needs."""
    A, outputs = X, []
    for layer in net.layers:
        layer.training = False
        A = layer.forward_propagate(A)
        outputs.append(A)
    return outputs


def backward(net: Net, dZ: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """After forward(net, X): dZ (n, k), the gradient of some scalar L at the last layer's
    pre-activation Z, back through every layer -> (dA, dX): dA[i] (like A_i) is dL/dA_i,
    the gradient flowing back into layer i's output (for the last layer, dZ itself), and
    dX (like X) is dL/dX, the gradient at the pixels."""
    gradients = [dZ]
    dA = net.layers[-1].backpropagate_dZ(dZ)
    for layer in reversed(net.layers[:-1]):
        gradients.insert(0, dA)
        dA = layer.backpropagate(dA)
    return gradients, dA


def one_hot(labels: np.ndarray, k: int, dtype: npt.DTypeLike) -> np.ndarray:
    Y = np.zeros((len(labels), k), dtype=dtype)
    Y[np.arange(len(labels)), labels] = 1
    return Y


def probe(net: Net, X: np.ndarray, labels: np.ndarray) -> tuple[list, list]:
    """Every layer's output and dL/dA for X (n, h, w, c), with L the output layer's own
    loss against labels (n,): ([A_1, ..., A_L], [dA_1, ..., dZ_L])."""
    outputs = forward(net, X)
    _, dZ = net.layers[-1].loss(one_hot(labels, outputs[-1].shape[1], net.dtype))
    gradients, _ = backward(net, dZ)
    return outputs, gradients


@dataclass
class Saliency:
    """The answer for one image: the class, its probability, d score / d pixel."""

    prediction: int
    probabilities: np.ndarray   # (k,)
    gradient: np.ndarray        # (h, w, c): d Z[prediction] / d X, signed


def saliency(net: Net, image: np.ndarray) -> Saliency:
    """The gradient of the top class's score (the last layer's pre-activation Z[c], as in
    Simonyan et al. 2014) with respect to each pixel of image (h, w, c)."""
    probabilities = forward(net, image[None].astype(net.dtype))[-1][0]
    c = int(probabilities.argmax())
    _, dX = backward(net, one_hot([c], len(probabilities), net.dtype))  # d Z[c] / d Z
    return Saliency(c, probabilities, dX[0])


@dataclass
class Nudge:
    """The smallest FGSM step that changes the prediction (None when no step tried does)."""

    step: float | None
    image: np.ndarray | None        # (h, w, c) the nudged image, clipped to [0, 1]
    prediction: int | None
    probabilities: np.ndarray | None


def fgsm(net: Net, image: np.ndarray) -> Nudge:
    """Fast gradient sign method (Goodfellow et al. 2015), untargeted.

    With c the predicted class and L its cross-entropy, X' = clip(X + eps sign(dL/dX), 0, 1)
    for eps in FGSM_STEPS; the first eps whose X' is classified as another class is the
    answer.  All the candidates go through one batched forward pass.
    """
    X = image[None].astype(net.dtype)
    A = forward(net, X)[-1]
    c = int(A[0].argmax())
    _, dZ = net.layers[-1].loss(one_hot([c], A.shape[1], net.dtype))
    _, dX = backward(net, dZ)
    steps = FGSM_STEPS.astype(net.dtype).reshape(-1, *([1] * image.ndim))
    candidates = np.clip(X + steps * np.sign(dX), 0, 1)
    probabilities = net.predict(candidates)
    changed = np.flatnonzero(probabilities.argmax(axis=1) != c)
    if not len(changed):
        return Nudge(None, None, None, None)
    i = int(changed[0])
    return Nudge(float(FGSM_STEPS[i]), candidates[i], int(probabilities[i].argmax()),
                 probabilities[i])
