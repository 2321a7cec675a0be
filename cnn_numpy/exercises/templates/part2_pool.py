"""Part 2 of 3: pooling.  Max pooling, then average pooling, forward and backward, with
the two helpers the backward passes use.  Check your work with

    cnn-numpy check THIS_FOLDER

A pooling layer slides an fw x fw window over each channel on its own, with a
stride s, and keeps one number per window (no weights, no sum over channels):

    x   (n, ih, iw, c)   ->   A (n, oh, ow, c),   oh = (ih - fw) // s + 1

Only NumPy is needed, and this file must not import the other two.  The
reference answer is cnn_numpy/engines/naive.py; try on your own first.
"""

from __future__ import annotations

import numpy as np


def max_pool_forward(x: np.ndarray, fw: int, stride: int) -> tuple[np.ndarray, object]:
    """The largest number of each window, channel by channel.

    x        (n, ih, iw, c)
    fw       int, the window's width and height
    stride   int >= 1
    returns  (A, cache)
        A      (n, oh, ow, c) with the dtype of x, oh = (ih - fw) // stride + 1
        cache  whatever max_pool_backward will need, e.g. (x, fw, stride)

        A[i, h, w, k] = max of x[i, h*s : h*s + fw, w*s : w*s + fw, k]

    Hint: four loops (i, h, w and the channel k) and np.max of one window, as in
    conv_forward; create A with np.zeros(..., dtype=x.dtype).
    """
    raise NotImplementedError("write max_pool_forward")


def create_mask_from_window(window: np.ndarray) -> np.ndarray:
    """Where the maximum of one window is.

    window   (fw, fw), one channel of one window
    returns  (fw, fw) of booleans: True at the maximum, False everywhere else

    Only the maximum moved the output of max pooling, so only it gets gradient
    back.  When the maximum appears more than once, mark only its first place in
    row-major order (row by row, left to right), as PyTorch and the network's
    engines do:

        1 3      False False          5 1      True  False
        4 2  ->  True  False          5 0  ->  False False

    Hint: compare the window with its maximum using ==.  np.argmax gives the
    first maximum's place in the flattened window, and np.unravel_index turns
    it into (row, column).
    """
    raise NotImplementedError("write create_mask_from_window")


def max_pool_backward(dout: np.ndarray, cache: object) -> np.ndarray:
    """The gradient of max pooling: each window's gradient goes to its maximum.

    dout     (n, oh, ow, c), the gradient of the output A
    cache    what your max_pool_forward returned
    returns  dx, the shape of x and the dtype of dout

    For every (i, h, w, k), with the window of the forward pass:

        dx[i, h*s : h*s + fw, w*s : w*s + fw, k]  +=  mask * dout[i, h, w, k]

    where mask = create_mask_from_window(that window of x).

    Hints: start dx from zeros and add (+=): with a stride smaller than fw
    the windows overlap and a pixel can be the maximum of several of them.
    Use the stride as in the forward pass.
    """
    raise NotImplementedError("write max_pool_backward")


def avg_pool_forward(x: np.ndarray, fw: int, stride: int) -> tuple[np.ndarray, object]:
    """The mean of each window, channel by channel.

    x        (n, ih, iw, c)
    returns  (A, cache): A (n, oh, ow, c) with the dtype of x; cache for the backward pass

        A[i, h, w, k] = (sum of x[i, h*s : h*s + fw, w*s : w*s + fw, k]) / (fw * fw)

    Hint: as max_pool_forward, with np.mean instead of np.max.
    """
    raise NotImplementedError("write avg_pool_forward")


def distribute_value(dz: float, shape: tuple[int, int]) -> np.ndarray:
    """Spread one window's gradient evenly over the window.

    dz       a number, the gradient of one output of average pooling
    shape    (fw, fw), the window's shape
    returns  an array of that shape, every element dz / (fw * fw)

    Each of the fw * fw inputs counted 1 / (fw * fw) in the mean, so each gets
    that share of dz back.  For dz = 2 and shape (2, 2):

        0.5 0.5
        0.5 0.5

    Hint: np.full, or np.ones(shape) times the share.
    """
    raise NotImplementedError("write distribute_value")


def avg_pool_backward(dout: np.ndarray, cache: object) -> np.ndarray:
    """The gradient of average pooling.

    dout     (n, oh, ow, c)
    cache    what your avg_pool_forward returned
    returns  dx, the shape of x and the dtype of dout

    For every (i, h, w, k):

        dx[i, h*s : h*s + fw, w*s : w*s + fw, k]  +=  distribute_value(dout[i, h, w, k],
                                                                       (fw, fw))

    Hint: the same loops as max_pool_backward, with the even share instead of the
    mask; add, since windows may overlap.
    """
    raise NotImplementedError("write avg_pool_backward")
