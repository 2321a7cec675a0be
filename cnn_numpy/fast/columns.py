"""The engines' window arithmetic (cnn_numpy/engines/columns.py and the pooling steps of
im2col.py and stride_groups.py), written for speed and for the same bits on any number
of threads.  The fast path's im2col.py, stride_groups.py and conv_pool.py use it; each
function computes what the reference computes:

    window_matrix    the reference's window matrix, stored in the memory order that
                     gives the copy long contiguous runs
    window_matrix_by_channel  the same, element-major, from an input stored channel
                     by channel
    weight_gradient  [dW; db] = cols @ dZ, a thin one summed over fixed chunks of
                     windows (the same bits on any thread count), others with np.dot
                     (which lets go of Python's lock)
    windows_product  cols.T @ W, a thin one over chunks of windows
    by_element_product  dZ @ W[e] for each window element e, over chunks of rows
    window_max       each window's maximum, written into a given array
    first_max_index  np.argmax's first maximum, by arithmetic on small integers
    route_to_max     max pooling's backward pass, written instead of added where the
                     windows do not overlap
"""

from __future__ import annotations

import math

import numpy as np

from ..engines.geometry import output_size
from ..engines.im2col import window_view as reference_window_view

#: weight_gradient sums a [dW; db] of at most THIN numbers over chunks of CHUNK windows
#: at a time, fewer where the product of a chunk would exceed ONE_THREAD multiply-adds:
#: OpenBLAS runs such a product on one thread, so the bits do not depend on its thread
#: count.  On the zoo's shapes this was also faster than one long product, up to about
#: THIN numbers (docs/performance.md).
THIN, CHUNK, ONE_THREAD = 4096, 512, 2**18
#: windows_product multiplies the window matrix of a product of THIN_WEIGHTS weights or
#: fewer WINDOWS windows at a time; by_element_product takes dZ ROWS rows at a time.  The
#: zoo's products of 4,096 to 8,192 weights ran faster in chunks of 128 windows than in
#: one product, where chunks of 256 did not, and the thinner ones as fast in either
#: (docs/performance.md).
WINDOWS, THIN_WEIGHTS = 128, 2**13
ROWS = 256


def window_matrix(windows: np.ndarray) -> np.ndarray:
    """A view of windows (..., fw, fw, c) -> the (K + 1, M) matrix of
    engines.columns.window_matrix (its last row ones), copied once.

    The copy is stored in whichever memory order gives it longer contiguous
    runs: element-major (each row contiguous) when an output row (the last
    position axis) is longer than a window row (fw*c), as with one input
    channel, else window-major.  NumPy's matmul reads either order directly,
    so only the speed differs.
    """
    *positions, fw, _, c = windows.shape
    k, m = fw * fw * c, math.prod(positions)
    if element_major(positions[-1], fw, c):
        cols = np.empty((k + 1, m), dtype=windows.dtype)
        lead = len(positions)
        np.copyto(cols[:k].reshape(fw, fw, c, *positions),
                  windows.transpose(lead, lead + 1, lead + 2, *range(lead)))
    else:
        cols = np.empty((m, k + 1), dtype=windows.dtype).T
        np.copyto(cols[:k].T.reshape(windows.shape), windows)
    cols[k] = 1
    return cols


def window_matrix_by_channel(xc: np.ndarray, fw: int, stride: int) -> np.ndarray:
    """window_matrix's element-major (K + 1, M) matrix of the windows of an input stored
    channel by channel, xc (c, n, ih, iw) (the padded block, transposed).

    Row (a, q, k) of the matrix is xc[k, :, a::stride, q::stride], cut to the
    output's size: its runs along an output row are read from a row of one
    channel, contiguous at stride 1, instead of one number in every c of a
    pixel-major input."""
    xc = np.ascontiguousarray(xc)
    c, n, ih, iw = xc.shape
    oh, ow = output_size(ih, fw, stride), output_size(iw, fw, stride)
    sc, sn, sh, sw = xc.strides
    k = fw * fw * c
    view = np.ndarray((fw, fw, c, n, oh, ow), xc.dtype, buffer=xc,
                      strides=(sh, sw, sc, sn, sh * stride, sw * stride))
    cols = np.empty((k + 1, n * oh * ow), dtype=xc.dtype)
    np.copyto(cols[:k].reshape(fw, fw, c, n, oh, ow), view)
    cols[k] = 1
    return cols


def element_major(row: int, fw: int, c: int) -> bool:
    """Whether window_matrix stores windows whose last position axis has `row` positions,
    of fw x fw x c numbers, element-major: when that row is longer than a window row."""
    return row > fw * c


def window_view(x: np.ndarray, fw: int, stride: int) -> np.ndarray:
    """engines.im2col.window_view: a read-only view of every window of x (n, ih, iw, c),
    (n, oh, ow, fw, fw, c).

    Built by np.ndarray on x's memory when x is C-contiguous: as_strided, which
    the reference uses, spends several times as long in Python, and a block of
    images creates several views while the other threads wait for Python's
    lock."""
    if not x.flags.c_contiguous or x.size == 0:
        return reference_window_view(x, fw, stride)
    n, ih, iw, c = x.shape
    sn, sh, sw, sc = x.strides
    oh, ow = output_size(ih, fw, stride), output_size(iw, fw, stride)
    view = np.ndarray((n, oh, ow, fw, fw, c), x.dtype, buffer=x,
                      strides=(sn, sh * stride, sw * stride, sh, sw, sc))
    view.flags.writeable = False
    return view


def weight_gradient(cols: np.ndarray, dZ2: np.ndarray) -> np.ndarray:
    """[dW; db] = cols (K + 1, M) @ dZ2 (M, nf), the convolution's weight gradient.

    np.dot, not `@`: matmul keeps Python's lock for this long product, so two
    threads ran it slower than one.  A thin one (few weights) is summed over
    fixed chunks of windows, in order (chunked_product): OpenBLAS may split
    its long sums between threads one way or another, so the bits would
    depend on the thread count; a chunk is small enough for one thread.  (The
    chunks were faster too: one long product with so few outputs ran far
    below BLAS's speed.)
    With cols stored window by window (cols.T contiguous), the product is
    taken as dZ2.T @ cols.T, transposed: OpenBLAS ran that form faster on the
    windows of several images.
    """
    numbers = cols.shape[0] * dZ2.shape[1]
    if numbers <= THIN:
        return chunked_product(cols, dZ2, min(CHUNK, ONE_THREAD // numbers))
    if cols.T.flags.c_contiguous:
        return np.ascontiguousarray(np.dot(dZ2.T, cols.T).T)
    return np.dot(cols, dZ2)


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


def windows_product(cols: np.ndarray, weights: np.ndarray, out: np.ndarray) -> None:
    """out (M, n) = cols.T @ weights, for a (K, M) window matrix (either memory order) and
    (K, n) weights; out C-contiguous, or the transpose of a C-contiguous (n, M) array (a
    product stored channel by channel).

    A thin product (THIN_WEIGHTS weights or fewer) runs as one stacked product over
    chunks of WINDOWS windows: one long product with so few columns ran far below
    BLAS's speed (docs/performance.md).  Each output number is the same dot
    product either way, over the K numbers of its window, and its bits do not depend
    on BLAS's thread count, but for one output column over windows of 2,048 numbers
    or more (a plain product's did from 256): no pass runs BLAS on several threads
    with samples that large (threads.large_sample).
    """
    (k, m), n = cols.shape, weights.shape[1]
    whole = m // WINDOWS * WINDOWS
    by_window = out.flags.c_contiguous
    if weights.size > THIN_WEIGHTS or not whole or not (by_window or out.T.flags.c_contiguous):
        np.matmul(cols.T, weights, out=out)
        return
    chunks = cols[:, :whole].reshape(k, -1, WINDOWS)
    if by_window:
        np.matmul(chunks.transpose(1, 2, 0), weights,
                  out=out[:whole].reshape(-1, WINDOWS, n))
    else:
        np.matmul(np.ascontiguousarray(weights.T), chunks.transpose(1, 0, 2),
                  out=out.T[:, :whole].reshape(n, -1, WINDOWS).transpose(1, 0, 2))
    if whole < m:
        np.matmul(cols[:, whole:].T, weights, out=out[whole:])


def by_element_product(dZ2: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """dZ2 (M, n) @ weights[e] (n, c) for each window element e -> (E, M, c), ROWS rows
    of dZ2 at a time: one stacked product of E long ones ran slower, thin or wide, on
    the zoo's shapes (docs/performance.md)."""
    (m, n), (e, _, c) = dZ2.shape, weights.shape
    whole = m // ROWS * ROWS
    out = np.empty((e, m, c), dtype=np.result_type(dZ2, weights))
    np.matmul(dZ2[:whole].reshape(-1, ROWS, n), weights[:, None],
              out=out[:, :whole].reshape(e, -1, ROWS, c))
    if whole < m:
        np.matmul(dZ2[whole:], weights, out=out[:, whole:])
    return out


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
    element, on small integers (a masked assignment per element, or np.argmax
    over a stacked copy, is much slower).
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
    gets dout where index == k, else 0; written if write (no input element is in
    two windows; dx elements in none must be zeroed by the caller), else added (when
    windows overlap, an input element collects from several)."""
    for k, element in enumerate(elements):
        if write:
            np.multiply(dout, index == k, out=element)
        else:
            element += dout * (index == k)
