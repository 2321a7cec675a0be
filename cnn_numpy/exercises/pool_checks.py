"""The checks of part 2: max and average pooling, forward and backward, and the helpers
create_mask_from_window and distribute_value.  The reference is the naive engine."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..engines import naive
from .base import (
    DIVIDED_BY_FW,
    NOT_DIVIDED,
    STRIDE_BACKWARD,
    STRIDE_FORWARD,
    WRITTEN,
    Case,
    Check,
    Mistake,
)
from .conv_checks import grid, tenths
from .outputs import pair
from .passes import BackwardCheck

POOL_LAYOUTS = {"x": "nhwc", "A": "nhwc", "dout": "nhwc", "dx": "nhwc"}
GREATER = ("the mask is taken with > instead of == against the maximum: no element is greater "
           "than the maximum, so the mask is all False and no gradient gets through")
ALL_TIES = ("every place of a repeated maximum is marked: mark only the first one (row by row), "
            "or the gradient is counted once for each")

POOL_HAND = (  # x, fw, stride: non-overlapping, overlapping, a repeated maximum
    (grid([1, 3, 2, 9], [4, 2, 0, 1], [5, 6, 1, 1], [7, 8, 3, 2]), 2, 2),
    (grid([1, 5, 2], [3, 4, 9], [6, 0, 7]), 2, 1),
    (grid([7, 7], [1, 7]), 2, 2),
)


def pool_hand_cases(with_dout: bool = False) -> list[Case]:
    cases = []
    for x, fw, s in POOL_HAND:
        case = Case({"x": x, "fw": fw, "stride": s}, hand=True)
        oh, ow = (x.shape[1] - fw) // s + 1, (x.shape[2] - fw) // s + 1
        if with_dout:
            case.inputs["dout"] = grid(*np.arange(1.0, oh * ow + 1).reshape(oh, ow))
        cases.append(case)
    return cases


def pool_cases(rng: np.random.Generator, with_dout: bool = False) -> list[Case]:
    """Random pooling cases, smallest first, every value different (no ties)."""
    cases = []
    for shape, fw, s in (((1, 4, 4, 2), 2, 2), ((1, 5, 5, 2), 3, 2), ((2, 6, 5, 3), 2, 1),
                         ((2, 7, 7, 2), 3, 3), ((2, 7, 6, 3), 3, 2)):
        x = (rng.permutation(int(np.prod(shape))).reshape(shape) - 20.0) / 4
        case = Case({"x": x, "fw": fw, "stride": s})
        if with_dout:
            oh, ow = (shape[1] - fw) // s + 1, (shape[2] - fw) // s + 1
            case.inputs["dout"] = tenths(rng, (shape[0], oh, ow, shape[3]))
        cases.append(case)
    return cases


def _windows(case: Case, step: int | None = None):
    """(i, h, w, rows, cols) of every window the output has; step replaces the stride."""
    x, fw = case["x"], case["fw"]
    s = case["stride"] if step is None else step
    oh, ow = (x.shape[1] - fw) // case["stride"] + 1, (x.shape[2] - fw) // case["stride"] + 1
    for i, h, w in np.ndindex(x.shape[0], oh, ow):
        yield i, h, w, slice(h * s, h * s + fw), slice(w * s, w * s + fw)


def first_max_mask(window: np.ndarray) -> np.ndarray:
    mask = np.zeros(window.shape, dtype=bool)
    mask[np.unravel_index(np.argmax(window), window.shape)] = True
    return mask


def pool_grads(case: Case, share: Callable, step: int | None = None, write: bool = False) -> tuple:
    """(dx,) by loops, each window giving share(window of x, its dout) to its elements."""
    x, dout = case["x"], case["dout"]
    dx = np.zeros_like(x)
    for i, h, w, rows, cols in _windows(case, step):
        for k in range(x.shape[3]):
            part = share(x[i, rows, cols, k], dout[i, h, w, k])
            if write:
                dx[i, rows, cols, k] = part
            else:
                dx[i, rows, cols, k] += part
    return (dx,)


def pooled(case: Case, reduce: Callable, step: int | None = None) -> tuple:
    """(A,) by loops, reduce(window) per window and channel."""
    x = case["x"]
    out = np.zeros(naive_out(case).shape)
    for i, h, w, rows, cols in _windows(case, step):
        out[i, h, w] = [reduce(x[i, rows, cols, k]) for k in range(x.shape[3])]
    return (out,)


def naive_out(case: Case) -> np.ndarray:
    return naive.avg_pool_forward(case["x"], case["fw"], case["stride"])[0]


class PoolForward(Check):
    outputs = ("A",)
    layouts = POOL_LAYOUTS
    dtypes = {"A": "x"}

    def hand_cases(self) -> list[Case]:
        return pool_hand_cases()

    def random_cases(self, rng: np.random.Generator) -> list[Case]:
        return pool_cases(rng)

    def run(self, call: Callable, case: Case) -> tuple:
        return (pair(call(self.name, case["x"], case["fw"], case["stride"]), self.name,
                     "A")[0],)


class MaxPoolForward(PoolForward):
    name = "max_pool_forward"

    def reference(self, case: Case) -> tuple:
        return (naive.max_pool_forward(case["x"], case["fw"], case["stride"])[0],)

    def mistakes(self) -> tuple[Mistake, ...]:
        return (Mistake(STRIDE_FORWARD, lambda c: pooled(c, np.max, step=1)),
                Mistake("it takes the mean of the window, not its maximum",
                        lambda c: pooled(c, np.mean)),
                Mistake("it takes the maximum over the channels too: pool each channel on "
                        "its own, x[i, rows, cols, k] for one k",
                        lambda c: (np.broadcast_to(self.reference(c)[0].max(axis=3,
                                                                             keepdims=True),
                                                   self.reference(c)[0].shape),)))


class AvgPoolForward(PoolForward):
    name = "avg_pool_forward"

    def reference(self, case: Case) -> tuple:
        return (naive_out(case),)

    def mistakes(self) -> tuple[Mistake, ...]:
        return (Mistake(NOT_DIVIDED, lambda c: (naive_out(c) * c["fw"] ** 2,)),
                Mistake(DIVIDED_BY_FW, lambda c: (naive_out(c) * c["fw"],)),
                Mistake(STRIDE_FORWARD, lambda c: pooled(c, np.mean, step=1)))


class CreateMask(Check):
    name = "create_mask_from_window"
    outputs = ("mask",)

    def hand_cases(self) -> list[Case]:
        windows = ([[1, 3], [4, 2]], [[5, 1], [5, 0]], [[-3, -1], [-2, -5]],
                   [[0, 2, 1], [1, 2, 0], [2, 1, 0]])
        return [Case({"window": np.array(w, dtype=np.float64)}, hand=True) for w in windows]

    def random_cases(self, rng: np.random.Generator) -> list[Case]:
        return [Case({"window": rng.permutation(fw * fw).reshape(fw, fw) / 2.0 - 3})
                for fw in (2, 3, 4)]

    def reference(self, case: Case) -> tuple:
        return (first_max_mask(case["window"]),)

    def mistakes(self) -> tuple[Mistake, ...]:
        w = "window"
        return (Mistake(GREATER, lambda c: (c[w] > c[w].max(),)),
                Mistake(ALL_TIES, lambda c: (c[w] == c[w].max(),)),
                Mistake("it marks the minimum: the maximum is what max pooling kept",
                        lambda c: (c[w] == c[w].min(),)))


class PoolBackward(BackwardCheck):
    outputs = ("dx",)
    layouts = POOL_LAYOUTS
    dtypes = {"dx": "dout"}
    upstream = "dout"
    gradient_of = {"dx": "x"}

    def hand_cases(self) -> list[Case]:
        return pool_hand_cases(with_dout=True)

    def random_cases(self, rng: np.random.Generator) -> list[Case]:
        return pool_cases(rng, with_dout=True)


class MaxPoolBackward(PoolBackward):
    name = "max_pool_backward"

    def reference(self, case: Case) -> tuple:
        return (naive.max_pool_backward(case["dout"], naive.max_pool_forward(
            case["x"], case["fw"], case["stride"])[1]),)

    def mistakes(self) -> tuple[Mistake, ...]:
        def masked(window: np.ndarray, g: float) -> np.ndarray:
            return first_max_mask(window) * g

        return (Mistake(GREATER, lambda c: (np.zeros_like(c["x"]),)),
                Mistake(STRIDE_BACKWARD, lambda c: pool_grads(c, masked, step=1)),
                Mistake(WRITTEN, lambda c: pool_grads(c, masked, write=True)),
                Mistake(ALL_TIES, lambda c: pool_grads(c, lambda v, g: (v == v.max()) * g)),
                Mistake("the whole window gets the gradient: only its maximum should (multiply "
                        "by the mask)", lambda c: pool_grads(c, lambda v, g: np.full(v.shape,
                                                                                     g))))


class DistributeValue(Check):
    name = "distribute_value"
    outputs = ("shares",)

    def hand_cases(self) -> list[Case]:
        return [Case({"dz": 2.0, "shape": (2, 2)}, hand=True),
                Case({"dz": 9.0, "shape": (3, 3)}, hand=True)]

    def random_cases(self, rng: np.random.Generator) -> list[Case]:
        return [Case({"dz": float(tenths(rng, ())), "shape": (fw, fw)}) for fw in (2, 3, 4)]

    def reference(self, case: Case) -> tuple:
        return (np.full(case["shape"], case["dz"] / np.prod(case["shape"])),)

    def mistakes(self) -> tuple[Mistake, ...]:
        return (Mistake(NOT_DIVIDED, lambda c: (np.full(c["shape"], c["dz"]),)),
                Mistake(DIVIDED_BY_FW, lambda c: (np.full(c["shape"], c["dz"] / c["shape"][0]),)))


class AvgPoolBackward(PoolBackward):
    name = "avg_pool_backward"

    def reference(self, case: Case) -> tuple:
        return (naive.avg_pool_backward(case["dout"], (case["x"].shape, case["fw"],
                                                       case["stride"])),)

    def mistakes(self) -> tuple[Mistake, ...]:
        def even(window: np.ndarray, g: float) -> np.ndarray:
            return np.full(window.shape, g / window.size)

        return (Mistake(NOT_DIVIDED, lambda c: pool_grads(c, lambda v, g: np.full(v.shape, g))),
                Mistake(DIVIDED_BY_FW, lambda c: pool_grads(c, lambda v, g: np.full(
                    v.shape, g / len(v)))),
                Mistake(STRIDE_BACKWARD, lambda c: pool_grads(c, even, step=1)),
                Mistake(WRITTEN, lambda c: pool_grads(c, even, write=True)))
