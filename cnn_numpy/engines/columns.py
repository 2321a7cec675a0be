"""What im2col and stride_groups share: copying a set of windows into one matrix for a
matrix product, and max pooling as elementwise steps over the window elements."""

from __future__ import annotations

import numpy as np


def window_matrix(windows: np.ndarray, ones_row: bool = True) -> np.ndarray:
    """A view of windows (n, oh, ow, fw, fw, c) -> a (K [+ 1], M) matrix, copied once.

    Column m is window m flattened (K = fw*fw*c numbers in (a, q, channel)
    order, M = n*oh*ow windows); with ones_row a last row of ones is added,
    so that [W; b] in a product adds the bias for free.

    The copy is stored in whichever memory order gives it longer contiguous
    runs: element-major (each row contiguous) when an output row (ow) is
    longer than a window row (fw*c), as with one input channel, else
    window-major.  NumPy's matmul reads either order directly, so only the
    speed differs.
    """
    n, oh, ow, fw, _, c = windows.shape
    k, m = fw * fw * c, n * oh * ow
    rows = k + 1 if ones_row else k
    if ow > fw * c:
        cols = np.empty((rows, m), dtype=windows.dtype)
        cols[:k].reshape(fw, fw, c, n, oh, ow)[...] = windows.transpose(3, 4, 5, 0, 1, 2)
    else:
        cols = np.empty((m, rows), dtype=windows.dtype).T
        cols[:k].T.reshape(windows.shape)[...] = windows
    if ones_row:
        cols[k] = 1
    return cols



def add_window_gradients(dZ2: np.ndarray, W: np.ndarray, elements: list[np.ndarray]) -> None:
    """The col2im step of a convolution's backward pass, in place.

    dZ2 (M, nf) is dZ with one row per window (M = n*oh*ow), W (fw, fw, c, nf).
    elements[k] (n, oh, ow, c) is a view of dx at window element k = (a, q)
    (row-major) of every window; it gets its share dZ2 @ W[a, q].T added.
    One product per element gives a contiguous (M, c) array that adds in
    long runs: one product for all elements at once would be fw*fw times
    larger and its pieces scattered, and the adds ran slower than the products.
    """
    fw = W.shape[0]
    for k, element in enumerate(elements):
        a, q = divmod(k, fw)
        element += (dZ2 @ W[a, q].T).reshape(element.shape)


def first_max(elements: list[np.ndarray], top: np.ndarray, index: np.ndarray) -> None:
    """Max pooling over window elements, in place.

    elements[k] (n, oh, ow, c) holds window element k (row-major) of every
    window; top must hold elements[0] and index zeros.  Afterwards top is
    each window's maximum and index the k of its FIRST maximum (PyTorch's
    rule): the index moves only on a strictly larger value.  (Index updates
    are arithmetic on small ints: masked assignment is much slower.)
    """
    for k, element in enumerate(elements[1:], start=1):
        larger = element > top
        np.maximum(top, element, out=top)
        index -= index * larger  # 0 where replaced ...
        index += larger * index.dtype.type(k)  # ... then k there


def route_to_max(dout: np.ndarray, index: np.ndarray, elements: list[np.ndarray],
                 write: bool) -> None:
    """Max pooling's backward pass over window elements: elements[k] (views of dx)
    gets dout where index == k, else 0; written if write, else added (when windows
    overlap, an input element collects from several)."""
    for k, element in enumerate(elements):
        if write:
            np.multiply(dout, index == k, out=element)
        else:
            element += dout * (index == k)
