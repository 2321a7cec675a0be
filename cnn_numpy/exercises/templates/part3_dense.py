"""Part 3 of 3: the end of the network.  A dense (fully connected) layer forward and
backward, then softmax with the cross-entropy loss, the function a classifier learns
by.  Check your work with

    cnn-numpy check THIS_FOLDER

After the convolutions and pooling, each sample is flattened to one row of k
numbers, and a dense layer with m neurons gives every neuron its own weighted
sum of all k:

    A_prev (n, k)    W (m, k)    b (m,)    ->    Z (n, m)

(cnn-numpy's FCLayer keeps b as the last column of its W; here they are apart.)
Only NumPy is needed, and this file must not import the other two.  The
reference answer is cnn_numpy/layers/dense.py and activations.py; try first.
"""

from __future__ import annotations

import numpy as np


def dense_forward(A_prev: np.ndarray, W: np.ndarray,
                  b: np.ndarray) -> tuple[np.ndarray, object]:
    """Every neuron's weighted sum of its inputs, plus its bias.

    A_prev   (n, k)
    W        (m, k), one row of weights per neuron
    b        (m,)
    returns  (Z, cache): Z (n, m), cache whatever dense_backward needs

        Z[i, j] = sum over t of A_prev[i, t] * W[j, t]   +   b[j]

    Hint: that sum over t, for all i and j at once, is one matrix product; check
    which of W and W.T gives the shapes (n, k) @ (k, m).
    """
    raise NotImplementedError("write dense_forward")


def dense_backward(dZ: np.ndarray,
                   cache: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The gradients of the dense layer, given dZ = dL/dZ.

    dZ       (n, m)
    cache    what your dense_forward returned
    returns  (dA_prev, dW, db) with the shapes of A_prev, W and b

    Z[i, j] used A_prev[i, t] with the weight W[j, t], so

        dW[j, t]       = sum over i of dZ[i, j] * A_prev[i, t]
        db[j]          = sum over i of dZ[i, j]
        dA_prev[i, t]  = sum over j of dZ[i, j] * W[j, t]

    Hint: each line is one matrix product or one sum over the batch axis; let the
    shapes tell you where a .T goes.  Sum over the batch: do not average (the
    1 / n of the mean loss is in dZ already).
    """
    raise NotImplementedError("write dense_backward")


def softmax_cross_entropy(Z: np.ndarray, Y: np.ndarray) -> tuple[float, np.ndarray]:
    """Softmax probabilities, the mean cross-entropy loss, and its gradient.

    Z        (n, m), the scores of the last dense layer
    Y        (n, m), one-hot labels: Y[i, j] = 1 when sample i is of class j
    returns  (loss, dZ)
        loss   a float, the mean over the batch of  -sum over j of Y[i, j] * log A[i, j]
        dZ     (n, m) with the dtype of Z, the gradient of loss:  (A - Y) / n

    with A[i, j] = exp(Z[i, j]) / sum over t of exp(Z[i, t])   (each row sums to 1).

    Hints: exp overflows for scores of a few hundred; softmax does not change when
    the same number is taken from a whole row, so take each row's maximum away
    first (np.max(..., axis=1, keepdims=True)).  For the loss, log A = Z - max -
    log(sum of exp(Z - max)) never takes the log of 0.
    """
    raise NotImplementedError("write softmax_cross_entropy")
