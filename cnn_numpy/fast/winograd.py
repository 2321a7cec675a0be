"""Winograd's convolutions F(2 x 2, 3 x 3), F(4 x 4, 3 x 3) and F(2 x 2, 5 x 5): a 3 x 3
stride-1 convolution with 2.25 and 4 times fewer multiplications than the window
matrix's product, a 5 x 5 one with 2.8 times fewer (Lavin and Gray, 2015).  The fast
path's convolutions (blocks.py) use them for the forward pass, the weight gradient and
the input gradient where they measured faster (blocks.WINOGRAD_CHANNELS).

For r x r filters, each m x m tile of the output comes from the t x t tile of the
(padded) input under it, t = m + r - 1; for one input channel d and filter g,

    Y = A^T [ (G g G^T) * (B^T d B) ] A        (* elementwise, t x t)

and summed over the input channels the elementwise products become t^2 matrix
products, one per element of the tile:

    M[e] = V[e] (tiles, c) @ U[e] (c, nf),   V = B^T d B,  U = G g G^T

that is 16 multiply-adds per 2 x 2 outputs and channel pair for F(2 x 2, 3 x 3), 36
per 4 x 4 for F(4 x 4, 3 x 3) and 36 per 2 x 2 for F(2 x 2, 5 x 5), instead of r^2 per
output.  What Winograd adds is the transforms: each input tile copied (neighbouring
tiles overlap by r - 1 rows and columns: (t / m)^2 times the input, 4 for F(2 x 2,
3 x 3), 2.25 for F(4 x 4, 3 x 3), 9 for F(2 x 2, 5 x 5); the window matrix is r^2
times), B^T d B, and A^T M A.  Here each 2-D transform is one product with a constant
matrix on tiles flattened row by row, (B^T d B).ravel() = kron(B^T, B^T) @ d.ravel():
one call each, where strided additions measured slower in NumPy.  The weight gradient
takes these steps back, from the same transformed tiles V (weight_gradient); the input
gradient is a convolution of its own (blocks.BlockedConv.correlate).

Rounding: the transforms of F(2 x 2, 3 x 3) have entries 0, +-1 and +-1/2, so the error
is that of the direct sum times a small constant: in float32 about the window matrix's
on the zoo's shapes for the output, a few times it for the weight gradient.
F(4 x 4, 3 x 3) interpolates at 0, +-1, +-2 (entries up to 8 in A and 5 in B, 1/24 in
G): its terms are larger than the sums they make, and its float32 error is several
times the window matrix's, a few millionths of the largest value on the zoo's shapes
(benchmarks/winograd.py).  F(2 x 2, 5 x 5) also has six points; at 0, +-1, 1/2 and
-2 (entries up to 5 in B, 2 in A) its error is at the low end of F(4 x 4, 3 x 3)'s,
where the same points as F(4 x 4, 3 x 3) gave a weight gradient two to three times
further from the exact sum.  tests/test_fast.py holds both to 2e-5 of the largest value.
"""

from __future__ import annotations

import math
from functools import cache
from typing import NamedTuple

import numpy as np

from .columns import window_view


def _transforms(B_T: list, G: list, A_T: list) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The 2-D transforms on tiles flattened row by row, rows (i, j), columns (a, b):
    d -> V, g (r x r) -> U, M -> Y."""
    B_T, G, A_T = (np.array(a, dtype=float) for a in (B_T, G, A_T))
    return np.kron(B_T, B_T), np.kron(G, G), np.kron(A_T, A_T)


#: (output tile side m, filter side r) -> (INPUT (t^2, t^2), FILTER (t^2, r^2), OUTPUT (m^2,
#: t^2)), t = m + r - 1 the input tile's side.
TRANSFORMS = {
    (2, 3): _transforms(B_T=[[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]],
                        G=[[1, 0, 0], [1 / 2, 1 / 2, 1 / 2], [1 / 2, -1 / 2, 1 / 2], [0, 0, 1]],
                        A_T=[[1, 1, 1, 0], [0, 1, -1, -1]]),
    (4, 3): _transforms(B_T=[[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
                             [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]],
                        G=[[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
                           [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]],
                        A_T=[[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
                             [0, 1, -1, 8, -8, 1]]),
    # At 0, +-1, 1/2 and -2: 0, +-1 and +-2 (F(4 x 4, 3 x 3)'s points) gave the weight
    # gradient two to three times the rounding error (14 x 14 inputs, 32 to 128 channels).
    (2, 5): _transforms(B_T=[[2, -3, -4, 3, 2, 0], [0, -2, 1, 5, 2, 0], [0, -2, 5, -1, -2, 0],
                             [0, 2, 1, -2, -1, 0], [0, 1, -2, -1, 2, 0], [0, 2, -3, -4, 3, 2]],
                        G=[[1 / 2, 0, 0, 0, 0], [1 / 6, 1 / 6, 1 / 6, 1 / 6, 1 / 6],
                           [1 / 6, -1 / 6, 1 / 6, -1 / 6, 1 / 6],
                           [16 / 15, 8 / 15, 4 / 15, 2 / 15, 1 / 15],
                           [1 / 30, -1 / 15, 2 / 15, -4 / 15, 8 / 15], [0, 0, 0, 0, 1 / 2]],
                        A_T=[[1, 1, 1, 1, 1, 0], [0, 1, -1, 1 / 2, -2, 1]]),
}
#: Filter side r -> the output tile sides m that Winograd's convolution has for it, the
#: preferred first.  (F(4 x 4, 5 x 5) would take 8 points, with larger entries than
#: F(4 x 4, 3 x 3)'s: not tried.)
TILE_SIDES = {3: (4, 2), 5: (2,)}


class Filters(NamedTuple):
    """filters()'s transformed filter bank, with the tile side and filter side it is for."""

    U: np.ndarray  # (t^2, c, nf)
    b: np.ndarray  # (nf,)
    m: int
    r: int


@cache
def _matrices(m: int, r: int, dtype: np.dtype) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """TRANSFORMS[m, r] in dtype, made once (not per block of every pass)."""
    return tuple(a.astype(dtype) for a in TRANSFORMS[m, r])


def tile_side(height: int, width: int, r: int) -> int:
    """The output tile side m for an output of height x width and r x r filters: the
    first of TILE_SIDES[r] that divides both (for 3 x 3, 4 before 2: fewer
    multiplications, a smaller copy of the tiles), else 0 (no Winograd)."""
    for m in TILE_SIDES.get(r, ()):
        if height % m == 0 and width % m == 0:
            return m
    return 0


def filters(Wb: np.ndarray, c: int, m: int, r: int) -> Filters:
    """[W; b] ((r r c + 1), nf), W's rows in (row, column, channel) order as
    W.reshape(-1, nf) of an (r, r, c, nf) filter bank -> U ((m + r - 1)^2, c, nf) and b
    (nf,), for output tiles of side m."""
    nf = Wb.shape[1]
    U = _matrices(m, r, Wb.dtype)[1] @ Wb[:-1].reshape(r * r, c * nf)
    return Filters(U.reshape(-1, c, nf), Wb[-1], m, r)


def transform(xp: np.ndarray, m: int, r: int) -> np.ndarray:
    """V = B^T d B of every t x t tile d (t = m + r - 1) of the padded block xp
    (n, m th + r - 1, m tw + r - 1, c), m apart: (t^2, n th tw, c), by tile element."""
    t = m + r - 1
    tiles = window_view(xp, t, m)  # (n, th, tw, t, t, c)
    n, th, tw, *_, c = tiles.shape
    d = np.empty((t * t, n * th * tw * c), dtype=xp.dtype)
    np.copyto(d.reshape(t, t, n, th, tw, c), tiles.transpose(3, 4, 0, 1, 2, 5))
    return np.dot(_matrices(m, r, xp.dtype)[0], d).reshape(t * t, n * th * tw, c)


def forward(xp: np.ndarray, filtered: Filters, out: np.ndarray, order: int = 1) -> np.ndarray:
    """out = the r x r stride-1 convolution of the padded block xp (n, m th + r - 1,
    m tw + r - 1, c) with filtered = filters([W; b], c, m, r).  out is (n, m th, m tw,
    nf), or with order p (p divides m) the same numbers by p x p pool window element,
    (p, p, n, m th / p, m tw / p, nf) (conv_pool.by_pool_window).  Returns the
    transformed tiles V (transform), which weight_gradient takes."""
    U, b, m, r = filtered
    V = transform(xp, m, r)
    M = np.matmul(V, U)  # (t^2, tiles, nf)
    Y = np.dot(_matrices(m, r, xp.dtype)[2], M.reshape(U.shape[0], -1))
    target = out if out.flags.c_contiguous else np.empty(out.shape, dtype=out.dtype)
    tiled = _tiled(target, order, m)
    np.add(_by_tile(Y, tiled), b, out=tiled)
    if target is not out:  # (a reshaped view of out would have been a copy)
        out[...] = target
    return V


def weight_gradient(V: np.ndarray, dZ: np.ndarray, r: int, *, order: int = 1) -> np.ndarray:
    """[dW; db] ((r r c + 1), nf), dW's rows in W.reshape(-1, nf)'s order, of the r x r
    convolution whose forward pass transformed its tiles into V and whose output's
    gradient is dZ (out's shape in forward): forward's steps taken back,

        dM = A dY A^T,   dU[e] = V[e]^T (c, tiles) @ dM[e] (tiles, nf),   dW = G^T dU G

    (t^2 products whose inner dimension is the tiles, where the window matrix's one
    product has r^2 multiply-adds per output and channel pair), and db the sum of
    dZ."""
    t = math.isqrt(V.shape[0])
    m, c, nf = t - r + 1, V.shape[2], dZ.shape[-1]
    _, FILTER, OUTPUT = _matrices(m, r, dZ.dtype)
    dZ = np.ascontiguousarray(dZ)
    dY = np.empty((m * m, V.shape[1], nf), dtype=dZ.dtype)
    tiled = _tiled(dZ, order, m)
    np.copyto(_by_tile(dY, tiled), tiled)
    dM = np.dot(OUTPUT.T, dY.reshape(m * m, -1)).reshape(t * t, -1, nf)
    dU = np.matmul(V.transpose(0, 2, 1), dM)  # (t^2, c, nf)
    dWb = np.empty((r * r * c + 1, nf), dtype=dZ.dtype)
    np.dot(FILTER.T, dU.reshape(t * t, c * nf), out=dWb[:-1].reshape(r * r, c * nf))
    dWb[-1] = dZ.reshape(-1, nf).sum(axis=0)
    return dWb


def _tiled(Z: np.ndarray, order: int, m: int) -> np.ndarray:
    """A convolution's output (or its gradient) Z, (n, oh, ow, nf) or by p x p pool window
    element (p, p, n, oh/p, ow/p, nf), as the 8-D view (p, p, n, th, m/p, tw, m/p, nf)
    (Z must be C-contiguous)."""
    p, s = order, m // order
    n, h, w, nf = Z.shape[-4:]
    return Z.reshape(p, p, n, h // s, s, w // s, s, nf)


def _by_tile(Y: np.ndarray, tiled: np.ndarray) -> np.ndarray:
    """Y (m^2, n th tw, nf), by element (a, q) of the m x m output tiles, as a view in
    the axis order of `tiled` (_tiled's view): element (a, q) of tile (i, j) is output
    (m i + a, m j + q), element (a % p, q % p) of pool window (m/p i + a // p,
    m/p j + q // p)."""
    p, _, n, th, s, tw, _, nf = tiled.shape
    return Y.reshape(s, p, s, p, n, th, tw, nf).transpose(1, 3, 4, 5, 0, 6, 2, 7)
