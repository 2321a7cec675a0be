"""What im2col and stride_groups share: copying a set of windows into one matrix for a
matrix product, and handing each window's gradient back to its place (col2im)."""

from __future__ import annotations

import numpy as np


def window_matrix(windows: np.ndarray) -> np.ndarray:
    """A view of windows (n, oh, ow, fw, fw, c) -> a (K + 1, M) matrix, copied.

    Column m is window m flattened (K = fw*fw*c numbers in (a, q, channel)
    order, M = n*oh*ow windows), and a last row of ones, so that [W; b] in a
    product adds the bias for free.  The windows may come in any number of
    leading axes (the columns follow them in row-major order).
    """
    *_, fw, _, c = windows.shape
    rows = windows.reshape(-1, fw * fw * c)  # (M, K): one window per row
    ones = np.ones((len(rows), 1), dtype=windows.dtype)
    return np.concatenate([rows, ones], axis=1).T


def add_window_gradients(dZ2: np.ndarray, W: np.ndarray, elements: list[np.ndarray]) -> None:
    """The col2im step of a convolution's backward pass, in place.

    dZ2 (M, nf) is dZ with one row per window (M = n*oh*ow), W (fw, fw, c, nf).
    elements[k] (n, oh, ow, c) is a view of dx at window element k = (a, q)
    (row-major) of every window: the input each window meets filter element
    W[a, q] at.  It gets its share dZ2 @ W[a, q].T added.
    """
    fw = W.shape[0]
    for k, element in enumerate(elements):
        a, q = divmod(k, fw)
        element += (dZ2 @ W[a, q].T).reshape(element.shape)
