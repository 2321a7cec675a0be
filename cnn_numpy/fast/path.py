"""FastPath: runs a Net's layers with the operations of ops.py, on batch shards where it
pays, and leaves the layers what the reference passes leave.

Planning (plan_ops, then steps): the layer list becomes a list of
operations, by pattern over the shipped layer types (conv + ReLU + max pool
as one, a ReLU before a max pool taken over by the pool, ...); a layer that
no pattern knows runs as its own passes (ops.Reference).  Then consecutive
operations that treat every sample on its own are cut into shards of the
batch (threads.shard_slices) when one of their samples is large, and run
shard by shard on the thread pool, each shard with its own copies of the
operations; BatchNorm while training takes the shards together.

After a training step the layers hold the whole batch's gradients (the
shards' added in shard order), and their weights and running statistics are
those the reference step leaves, to rounding.  A layer computed by an
operation other than its own passes, or on shards, has its cached arrays
(A, Z, A_prev, cache, x_hat, std, mask) set to None: they would otherwise
hold another step's values, or one shard's.
"""

from __future__ import annotations

import math
from functools import partial

import numpy as np

from ..layers import (
    BatchNorm,
    ConvLayer,
    ConvLayer_ReLU,
    Dropout,
    FCLayer,
    FCLayer_ReLU,
    FCLayer_Sigmoid,
    FCLayer_Softmax,
    FlatLayer,
    Layer,
    LeakyReLULayer,
    PoolLayer_Avg,
    PoolLayer_Max,
    ReLULayer,
    SigmoidLayer,
    TanhLayer,
)
from . import threads
from .batchnorm import BatchNormOnShards, ConvBatchNormMaxPool
from .conv_chain import chain_at
from .ops import Conv, ConvMaxPool, Dense, MaxPool, Op, Reference, engine_of, runs_fast

#: Shipped layers whose output sample i depends on input sample i alone and whose passes
#: change nothing but their own cache and gradients (Dropout and BatchNorm: see per_sample).
PER_SAMPLE = {ConvLayer, ConvLayer_ReLU, PoolLayer_Max, PoolLayer_Avg, FlatLayer, FCLayer,
              FCLayer_ReLU, FCLayer_Sigmoid, FCLayer_Softmax, ReLULayer, LeakyReLULayer,
              TanhLayer, SigmoidLayer}
#: Shipped layers whose backpropagate returns a new array, and those that may return
#: what they got or a view of it (a user's layer may keep it: neither).
NEW_GRADIENT = PER_SAMPLE - {FlatLayer} | {BatchNorm}
PASS_GRADIENT = {FlatLayer, Dropout}
#: The cached arrays of the shipped layers (see the module docstring).
CACHES = ("A", "Z", "A_prev", "cache", "x_hat", "std", "mask")


def _fast_conv(layer) -> bool:
    return type(layer) in (ConvLayer, ConvLayer_ReLU) and runs_fast(layer)


def _fast_max_pool(layer) -> bool:
    return type(layer) is PoolLayer_Max and runs_fast(layer)


def _conv_batch_norm(a, b) -> bool:
    return _fast_conv(a) and type(a) is ConvLayer and type(b) is BatchNorm


def plan_ops(layers: list[Layer], training: bool) -> list[Op]:
    """The operations that compute `layers` in order.  The naive engine's layers always
    run as their own passes (the loops are the point), and so does the last layer (the
    loss reads its A and Z)."""
    ops: list[Op] = []
    i = 0
    while i < len(layers):
        a, b, c, d = (layers[i:i + 4] + [None] * 3)[:4]
        if i == len(layers) - 1:
            op = _reference(a)
        elif training and _conv_batch_norm(a, b) and type(c) is ReLULayer \
                and _fast_max_pool(d) and i + 3 < len(layers) - 1:
            op = ConvBatchNormMaxPool(a, b, c, d)
        elif training and _conv_batch_norm(a, b) and _fast_max_pool(c) \
                and i + 2 < len(layers) - 1:
            op = ConvBatchNormMaxPool(a, b, None, c)
        elif training and _conv_batch_norm(a, b) and i + 1 < len(layers) - 1:
            relu = c if type(c) is ReLULayer and i + 2 < len(layers) - 1 else None
            op = ConvBatchNormMaxPool(a, b, relu, None)
        elif (chain := chain_at(layers, i, training)) is not None:
            op = chain
        elif _fast_conv(a) and type(a) is ConvLayer and type(b) is ReLULayer \
                and _fast_max_pool(c):
            op = ConvMaxPool(a, b, c)
        elif _fast_conv(a) and _fast_max_pool(b):
            op = ConvMaxPool(a, None, b)
        elif _fast_conv(a):
            op = Conv(a)
        elif type(a) is ReLULayer and _fast_max_pool(b):
            op = MaxPool(a, b)
        elif _fast_max_pool(a):
            op = MaxPool(None, a)
        elif type(a) is BatchNorm and training:
            op = BatchNormOnShards(a)
        elif type(a) in (FCLayer, FCLayer_ReLU):
            op = Dense(a)
        else:
            op = _reference(a)
        ops.append(op)
        i += len(op.layers)
    return ops


def _reference(layer: Layer) -> Reference:
    return Reference(layer, type(layer) in NEW_GRADIENT, type(layer) in PASS_GRADIENT)


def per_sample(op: Op, training: bool) -> bool:
    """True when op may run on shards, each with its own copy."""
    if op.joint:
        return False
    if not isinstance(op, Reference):
        return True
    layer = op.layers[0]
    if type(layer) is Dropout:  # masks come from one generator, in order
        return not training or layer.rate == 0
    if type(layer) is BatchNorm:
        return not training
    return type(layer) in PER_SAMPLE


class FastPath:
    """The fast passes over a Net's layers; Net(fast=True) calls forward and backward."""

    def __init__(self, layers: list[Layer]):
        self.layers = layers
        # What forward ran, for backward: (how, the planned ops, each shard's copies).
        self._tape: list[tuple[str, list[Op], list[list[Op]]]] = []
        self._one_blas_thread = False  # forward's choice, for backward
        self._slices: list[slice] = []  # forward's shards, for backward

    def describe(self, training: bool = True) -> list[str]:
        """For each layer, the operation that computes it, e.g. 'conv+relu+max_pool (0-1)'."""
        names, first = [], 0
        for op in plan_ops(self.layers, training):
            last = first + len(op.layers) - 1
            where = f" ({first}-{last})" if last > first else ""
            names += [op.name + where] * len(op.layers)
            first = last + 1
        return names

    def shard_slices(self, shape: tuple[int, ...], training: bool) -> list[slice]:
        """threads.shard_slices for a batch of `shape` (n, ...) through these layers (their
        weights, a sample's multiply-adds, and whether every convolution runs in blocks:
        on the im2col engine)."""
        weights = sum(array.size for layer in self.layers for array in layer.params().values())
        convolutions = [layer for layer in self.layers if isinstance(layer, ConvLayer)]
        blocked = bool(convolutions) and all(engine_of(layer) == "im2col"
                                             for layer in convolutions)
        return threads.shard_slices(shape[0], training, weights,
                                    _multiply_adds(self.layers, shape[1:]), blocked)

    def steps(self, ops: list[Op], X: np.ndarray, training: bool, whole_last: bool,
              shards: int) -> list[tuple[str, list[Op]]]:
        """The operations as steps (how, ops) for the batch X in `shards` shards
        (shard_slices):

            "whole"   one operation on the whole batch;
            "shards"  consecutive per-sample operations, shard by shard on the
                      thread pool, each shard with its own copies of them;
            "joint"   a JointOp (BatchNorm while training, alone or in a fused
                      block), given the shards together.

        A stretch of "shards" and "joint" operations is cut into shards only if
        one of its samples is large (threads.large_sample), counting every
        layer's output inside a fused operation: dense layers on short vectors
        stay whole.  whole_last: the last layer sees the whole
        batch (the loss needs all of it).
        """
        if shards == 1:
            return [("whole", [op]) for op in ops]
        size = math.prod(X.shape[1:])
        sizes, peaks = _sample_sizes(ops, X.shape[1:])
        steps: list[tuple[str, list[Op]]] = []
        stretch: list[Op] = []
        largest = 0
        for i, op in enumerate(ops + [None]):  # None: the end, closes a stretch
            last = whole_last and i == len(ops) - 1
            joint = op is not None and op.joint
            if op is not None and not last and (joint or per_sample(op, training)):
                largest = max(largest, size, peaks[i])
                stretch.append(op)
            else:
                if stretch and threads.large_sample(largest):
                    for other in stretch:
                        if other.joint:
                            steps.append(("joint", [other]))
                        elif steps and steps[-1][0] == "shards":
                            steps[-1][1].append(other)
                        else:
                            steps.append(("shards", [other]))
                else:
                    steps += [("whole", [other]) for other in stretch]
                stretch, largest = [], 0
                if op is not None:
                    steps.append(("whole", [op]))
            if op is not None:
                size = sizes[i]
        return steps

    def forward(self, X: np.ndarray, training: bool, whole_last: bool = True) -> np.ndarray:
        """X (n, ...) -> the last layer's output (n, k), every layer in `training` mode.

        Needs every layer built (the Net's first pass, on the plain loop, builds
        them).  BLAS runs on one thread in a pass with shards, blocks on the thread pool or
        large samples (_one_blas_thread).
        """
        ops = plan_ops(self.layers, training)
        slices = self.shard_slices(X.shape, training)
        plan = self.steps(ops, X, training, whole_last, len(slices))
        for how, run in plan:  # what the layers cache is not what these ops compute
            for op in run:
                if how != "whole" or not isinstance(op, Reference):
                    for layer in op.layers:
                        _forget(layer)
        threads.keep_freed_memory()
        tape: list[tuple[str, list[Op], list[list[Op]]]] = []
        A: np.ndarray | list[np.ndarray] = X
        self._one_blas_thread = _one_blas_thread(ops, plan, X.shape)
        with threads.blas_for_pass(self._one_blas_thread):
            for how, run in plan:
                if how == "whole":
                    A = run[0].forward(_whole(A), training)
                    tape.append((how, run, [run]))
                    continue
                parts = A if isinstance(A, list) else [A[s] for s in slices]
                if how == "joint":
                    A = run[0].forward_parts(parts)
                    tape.append((how, run, [run]))
                    continue
                shards = [[op.for_shard() for op in run] for _ in slices]
                A = threads.run_all([partial(_forward_through, ops, part, training)
                                     for ops, part in zip(shards, parts, strict=True)])
                tape.append((how, run, shards))
        self._tape, self._slices = (tape, slices) if training else ([], [])
        return _whole(A)

    def backward(self, dZ: np.ndarray) -> None:
        """From dZ of the last layer (whole batch) back to the first layer, after
        forward(training=True); stores each layer's gradients (the shards' added in
        shard order)."""
        slices = self._slices
        first = _first_learner(self.layers)
        with threads.blas_for_pass(self._one_blas_thread):
            dA: np.ndarray | list | None = self.layers[-1].backpropagate_dZ(dZ)
            owned = True
            for how, run, shards in reversed(self._tape[:-1]):
                # Operations before the first layer that learns get no gradient: nothing
                # there would use it (the input's gradient, a Flat layer's).
                skip = _before(run, first, self.layers)
                if skip == len(run):
                    break
                run, shards = run[skip:], [ops[skip:] for ops in shards]
                need_dx = [first not in op.layers for op in run]
                if how == "whole":
                    dA = run[0].backward(_whole(dA), owned, need_dx[0])
                    if not isinstance(run[0], Reference):  # a Reference's layer has them
                        _store(run[0].layers, run[0].gradients())
                elif how == "joint":
                    parts = dA if isinstance(dA, list) else [dA[s] for s in slices]
                    dA = run[0].backward_parts(parts, owned, need_dx[0])
                    _store(run[0].layers, run[0].gradients())
                else:
                    parts = dA if isinstance(dA, list) else [dA[s] for s in slices]
                    dA = threads.run_all([partial(_backward_through, ops, part, owned, need_dx)
                                          for ops, part in zip(shards, parts, strict=True)])
                    for k, op in enumerate(run):
                        _store(op.layers, _add_shards([ops[k].gradients() for ops in shards]))
                owned = _owned_after(run, owned)
        self._tape = []


def _one_blas_thread(ops: list[Op], plan: list, shape: tuple[int, ...]) -> bool:
    """Whether a pass of `plan` (FastPath.steps) on a batch of `shape` runs BLAS on one
    thread (threads.blas_for_pass): when it uses the thread pool for shards, when one of
    its samples is large (threads.large_sample), or when an operation cuts its work into
    blocks for the pool (asked last: it plans the operation's blocks).  Between the
    products of a pass with large samples this thread spends long in elementwise
    steps, while BLAS's idle threads spin and take the other cores: seen to make a pass
    two to four times slower, in some processes and not others.  Its operations cut
    their large products into blocks for the pool instead.  A function of the shapes
    only."""
    if any(how != "whole" for how, _ in plan):
        return True
    if threads.large_sample(max(math.prod(shape[1:]), *_sample_sizes(ops, shape[1:])[1])):
        return True
    return any(op.on_threads(s) for op, s in zip(ops, _inputs(ops, shape), strict=True))


def _sample_sizes(ops: list[Op], shape: tuple[int, ...]) -> tuple[list[int], list[int]]:
    """For a sample of `shape` through the operations: the numbers in each one's output,
    and in the largest output of a layer inside each one."""
    sizes, peaks = [], []
    for op in ops:
        peak = 0
        for layer in op.layers:
            shape = layer.output_shape(shape)
            peak = max(peak, math.prod(shape))
        sizes.append(math.prod(shape))
        peaks.append(peak)
    return sizes, peaks


def _multiply_adds(layers: list[Layer], shape: tuple[int, ...]) -> int:
    """The multiply-adds of one sample of `shape`'s forward pass through the layers' weight
    arrays W: for each, its output positions (all axes but the last) times W's size (a
    convolution's fw * fw * c * nf, a dense layer's outputs * (inputs + 1), its bias
    column included)."""
    total = 0
    for layer in layers:
        shape = layer.output_shape(shape)
        W = layer.params().get("W")
        if W is not None and W.ndim > 1:
            total += math.prod(shape[:-1]) * W.size
    return total


def _inputs(ops: list[Op], shape: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The shape of each operation's input, for a batch of `shape`."""
    shapes = []
    for op in ops:
        shapes.append(shape)
        for layer in op.layers:
            shape = (shape[0], *layer.output_shape(shape[1:]))
    return shapes


def _first_learner(layers: list[Layer]) -> Layer:
    """The first layer whose input gradient's path matters: one with parameters, or a
    layer the fast path does not know (a user's, which may want its gradient)."""
    for layer in layers:
        if layer.params() or type(layer) not in PER_SAMPLE | PASS_GRADIENT | {BatchNorm}:
            return layer
    return layers[-1]


def _before(run: list[Op], first: Layer, layers: list[Layer]) -> int:
    """How many of the run's operations (in forward order) come wholly before `first`."""
    index = {id(layer): i for i, layer in enumerate(layers)}
    return sum(index[id(op.layers[-1])] < index[id(first)] for op in run)


def _forget(layer: Layer) -> None:
    for name in CACHES:
        if name in vars(layer):
            setattr(layer, name, None)


def _store(layers: tuple[Layer, ...], gradients: list[dict[str, np.ndarray]]) -> None:
    """Give the layers the gradients an operation computed: gradients[i] holds layer i's,
    by attribute name (dW, db, ...)."""
    for layer, grads in zip(layers, gradients, strict=True):
        for name, grad in grads.items():
            setattr(layer, name, grad)


def _add_shards(per_shard: list[list[dict[str, np.ndarray]]]) -> list[dict[str, np.ndarray]]:
    """One operation's gradients from every shard -> their sums, added in shard order
    (into the first shard's arrays)."""
    total = per_shard[0]
    for other in per_shard[1:]:
        for grads, more in zip(total, other, strict=True):
            for name, grad in grads.items():
                grad += more[name]
    return total


def _owned_after(ops: list[Op], owned: bool) -> bool:
    """Whether the gradient out of a run of ops, backwards, may be overwritten."""
    for op in reversed(ops):
        owned = op.new_gradient or (owned and op.passes_gradient)
    return owned


def _whole(A: np.ndarray | list[np.ndarray]) -> np.ndarray:
    """A batch given whole or as shards, whole."""
    return np.concatenate(A) if isinstance(A, list) else A


def _forward_through(ops: list[Op], A: np.ndarray, training: bool) -> np.ndarray:
    for op in ops:
        A = op.forward(A, training)
    return A


def _backward_through(ops: list[Op], dA: np.ndarray, owned: bool,
                      need_dx: list[bool]) -> np.ndarray | None:
    for op, need in zip(reversed(ops), reversed(need_dx), strict=True):
        dA = op.backward(dA, owned, need)
        owned = _owned_after([op], owned)
    return dA
