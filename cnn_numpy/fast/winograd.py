"""Winograd's F(2 x 2, 3 x 3): a 3 x 3 stride-1 convolution with 2.25 times fewer
multiplications than the window matrix's product (Lavin and Gray, 2015).  The fast
path's convolutions (blocks.py) use it for the forward pass and the input gradient
where it measured faster (blocks.WINOGRAD_CHANNELS).

Each 2 x 2 tile of the output comes from the 4 x 4 tile of the (padded) input
under it; for one input channel d and filter g,

    Y = A^T [ (G g G^T) * (B^T d B) ] A        (* elementwise, 4 x 4)

and summed over the input channels the elementwise products become 16 matrix
products, one per element of the 4 x 4 tile:

    M[e] = V[e] (tiles, c) @ U[e] (c, nf),   V = B^T d B,  U = G g G^T

16 multiply-adds per 2 x 2 outputs and channel pair instead of 4 x 9 = 36.
What it adds is the transforms: each input tile copied (the tiles overlap by
two rows and columns: four times the input), B^T d B, and A^T M A.  Here each
2-D transform is one product with a constant matrix on tiles flattened row by
row, (B^T d B).ravel() = kron(B^T, B^T) @ d.ravel(): one call each, where
eight strided additions measured slower in NumPy.

Rounding: the transforms' entries are 0, +-1 and +-1/2, so they add a few
roundings to each number; the transformed terms are at most 4 (input), 2.25
(filter) and 9 (output) times the size of what went in, so the error is
that of the direct sum times a small constant.  Measured in float32 on the
zoo's shapes: below 1e-6 of the largest output (benchmarks/winograd.py);
tests/test_fast.py compares it with the reference.
"""

from __future__ import annotations

import numpy as np

from .columns import window_view
from .conv_pool import by_pool_window

B_T = np.array([[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]], dtype=float)
G = np.array([[1, 0, 0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0, 0, 1]])
A_T = np.array([[1, 1, 1, 0], [0, 1, -1, -1]], dtype=float)
#: The 2-D transforms on tiles flattened row by row: rows (i, j), columns (a, b).
INPUT = np.kron(B_T, B_T)  # (16, 16): d (4 x 4) -> V
FILTER = np.kron(G, G)  # (16, 9): g (3 x 3) -> U
OUTPUT = np.kron(A_T, A_T)  # (4, 16): M -> Y (2 x 2)


def filters(Wb: np.ndarray, c: int) -> tuple[np.ndarray, np.ndarray]:
    """[W; b] ((9 c + 1), nf), W's rows in (row, column, channel) order as
    W.reshape(-1, nf) of a (3, 3, c, nf) filter bank -> (U (16, c, nf), b (nf,))."""
    nf = Wb.shape[1]
    U = FILTER.astype(Wb.dtype) @ Wb[:-1].reshape(9, c * nf)
    return U.reshape(16, c, nf), Wb[-1]


def forward(xp: np.ndarray, filtered: tuple[np.ndarray, np.ndarray], out: np.ndarray,
            order: int = 1) -> None:
    """out = the 3 x 3 stride-1 convolution of the padded block xp (n, 2 th + 2,
    2 tw + 2, c) with filtered = filters([W; b], c).  out is (n, 2 th, 2 tw, nf), or with
    order 2 the same numbers by 2 x 2 pool window element, (2, 2, n, th, tw, nf):
    the order in which the tiles come out."""
    if not out.flags.c_contiguous:  # (a reshaped view of it would be a copy)
        whole = np.empty(out.shape, dtype=out.dtype)
        forward(xp, filtered, whole, order)
        out[...] = whole
        return
    U, b = filtered
    tiles = window_view(xp, 4, 2)  # (n, th, tw, 4, 4, c): the 4 x 4 tiles, 2 apart
    n, th, tw, *_, c = tiles.shape
    d = np.empty((16, n * th * tw * c), dtype=xp.dtype)
    np.copyto(d.reshape(4, 4, n, th, tw, c), tiles.transpose(3, 4, 0, 1, 2, 5))
    V = np.dot(INPUT.astype(xp.dtype), d).reshape(16, n * th * tw, c)
    M = np.matmul(V, U)  # (16, tiles, nf)
    Y = np.dot(OUTPUT.astype(xp.dtype), M.reshape(16, -1)).reshape(2, 2, n, th, tw, -1)
    # Element (a, q) of tile (i, j) is output (2 i + a, 2 j + q): a 2 x 2 pool's order.
    np.add(Y, b, out=out if order == 2 else by_pool_window(out, 2))
