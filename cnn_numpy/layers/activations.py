"""Activation functions written so they cannot overflow, with their derivatives."""

from __future__ import annotations

import numpy as np


def relu(Z: np.ndarray) -> np.ndarray:
    """max(Z, 0), elementwise."""
    return np.maximum(Z, 0)


def relu_backward(dA: np.ndarray, Z: np.ndarray) -> np.ndarray:
    """dZ = dA where Z > 0, else 0 (the derivative at 0 is taken as 0, like PyTorch).

    Z may also be the ReLU's output A: A > 0 exactly where Z > 0.
    """
    return dA * (Z > 0)


def sigmoid(Z: np.ndarray) -> np.ndarray:
    """1 / (1 + exp(-Z)), computed from exp(-|Z|) so no exp ever overflows."""
    e = np.exp(-np.abs(Z))
    return np.where(Z >= 0, 1 / (1 + e), e / (1 + e))


def log_sigmoid(Z: np.ndarray) -> np.ndarray:
    """log(sigmoid(Z)) = -log(1 + exp(-Z)), finite for every finite Z."""
    return -np.logaddexp(0, -Z)


def sigmoid_backward(dA: np.ndarray, A: np.ndarray) -> np.ndarray:
    """dZ = dA * A * (1 - A)."""
    return dA * A * (1 - A)


def log_softmax(Z: np.ndarray) -> np.ndarray:
    """log(softmax(Z)) along axis 1: Z - max - log(sum(exp(Z - max)))."""
    shifted = Z - Z.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def softmax(Z: np.ndarray) -> np.ndarray:
    """exp(Z) / sum(exp(Z)) along axis 1, after subtracting each row's max (no overflow)."""
    e = np.exp(Z - Z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def softmax_backward(dA: np.ndarray, A: np.ndarray) -> np.ndarray:
    """dZ = A * (dA - sum(dA * A)): the softmax Jacobian applied to dA, row by row."""
    return A * (dA - (dA * A).sum(axis=1, keepdims=True))
