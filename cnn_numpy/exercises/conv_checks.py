"""The checks of part 1: zero_pad, conv_single_step, conv_forward, conv_backward.  The
reference is the naive engine, on the input padded here."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..engines import naive
from .base import (
    ADDED_ONTO_INPUT,
    AVERAGED,
    BIAS_EVERY,
    STRIDE_BACKWARD,
    STRIDE_FORWARD,
    WRITTEN,
    Case,
    Check,
    Mistake,
)
from .outputs import pair
from .passes import BackwardCheck


def pad(x: np.ndarray, p: int, before: int | None = None,
        axes: tuple[int, ...] = (1, 2)) -> np.ndarray:
    """x with p zeros after (and `before`, default p, before) each of `axes`."""
    widths = [(0, 0)] * x.ndim
    for axis in axes:
        widths[axis] = (p if before is None else before, p)
    return np.pad(x, widths)


def unpad(dx: np.ndarray, p: int) -> np.ndarray:
    return dx[:, p : dx.shape[1] - p, p : dx.shape[2] - p]


def tenths(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    """Random numbers from -2 to 2 in steps of 0.1: easy to read in an example."""
    return rng.integers(-20, 21, shape) / 10.0


def grid(*rows: list[float]) -> np.ndarray:
    """One image of one channel, (1, h, w, 1), from its rows."""
    return np.array(rows, dtype=np.float64)[None, :, :, None]


def filters(*rows: list[float]) -> np.ndarray:
    """One filter for one channel, (fw, fw, 1, 1), from its rows."""
    return np.array(rows, dtype=np.float64)[:, :, None, None]


class ZeroPad(Check):
    name = "zero_pad"
    outputs = ("Xp",)
    layouts = {"X": "nhwc", "Xp": "nhwc"}
    dtypes = {"Xp": "X"}

    def hand_cases(self) -> list[Case]:
        return [Case({"X": grid([1, 2], [3, 4]), "pad": 1}, hand=True),
                Case({"X": grid([1, 2, 3]), "pad": 2}, hand=True)]

    def random_cases(self, rng: np.random.Generator) -> list[Case]:
        return [Case({"X": tenths(rng, shape), "pad": p})
                for shape, p in (((1, 2, 2, 2), 0), ((2, 3, 4, 2), 1), ((2, 4, 3, 3), 2))]

    def reference(self, case: Case) -> tuple:
        return (pad(case["X"], case["pad"]),)

    def mistakes(self) -> tuple[Mistake, ...]:
        return (Mistake("every axis is padded, the batch and channel axes too: pad only the "
                        "height and the width", lambda c: (np.pad(c["X"], c["pad"]),)),
                Mistake("only one side is padded: pad rows go above and below, pad columns "
                        "left and right", lambda c: (pad(c["X"], c["pad"], before=0),)),
                Mistake("only the height is padded, not the width",
                        lambda c: (pad(c["X"], c["pad"], axes=(1,)),)))


class ConvSingleStep(Check):
    name = "conv_single_step"
    outputs = ("Z",)
    layouts = {"window": "hwc", "W": "hwc"}

    def hand_cases(self) -> list[Case]:
        return [Case({"window": np.array([[1.0, 2], [3, 4]])[:, :, None],
                      "W": np.array([[1.0, 0], [0, -1]])[:, :, None], "b": 0.5}, hand=True),
                Case({"window": np.array([[2.0, 0, 1], [1, 1, 0], [0, 3, 1]])[:, :, None],
                      "W": np.array([[1.0, 1, 0], [0, 2, 0], [1, 0, -1]])[:, :, None],
                      "b": -2.0}, hand=True)]

    def random_cases(self, rng: np.random.Generator) -> list[Case]:
        return [Case({"window": tenths(rng, (fw, fw, c)), "W": tenths(rng, (fw, fw, c)),
                      "b": float(tenths(rng, ()))})
                for fw, c in ((2, 1), (3, 2), (3, 4))]

    def reference(self, case: Case) -> tuple:
        return (float(np.sum(case["window"] * case["W"]) + case["b"]),)

    def run(self, call: Callable, case: Case) -> tuple:
        value = call(self.name, case["window"], case["W"], case["b"])
        return (value if np.size(value) != 1 else float(np.ravel(value)[0]),)

    def mistakes(self) -> tuple[Mistake, ...]:
        def products(c: Case) -> np.ndarray:
            return c["window"] * c["W"]

        return (Mistake(BIAS_EVERY, lambda c: (float(np.sum(products(c) + c["b"])),)),
                Mistake("the bias b is missing: add it once, to the sum",
                        lambda c: (float(np.sum(products(c))),)),
                Mistake("the products are not summed: np.sum(window * W) is one number",
                        lambda c: (products(c) + c["b"],)))


CONV_LAYOUTS = {"x": "nhwc", "W": "hwcf", "Z": "nhwc", "dZ": "nhwc", "dx": "nhwc",
                "dW": "hwcf"}


def conv_cases(rng: np.random.Generator) -> list[Case]:
    """Random conv cases, smallest first: (x shape, fw, filters, stride, pad)."""
    cases = []
    for shape, fw, nf, s, p in (((1, 4, 4, 2), 2, 2, 1, 0), ((1, 5, 5, 1), 3, 2, 2, 1),
                                ((2, 5, 6, 3), 3, 4, 1, 1), ((2, 7, 7, 2), 3, 3, 2, 0),
                                ((2, 7, 5, 3), 3, 4, 2, 1)):
        cases.append(Case({"x": tenths(rng, shape), "W": tenths(rng, (fw, fw, shape[3], nf)),
                           "b": tenths(rng, (nf,)), "stride": s, "pad": p}))
    return cases


CONV_HAND = (  # x, W, b, stride, pad
    (grid([1, 2, 3], [4, 5, 6], [7, 8, 9]), filters([1, 2], [0, -1]), [1.0], 1, 0),
    (grid(*np.arange(1.0, 26).reshape(5, 5)), filters([1, 0, 0], [0, 1, 0], [0, 0, 1]), [0.0],
     2, 0),
    (grid([1, 2], [3, 4]), filters([1, 1], [1, 1]), [0.0], 1, 1),
)


def conv_hand_case(index: int, **extra: object) -> Case:
    x, W, b, s, p = CONV_HAND[index]
    return Case({"x": x, "W": W, "b": np.array(b), "stride": s, "pad": p, **extra}, hand=True)


def reference_Z(case: Case) -> np.ndarray:
    return naive.conv_forward(pad(case["x"], case["pad"]), case["W"], case["b"],
                              case["stride"])[0]


class ConvForward(Check):
    name = "conv_forward"
    outputs = ("Z",)
    layouts = CONV_LAYOUTS
    dtypes = {"Z": "x"}

    def hand_cases(self) -> list[Case]:
        return [conv_hand_case(i) for i in range(len(CONV_HAND))]

    def random_cases(self, rng: np.random.Generator) -> list[Case]:
        return conv_cases(rng)

    def reference(self, case: Case) -> tuple:
        return (reference_Z(case),)

    def run(self, call: Callable, case: Case) -> tuple:
        return (pair(call(self.name, *(case[p] for p in self.exercise.call)), self.name,
                     "Z")[0],)

    def mistakes(self) -> tuple[Mistake, ...]:
        def stride_one(c: Case) -> tuple:
            oh, ow = reference_Z(c).shape[1:3]
            return (naive.conv_forward(pad(c["x"], c["pad"]), c["W"], c["b"], 1)[0][:, :oh, :ow],)

        def bias_every(c: Case) -> tuple:
            fw, _, channels, _ = c["W"].shape
            return (reference_Z(c) + c["b"] * (fw * fw * channels - 1),)

        return (Mistake(BIAS_EVERY, bias_every),
                Mistake("the bias is missing: Z gets b[f] once per window",
                        lambda c: (reference_Z(c) - c["b"],)),
                Mistake(STRIDE_FORWARD, stride_one),
                Mistake("pad is ignored: put the zeros around x first (zero_pad) and slide "
                        "the windows over the padded input",
                        lambda c: (naive.conv_forward(c["x"], c["W"], c["b"], c["stride"])[0],)),
                Mistake("the filter is turned around (W[::-1, ::-1]): a CNN's convolution "
                        "multiplies window[p, q] by W[p, q], unflipped",
                        lambda c: (reference_Z(Case({**c.inputs, "W": c["W"][::-1, ::-1]})),)),
                Mistake("the output is one row and one column short: oh = (ih + 2 * pad - fw) "
                        "// stride + 1", lambda c: (reference_Z(c)[:, :-1, :-1],)))


def conv_grads(case: Case, step: int | None = None, write: str | None = None) -> tuple:
    """(dx, dW, db) by loops; step replaces the stride (how far windows start apart) and
    write is None (add), "all" (every gradient written) or "window" (dx written once per
    window, summed over the filters)."""
    xp, W, dZ = pad(case["x"], case["pad"]), case["W"], case["dZ"]
    s = case["stride"] if step is None else step
    fw, nf = W.shape[0], W.shape[3]
    dxp, dW, db = np.zeros_like(xp), np.zeros_like(W), np.zeros(nf)
    for i, h, w in np.ndindex(dZ.shape[:3]):
        rows, cols = slice(h * s, h * s + fw), slice(w * s, w * s + fw)
        if write == "window":
            dxp[i, rows, cols] = W @ dZ[i, h, w]
        for f in range(nf):
            g = dZ[i, h, w, f]
            if write == "all":
                dxp[i, rows, cols] = W[..., f] * g
                dW[..., f], db[f] = xp[i, rows, cols] * g, g
                continue
            if write is None:
                dxp[i, rows, cols] += W[..., f] * g
            dW[..., f] += xp[i, rows, cols] * g
            db[f] += g
    return unpad(dxp, case["pad"]), dW, db


class ConvBackward(BackwardCheck):
    name = "conv_backward"
    outputs = ("dx", "dW", "db")
    layouts = CONV_LAYOUTS
    dtypes = {"dx": "dZ", "dW": "dZ", "db": "dZ"}
    upstream = "dZ"
    gradient_of = {"dx": "x", "dW": "W", "db": "b"}

    def hand_cases(self) -> list[Case]:
        return [conv_hand_case(0, dZ=grid([1, 2], [3, 4])),
                conv_hand_case(1, dZ=grid([1, 2], [3, 4])),
                conv_hand_case(2, dZ=grid([1, 2, 3], [4, 5, 6], [7, 8, 9]))]

    def random_cases(self, rng: np.random.Generator) -> list[Case]:
        cases = conv_cases(rng)
        for case in cases:
            case.inputs["dZ"] = tenths(rng, reference_Z(case).shape)
        return cases

    def reference(self, case: Case) -> tuple:
        dxp, dW, db = naive.conv_backward(case["dZ"], (pad(case["x"], case["pad"]), case["W"],
                                                       case["stride"]))
        return unpad(dxp, case["pad"]), dW, db

    def mistakes(self) -> tuple[Mistake, ...]:
        def padding_left(c: Case) -> tuple:
            dxp, dW, db = naive.conv_backward(c["dZ"], (pad(c["x"], c["pad"]), c["W"],
                                                        c["stride"]))
            return dxp, dW, db

        def onto_x(c: Case) -> tuple:
            dx, dW, db = self.reference(c)
            return dx + c["x"], dW, db

        def averaged(c: Case) -> tuple:
            dx, dW, db = self.reference(c)
            return dx, dW / len(c["x"]), db / len(c["x"])

        return (Mistake(STRIDE_BACKWARD, lambda c: conv_grads(c, step=1)),
                Mistake("the padding is left on the input gradient: cut pad rows and columns "
                        "from each side of dxp, so that dx has the shape of x", padding_left),
                Mistake(WRITTEN, lambda c: conv_grads(c, write="all")),
                Mistake(WRITTEN, lambda c: conv_grads(c, write="window")),
                Mistake(ADDED_ONTO_INPUT, onto_x),
                Mistake(AVERAGED, averaged))
