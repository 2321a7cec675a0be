"""The im2col convolution (cnn_numpy/engines/im2col.py) on blocks of images sized for the
cache, each block padded while it is in the cache.

The reference copies every window of the whole (padded) batch into one matrix
and multiplies once.  For a 3 x 3 convolution of 32 channels on 32 x 32
images that matrix is about 1.2 MB per image: a batch's is far out of cache,
written once and read again by the product, and the padded input is one more
copy.  Here a batch is cut into blocks of images (image_blocks: a function of
the shapes only) whose window matrix holds about BLOCK numbers, an even number of
them for the thread pool (pool_blocks), and each block is copied, multiplied and
forgotten while it is still in cache:

    forward   Z[block] = cols_block.T @ [W; b]
    backward  [dW; db] = sum over blocks, in block order, of cols_block @ dZ[block]
              (cols_block copied again: cheaper than keeping the batch's);
              dx[block] = a convolution of dZ[block] with the turned filters
              (correlate), or, with a stride, or more filters than channels and
              no "same" padding, the windows' gradients by window element, each
              added back at its place (col2im, add_back) inside the block

Each block is padded in a small array of its own, in the cache, just before its
window copy (and its input gradient added back in one), so the padded batch is
never built.
A 3 x 3 or 5 x 5 stride-1 convolution with many channels (WINOGRAD_CHANNELS) takes
Winograd's F(4 x 4, 3 x 3), F(2 x 2, 3 x 3) or F(2 x 2, 5 x 5) instead of the window
copy and product for its forward pass, its weight gradient (from the transformed tiles
the forward pass kept) and its input gradient (winograd.py).  The blocks run
on the thread pool (threads.run_all; on a shard, one after the other, in the
shard's task), and the weight gradient is the blocks' sum in block order: the
same bits on any number of threads.
"""

from __future__ import annotations

import itertools
import math
from typing import NamedTuple

import numpy as np

from ..engines.geometry import output_size
from ..engines.im2col import offset_views
from . import threads, winograd
from .columns import (
    by_element_product,
    element_major,
    weight_gradient,
    window_matrix,
    window_matrix_by_channel,
    window_view,
    windows_product,
)
from .conv_pool import by_pool_window

#: Numbers in one block's window matrix (or Winograd's transformed tiles), at most
#: (unless one image holds more): 512 K floats, 2 MB in float32, a core's share of the
#: cache with the product's output.
BLOCK = 2**19
#: The same for a convolution of THIN_FILTERS filters or fewer cut into blocks on a shard
#: (one after the other): 4 MB.  Its products' outputs are small beside its window
#: matrix, so a larger block still fits the cache the cores share, and every block costs
#: a few dozen NumPy calls, in which two threads take turns with Python's lock.  With
#: more filters the larger blocks were slower (docs/performance.md).
SHARD_BLOCK = 2**20
#: When a convolution runs in blocks on the thread pool (BlockedConv.blocks; on a shard,
#: one after the other), rather than as one block with its products on BLAS's own
#: threads: when its batch's window matrix
#: holds LARGE numbers or more (64 MB in float32: out of any cache), or when a batch of
#: BATCH images or more takes WORK multiply-adds or more.  Below both, the elementwise
#: work of the blocks, bound by memory and by Python's lock, kept two threads from doing
#: twice the work; at batch 32 the blocks of a BatchNorm stack were slower too (measured
#: on 2 cores, the zoo's networks; see docs/performance.md).
LARGE = 2**24
WORK = 2**26
BATCH = 64
#: A convolution in a pass that runs BLAS on one thread (`share`) is cut into blocks for
#: the thread pool when its batch takes SHARED_WORK multiply-adds or more; below that the
#: hand-over to a second thread cost more than the thread saved (LeNet-5 at batch 32 ran
#: faster on one core than on two).
SHARED_WORK = 2**23
#: A prediction on a shard, whose thread is one of the pool's already, runs a convolution
#: in blocks, one after the other, when its window matrix holds CACHE_LARGE numbers or
#: more (4 MB in float32, four times a core's L2 cache here): for the cache alone (a
#: shard of 32 small VGG images has a 38 MB window matrix; 64 images of three channels
#: on 32 x 32, 7 MB).  In training, blocks cost a second window copy in the backward
#: pass, which paid only where the products are thin: a convolution with THIN_FILTERS
#: filters or fewer.
CACHE_LARGE = 2**20
#: A convolution with this many filters or fewer, trained on a shard, runs in blocks for
#: the cache as in prediction.  Its products write few columns per window matrix row, so
#: they are bound by reading that matrix, which runs faster from the cache; the narrow
#: stack's 8- and 16-filter convolutions trained faster so, wider ones no faster
#: (docs/performance.md).
THIN_FILTERS = 16
#: A 3 x 3 or 5 x 5 stride-1 convolution with this many input channels or more, and an
#: even output, runs its forward pass and weight gradient as Winograd's (winograd.py:
#: F(4 x 4, 3 x 3) where the output's sides divide by 4, else F(2 x 2, 3 x 3); F(2 x 2,
#: 5 x 5)); so does its input gradient (correlate) with this many filters or more.  With
#: fewer, the products, whose inner dimension is the channels, are too thin to pay for
#: the transforms: in the zoo's networks 16 channels gained nothing over the window
#: matrix for 3 x 3 filters (docs/performance.md); for 5 x 5 the zoo has no such
#: convolution below 32 channels, and the same threshold was kept untried.
WINOGRAD_CHANNELS = 32
#: A window row (fw * c numbers) shorter than this, 64 bytes in float32, is copied in
#: pieces shorter than a cache line (BlockedConv.short_rows).
SHORT_ROW = 16


def image_blocks(n: int, per_image: int, block: int | None = None) -> list[slice]:
    """range(n) as consecutive blocks of images, each holding about `block` numbers
    (default BLOCK) at most, when one image holds per_image; sizes differ by 1 at most.
    A function of the arguments only, so the blocks, and every sum over them, do not
    depend on the thread count."""
    size = max(1, (BLOCK if block is None else block) // max(1, per_image))
    return threads.even_slices(n, max(1, math.ceil(n / size))) if n else [slice(0, 0)]


def pool_blocks(n: int, count: int) -> list[slice]:
    """range(n) as `count` blocks for the thread pool (1 <= count <= n, clamped to that),
    or one more if count is odd, above 1 and below n: on two threads an odd count leaves
    one idle while the other takes the last block (three blocks kept two cores 75% busy
    at most).  Even, not a multiple of the thread count: the blocks, and the sums over
    them, must not depend on it."""
    count = max(1, min(count, n))
    if count > 1 and count % 2 and count < n:
        count += 1
    return threads.even_slices(n, count)


class BlockedConv:
    """One convolution's geometry on inputs (n, ih, iw, c) and its passes on a block.

    x is the layer's input without padding; pads are ConvLayer.pads's
    ((top, bottom), (left, right)).  order p > 1 puts the output positions in
    p x p pool window order (conv_pool.by_pool_window: (p, p, b, oh/p, ow/p));
    p must divide oh and ow.  on_shard: the pass runs on a batch shard, one of the
    thread pool's tasks already, where the blocks run one after the other, and a large
    window matrix is cut for the cache alone (CACHE_LARGE) in prediction (training
    False) and for a thin convolution (THIN_FILTERS) in training; a thin one's blocks
    hold up to SHARD_BLOCK numbers there.
    share: the pass runs BLAS on one thread (threads.blas_on_one_thread), so this one
    takes two blocks at least rather than one core, if its work is SHARED_WORK or more.
    Blocks for the thread pool (off a shard) come in an even number (pool_blocks).
    """

    def __init__(self, x_shape: tuple[int, ...], W: np.ndarray, stride: int,
                 pads: tuple[tuple[int, int], tuple[int, int]], order: int = 1,
                 on_shard: bool = False, training: bool = True, share: bool = False):
        n, self.ih, self.iw, self.c = x_shape
        self.fw, self.nf, self.stride, self.order = W.shape[0], W.shape[3], stride, order
        (self.top, self.bottom), (self.left, self.right) = pads
        self.padded = any(p for side in pads for p in side)
        self.oh = output_size(self.ih + self.top + self.bottom, self.fw, stride)
        self.ow = output_size(self.iw + self.left + self.right, self.fw, stride)
        self.k = self.fw * self.fw * self.c
        self.winograd = self._winograd_tile(self.c, self.oh, self.ow)  # 0: none
        if self.winograd % order:  # (its tiles would straddle pool windows)
            self.winograd = 0
        self._kept: dict[str, tuple] = {}  # role -> (source, winograd filters): _once
        per_image = self.oh * self.ow * (self.k + 1)
        for_cache = on_shard and (not training or self.nf <= THIN_FILTERS)
        cut = n * per_image >= (CACHE_LARGE if for_cache else LARGE) \
            or (n >= BATCH and n * per_image * self.nf >= WORK)
        held = self.held_per_image() if self.winograd else per_image
        if cut and on_shard:  # one after the other, in the shard's task
            self.blocks = image_blocks(n, held, SHARD_BLOCK if self.nf <= THIN_FILTERS
                                       else BLOCK)
        elif cut:
            self.blocks = pool_blocks(n, len(image_blocks(n, held)))
        elif share and n > 1 and n * per_image * self.nf >= SHARED_WORK:
            # both cores, though the work alone would not call for them
            self.blocks = pool_blocks(n, max(2, len(image_blocks(n, held))))
        else:
            self.blocks = [slice(0, n)]

    def held_per_image(self) -> int:
        """The numbers a Winograd pass holds per image: its transformed tiles, (m + r - 1)^2
        numbers per m x m outputs and channel, the input's (r x r filters).  A block of
        them, sized as a window matrix would be, takes several images: on blocks of one,
        the calls' fixed cost, in which the threads take turns with Python's lock,
        outweighed what Winograd saved (measured on 2 cores)."""
        m = self.winograd
        return self.oh * self.ow * self.c * (m + self.fw - 1) ** 2 // (m * m)

    def out_shape(self, n: int) -> tuple[int, ...]:
        """The shape of a block's Z: (n, oh, ow, nf), or by pool window element."""
        p = self.order
        if p == 1:
            return n, self.oh, self.ow, self.nf
        return p, p, n, self.oh // p, self.ow // p, self.nf

    def _padded(self, x: np.ndarray, by_channel: bool = False) -> np.ndarray:
        """The block x with its zero padding, in a new array (in cache: a ninth or less of
        the window matrix the copy then writes); with by_channel, stored channel by
        channel, (c, b, top + ih + bottom, left + iw + right), in the same one copy
        (also without padding)."""
        if not (self.padded or by_channel):
            return x
        b, h, w = x.shape[0], self.top + self.ih + self.bottom, self.left + self.iw + self.right
        stored, xp = _stored((b, h, w, self.c), x.dtype, by_channel, zeros=self.padded)
        np.copyto(xp[:, self.top : self.top + self.ih, self.left : self.left + self.iw], x)
        return stored

    def _arranged(self, view: np.ndarray) -> np.ndarray:
        """A (b, oh, ow, ...) view in this convolution's position order."""
        return view if self.order == 1 else by_pool_window(view, self.order)

    def columns(self, x: np.ndarray) -> np.ndarray:
        """x (b, ih, iw, c) -> the (K + 1, M) window matrix of columns.window_matrix (its
        last row ones), its columns in this convolution's position order.  Stored
        element-major with several channels, it is copied from the block padded channel
        by channel (columns.window_matrix_by_channel)."""
        if self.c > 1 and self.columns_by_element():
            return window_matrix_by_channel(self._padded(x, by_channel=True), self.fw,
                                            self.stride)
        windows = window_view(self._padded(x), self.fw, self.stride)
        return window_matrix(self._arranged(windows))

    def forward(self, x: np.ndarray, Wb: np.ndarray, out: np.ndarray,
                columns: bool = True) -> np.ndarray | None:
        """out (out_shape(b)) = the convolution of the block x (b, ih, iw, c).  Returns what
        backward takes for the weight gradient: the block's window matrix, or the
        transformed tiles of a Winograd convolution (self.winograd); with columns=False
        (a backward pass that will not use it), None."""
        if self.winograd:
            V = winograd.forward(self._padded(x), self._filtered(Wb), out, self.order)
            return V if columns else None
        cols = self.columns(x)
        by_channel = np.moveaxis(out, -1, 0)  # (nf, ...): contiguous when stored so
        if out.flags.c_contiguous:
            windows_product(cols, Wb, out.reshape(-1, self.nf))
        elif self.order == 1 and by_channel.flags.c_contiguous:
            windows_product(cols, Wb, by_channel.reshape(self.nf, -1).T)
        else:  # (a block of a larger array in pool window order)
            out[...] = (cols.T @ Wb).reshape(out.shape)
        return cols

    def _winograd_tile(self, channels: int, height: int, width: int) -> int:
        """The output tile side of the Winograd convolution that takes this convolution's
        pass that reads `channels` channels and writes height x width positions
        (WINOGRAD_CHANNELS, winograd.tile_side), or 0 where none does."""
        if self.stride != 1 or channels < WINOGRAD_CHANNELS:
            return 0
        return winograd.tile_side(height, width, self.fw)

    def _filtered(self, Wb: np.ndarray) -> winograd.Filters:
        """winograd.filters of [W; b] for the forward pass."""
        return self._once("forward", Wb,
                          lambda: winograd.filters(Wb, self.c, self.winograd, self.fw))

    def _turned(self, W: np.ndarray) -> np.ndarray:
        """W (fw, fw, c, nf) turned by 180 degrees, as the (fw * fw * nf, c) matrix of the
        input gradient's convolution (correlate)."""
        return W[::-1, ::-1].transpose(0, 1, 3, 2).reshape(-1, self.c)

    def _turned_filters(self, W: np.ndarray, m: int) -> winograd.Filters:
        """winograd.filters of the turned W, without bias, for tiles of side m
        (correlate)."""
        def make():
            turned = self._turned(W)
            return winograd.filters(np.concatenate([turned, np.zeros_like(turned[:1])]),
                                    self.nf, m, self.fw)
        return self._once("turned", W, make)

    def _once(self, role: str, source: np.ndarray, make):
        """make(), computed once for all the blocks of a pass given the same source array
        (an instance serves one pass, in which the weights do not change)."""
        kept = self._kept.get(role)
        if kept is None or kept[0] is not source:
            kept = self._kept[role] = (source, make())
        return kept[1]

    def stored_by_element(self) -> bool:
        """Whether columns.window_matrix stores this convolution's window matrix
        element-major: an output row (in pool window order, a row of one window
        element's positions) longer than a window row."""
        return element_major(self.ow // self.order, self.fw, self.c)

    def columns_by_element(self) -> bool:
        """Whether the window matrix is stored element-major in plain position order, so
        that each of its rows is contiguous in the output."""
        return self.order == 1 and self.stored_by_element()

    def keeps_columns(self) -> bool:
        """Whether a training pass keeps what forward returns for the backward pass rather
        than computing it again: a Winograd convolution's transformed tiles (2.25, 4 or
        9 times the input), or the window matrix when the batch is one block or when it
        is no larger than the block's output (few input channels), which the pass holds
        anyway, or when copying it again would be slow (short_rows)."""
        return bool(self.winograd) or len(self.blocks) == 1 or self.k + 1 <= self.nf \
            or self.short_rows()

    def short_rows(self) -> bool:
        """Whether the window matrix is stored window by window with window rows of fewer
        than SHORT_ROW numbers: its copy then runs along pieces shorter than a cache line,
        at a fraction of the speed of the others (docs/performance.md), and reading it
        back in the backward pass took less time than copying it again."""
        return not self.stored_by_element() and self.fw * self.c < SHORT_ROW

    def backward(self, x: np.ndarray, dZ: np.ndarray, W: np.ndarray,
                 dx: np.ndarray | None, kept: np.ndarray | None = None) -> np.ndarray:
        """The block's [dW; db] (K + 1, nf) from its dZ (out_shape(b)); with dx (the
        block's input gradient, (b, ih, iw, c)), the windows' gradients are written there.
        kept: what forward returned (window matrix or transformed tiles), if it was kept."""
        if self.winograd:
            V = winograd.transform(self._padded(x), self.winograd, self.fw) if kept is None \
                else kept
            dWb = winograd.weight_gradient(V, dZ, self.fw, order=self.order)
        else:
            cols = self.columns(x) if kept is None else kept
            dWb = weight_gradient(cols, dZ.reshape(-1, self.nf))
        if dx is not None and self._correlates():
            self.correlate(dZ, W, dx)
        elif dx is not None:
            self.add_back(dZ, W, dx)
        return dWb

    def _correlates(self) -> bool:
        """Whether the input gradient is a convolution of its own (correlate) rather than
        each window's gradient added back (add_back): for stride 1, with no more filters
        than channels, or with "same" padding (dZ, padded for the correlation, is then no
        larger than dZ with a border, and the window copy and one product took less time
        than add_back's fw * fw additions and its padded copy of dx)."""
        same = self.top + self.bottom == self.fw - 1 == self.left + self.right
        return self.stride == 1 and self.fw > 1 and (self.nf <= self.c or same)

    def _plain(self, dZ: np.ndarray) -> np.ndarray:
        """A block's dZ as (b, oh, ow, nf), from pool window order if it is in that."""
        if self.order == 1:
            return dZ
        plain = np.empty((dZ.shape[2], self.oh, self.ow, self.nf), dtype=dZ.dtype)
        by_pool_window(plain, self.order)[...] = dZ
        return plain

    def correlate(self, dZ: np.ndarray, W: np.ndarray, dx: np.ndarray) -> None:
        """dx (b, ih, iw, c) for stride 1, as a convolution of its own: the input element
        at (y, x) gets W[a, q] dZ[y + top - a, x + left - q] over every (a, q) whose output
        exists, which is the window of dZ, padded with fw - 1 - top zeros above (and so
        on), at (y, x) times W turned by 180 degrees.  One window copy and one product,
        instead of one strided addition per window element (add_back); for 3 x 3 or
        5 x 5 filters and WINOGRAD_CHANNELS filters or more, Winograd's convolution when
        dx's sides are even (_winograd_tile)."""
        b, fw = dx.shape[0], self.fw
        above, left = fw - 1 - self.top, fw - 1 - self.left  # < 0: rows of dZ not needed
        rows, cols = self.ih + fw - 1, self.iw + fw - 1
        m = self._winograd_tile(self.nf, self.ih, self.iw)
        # An element-major window matrix of several filters' gradients is copied from
        # them stored filter by filter, as columns() does for its input's channels.
        by_channel = not m and self.nf > 1 and element_major(self.iw, fw, self.nf)
        stored, padded = _stored((b, rows, cols, self.nf), dZ.dtype, by_channel, zeros=True)
        h0, w0 = max(0, -above), max(0, -left)  # dZ's first row and column inside
        h1, w1 = min(self.oh, rows - above), min(self.ow, cols - left)
        dZ = self._plain(dZ)
        padded[:, above + h0 : above + h1, left + w0 : left + w1] = dZ[:, h0:h1, w0:w1]
        if m:
            winograd.forward(padded, self._turned_filters(W, m), dx)
            return
        windows = window_matrix_by_channel(stored, fw, 1) if by_channel \
            else window_matrix(window_view(padded, fw, 1))
        windows = windows[:-1]  # (fw * fw * nf, M)
        turned = self._turned(W)
        if dx.flags.c_contiguous:
            windows_product(windows, turned, dx.reshape(-1, self.c))
        else:
            dx[...] = (windows.T @ turned).reshape(dx.shape)

    def add_back(self, dZ: np.ndarray, W: np.ndarray, dx: np.ndarray) -> None:
        """col2im: dx (b, ih, iw, c) = each window's gradient added back at its place (in
        a padded block first when there is padding; with a stride, in one small array
        for each class of rows and columns, _add_by_parity), from the block's dZ.

        The gradients come by window element, one contiguous (M, c) slab each (one
        stacked product), in plain position order, so each addition runs along whole
        rows of the slab and of dx: the windows' (M, K) matrix, or positions in pool
        window order, would give it runs of c numbers.  Taken where correlate is not
        (_correlates): a stride, a 1 x 1 filter, or more filters than channels without
        "same" padding (the slabs are then smaller than correlate's window matrix)."""
        b, fw, c = dx.shape[0], self.fw, self.c
        dZ2 = self._plain(dZ).reshape(-1, self.nf)
        # W by element, each (nf, c), copied contiguous once for all the blocks: the
        # stacked product ran slower on the transposed view (docs/performance.md).
        by_element = self._once("by_element", W, lambda: np.ascontiguousarray(
            W.reshape(fw * fw, c, self.nf).transpose(0, 2, 1)))
        slabs = by_element_product(dZ2, by_element)
        if self.stride > 1:
            self._add_by_parity(slabs.reshape(fw, fw, b, self.oh, self.ow, c), dx)
            return
        dxp = dx if not self.padded else np.empty(
            (b, self.top + self.ih + self.bottom, self.left + self.iw + self.right, c),
            dtype=dx.dtype)
        elements = offset_views(dxp, fw, 1)
        if fw == 1 and not self.padded:  # one element covers dx
            elements[0][...] = slabs[0].reshape(elements[0].shape)
        else:
            dxp[...] = 0
            for slab, element in zip(slabs, elements, strict=True):
                element += slab.reshape(element.shape)
        if self.padded:
            dx[...] = dxp[:, self.top : self.top + self.ih, self.left : self.left + self.iw]

    def _add_by_parity(self, slabs: np.ndarray, dx: np.ndarray) -> None:
        """add_back with a stride s > 1, from slabs (fw, fw, b, oh, ow, c): the padded
        block's rows and columns fall in s x s classes by their remainder mod s, and
        element (a, q) adds only to class (a % s, q % s), shifted by (a // s, q // s).
        Each class is summed in a small contiguous array of its own and written into dx
        once, so the additions run along whole rows, where added into the padded block
        they ran along a pixel's c numbers at a time (docs/performance.md).  Each
        number is the same sum, added in the same order."""
        s, (b, *_, c) = self.stride, dx.shape
        row_classes = _parity_classes(self.fw, s, self.top, self.ih, self.oh)
        column_classes = _parity_classes(self.fw, s, self.left, self.iw, self.ow)
        for rows, cols in itertools.product(row_classes, column_classes):
            if not (rows.count and cols.count):
                continue  # dx has no row (column) of this class
            P = np.zeros((b, rows.size, cols.size, c), dtype=dx.dtype)
            for a, q in itertools.product(rows.elements, cols.elements):  # (a, q) in order
                P[:, a // s : a // s + self.oh, q // s : q // s + self.ow] += slabs[a, q]
            dx[:, rows.first :: s, cols.first :: s] = \
                P[:, rows.skip : rows.skip + rows.count, cols.skip : cols.skip + cols.count]


class _Parity(NamedTuple):
    """One class of a padded axis's positions by remainder mod the stride s, for
    BlockedConv._add_by_parity: the window elements that reach it, the first position of
    dx (unpadded) in it, how many of dx's positions it holds, how many of its positions
    come before dx's first (padding), and its size in the class's array."""
    elements: list[int]
    first: int
    count: int
    skip: int
    size: int


def _parity_classes(fw: int, s: int, before: int, size: int, out: int) -> list[_Parity]:
    """An axis's s classes (_Parity) for windows of fw elements at stride s, `out`
    positions, on an input of `size` positions after `before` of padding."""
    classes = []
    for r in range(s):
        elements = list(range(r, fw, s))
        skip = max(0, -((r - before) // s))  # ceil((before - r) / s)
        first = r + s * skip - before
        count = len(range(first, size, s))
        reach = elements[-1] // s + out if elements else 0
        classes.append(_Parity(elements, first, count, skip, max(reach, skip + count)))
    return classes


def _stored(shape: tuple[int, int, int, int], dtype, by_channel: bool,
            zeros: bool) -> tuple[np.ndarray, np.ndarray]:
    """A new array of zeros (or empty) for (b, h, w, c) numbers: (the array as stored,
    its (b, h, w, c) view).  Stored channel by channel, (c, b, h, w), with by_channel."""
    b, h, w, c = shape
    stored = (np.zeros if zeros else np.empty)((c, b, h, w) if by_channel else shape,
                                              dtype=dtype)
    return stored, stored.transpose(1, 2, 3, 0) if by_channel else stored
