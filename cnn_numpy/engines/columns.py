"""What im2col and stride_groups share: copying a set of windows into one matrix for a
matrix product, and max pooling as elementwise steps over the window elements."""

from __future__ import annotations

import math

import numpy as np


def window_matrix(windows: np.ndarray, ones_row: bool = True) -> np.ndarray:
    """A view of windows (n, oh, ow, fw, fw, c) -> a (K [+ 1], M) matrix, copied once.

    Column m is window m flattened (K = fw*fw*c numbers in (a, q, channel)
    order, M = n*oh*ow windows); with ones_row a last row of ones is added,
    so that [W; b] in a product adds the bias for free.  The windows may
    come in any number of leading axes, e.g. (p, p, n, oh/p, ow/p, fw, fw, c)
    from the fast path's pool-window order: the columns follow them in row-major order.

    The copy is stored in whichever memory order gives it longer contiguous
    runs: element-major (each row contiguous) when an output row (ow) is
    longer than a window row (fw*c), as with one input channel, else
    window-major.  NumPy's matmul reads either order directly, so only the
    speed differs.
    """
    *positions, fw, _, c = windows.shape
    k, m = fw * fw * c, math.prod(positions)
    rows = k + 1 if ones_row else k
    if positions[-1] > fw * c:
        cols = np.empty((rows, m), dtype=windows.dtype)
        lead = len(positions)
        cols[:k].reshape(fw, fw, c, *positions)[...] = windows.transpose(
            lead, lead + 1, lead + 2, *range(lead))
    else:
        cols = np.empty((m, rows), dtype=windows.dtype).T
        cols[:k].T.reshape(windows.shape)[...] = windows
    if ones_row:
        cols[k] = 1
    return cols


def chunked_product(a: np.ndarray, b: np.ndarray, chunk: int) -> np.ndarray:
    """a (r, M) @ b (M, k) summed over chunks of `chunk` columns of a, in order:

        sum over s = 0, chunk, 2 chunk, ... of  a[:, s:s+chunk] @ b[s:s+chunk]

    The whole chunks go in one stacked product (a view of a as (M/chunk, r,
    chunk)): one call instead of one per chunk, which matters when threads
    take turns with Python's lock.  The rest, if any, is added last.
    """
    r, m = a.shape
    whole = m // chunk * chunk
    stacked = a[:, :whole].reshape(r, -1, chunk).transpose(1, 0, 2)
    total = np.matmul(stacked, b[:whole].reshape(-1, chunk, b.shape[1])).sum(axis=0)
    if whole < m:
        total += np.dot(a[:, whole:], b[whole:])
    return total


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


def window_max(elements: list[np.ndarray], out: np.ndarray | None = None) -> np.ndarray:
    """Max pooling as elementwise steps: elements[k] (n, oh, ow, c) holds window element k
    of every window -> each window's maximum (n, oh, ow, c), written to `out` if given."""
    if len(elements) == 1:  # a 1x1 window
        if out is None:
            return elements[0].copy()
        out[...] = elements[0]
        return out
    top = np.maximum(elements[0], elements[1], out=out)
    for element in elements[2:]:
        np.maximum(top, element, out=top)
    return top


def index_dtype(count: int) -> type:
    """The integer type that holds a window element's index k < count: uint8 when it can."""
    return np.uint8 if count <= 256 else np.intp


def first_max_index(elements: list[np.ndarray], top: np.ndarray,
                    out: np.ndarray | None = None) -> np.ndarray:
    """The index k of each window's FIRST maximum (row-major, PyTorch's rule for ties),
    given top = window_max(elements): (n, oh, ow, c), small integers, written to `out`
    if given.

    k = min{k : elements[k] == top}.  With ne_k = 1 where elements[k] != top,
    else 0, that is  ne_0 (1 + ne_1 (1 + ... ne_{K-2} (1 + 0)))  for K
    elements (if no earlier element is the maximum, the last one is).
    Computed from the inside out: one comparison and two in-place steps per
    element, on small integers (a masked assignment per element is much slower).
    """
    index = np.empty(top.shape, dtype=index_dtype(len(elements))) if out is None else out
    index[...] = 0
    different = np.empty(top.shape, dtype=np.uint8)
    for element in reversed(elements[:-1]):
        index += 1
        np.not_equal(element, top, out=different.view(np.bool_))
        index *= different
    return index


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
