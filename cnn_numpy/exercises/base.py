"""What every exercise's checks share: a case (named inputs), a known mistake (what the
mistaken code would give), a failure (a headline that teaches, and the example that
shows it), comparing outputs, and printing small arrays the way a learner draws them.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable

import numpy as np

from ..testing import numerical_gradient, relative_error
from .spec import BY_NAME, Exercise

#: Random cases are float64 and compared to this relative error; numerical gradients to
#: GRADIENT_TOL.  The shape case is float32 (the network's dtype).
TOL, GRADIENT_TOL = 1e-9, 1e-6
#: 2-D slices shown per array in an example.
MAX_SLICES = 2

# Messages for the mistakes that several exercises share (the list).
BIAS_EVERY = ("the bias is added to every product of the window instead of once per window: "
              "np.sum(window * W) + b, not np.sum(window * W + b)")
STRIDE_BACKWARD = ("the stride is ignored in the backward pass: output (h, w) came from the "
                   "window that starts at (h * stride, w * stride), and its gradient goes back "
                   "there")
STRIDE_FORWARD = ("the stride is ignored: output (h, w) looks at the window that starts at row "
                  "h * stride and column w * stride, not at (h, w)")
WRITTEN = ("a gradient is written (=) where it should be added (+=): windows overlap, so an "
           "input gets gradient from every window it is in, and each must add its share")
ADDED_ONTO_INPUT = ("a gradient is added where it should be written: dx starts from the input "
                    "x instead of zeros (np.zeros_like(x))")
NOT_DIVIDED = ("average pooling is not divided by the window size: the mean of fw * fw "
               "numbers is their sum / (fw * fw), and each gets 1 / (fw * fw) of the gradient")
DIVIDED_BY_FW = ("average pooling is divided by fw instead of by the window size fw * fw")
AVERAGED = ("the weight gradients are averaged over the batch: add them up (the 1 / n of the "
            "mean loss is in dZ already)")


@dataclasses.dataclass
class Case:
    """Named inputs; `hand` marks a case worked by hand."""

    inputs: dict
    hand: bool = False

    def __getitem__(self, key: str):
        return self.inputs[key]

    def as_float32(self) -> Case:
        return Case({k: v.astype(np.float32) if isinstance(v, np.ndarray) and v.dtype.kind == "f"
                     else v for k, v in self.inputs.items()}, self.hand)


@dataclasses.dataclass(frozen=True)
class Mistake:
    """A known mistake: `text` names it, variant(case) gives the outputs the mistaken code
    would (None where the case cannot show it)."""

    text: str
    variant: Callable[[Case], tuple | None]


class CheckError(Exception):
    """An exercise fails: `headline` (one line, without the function's name) and the
    example that shows it; `mistake` is the known mistake's text, if one fits."""

    def __init__(self, headline: str, details: list[str] | None = None,
                 mistake: str | None = None):
        super().__init__(headline)
        self.headline, self.details, self.mistake = headline, list(details or []), mistake


# -- arrays as text ------------------------------------------------------------------

def number(value: float) -> str:
    """A number as a learner writes it: 3, 0.5, -1.25, 2.34e-05."""
    value = float(value)
    text = f"{value:.4g}"
    return "0" if text == "-0" else text


def _grid(a: np.ndarray, indent: str) -> list[str]:
    cells = [[number(v) for v in row] for row in np.atleast_2d(a)]
    width = max(len(c) for row in cells for c in row)
    return [indent + " ".join(c.rjust(width) for c in row) for row in cells]


def _spatial(layout: str, ndim: int) -> tuple[int, int]:
    """The two axes drawn as a grid: height and width."""
    return {"nhwc": (1, 2), "hwcf": (0, 1), "hwc": (0, 1)}.get(layout, (ndim - 2, ndim - 1))


def show(label: str, value: object, layout: str = "plain",
         only: np.ndarray | None = None) -> list[str]:
    """Lines that print value: a number on one line; an array as grids of its height and
    width, one per index of its other axes (at most MAX_SLICES; with `only`, a boolean
    array of value's shape, the slices where it is True come first)."""
    if value is None or np.ndim(value) == 0:
        return [f"{label} = {value if value is None else number(value)}"]
    a = np.asarray(value)
    a = a.astype(np.int64) if a.dtype == bool else a
    if a.ndim == 1:
        return [f"{label} = [{' '.join(number(v) for v in a)}]"]
    if a.ndim == 2:
        return [f"{label} ({', '.join(map(str, a.shape))}) ="] + _grid(a, "    ")
    rows, cols = _spatial(layout, a.ndim)
    others = [axis for axis in range(a.ndim) if axis not in (rows, cols)]
    slices = list(itertools.product(*(range(a.shape[axis]) for axis in others)))
    if only is not None and np.shape(only) == a.shape:
        slices.sort(key=lambda s: not _pick(np.asarray(only), others, s).any())
    lines = []
    for s in slices[:MAX_SLICES]:
        index = ["0"] * a.ndim
        for axis, i in zip(others, s, strict=True):
            index[axis] = str(i)
        index[rows] = index[cols] = ":"
        lines.append(f"{label}[{', '.join(index)}] =")
        lines += _grid(_pick(a, others, s), "    ")
    if len(slices) > MAX_SLICES:
        lines.append(f"    ({label} has shape {a.shape}: {len(slices) - MAX_SLICES} more "
                     "slices not shown)")
    return lines


def _pick(a: np.ndarray, others: list[int], s: tuple) -> np.ndarray:
    index: list = [slice(None)] * a.ndim
    for axis, i in zip(others, s, strict=True):
        index[axis] = i
    return a[tuple(index)]


# -- comparing ----------------------------------------------------------------------

def as_array(value: object) -> np.ndarray:
    a = np.asarray(value)
    return a.astype(np.float64) if a.dtype == bool else a


def close(got: object, expected: object, tol: float = TOL) -> bool:
    """Same shape and the same numbers to a relative error of tol (of the largest)."""
    got, expected = as_array(got), as_array(expected)
    if got.shape != expected.shape or got.dtype.kind not in "biuf":
        return False
    got = got.astype(np.float64)
    if not np.isfinite(got).all():  # expected always is
        return False
    scale = max(float(np.abs(expected).max(initial=0)), 1.0)
    return bool(np.all(np.abs(got - expected) <= tol * scale))


def differing(got: tuple, expected: tuple, tol: float = TOL) -> list[int]:
    """The positions of the outputs that differ."""
    return [i for i, (g, e) in enumerate(zip(got, expected, strict=True)) if not close(g, e, tol)]


class Check:
    """The checks of one exercise.  Subclasses give the cases, the reference answer, the
    known mistakes and how the learner's code is run."""

    name: str
    outputs: tuple[str, ...]
    #: How each input and output is drawn (show's layouts).
    layouts: dict[str, str] = {}
    #: output -> the input whose dtype it must keep.
    dtypes: dict[str, str] = {}
    #: outputs -> (inputs) whose numerical gradient they are, for a backward pass.
    gradient_of: dict[str, str] = {}

    @property
    def exercise(self) -> Exercise:
        return BY_NAME[self.name]

    def hand_cases(self) -> list[Case]:
        raise NotImplementedError

    def random_cases(self, rng: np.random.Generator) -> list[Case]:
        raise NotImplementedError

    def shape_case(self, rng: np.random.Generator) -> Case:
        return self.random_cases(rng)[-1].as_float32()

    def reference(self, case: Case) -> tuple:
        raise NotImplementedError

    def mistakes(self) -> tuple[Mistake, ...]:
        return ()

    def run(self, call: Callable, case: Case) -> tuple:
        """The learner's outputs for case; call(name, *args) runs one of their functions."""
        return (call(self.name, *(case[p] for p in self.exercise.call)),)

    def identify(self, case: Case, got: tuple, tol: float = TOL) -> Mistake | None:
        """The first known mistake that gives exactly what the learner's code gave."""
        expected = self.reference(case)
        wrong = differing(got, expected, tol)
        for mistake in self.mistakes():
            try:
                variant = mistake.variant(case)
            except (ValueError, IndexError):
                variant = None
            if variant is not None and wrong and all(close(got[i], variant[i], tol)
                                                     for i in wrong):
                return mistake
        return None

    def numerical(self, call: Callable, case: Case) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """(output name, the learner's gradient, central differences) for a backward pass."""
        return []


def numerical_pairs(loss: Callable[[], float], case: Case, got: tuple, names: tuple[str, ...],
                    of: dict[str, str]) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """For each output name with an input in `of`: (name, got's array, d loss / d input by
    central differences, the input changed in place and restored)."""
    pairs = []
    for name, value in zip(names, got, strict=True):
        if name in of:
            pairs.append((name, np.asarray(value), numerical_gradient(loss, case[of[name]])))
    return pairs


def gradient_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    return relative_error(np.asarray(analytic, dtype=np.float64), numeric)
