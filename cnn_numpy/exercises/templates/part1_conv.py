"""Part 1 of 3: convolution.  Write the four functions in order; after each one run

    cnn-numpy check THIS_FOLDER

which grades them in this order and stops at the first one that is not right yet,
saying what is wrong and showing the smallest example that fails.

Everything is channels last, as in the rest of cnn-numpy:

    x   (n, ih, iw, c)    a batch of n images, ih x iw pixels, c channels each
    W   (fw, fw, c, nf)   nf filters, each fw x fw x c
    b   (nf,)             one bias per filter
    Z   (n, oh, ow, nf)   the output: one map per filter

Only NumPy is needed, and this file must not import the other two (each part
stands alone).  Keep the names and parameters of the functions: the checker and
the network call them.  When you are stuck, the reference answer is cnn-numpy's
naive engine, cnn_numpy/engines/naive.py (its loops are the ones asked for
here); try on your own first.
"""

from __future__ import annotations

import numpy as np


def zero_pad(X: np.ndarray, pad: int) -> np.ndarray:
    """Put `pad` rows and columns of zeros around every image of X.

    X        (n, ih, iw, c)
    pad      int >= 0
    returns  (n, ih + 2 * pad, iw + 2 * pad, c), with the dtype of X

    Only the height and width grow; the batch and channel axes keep their sizes.
    One image, one channel, pad = 1:

        1 2          0 0 0 0
        3 4   -->    0 1 2 0
                     0 3 4 0
                     0 0 0 0

    Why: without padding every convolution shrinks the image, and the pixels
    at the border take part in fewer windows than the ones in the middle.

    Hint: np.pad takes one (before, after) pair per axis, four axes here.
    """
    raise NotImplementedError("write zero_pad")


def conv_single_step(window: np.ndarray, W: np.ndarray, b: float) -> float:
    """One number of the output: one filter applied to one window of one image.

    window   (fw, fw, c)   the part of the image under the filter
    W        (fw, fw, c)   the filter
    b        a number      the filter's bias
    returns  a number

        Z = sum over p, q, k of window[p, q, k] * W[p, q, k]   +   b

    The bias is added once, to the sum: not to each of the fw * fw * c products.

    Hint: multiply elementwise (window * W), sum everything with np.sum, add b,
    and return it as a Python float.
    """
    raise NotImplementedError("write conv_single_step")


def conv_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray, stride: int,
                 pad: int = 0) -> tuple[np.ndarray, object]:
    """The convolution of a batch: every filter over every window of every image.

    x        (n, ih, iw, c)
    W        (fw, fw, c, nf)
    b        (nf,)
    stride   int >= 1, how far the window moves from one output to the next
    pad      int >= 0, zero rows and columns put around each image first (zero_pad).
             The network's layers pad x themselves and call conv_forward(x, W, b,
             stride): keep the default pad = 0.
    returns  (Z, cache)
        Z      (n, oh, ow, nf) with the dtype of x, where
               oh = (ih + 2 * pad - fw) // stride + 1  and  ow the same with iw
        cache  whatever conv_backward will need, e.g. (xp, W, b, stride, pad)

    With xp = zero_pad(x, pad) and s = stride, output (h, w) looks at the window
    that starts at row h * s and column w * s:

        Z[i, h, w, f] = conv_single_step(xp[i, h*s : h*s + fw, w*s : w*s + fw, :],
                                         W[:, :, :, f], b[f])

    Hint: four loops, over i (the batch), h and w (the output) and f (the
    filters).  Create Z first with np.zeros((n, oh, ow, nf), dtype=x.dtype).
    """
    raise NotImplementedError("write conv_forward")


def conv_backward(dZ: np.ndarray, cache: object) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The gradients of the convolution, given dZ = dL/dZ for some loss L.

    dZ       (n, oh, ow, nf)
    cache    what your conv_forward returned
    returns  (dx, dW, db) with the shapes of x (as given to conv_forward, without
             the padding), W and b, and the dtype of dZ

    Z[i, h, w, f] was made from one window of xp and the filter W[..., f], so
    its gradient dZ[i, h, w, f] goes back to both.  For every (i, h, w, f), with
    window = [i, h*s : h*s + fw, w*s : w*s + fw, :]:

        dxp[window]     +=  W[:, :, :, f] * dZ[i, h, w, f]
        dW[:, :, :, f]  +=  xp[window]    * dZ[i, h, w, f]
        db[f]           +=  dZ[i, h, w, f]

    and dx is dxp with the padding cut off: pad rows and columns on each side.

    Hints: the windows here are the ones of the forward pass, stride included.
    Start dxp, dW and db from zeros and add (+=): when the stride is smaller
    than fw the windows overlap, and an input pixel gets gradient from each
    window it is in.  Careful with pad = 0: dxp[:, 0:-0] is empty.
    """
    raise NotImplementedError("write conv_backward")
