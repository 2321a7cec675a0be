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



def window_gradients(dZ2: np.ndarray, W2: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Each window's gradient dZ @ W.T as (fw, fw, n, oh, ow, c): d_windows[a, q] is the
    (n, oh, ow, c) share of window element (a, q), ready to add back at its place.

    dZ2 (M, nf), W2 (K, nf), shape = (n, oh, ow, fw, fw, c).  Computed in the same
    memory order window_matrix would pick, so the adds read long runs.
    """
    n, oh, ow, fw, _, c = shape
    if ow > fw * c:
        return (W2 @ dZ2.T).reshape(fw, fw, c, n, oh, ow).transpose(0, 1, 3, 4, 5, 2)
    return (dZ2 @ W2.T).reshape(shape).transpose(3, 4, 0, 1, 2, 5)


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
