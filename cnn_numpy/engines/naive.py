"""The naive engine: the spec's four nested loops, kept as the readable reference.

Every output element is computed on its own: for each sample i, output row h,
output column w and filter (or channel) f, take the window of the input that
starts at (h * s, w * s) and combine it with the filter.  It is very slow, and
that is the point: each line says exactly what the layer means, and the fast
engines are tested against it.

Shapes (channels last, as everywhere in cnn_numpy):
    x   (n, ih, iw, c)    the input, already zero padded
    W   (fw, fw, c, nf)   filters
    b   (nf,)             one bias per filter
    Z   (n, oh, ow, nf)   output, oh = (ih - fw) // s + 1
"""

from __future__ import annotations

import numpy as np

from .geometry import output_size


def conv_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray,
                 stride: int) -> tuple[np.ndarray, tuple]:
    """Z[i, h, w, f] = sum(x[i, h*s:h*s+fw, w*s:w*s+fw, :] * W[..., f]) + b[f].

    Returns (Z, cache); the cache is what conv_backward needs.
    """
    n, ih, iw, _ = x.shape
    fw, nf = W.shape[0], W.shape[3]
    oh, ow = output_size(ih, fw, stride), output_size(iw, fw, stride)
    Z = np.zeros((n, oh, ow, nf), dtype=x.dtype)
    for i in range(n):
        for h in range(oh):
            for w in range(ow):
                window = x[i, h * stride : h * stride + fw, w * stride : w * stride + fw, :]
                for f in range(nf):
                    Z[i, h, w, f] = np.sum(window * W[:, :, :, f]) + b[f]
    return Z, (x, W, stride)


def conv_backward(dZ: np.ndarray, cache: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of a scalar loss L given dZ = dL/dZ, shape (n, oh, ow, nf).

    Each output element Z[i, h, w, f] used one window and one filter, so it
    hands dZ[i, h, w, f] back to both:
        dx[i, window]  += W[..., f] * dZ[i, h, w, f]
        dW[..., f]     += x[i, window] * dZ[i, h, w, f]
        db[f]          += dZ[i, h, w, f]
    Returns (dx, dW, db) with the shapes of x, W and b.
    """
    x, W, stride = cache
    n, oh, ow, nf = dZ.shape
    fw = W.shape[0]
    dx = np.zeros_like(x)
    dW = np.zeros_like(W)
    db = np.zeros(nf, dtype=W.dtype)
    for i in range(n):
        for h in range(oh):
            for w in range(ow):
                rows = slice(h * stride, h * stride + fw)
                cols = slice(w * stride, w * stride + fw)
                for f in range(nf):
                    g = dZ[i, h, w, f]
                    dx[i, rows, cols, :] += W[:, :, :, f] * g
                    dW[:, :, :, f] += x[i, rows, cols, :] * g
                    db[f] += g
    return dx, dW, db


def max_pool_forward(x: np.ndarray, fw: int, stride: int) -> tuple[np.ndarray, tuple]:
    """out[i, h, w, c] = max of x[i, h*s:h*s+fw, w*s:w*s+fw, c].

    The cache remembers, for each window, the flat row-major index of its
    FIRST maximum; the backward pass sends the whole gradient there.
    """
    n, ih, iw, c = x.shape
    oh, ow = output_size(ih, fw, stride), output_size(iw, fw, stride)
    out = np.zeros((n, oh, ow, c), dtype=x.dtype)
    argmax = np.zeros((n, oh, ow, c), dtype=np.intp)
    for i in range(n):
        for h in range(oh):
            for w in range(ow):
                for ch in range(c):
                    window = x[i, h * stride : h * stride + fw, w * stride : w * stride + fw, ch]
                    k = int(np.argmax(window))  # first maximum in row-major order
                    argmax[i, h, w, ch] = k
                    out[i, h, w, ch] = window.flat[k]
    return out, (x.shape, argmax, fw, stride)


def max_pool_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """dx: each window's gradient goes to its first maximum; shape of x."""
    x_shape, argmax, fw, stride = cache
    n, oh, ow, c = dout.shape
    dx = np.zeros(x_shape, dtype=dout.dtype)
    for i in range(n):
        for h in range(oh):
            for w in range(ow):
                for ch in range(c):
                    r, q = divmod(int(argmax[i, h, w, ch]), fw)
                    dx[i, h * stride + r, w * stride + q, ch] += dout[i, h, w, ch]
    return dx


def avg_pool_forward(x: np.ndarray, fw: int, stride: int) -> tuple[np.ndarray, tuple]:
    """out[i, h, w, c] = mean of x[i, h*s:h*s+fw, w*s:w*s+fw, c]."""
    n, ih, iw, c = x.shape
    oh, ow = output_size(ih, fw, stride), output_size(iw, fw, stride)
    out = np.zeros((n, oh, ow, c), dtype=x.dtype)
    for i in range(n):
        for h in range(oh):
            for w in range(ow):
                for ch in range(c):
                    window = x[i, h * stride : h * stride + fw, w * stride : w * stride + fw, ch]
                    out[i, h, w, ch] = np.mean(window)
    return out, (x.shape, fw, stride)


def avg_pool_backward(dout: np.ndarray, cache: tuple) -> np.ndarray:
    """dx: each window spreads its gradient evenly, dout / fw^2 per element."""
    x_shape, fw, stride = cache
    n, oh, ow, c = dout.shape
    dx = np.zeros(x_shape, dtype=dout.dtype)
    share = 1.0 / (fw * fw)
    for i in range(n):
        for h in range(oh):
            for w in range(ow):
                for ch in range(c):
                    rows = slice(h * stride, h * stride + fw)
                    cols = slice(w * stride, w * stride + fw)
                    dx[i, rows, cols, ch] += dout[i, h, w, ch] * share
    return dx
