"""A convolution, the activation after it and the pool after that, block by block: one
operation for any im2col ConvLayer or ConvLayer_ReLU, with or without an activation
layer (ReLU, leaky ReLU, tanh, sigmoid) and a pooling layer (max or average, any
window and stride) after it.

Each block of images (blocks.py) goes through the whole chain while it is in
cache: the padding and window copy, the product, the activation and the pool;
the convolution's output Z of the batch is never stored.  Backward, each block's
pooled gradient is spread back over its Z, through the activation, and into the
weight and input gradients in the same way.  The blocks run on the thread pool
(on a shard, one after the other); the weight gradient is their sum in block order,
so the bits do not depend on the thread count.

A pool whose windows leave the convolution's last rows or columns out (a 3 x 3
pool on 26 x 26 reads 24 x 24) never reads those outputs, so the chain computes
only the outputs it reads, from the part of its input they need (_under_pool);
the rest of the input gets a zero gradient, as in the reference.

Before a max pool the activation runs after the pool, on the pooled numbers
(p*p times fewer): every activation here is non-decreasing, so the maximum
of the activations is the activation of the maximum, and a window's gradient
reaches the same element either way (where two activations tie but their
inputs do not, the activation's slope there is 0: the ReLU below 0, tanh and
the sigmoid where they have rounded to +-1, 0 or 1).
"""

from __future__ import annotations

import numpy as np

from ..engines.geometry import output_size
from ..engines.im2col import offset_views
from ..layers import (
    BatchNorm,
    ConvLayer,
    ConvLayer_ReLU,
    Layer,
    LeakyReLULayer,
    PoolLayer_Avg,
    PoolLayer_Max,
    ReLULayer,
    SigmoidLayer,
    TanhLayer,
)
from ..layers.activations import sigmoid
from . import threads
from .blocks import BlockedConv
from .columns import first_max_index, index_dtype, route_to_max, window_max
from .ops import Op, engine_of, relu, runs_fast

#: In prediction, a convolution whose window matrix is stored element-major (few input
#: channels) with this many filters or fewer, and a pool after it, computes its output
#: channel by channel, (nf, M) = [W; b].T @ cols, and pools it so; only the pooled
#: output is copied back to (n, h, w, nf).  The product's output then has rows of M
#: numbers instead of nf, and the pool reads long runs instead of a pixel's few channels.
BY_CHANNEL = 16
#: A pool whose windows tile the convolution's output and hold more than this many
#: elements (a global pool) runs in whole-array steps rather than one elementwise step
#: per window element (a 32 x 32 window took 1,024 calls): an average pool sums along
#: each window's rows and then along its columns and spreads its gradient back in one
#: broadcast; a max pool, whose output comes by window element, takes the maximum and
#: its index along that axis and routes its gradient in one comparison.  With 2 x 2 and
#: 3 x 3 windows the steps per element were faster, with 4 x 4 the same
#: (docs/performance.md).
MANY = 16
#: Activation layers a chain takes over, by the name it gives them.
ACTIVATIONS = {ReLULayer: "relu", LeakyReLULayer: "leaky_relu", TanhLayer: "tanh",
               SigmoidLayer: "sigmoid"}


def chain_at(layers: list[Layer], i: int, training: bool) -> ConvChain | None:
    """The chain that starts at layers[i], if one does: an im2col convolution, then in
    prediction a BatchNorm (a per-channel scale and shift there), then an activation
    layer (both after a plain ConvLayer only), then a pooling layer on a fast engine.  None for
    anything else; the Net's last layer is never taken (the loss reads it)."""
    conv = layers[i]
    if type(conv) not in (ConvLayer, ConvLayer_ReLU) or engine_of(conv) != "im2col" \
            or i == len(layers) - 1:
        return None
    j, activation, norm = i + 1, None, None
    if not training and type(conv) is ConvLayer and j < len(layers) - 1 \
            and type(layers[j]) is BatchNorm:
        norm, j = layers[j], j + 1
    if type(conv) is ConvLayer and j < len(layers) - 1 and type(layers[j]) in ACTIVATIONS:
        activation, j = layers[j], j + 1
    pool = None
    if j < len(layers) - 1 and type(layers[j]) in (PoolLayer_Max, PoolLayer_Avg) \
            and runs_fast(layers[j]):
        pool = layers[j]
    return ConvChain(conv, activation, pool, norm)


class ConvChain(Op):
    """conv [+ activation] [+ pool] on blocks of images (see the module docstring)."""

    def __init__(self, conv: Layer, activation: Layer | None, pool: Layer | None,
                 norm: Layer | None = None):
        super().__init__(*(layer for layer in (conv, norm, activation, pool)
                           if layer is not None))
        self.conv, self.pool, self.norm = conv, pool, norm
        self.activation = "relu" if type(conv) is ConvLayer_ReLU else \
            ACTIVATIONS.get(type(activation))
        self.alpha = getattr(activation, "alpha", None)
        self.max_pool = type(pool) is PoolLayer_Max
        self.name = "+".join(["conv", *(["batch_norm"] if norm else []),
                              *([self.activation] if self.activation else []),
                              *(["max_pool" if self.max_pool else "avg_pool"] if pool else [])])

    def forward(self, A: np.ndarray, training: bool) -> np.ndarray:
        conv, pool = self.conv, self.pool
        self.x_shape, self.training = A.shape, training
        A, pads = _under_pool(A, conv.pads(A.shape[1], A.shape[2]), conv, pool)
        self.x = A
        where = {"on_shard": self.on_shard, "training": training,
                 "share": not self.on_shard and threads.blas_on_one_thread()}
        g = BlockedConv(A.shape, conv.W, conv.stride, pads, **where)
        self.fw, self.s = (pool.filter_width, pool.stride) if pool else (1, 1)
        # Max-pool windows that tile Z: the convolution writes Z by window element
        # (conv_pool.py), which the pool reads in contiguous pieces.  (Measured: an average
        # pool gained less from it than the window copy lost.)
        self.tiled = self.s == self.fw and g.oh % self.fw == 0 and g.ow % self.fw == 0
        self.by_channel = not training and pool is not None and g.columns_by_element() \
            and g.nf <= BY_CHANNEL
        if self.max_pool and self.tiled and self.fw > 1 and not self.by_channel:
            g = BlockedConv(A.shape, conv.W, conv.stride, pads, order=self.fw, **where)
        self.geometry = g
        self.blocks = g.blocks
        self.Wb = np.concatenate([conv.W.reshape(-1, g.nf), conv.b[None, :]])
        if self.norm is not None:
            self.Wb = _fold(self.Wb, self.norm)
        shape = (A.shape[0], g.oh, g.ow, g.nf)
        dtype = np.result_type(A, conv.W)
        if pool is not None:
            shape = (shape[0], *pool.output_shape(shape[1:]))
        self.A = np.empty(shape, dtype=dtype)
        self.index = np.empty(shape, index_dtype(self.fw ** 2)) \
            if training and self.max_pool else None
        # Before an average pool a slope needs the activations (after a max pool, the
        # output has them).
        self.keep = bool(training and pool is not None and not self.max_pool
                         and self.activation)
        self.kept: list[np.ndarray | None] = [None] * len(self.blocks)
        self.cols: list[np.ndarray | None] = [None] * len(self.blocks)
        self.keep_cols = training and g.keeps_columns()
        threads.run_all([lambda i=i, s=s: self._forward_block(i, s)
                         for i, s in enumerate(self.blocks)])
        if not training:
            self.x = None  # nothing to hold for a backward pass
        return self.A

    def _forward_block(self, i: int, s: slice) -> None:
        """Block i (images s): conv, activation, pool; writes self.A[s] (and the index)."""
        g, out = self.geometry, self.A[s]
        if self.pool is None:
            self._convolve(i, s, out)
            self._activate(out)
            return
        Z = self._new(g.out_shape(out.shape[0]), out.dtype)
        if self.keep:
            self.kept[i] = Z
        self._convolve(i, s, Z)
        pooled = self._new(out.shape, out.dtype) if self.by_channel else out
        if self.max_pool:
            self._max_pool(Z, pooled, None if self.index is None else self.index[s])
            self._activate(pooled)
        else:
            self._activate(Z)
            if self.tiled and self.fw > 1:
                _tiled_mean(_as_stored(Z, self.by_channel), self.fw,
                            _as_stored(pooled, self.by_channel))
            else:
                _mean(self._views(Z), pooled)
        if self.by_channel:
            out[...] = pooled

    def _max_pool(self, Z: np.ndarray, pooled: np.ndarray, index: np.ndarray | None) -> None:
        """pooled = each window's maximum of the block's Z; index (if given) = where its
        first maximum is."""
        if self._whole_windows():
            _max_by_element(Z, pooled, index)
            return
        views = self._views(Z)
        window_max(views, out=pooled)
        if index is not None:
            first_max_index(views, pooled, out=index)

    def _new(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        """An empty (..., nf) array: stored channel by channel (its last axis first) when
        the chain works by channel."""
        if not self.by_channel:
            return np.empty(shape, dtype=dtype)
        return np.moveaxis(np.empty((shape[-1], *shape[:-1]), dtype=dtype), 0, -1)

    def _convolve(self, i: int, s: slice, Z: np.ndarray) -> None:
        cols = self.geometry.forward(self.x[s], self.Wb, Z, columns=self.keep_cols)
        if self.keep_cols:
            self.cols[i] = cols

    def _activate(self, Z: np.ndarray) -> None:
        """The activation, in place."""
        kind = self.activation
        if kind == "relu":
            relu(Z)
        elif kind == "leaky_relu":
            np.multiply(Z, np.asarray(self.alpha, dtype=Z.dtype), out=Z, where=~(Z > 0))
        elif kind == "tanh":
            np.tanh(Z, out=Z)
        elif kind == "sigmoid":
            Z[...] = sigmoid(Z)

    def _slope(self, dA: np.ndarray, A: np.ndarray, owned: bool) -> np.ndarray:
        """dA through the activation, given its output A: in place when dA is owned."""
        kind, out = self.activation, dA if owned else None
        if kind == "relu":
            return np.multiply(dA, A > 0, out=out)
        if kind == "leaky_relu":
            return np.where(A > 0, dA, dA * np.asarray(self.alpha, dtype=dA.dtype))
        if kind == "tanh":
            return np.multiply(dA, 1 - A * A, out=out)
        if kind == "sigmoid":
            return np.multiply(dA * A, 1 - A, out=out)
        return dA

    def backward(self, dA: np.ndarray, owned: bool, need_dx: bool) -> np.ndarray | None:
        full = np.empty(self.x_shape, dtype=dA.dtype) if need_dx else None
        dx = None if full is None else _zero_outside(full, self.x.shape)
        parts = threads.run_all([lambda i=i, s=s: self._backward_block(i, s, dA[s], owned, dx)
                                 for i, s in enumerate(self.blocks)])
        dWb = parts[0]
        for part in parts[1:]:
            dWb += part
        self.grads = {"dW": dWb[:-1].reshape(self.conv.W.shape), "db": dWb[-1]}
        return full

    def _backward_block(self, i: int, s: slice, dA: np.ndarray, owned: bool,
                        dx: np.ndarray | None) -> np.ndarray:
        """Block i (images s): dA through the pool and activation, then the convolution's
        [dW; db] (returned) and input gradient (written to dx[s])."""
        g = self.geometry
        if self.pool is None:
            dZ = self._slope(dA, self.A[s], owned)
        elif self.max_pool and self._whole_windows():
            dZ = np.empty(g.out_shape(dA.shape[0]), dtype=dA.dtype)
            _route_by_element(self._slope(dA, self.A[s], owned), self.index[s], dZ)
        elif self.max_pool:
            dP = self._slope(dA, self.A[s], owned)
            dZ = self._spread(dP, g, lambda views: route_to_max(
                dP, self.index[s], views, write=self.s >= self.fw))
        else:
            dZ = self._spread_average(dA, g)
            if self.keep:
                dZ = self._slope(dZ, self.kept[i], owned=True)
        return g.backward(self.x[s], dZ, self.conv.W, None if dx is None else dx[s],
                          self.cols[i])

    def _spread_average(self, dA: np.ndarray, g: BlockedConv) -> np.ndarray:
        """The block's dZ from the average pool's gradient: dA / fw^2 in every element of
        its window."""
        if self._whole_windows():
            dZ = np.empty(g.out_shape(dA.shape[0]), dtype=dA.dtype)
            _spread_mean(dA, self.fw, dZ)
            return dZ
        share = dA / np.asarray(self.fw ** 2, dtype=dA.dtype)
        return self._spread(share, g, lambda views: _add_to_each(share, views,
                                                                 self.s >= self.fw))

    def _spread(self, dP: np.ndarray, g: BlockedConv, fill) -> np.ndarray:
        """The block's dZ (b, oh, ow, nf) from the pooled gradient: fill(views) writes or
        adds into the pool's offset views of it, after zeros where they do not tile it."""
        dZ = np.empty(g.out_shape(dP.shape[0]), dtype=dP.dtype)
        if not self.tiled:
            dZ[...] = 0
        fill(self._views(dZ))
        return dZ

    def _whole_windows(self) -> bool:
        """Whether the pool's windows tile Z and are many elements each (MANY), and Z is in
        the order the whole-array steps read: by window element for a max pool, plain
        for an average pool."""
        order = self.fw if self.max_pool else 1
        return self.tiled and self.geometry.order == order and self.fw ** 2 > MANY

    def _views(self, Z: np.ndarray) -> list[np.ndarray]:
        """The pool's window elements of a block's Z (in window order: its pieces)."""
        if self.geometry.order > 1:
            return [Z[a, q] for a in range(self.fw) for q in range(self.fw)]
        return offset_views(Z, self.fw, self.s)

    def gradients(self) -> list[dict[str, np.ndarray]]:
        return [self.grads] + [{} for _ in self.layers[1:]]

    def on_threads(self, shape: tuple[int, ...]) -> bool:
        conv = self.conv
        return len(BlockedConv(shape, conv.W, conv.stride,
                               conv.pads(shape[1], shape[2])).blocks) > 1


def _fold(Wb: np.ndarray, bn: Layer) -> np.ndarray:
    """[W; b] (K + 1, nf) of a convolution followed by BatchNorm in prediction -> the
    [W'; b'] of one convolution that computes both: BatchNorm there is the per-channel
    line (z - mean) * scale + beta, scale = gamma / sqrt(var + eps), so

        W' = W * scale,   b' = (b - mean) * scale + beta

    (each output channel's column scaled; the same numbers to float rounding, with
    four passes over Z saved)."""
    scale = bn.gamma / np.sqrt(bn.running_var + bn.eps)
    folded = Wb * scale
    folded[-1] = (Wb[-1] - bn.running_mean) * scale + bn.beta
    return folded.astype(Wb.dtype, copy=False)


def _mean(views: list[np.ndarray], out: np.ndarray) -> None:
    """The mean of the views, elementwise, written to out (the average pool)."""
    if len(views) == 1:
        out[...] = views[0]
        return
    np.add(views[0], views[1], out=out)
    for view in views[2:]:
        out += view
    out /= np.asarray(len(views), dtype=out.dtype)


def _as_stored(A: np.ndarray, by_channel: bool) -> np.ndarray:
    """A (b, h, w, nf) as a C-contiguous (b', h, w, c) view of its memory: itself, or,
    with by_channel (stored channel by channel: ConvChain._new), (nf * b, h, w, 1).
    (Told, not read from A's flags: with b = h = w = 1 both layouts are contiguous.)"""
    if not by_channel:
        assert A.flags.c_contiguous, "not stored pixel by pixel"
        return A
    stored = np.moveaxis(A, -1, 0)
    assert stored.flags.c_contiguous, "not stored channel by channel"
    return stored.reshape(-1, *A.shape[1:3], 1)  # a view, not a copy


def _tiled_mean(Z: np.ndarray, p: int, out: np.ndarray) -> None:
    """out (b, oh/p, ow/p, c) = the mean of each p x p window of Z (b, oh, ow, c), both
    C-contiguous, the windows tiling Z: the windows' rows summed as whole rows of Z,
    then their columns as runs of c numbers.  Windows of more than MANY elements sum
    along each axis in one reduction, smaller ones in 2 (p - 1) additions in all
    (instead of p^2 - 1, one per window element)."""
    b, oh, ow, c = Z.shape
    if p * p > MANY:
        rows = Z.reshape(b, oh // p, p, ow, c).sum(axis=2)
        np.sum(rows.reshape(b, oh // p, ow // p, p, c), axis=3, out=out)
    else:
        by_row = Z.reshape(b, oh // p, p, ow * c)
        total = by_row[:, :, 0] + by_row[:, :, 1]
        for k in range(2, p):
            total += by_row[:, :, k]
        columns = total.reshape(b, oh // p, ow // p, p * c)
        np.add(columns[..., :c], columns[..., c : 2 * c], out=out)
        for k in range(2, p):
            out += columns[..., k * c : (k + 1) * c]
    out /= np.asarray(p * p, dtype=out.dtype)


def _spread_mean(dP: np.ndarray, p: int, dZ: np.ndarray) -> None:
    """dZ (b, oh, ow, nf) = dP (b, oh/p, ow/p, nf) / p^2 in every element of its p x p
    window, the windows tiling dZ: _tiled_mean's backward pass."""
    b, oh, ow, nf = dZ.shape
    share = dP / np.asarray(p * p, dtype=dP.dtype)
    dZ.reshape(b, oh // p, p, ow // p, p, nf)[...] = share[:, :, None, :, None, :]


def _max_by_element(Z: np.ndarray, out: np.ndarray, index: np.ndarray | None) -> None:
    """out = each window's maximum of Z (p, p, b, oh/p, ow/p, nf), by window element
    (conv_pool.by_pool_window), and index (if given) = the element k = p a + q of its
    first maximum, as first_max_index gives it (np.argmax takes the first)."""
    flat = Z.reshape(-1, out.size)
    out[...] = flat.max(axis=0).reshape(out.shape)
    if index is not None:
        index[...] = flat.argmax(axis=0).reshape(index.shape)


def _route_by_element(dP: np.ndarray, index: np.ndarray, dZ: np.ndarray) -> None:
    """dZ (p, p, b, oh/p, ow/p, nf), by window element, = dP where the element is its
    window's first maximum (index), else 0: _max_by_element's backward pass."""
    count = dZ.shape[0] * dZ.shape[1]
    elements = np.arange(count, dtype=index.dtype).reshape(count, 1)
    np.multiply(dP.reshape(1, -1), elements == index.reshape(1, -1),
                out=dZ.reshape(count, -1))


def _add_to_each(share: np.ndarray, views: list[np.ndarray], write: bool) -> None:
    """Each view gets share: written where no two views share an element (the
    elements in none are zeroed by the caller), else added."""
    for view in views:
        if write:
            view[...] = share
        else:
            view += share


def _under_pool(A: np.ndarray, pads, conv: Layer, pool: Layer | None):
    """(A's rows and columns that the outputs under the pool's windows read, as a view,
    and their padding): a pool whose windows leave the convolution's last rows or
    columns out (a 3 x 3 pool on 26 x 26 reads 24 x 24) reads only part of it, so the
    convolution computes only that part; the rest of A gets a zero gradient
    (_zero_outside), as it does in the reference, where the outputs it reaches have
    none.  A itself and its pads where the pool reads every output."""
    if pool is None:
        return A, pads
    fw, stride = conv.W.shape[0], conv.stride
    sizes, new_pads = [], []
    for size, (before, after) in zip(A.shape[1:3], pads, strict=True):
        out = output_size(before + size + after, fw, stride)
        pooled = output_size(out, pool.filter_width, pool.stride)
        used = (pooled - 1) * pool.stride + pool.filter_width  # outputs the pool reads
        needed = (used - 1) * stride + fw - before  # input rows from A's first
        if needed < 1:  # (those outputs see padding only)
            return A, pads
        sizes.append(min(size, needed))
        new_pads.append((before, needed - sizes[-1]))
    if tuple(sizes) == A.shape[1:3] and tuple(new_pads) == tuple(pads):
        return A, pads
    return A[:, : sizes[0], : sizes[1]], tuple(new_pads)


def _zero_outside(dx: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The view dx[:, :h, :w] of (n, h, w, c) = shape, after zeros in the rest of dx."""
    h, w = shape[1:3]
    dx[:, h:] = 0
    dx[:, :h, w:] = 0
    return dx[:, :h, :w]
