"""What an explanation of one number is: the terms that add up to it, the equation with
their values, and the line of the reference code that computed it.

Terms come in groups of one shape (a TermGroup): "A_prev[...] * W[...]" for every element
of a window, say, kept as NumPy arrays so that a weight gradient summed over 20,000
batch positions is cheap to explain.  Term objects are made only for the terms asked for
(Explanation.largest, Explanation.terms).
"""

from __future__ import annotations

import ast
import inspect
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path

import numpy as np
import numpy.typing as npt

#: The checkout's root: source files are named relative to it ("cnn_numpy/layers/conv.py").
ROOT = Path(__file__).resolve().parents[2]


def _fmt(value: float) -> str:
    """A number as an equation shows it: 6 significant digits."""
    return f"{value:.6g}"


def _index_text(index: tuple[int, ...] | None) -> str:
    return "" if index is None else "[" + ", ".join(map(str, index)) + "]"


@dataclass(frozen=True)
class Source:
    """A line of code: the file (relative to the checkout), its number, the function and
    the line itself.  exact is False when the line was not found and the function's first
    line stands in."""

    file: str
    line: int
    function: str
    code: str
    exact: bool = True

    def __str__(self) -> str:
        return f"{self.file}:{self.line} ({self.function}): {self.code}"

    def to_dict(self) -> dict:
        return {"file": self.file, "line": self.line, "function": self.function,
                "code": self.code, "exact": self.exact}


@cache
def source(function: Callable, *markers: str) -> Source:
    """The line of `function` that contains the first of `markers` found in it (tried in
    order), found with inspect, so it follows the code when lines move."""
    qualname = f"{function.__module__.rsplit('.', 1)[-1]}.{function.__qualname__}"
    try:  # an engine of one's own may be code without a file
        lines, first = inspect.getsourcelines(function)
        path = Path(inspect.getsourcefile(function)).resolve()
    except (OSError, TypeError):
        return Source("<unknown>", 0, qualname, "", exact=False)
    name = path.relative_to(ROOT).as_posix() if path.is_relative_to(ROOT) else str(path)
    code = _code_lines(lines)
    for marker in markers:
        for offset in code:
            if marker in lines[offset]:
                return Source(name, first + offset, qualname, lines[offset].strip())
    return Source(name, first, qualname, lines[0].strip(), exact=False)


def _code_lines(lines: list[str]) -> list[int]:
    """The offsets of a function's lines that are code: not its docstring, not comments."""
    tree = ast.parse(textwrap.dedent("".join(lines)))
    body = tree.body[0].body
    skip = body[0].end_lineno if isinstance(body[0], ast.Expr) \
        and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str) \
        else 0
    return [k for k in range(skip, len(lines)) if not lines[k].lstrip().startswith("#")]


@dataclass(frozen=True)
class Number:
    """One number in a term: an array of the trace at an index (layer and index None for
    a constant such as the learning rate), and its value."""

    name: str
    value: float
    layer: int | None = None
    index: tuple[int, ...] | None = None

    @property
    def label(self) -> str:
        return self.name + _index_text(self.index)

    def to_dict(self) -> dict:
        return {"name": self.name, "value": self.value, "layer": self.layer,
                "index": None if self.index is None else list(self.index)}


@dataclass(frozen=True)
class Term:
    """One term of a sum: its inputs, how they combine (form, e.g. "{0} * {1}") and its
    value."""

    value: float
    form: str
    inputs: tuple[Number, ...]

    @property
    def label(self) -> str:
        """The term in names, e.g. "A_prev[0, 3, 4, 0] * W[0, 0, 0, 7]"."""
        return self.form.format(*(number.label for number in self.inputs))

    @property
    def with_values(self) -> str:
        """The term in numbers, e.g. "0.5 * (-0.25)"."""
        alone = self.form == "{0}"
        shown = [_fmt(n.value) if alone or n.value >= 0 else f"({_fmt(n.value)})"
                 for n in self.inputs]
        return self.form.format(*shown)

    def to_dict(self) -> dict:
        return {"value": self.value, "label": self.label, "with_values": self.with_values,
                "inputs": [number.to_dict() for number in self.inputs]}


@dataclass(frozen=True)
class Operand:
    """One input of every term of a group: an array's name, the layer it belongs to and
    the (count, ndim) indices into it (None, None for a constant), and the values."""

    name: str
    values: np.ndarray
    layer: int | None = None
    indices: np.ndarray | None = None

    def number(self, j: int) -> Number:
        """The operand's number in term j (one value or index serves every term)."""
        value = float(self.values if self.values.ndim == 0 else self.values[j])
        if self.indices is None:
            return Number(self.name, value, self.layer)
        row = self.indices[j if len(self.indices) > 1 else 0]
        return Number(self.name, value, self.layer, tuple(int(i) for i in row))


def operand(name: str, values: npt.ArrayLike, layer: int | None = None,
            indices: npt.ArrayLike | None = None) -> Operand:
    """An Operand with float64 values (one per term, or one for all) and indices as a
    (count, ndim) int array (or one index for all)."""
    values = np.asarray(values, dtype=np.float64)
    if indices is not None:
        indices = np.asarray(indices, dtype=np.intp)
        indices = indices[None] if indices.ndim == 1 else indices
    return Operand(name, values, layer, indices)


def constant(name: str, value: float) -> Operand:
    """An Operand that is the same number in every term (a learning rate, 1/n)."""
    return Operand(name, np.asarray(float(value)))


@dataclass(frozen=True)
class TermGroup:
    """Terms of one shape: term j is form.format(operand_0[j], operand_1[j], ...) and has
    the value values[j] (float64)."""

    form: str
    operands: tuple[Operand, ...]
    values: np.ndarray

    def __len__(self) -> int:
        return len(self.values)

    def term(self, j: int) -> Term:
        return Term(float(self.values[j]), self.form,
                    tuple(op.number(j) for op in self.operands))


def product(*operands: Operand, count: int | None = None) -> TermGroup:
    """The terms operand_0[j] * operand_1[j] * ...: their values multiplied in float64."""
    values = np.ones(count if count is not None else 1, dtype=np.float64)
    for op in operands:
        values = values * op.values
    form = " * ".join(f"{{{k}}}" for k in range(len(operands)))
    return TermGroup(form, tuple(operands), np.atleast_1d(values))


def function_of(form: str, values: npt.ArrayLike, *operands: Operand) -> TermGroup:
    """Terms that are a function of their operands (form says which), with their values."""
    return TermGroup(form, tuple(operands), np.atleast_1d(np.asarray(values, np.float64)))


@dataclass
class Explanation:
    """One number of a training step, and how it was made.

    value    what the layer computed (the trace's array at index);
    formula  the rule, in the names of the layer's docstring;
    groups   the terms that add up to it; total is their sum (float64), equal to value
             up to rounding;
    sources  the reference code that computed it, outermost call first: source (the
             last) is the line that did the arithmetic;
    details  further numbers a learner wants next to it (the window, the batch's mean...).
    """

    layer: int
    layer_type: str
    name: str
    index: tuple[int, ...]
    value: float
    formula: str
    groups: tuple[TermGroup, ...]
    sources: tuple[Source, ...]
    details: dict = field(default_factory=dict)
    asked_as: str | None = None

    @property
    def source(self) -> Source:
        return self.sources[-1]

    @property
    def count(self) -> int:
        """How many terms."""
        return sum(len(group) for group in self.groups)

    @cached_property
    def _values(self) -> np.ndarray:
        if not self.groups:
            return np.zeros(0)
        return np.concatenate([group.values for group in self.groups])

    @property
    def total(self) -> float:
        """The sum of the terms, in float64."""
        return float(self._values.sum())

    @property
    def magnitude(self) -> float:
        """The sum of the terms' absolute values: the scale rounding errors are relative
        to."""
        return float(np.abs(self._values).sum())

    def _term(self, position: int) -> Term:
        for group in self.groups:
            if position < len(group):
                return group.term(position)
            position -= len(group)
        raise IndexError(position)

    def terms(self) -> list[Term]:
        """Every term, in order (may be thousands: see largest)."""
        return [group.term(j) for group in self.groups for j in range(len(group))]

    def _largest_positions(self, k: int) -> np.ndarray:
        values = np.abs(self._values)
        if k >= len(values):
            return np.arange(len(values))
        top = np.argpartition(-values, k)[:k]
        return top[np.argsort(-values[top], kind="stable")]

    def largest(self, k: int = 10) -> list[Term]:
        """The k terms of largest absolute value, largest first (all of them, in order,
        when there are at most k)."""
        return [self._term(int(p)) for p in self._largest_positions(k)]

    def rest(self, k: int = 10) -> tuple[int, float]:
        """(how many terms largest(k) leaves out, their sum)."""
        shown = self._largest_positions(k)
        return len(self._values) - len(shown), self.total - float(self._values[shown].sum())

    @property
    def label(self) -> str:
        """The number's name, e.g. "Z[0, 3, 4, 7]"."""
        return self.name + _index_text(self.index)

    def equation(self, k: int = 6) -> str:
        """The number as its terms with their values, the largest k shown and the rest
        summed, e.g. "Z[0, 3, 4, 7] = 0.5 * (-0.25) + ... + 0.01 = 1.1693"."""
        shown = self.largest(k)
        parts = [term.with_values for term in shown]
        left, rest = self.rest(k)
        if left:
            parts.append(f"({left} more terms: {_fmt(rest)})")
        sums = " + ".join(parts).replace("+ -", "- ") if parts else "0 (no terms)"
        return f"{self.label} = {sums} = {_fmt(self.total)}"

    def to_dict(self, largest: int | None = 20) -> dict:
        """JSON-able: the number, its formula and equation, the `largest` terms (all for
        None) and the sum of the rest, the source lines and the details."""
        k = self.count if largest is None else largest
        left, rest = self.rest(k)
        return {"layer": self.layer, "layer_type": self.layer_type, "name": self.name,
                "index": list(self.index), "label": self.label, "asked_as": self.asked_as,
                "value": self.value, "total": self.total, "count": self.count,
                "formula": self.formula, "equation": self.equation(min(k, 6)),
                "terms": [term.to_dict() for term in self.largest(k)],
                "rest": {"count": left, "sum": rest},
                "source": self.source.to_dict(),
                "sources": [s.to_dict() for s in self.sources], "details": self.details}

    def __str__(self) -> str:
        lines = [f"layer {self.layer} ({self.layer_type}): {self.label} = {_fmt(self.value)}"
                 + (f"  (asked as {self.asked_as})" if self.asked_as else ""),
                 f"  rule: {self.formula}", f"  {self.equation()}",
                 f"  {self.count} terms sum to {_fmt(self.total)}; the layer computed "
                 f"{_fmt(self.value)}"]
        lines += [f"  {key}: {value}" for key, value in self.details.items()]
        lines += [f"  code: {s}" for s in self.sources]
        return "\n".join(lines)
