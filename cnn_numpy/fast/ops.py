"""The fast path's operations: each computes one layer, or several fused, on one batch
or one shard of it, with the numbers the reference layers give.

An operation reads the weights of the layers it stands for and keeps its own
cache: the layers' own caches are left alone, so one operation per shard
can run at the same time.  Its gradients stay with it (`gradients`) until
the fast path adds the shards' and hands them to the layers.

    forward(A, training) -> A               the output of the last layer it covers
    backward(dA, owned, need_dx) -> dA_prev  owned: dA may be overwritten (nothing else
                                             holds it); need_dx: False for the Net's
                                             first layer, whose input gradient nobody uses
    gradients() -> [{"dW": ..., ...}, ...]   per layer covered, its gradient attributes
    for_shard() -> Op                        the same operation with a cache of its own
"""

from __future__ import annotations

import copy
from functools import partial
from types import ModuleType

import numpy as np

from ..engines import DEFAULT_ENGINE
from ..layers import ConvLayer_ReLU, FCLayer_ReLU, Layer
from . import im2col, stride_groups, threads

#: The fast path's version of each engine it runs (a naive layer runs as its own passes).
ENGINES: dict[str, ModuleType] = {"im2col": im2col, "stride_groups": stride_groups}


class Op:
    """Base of the operations.  `name` is what Net.summary shows."""

    name = "op"
    #: True when its backward pass returns a new array (one the next step may overwrite).
    new_gradient = True
    #: True when its backward pass returns the dA it got, or a view of it (FlatLayer,
    #: Dropout): the result may be overwritten if that dA could.
    passes_gradient = False
    #: True for a JointOp, which takes a batch's shards together.
    joint = False
    #: True for a copy that runs on a shard (the plan's choice, not the thread count's).
    on_shard = False

    def __init__(self, *layers: Layer):
        self.layers = layers

    def forward(self, A: np.ndarray, training: bool) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dA: np.ndarray, owned: bool, need_dx: bool) -> np.ndarray | None:
        raise NotImplementedError

    def gradients(self) -> list[dict[str, np.ndarray]]:
        return [{} for _ in self.layers]

    def on_threads(self, shape: tuple[int, ...]) -> bool:
        """Whether it cuts its own work on a batch of this shape (its input's) into blocks
        for the thread pool (then the pass runs BLAS on one thread: threads.blas_for_pass)."""
        return False

    def for_shard(self) -> Op:
        shard = copy.copy(self)
        shard.on_shard = True
        return shard


class JointOp(Op):
    """An operation that takes the shards of one batch together: its statistics are over
    the whole batch (batchnorm.py).

        forward_parts([A (n_s, ...), ...]) -> [A_out (n_s, ...), ...]
        backward_parts([dA, ...], owned, need_dx) -> [dA_prev, ...] or None

    forward and backward on a whole batch are the same with one shard.
    """

    joint = True

    def forward(self, A: np.ndarray, training: bool) -> np.ndarray:
        return self.forward_parts([A])[0]

    def backward(self, dA: np.ndarray, owned: bool, need_dx: bool) -> np.ndarray | None:
        dx = self.backward_parts([dA], owned, need_dx)
        return None if dx is None else dx[0]

    def forward_parts(self, parts: list[np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def backward_parts(self, dparts: list[np.ndarray], owned: bool,
                       need_dx: bool) -> list | None:
        raise NotImplementedError


class Reference(Op):
    """A layer's own forward_propagate and backpropagate: a user's layer, a layer on the
    naive engine, and the shipped layers no operation below speeds up."""

    name = "its own passes"

    def __init__(self, layer: Layer, new_gradient: bool = False, passes_gradient: bool = False):
        super().__init__(layer)
        # The fast path knows which shipped layers do which; a user's layer does neither.
        self.new_gradient, self.passes_gradient = new_gradient, passes_gradient

    def forward(self, A: np.ndarray, training: bool) -> np.ndarray:
        self.layers[0].training = training
        return self.layers[0].forward_propagate(A)

    def backward(self, dA: np.ndarray, owned: bool, need_dx: bool) -> np.ndarray | None:
        return self.layers[0].backpropagate(dA)

    def gradients(self) -> list[dict[str, np.ndarray]]:
        return [{f"d{key}": grad for key, grad in self.layers[0].grads().items()}]

    def for_shard(self) -> Reference:
        """On a shallow copy of the layer: the same weights, its own cache and gradients."""
        return Reference(copy.copy(self.layers[0]), self.new_gradient, self.passes_gradient)


#: relu's zeros, read beside Z in pieces of at most this many bytes (so they stay in cache).
ZEROS_BYTES = 2**21
_ZEROS = np.zeros(ZEROS_BYTES, dtype=np.uint8)


def relu(Z: np.ndarray) -> np.ndarray:
    """Z = max(Z, 0), in place; returns Z.

    The 0 is an array of zeros laid out in memory as Z is, not a scalar:
    NumPy runs maximum's vector loop only when both operands step through
    memory, and against a broadcast 0 it took 4 to 6 times as long
    (docs/performance.md).  A Z larger than ZEROS_BYTES goes in pieces."""
    steps = [(step, n) for step, n in zip(Z.strides, Z.shape, strict=True) if n > 1]
    if Z.size == 0 or any(step <= 0 for step, _ in steps):
        return np.maximum(Z, 0, out=Z)
    if Z.itemsize + sum((n - 1) * step for step, n in steps) <= ZEROS_BYTES:
        zeros = np.ndarray(Z.shape, Z.dtype, buffer=_ZEROS, strides=Z.strides)
        return np.maximum(Z, zeros, out=Z)
    if Z.ndim > 1 and Z.flags.c_contiguous:
        relu(Z.reshape(-1))
        return Z
    axis = max((i for i, n in enumerate(Z.shape) if n > 1), key=lambda i: Z.strides[i])
    size = max(1, ZEROS_BYTES // Z.strides[axis])
    for start in range(0, Z.shape[axis], size):
        relu(Z[(slice(None),) * axis + (slice(start, start + size),)])
    return Z


def relu_mask(dA: np.ndarray, A: np.ndarray, owned: bool) -> np.ndarray:
    """dA where A > 0, else 0: the ReLU's backward pass, in place when dA is owned."""
    return np.multiply(dA, A > 0, out=dA if owned else None)


def pad(A: np.ndarray, pads: tuple[tuple[int, int], tuple[int, int]]) -> np.ndarray:
    """A (n, ih, iw, c) with ConvLayer.pads's zeros around (A itself when there are none)."""
    (top, bottom), (left, right) = pads
    if top + bottom + left + right == 0:
        return A
    return np.pad(A, ((0, 0), (top, bottom), (left, right), (0, 0)))


def unpad(dx: np.ndarray | None,
          pads: tuple[tuple[int, int], tuple[int, int]]) -> np.ndarray | None:
    (top, bottom), (left, right) = pads
    return None if dx is None else dx[:, top : dx.shape[1] - bottom, left : dx.shape[2] - right]


def engine_of(layer: Layer) -> str:
    """The name of the layer's engine (None means the default)."""
    return layer.engine or DEFAULT_ENGINE


def runs_fast(layer: Layer) -> bool:
    """Whether the fast path has its own version of the layer's engine.  The naive loops
    and an engine registered at run time (a learner's: cnn_numpy.exercises) run only
    through the layer's own passes."""
    return engine_of(layer) in ENGINES


def fast_engine(layer: Layer) -> ModuleType:
    """The fast path's version of the layer's engine: im2col.py or stride_groups.py."""
    return ENGINES[engine_of(layer)]


class Conv(Op):
    """ConvLayer or ConvLayer_ReLU on the stride-group engine (an im2col convolution runs
    as conv_chain.ConvChain, on blocks of images).

    Faster than the layer's passes: the ReLU overwrites Z (its mask needs only
    A > 0), the mask overwrites an owned dA, no padding copy without padding,
    and no input gradient for the Net's first layer.
    """

    name = "conv"

    def __init__(self, conv: Layer):
        super().__init__(conv)
        self.relu = type(conv) is ConvLayer_ReLU
        self.name = "conv+relu" if self.relu else "conv"

    def forward(self, A: np.ndarray, training: bool) -> np.ndarray:
        conv = self.layers[0]
        self.engine = fast_engine(conv)
        self.pads = conv.pads(A.shape[1], A.shape[2])
        Z, self.cache = self.engine.conv_forward(pad(A, self.pads), conv.W, conv.b, conv.stride)
        self.A = relu(Z) if self.relu else Z
        return self.A

    def backward(self, dA: np.ndarray, owned: bool, need_dx: bool) -> np.ndarray | None:
        if self.relu:
            dA = relu_mask(dA, self.A, owned)
        dx, dW, db = self.engine.conv_backward(dA, self.cache, need_dx)
        self.grads = {"dW": dW, "db": db}
        return unpad(dx, self.pads)

    def gradients(self) -> list[dict[str, np.ndarray]]:
        return [self.grads]


class ConvMaxPool(Op):
    """A stride-group convolution, a ReLU (ConvLayer_ReLU's or a ReLULayer's, if any) and a
    max pool: replaces ConvLayer[_ReLU] [+ ReLULayer] + PoolLayer_Max.

    Faster than the layers one by one: the ReLU runs after the pool, on p*p
    times fewer numbers, and its mask on the pooled gradient (max and ReLU
    commute: max(relu(Z)) = relu(max(Z)); a window whose maximum is positive
    sends its gradient to an element the ReLU kept, one whose maximum is not
    sends 0 either way).  Each layer's engine is its own.
    """

    def __init__(self, conv: Layer, relu: Layer | None, pool: Layer):
        super().__init__(*(layer for layer in (conv, relu, pool) if layer is not None))
        self.conv, self.pool = conv, pool
        self.relu = relu is not None or type(conv) is ConvLayer_ReLU
        self.name = "conv+relu+max_pool" if self.relu else "conv+max_pool"

    def forward(self, A: np.ndarray, training: bool) -> np.ndarray:
        conv, pool = self.conv, self.pool
        self.conv_engine, self.pool_engine = fast_engine(conv), fast_engine(pool)
        self.pads = conv.pads(A.shape[1], A.shape[2])
        x = pad(A, self.pads)
        Z, self.conv_cache = self.conv_engine.conv_forward(x, conv.W, conv.b, conv.stride)
        P, self.pool_cache = self.pool_engine.max_pool_forward(Z, pool.filter_width,
                                                               pool.stride, argmax=training)
        self.A = relu(P) if self.relu else P
        return self.A

    def backward(self, dA: np.ndarray, owned: bool, need_dx: bool) -> np.ndarray | None:
        if self.relu:
            dA = relu_mask(dA, self.A, owned)
        dZ = self.pool_engine.max_pool_backward(dA, self.pool_cache)
        dx, dW, db = self.conv_engine.conv_backward(dZ, self.conv_cache, need_dx)
        self.grads = {"dW": dW, "db": db}
        return unpad(dx, self.pads)

    def gradients(self) -> list[dict[str, np.ndarray]]:
        return [self.grads] + [{} for _ in self.layers[1:]]


class MaxPool(Op):
    """PoolLayer_Max on its engine, with the ReLULayer before it, if any, taken over
    (applied to the pooled output: see ConvMaxPool).  Also faster alone: in
    prediction the engine skips finding where each maximum is."""

    def __init__(self, relu: Layer | None, pool: Layer):
        super().__init__(*(layer for layer in (relu, pool) if layer is not None))
        self.pool, self.relu = pool, relu is not None
        self.name = "relu+max_pool" if self.relu else "max_pool"

    def forward(self, A: np.ndarray, training: bool) -> np.ndarray:
        pool = self.pool
        self.engine = fast_engine(pool)
        P, self.cache = self.engine.max_pool_forward(A, pool.filter_width, pool.stride,
                                                     argmax=training)
        self.A = relu(P) if self.relu else P
        return self.A

    def backward(self, dA: np.ndarray, owned: bool, need_dx: bool) -> np.ndarray | None:
        if not need_dx:
            return None
        if self.relu:
            dA = relu_mask(dA, self.A, owned)
        return self.engine.max_pool_backward(dA, self.cache)


class Dense(Op):
    """FCLayer or FCLayer_ReLU (not an output layer): the layer's products, with the ReLU
    overwriting Z, its mask overwriting an owned dA, dW's products written in place,
    and no input gradient for the Net's first layer.

    A batch that runs whole in a pass with BLAS on one thread (as the `deep`
    network's dense layer between its joint BatchNorms, or one after large
    convolutions) has large products cut into as many blocks as
    threads.shard_slices cuts the batch into, two at least, run on the thread
    pool, each block a slice of W's units or inputs: columns of Z, rows of dW,
    columns of dx.  So each block reads its own part of W, which is usually the
    largest operand (blocks of the batch's rows would each read all of it).  The blocks depend on
    the shapes only, so the bits do not depend on the thread count.  A copy for a
    shard (for_shard) runs its products whole: its thread is one of the pool's
    already, and blocks would only read the other operand again.
    """

    #: Multiply-adds per block, at least: smaller products (the `flat` network's,
    #: 128 x 784 x 100) ran slower in blocks than on BLAS's own threads.
    MIN_BLOCK_WORK = 2**23

    def __init__(self, dense: Layer):
        super().__init__(dense)
        self.relu = type(dense) is FCLayer_ReLU
        self.name = "dense+relu" if self.relu else "dense"

    def forward(self, A: np.ndarray, training: bool) -> np.ndarray:
        W = self.layers[0].W
        self.A_prev = A
        Z = np.empty((A.shape[0], W.shape[0]), dtype=np.result_type(A, W))
        self.count = self._count(A.shape[0], W.size)
        _in_blocks(lambda units: np.matmul(A, W[units, :-1].T, out=Z[:, units]),
                   threads.even_slices(W.shape[0], self.count))
        Z += W[:, -1]
        self.A = relu(Z) if self.relu else Z
        return self.A

    def backward(self, dA: np.ndarray, owned: bool, need_dx: bool) -> np.ndarray | None:
        W = self.layers[0].W
        dZ = relu_mask(dA, self.A, owned) if self.relu else dA
        dW = np.empty_like(W)
        _in_blocks(lambda units: np.matmul(dZ[:, units].T, self.A_prev, out=dW[units, :-1]),
                   threads.even_slices(W.shape[0], self.count))
        dW[:, -1] = dZ.sum(axis=0)
        self.grads = {"dW": dW}
        if not need_dx:
            return None
        dx = np.empty((dZ.shape[0], W.shape[1] - 1), dtype=dZ.dtype)
        _in_blocks(lambda inputs: np.matmul(dZ, W[:, inputs], out=dx[:, inputs]),
                   threads.even_slices(W.shape[1] - 1, self.count))
        return dx

    def _count(self, n: int, weights: int) -> int:
        """How many blocks each product is cut into (see the class docstring): one where
        BLAS may use its own threads (a pass without shards or blocks elsewhere)."""
        count = max(2, len(threads.shard_slices(n)))
        if self.on_shard or not threads.blas_on_one_thread() \
                or n * weights < self.MIN_BLOCK_WORK * count:
            return 1
        return count

    def gradients(self) -> list[dict[str, np.ndarray]]:
        return [self.grads]


def _in_blocks(product, blocks: list[slice]) -> None:
    """product(rows) for each block of rows, on the thread pool when there are several."""
    threads.run_all([partial(product, rows) for rows in blocks])
