"""Every engine computes what the naive loops compute, forward and backward (hypothesis)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnn_numpy.engines import DEFAULT_ENGINE, ENGINES, check_engine, get_engine, naive
from cnn_numpy.engines.stride_groups import plan_stride_groups

FAST = [name for name in ENGINES if name != "naive"]
TOL = {np.float64: dict(rtol=1e-10, atol=1e-10), np.float32: dict(rtol=1e-4, atol=1e-4)}


@st.composite
def sweeps(draw, channels_out=True):
    """(x, fw, stride, nf, dtype): a random sweep with the window fitting the input."""
    fw = draw(st.integers(1, 5))
    stride = draw(st.integers(1, 4))
    n = draw(st.integers(1, 3))
    ih = draw(st.integers(fw, fw + 7))
    iw = draw(st.integers(fw, fw + 7))
    c = draw(st.integers(1, 3))
    nf = draw(st.integers(1, 3))
    dtype = draw(st.sampled_from([np.float64, np.float32]))
    seed = draw(st.integers(0, 2**32 - 1))
    x = np.random.default_rng(seed).standard_normal((n, ih, iw, c)).astype(dtype)
    return x, fw, stride, nf, dtype, seed


def assert_close(actual, expected, dtype):
    scale = max(float(np.abs(expected).max()), 1.0)
    tol = TOL[dtype]
    np.testing.assert_allclose(actual, expected, rtol=tol["rtol"], atol=tol["atol"] * scale)


@pytest.mark.parametrize("engine", FAST)
@settings(max_examples=100, deadline=None)
@given(sweep=sweeps())
def test_conv_engines_agree(engine, sweep):
    x, fw, stride, nf, dtype, seed = sweep
    rng = np.random.default_rng(seed + 1)
    W = rng.standard_normal((fw, fw, x.shape[3], nf)).astype(dtype)
    b = rng.standard_normal(nf).astype(dtype)
    fast = get_engine(engine)
    Z_ref, cache_ref = naive.conv_forward(x, W, b, stride)
    Z, cache = fast.conv_forward(x, W, b, stride)
    assert Z.shape == Z_ref.shape and Z.dtype == dtype
    assert_close(Z, Z_ref, dtype)
    dZ = rng.standard_normal(Z.shape).astype(dtype)
    for got, want in zip(fast.conv_backward(dZ, cache), naive.conv_backward(dZ, cache_ref),
                         strict=True):
        assert got.shape == want.shape and got.dtype == dtype
        assert_close(got, want, dtype)


@pytest.mark.parametrize("engine", FAST)
@pytest.mark.parametrize("kind", ["max", "avg"])
@settings(max_examples=100, deadline=None)
@given(sweep=sweeps(), ties=st.booleans())
def test_pool_engines_agree(engine, kind, sweep, ties):
    x, fw, stride, _, dtype, seed = sweep
    if ties:  # few distinct values, many zeros: ties in most windows, as after a ReLU
        x = np.maximum(np.round(x), 0).astype(dtype)
    fast = get_engine(engine)
    forward, backward = f"{kind}_pool_forward", f"{kind}_pool_backward"
    out_ref, cache_ref = getattr(naive, forward)(x, fw, stride)
    out, cache = getattr(fast, forward)(x, fw, stride)
    assert out.shape == out_ref.shape and out.dtype == dtype
    assert_close(out, out_ref, dtype)
    dout = np.random.default_rng(seed + 2).standard_normal(out.shape).astype(dtype)
    dx_ref = getattr(naive, backward)(dout, cache_ref)
    dx = getattr(fast, backward)(dout, cache)
    assert dx.shape == x.shape and dx.dtype == dtype
    if kind == "max":  # the same element receives the same gradient: equal up to sum order
        assert np.array_equal(dx != 0, dx_ref != 0)
    assert_close(dx, dx_ref, dtype)


@pytest.mark.parametrize("engine", list(ENGINES))
def test_max_pool_ties_go_to_first_maximum(engine):
    """A window of equal values sends all its gradient to its top-left element."""
    x = np.zeros((1, 4, 4, 1))
    x[0, 2:, 2:, 0] = [[3, 3], [3, 3]]
    x[0, 0, 1, 0] = 5
    x[0, 1, 0, 0] = 5
    eng = get_engine(engine)
    out, cache = eng.max_pool_forward(x, 2, 2)
    dx = eng.max_pool_backward(np.ones_like(out), cache)
    expected = np.zeros((4, 4))
    expected[0, 1] = 1  # first of the two 5s in row-major order
    expected[0, 2] = 1  # all-zero window: its first element
    expected[2, 0] = 1
    expected[2, 2] = 1  # all-3 window
    np.testing.assert_array_equal(dx[0, :, :, 0], expected)


@pytest.mark.parametrize("fw,stride", [(1, 1), (2, 1), (3, 1), (3, 2), (5, 3), (2, 2), (2, 5)])
@pytest.mark.parametrize("out_size", [1, 2, 5, 13])
def test_stride_groups_cover_every_position_once_without_overlap(fw, stride, out_size):
    plan = plan_stride_groups(fw, stride, out_size, out_size)
    every = -(-fw // stride)
    assert len(plan.groups) <= every**2
    seen = []
    for g in plan.groups:
        rows = [g.row + plan.every * i for i in range(g.rows)]
        cols = [g.col + plan.every * j for j in range(g.cols)]
        cells = set()
        for r in rows:
            for q in cols:
                window = {(r * stride + a, q * stride + b) for a in range(fw) for b in range(fw)}
                assert not cells & window, "windows in one group overlap"
                cells |= window
        seen += [(r, q) for r in rows for q in cols]
    assert sorted(seen) == [(r, q) for r in range(out_size) for q in range(out_size)]


def test_unknown_engine_is_a_value_error():
    with pytest.raises(ValueError, match="unknown engine 'fast'.*naive"):
        check_engine("fast")
    assert get_engine(None) is ENGINES[DEFAULT_ENGINE]
    assert get_engine("naive") is naive


def test_every_engine_has_the_six_functions_of_the_interface():
    """engines/__init__.py's interface, parameters included: the engines are the plain
    maths, with no flag for the fast path (whose own versions are in cnn_numpy/fast/)."""
    import inspect

    interface = {"conv_forward": ["x", "W", "b", "stride"], "conv_backward": ["dZ", "cache"],
                 "max_pool_forward": ["x", "fw", "stride"],
                 "max_pool_backward": ["dout", "cache"],
                 "avg_pool_forward": ["x", "fw", "stride"],
                 "avg_pool_backward": ["dout", "cache"]}
    for name, module in ENGINES.items():
        for function, parameters in interface.items():
            assert list(inspect.signature(getattr(module, function)).parameters) == \
                parameters, f"{name}.{function}"
