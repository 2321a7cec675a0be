"""The fast path: how a Net runs the reference layers quickly.

The layers (cnn_numpy/layers/) and the engines' math are the reference, and
Net(fast=False) runs them as they are.  Net(...) by default plans instead
how to run the same layers faster, and is tested to give the same numbers:

    path.py       plans the operations for a Net's layers, cuts batches into
                  shards for the thread pool, and hands the layers their
                  gradients after a step;
    ops.py        the operations: conv (+ ReLU) + max pool fused, a ReLU taken
                  over by the max pool after it, dense and conv layers that
                  overwrite arrays only they hold and skip the first layer's
                  input gradient; any other layer runs as its own passes;
    conv_pool.py  a convolution's output arranged by max-pool window element;
    im2col.py, stride_groups.py
                  the engines' convolution and max pooling, with two flags the
                  engines do without: no input gradient where nobody needs it, no
                  search for where each maximum is in prediction;
    columns.py    the window arithmetic they share: the window copy in the memory
                  order that gives it long runs, pooling in place on small integers,
                  np.dot (which lets go of Python's lock), and thin weight gradients
                  summed in fixed chunks (the same bits on any thread count);
    batchnorm.py  BatchNorm's training passes on the shards of one batch, alone
                  or fused with the conv before it and the ReLU and max pool
                  after it (the deep network's blocks);
    threads.py    the worker threads, the shards and BLAS's thread count.

What it may do: fuse shipped layers, reuse and overwrite arrays it owns,
run shards on threads, pick the threads.  What it may not: put a flag or
a fast branch into a layer, change the naive engine's layers (they always
run as their own passes), or run a user's layer any other way than through
its own forward_propagate and backpropagate.
"""

from .path import FastPath

__all__ = ["FastPath"]
