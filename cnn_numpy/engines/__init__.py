"""Engines: interchangeable ways to compute convolution and pooling.

Every engine is a module with the same six functions:

    conv_forward(x, W, b, stride)    -> (Z, cache)
    conv_backward(dZ, cache)         -> (dx, dW, db)
    max_pool_forward(x, fw, stride)  -> (out, cache)
    max_pool_backward(dout, cache)   -> dx
    avg_pool_forward(x, fw, stride)  -> (out, cache)
    avg_pool_backward(dout, cache)   -> dx

x is the (already padded) input (n, ih, iw, c), W is (fw, fw, c, nf).
The layers own weights, padding and activations; engines only do the sums,
as plain maths.  What is there for speed, for the same bits on any number of
threads, or for Python's lock lives in the fast path (cnn_numpy/fast/:
im2col.py, stride_groups.py, columns.py), which is tested against them.
"""

from __future__ import annotations

from types import ModuleType

from . import im2col, naive, stride_groups

ENGINES: dict[str, ModuleType] = {
    "naive": naive,
    "stride_groups": stride_groups,
    "im2col": im2col,
}

DEFAULT_ENGINE = "im2col"  # the fastest (benchmarks/speed.py); all engines agree
#: The engines cnn-numpy ships.  Others are registered in ENGINES at run time (a learner's
#: own, by cnn_numpy.exercises.load_engine) and live in that process only.
SHIPPED = tuple(ENGINES)


def saved_engine(name: str | None) -> str | None:
    """The engine a model file records for `name`: a shipped one as it is, None (the
    default) for one registered at run time, whose code is not in the file."""
    return name if name in SHIPPED else None


def check_engine(name: str | None) -> str | None:
    """Return name unchanged if it is None or a known engine, else raise ValueError."""
    if name is not None and name not in ENGINES:
        known = ", ".join(sorted(ENGINES))
        raise ValueError(f"unknown engine {name!r}: choose one of {known}")
    return name


def get_engine(name: str | None) -> ModuleType:
    """The engine module called `name` (None means DEFAULT_ENGINE).

    A plain lookup, run on every pass: names are checked (check_engine) where
    they are given, by the layers' constructors and the Net's engine setter.
    """
    return ENGINES[name or DEFAULT_ENGINE]
