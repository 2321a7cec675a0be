"""Grading the learner's functions, in order: is it there, with the parameters the
checker and the network call it with; shapes and dtypes; small cases worked by hand;
random cases against the reference; numerical gradients for every backward pass.

    report = check_exercises("my-exercises")      # or a notebook's globals()
    print(report)                                 # what `cnn-numpy check` prints
    report.passed, report.message, report.results

The first failing function stops the grading (unless every=True): its message names
the known mistake that fits what the code gave, and shows the smallest example.
"""

from __future__ import annotations

import dataclasses
import inspect
import textwrap
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import numpy as np

from .base import (
    GRADIENT_TOL,
    Case,
    Check,
    CheckError,
    as_array,
    close,
    differing,
    gradient_error,
    show,
)
from .conv_checks import ConvBackward, ConvForward, ConvSingleStep, ZeroPad
from .dense_checks import DenseBackward, DenseForward, SoftmaxCrossEntropy
from .files import LearnerError, NotWrittenError, Source, call_learner, read_source
from .pool_checks import (
    AvgPoolBackward,
    AvgPoolForward,
    CreateMask,
    DistributeValue,
    MaxPoolBackward,
    MaxPoolForward,
)
from .spec import BY_NAME, NAMES, exercise

CHECKS: dict[str, Check] = {check.name: check for check in (
    ZeroPad(), ConvSingleStep(), ConvForward(), ConvBackward(), MaxPoolForward(), CreateMask(),
    MaxPoolBackward(), AvgPoolForward(), DistributeValue(), AvgPoolBackward(), DenseForward(),
    DenseBackward(), SoftmaxCrossEntropy())}
assert tuple(CHECKS) == NAMES

#: A function's status: passes, fails, still raises NotImplementedError, or was not
#: checked (an earlier one did not pass).
PASS, FAIL, TODO, SKIPPED = "pass", "fail", "to write", "not checked"


@dataclasses.dataclass
class Result:
    """One function's grade: its status, where it is, and (unless it passes) a headline of
    one line that names the problem, with the lines that show it."""

    name: str
    status: str
    where: str = ""
    headline: str = ""
    details: list[str] = dataclasses.field(default_factory=list)
    mistake: str | None = None
    #: True when the headline names its own file, line and function (an error raised in
    #: the learner's code, or a file that cannot be read).
    located: bool = False

    @property
    def message(self) -> str:
        """The one line: the function, where it is, what is wrong."""
        where = f" ({self.where})" if self.where else ""
        if self.status == TODO:
            return f"Write {self.name} next{where}: it still raises NotImplementedError."
        if self.located:
            return self.headline
        return f"{self.name}{where}: {self.headline}"


@dataclasses.dataclass
class Report:
    """What check_exercises found, function by function, in the order to write them."""

    source: str
    results: list[Result]
    command: str = ""

    @property
    def passed(self) -> bool:
        return all(r.status == PASS for r in self.results)

    @property
    def first_problem(self) -> Result | None:
        return next((r for r in self.results if r.status in (FAIL, TODO)), None)

    @property
    def message(self) -> str:
        """The first line: the first problem, or that all pass."""
        problem = self.first_problem
        if problem is None:
            if len(self.results) == 1:
                return f"{self.results[0].name} passes every check."
            return f"All {len(self.results)} functions checked pass."
        if problem.status == TODO and len(self.results) == 1:
            return problem.message.replace(" next", "", 1)
        if problem.status == TODO and all(r.status != PASS for r in self.results):
            return problem.message.replace("next", "first", 1)
        return problem.message

    def __str__(self) -> str:
        lines = [self.message]
        problem = self.first_problem
        if problem is not None:
            lines += [f"  {line}" for line in problem.details]
        if len(self.results) == 1:
            return "\n".join(lines)
        done = [r.name for r in self.results if r.status == PASS]
        later = [r.name for r in self.results if r.status == SKIPPED]
        failing = [r.name for r in self.results if r.status in (FAIL, TODO)]
        lines += _wrapped(f"{len(done)} of {len(self.results)} pass", done)
        lines += _wrapped("Also to fix", failing[1:])
        lines += _wrapped("Not checked yet", later)
        if problem is not None and self.command:
            lines.append(f"Run `{self.command}` again when it is done.")
        return "\n".join(lines)


def _wrapped(title: str, names: list[str]) -> list[str]:
    """'title: a, b, c.' wrapped at 90 columns; just 'title.' for a count without names,
    nothing for an empty list with a title that is not a count."""
    if not names:
        return [f"{title}."] if title[0].isdigit() else []
    return textwrap.wrap(f"{title}: {', '.join(names)}.", 90, subsequent_indent="  ")


def check_exercises(source: str | Path | Mapping[str, object],
                    function: str | Iterable[str] | None = None, *, every: bool = False,
                    command: str = "") -> Report:
    """Grade the learner's functions: a folder of exercise files (cnn-numpy exercises
    DIR) or a mapping of names to functions (a notebook's globals()).

    function   one name, several, or None for all, in the order to write them
    every      go on after a function that does not pass (default: stop there)
    command    the command to run again, named at the end of the report

    Returns a Report; str(report) is what `cnn-numpy check` prints.  ValueError for a
    folder that does not exist or a name that is not an exercise.
    """
    return check_source(read_source(source), function, every=every, command=command)


def check_source(learner: Source, function: str | Iterable[str] | None = None, *,
                 every: bool = False, command: str = "") -> Report:
    """check_exercises on functions already read (files.read_source)."""
    names = _names(function)
    results: list[Result] = []
    stopped = False
    for name in names:
        if stopped:
            results.append(Result(name, SKIPPED))
            continue
        result = grade(learner, name)
        results.append(result)
        stopped = result.status != PASS and not every
    return Report(learner.label, results, command)


def _names(function: str | Iterable[str] | None) -> list[str]:
    if function is None:
        return list(NAMES)
    wanted = {function} if isinstance(function, str) else set(function)
    for name in wanted:
        exercise(name)  # ValueError for an unknown name
    return [name for name in NAMES if name in wanted]


def grade(learner: Source, name: str) -> Result:
    """One function's Result."""
    problem = _missing(learner, name)
    if problem is not None:
        return problem
    where = learner.where(name)

    def call(function: str, *args: object) -> object:
        if function not in learner.functions:
            raise CheckError(f"it needs your {function}, which is missing from "
                             f"{BY_NAME[function].file}")
        return call_learner(learner.functions[function], learner.files, *args)

    try:
        _grade(CHECKS[name], call)
    except NotWrittenError as exc:
        if exc.name == name:
            return Result(name, TODO, where, details=_what_to_write(learner, name))
        how = ("it takes the cache of your" if exc.name == BY_NAME[name].forward
               else "it calls")
        return Result(name, FAIL, where, f"{how} {exc.name}, which is not written yet: write "
                      f"{exc.name} first")
    except LearnerError as exc:
        return Result(name, FAIL, where, exc.line, exc.details, located=True)
    except CheckError as exc:
        return Result(name, FAIL, where, exc.headline, exc.details, exc.mistake)
    return Result(name, PASS, where)


def _what_to_write(learner: Source, name: str) -> list[str]:
    """The first line of the function's docstring, and where the rest is."""
    doc = inspect.getdoc(learner.functions[name]) or ""
    summary = doc.splitlines()[0] if doc else ""
    return [f"{BY_NAME[name].signature()}: {summary}",
            "Its docstring gives the shapes, the equation and a hint."]


def _missing(learner: Source, name: str) -> Result | None:
    """A Result for a function that cannot be called as the checker calls it, else None."""
    spec = BY_NAME[name]
    problem = learner.problems.get(spec.file)
    if problem is not None and name not in learner.functions:
        return Result(name, FAIL, "", problem.line, problem.details, located=True)
    if name not in learner.functions and learner.folder is None:
        return Result(name, FAIL, "", f"there is no function {name} yet: run the cell that "
                      f"defines it, {spec.signature()}")
    if name not in learner.functions:
        return Result(name, FAIL, spec.file, f"there is no function {name} (renamed or "
                      f"deleted?); the checker calls {spec.signature()}")
    try:
        signature = inspect.signature(learner.functions[name])
    except (TypeError, ValueError):
        return None
    for call, who in ((spec.call, "the checker calls"), (spec.engine_call, "the network calls")):
        if call is None:
            continue
        try:
            signature.bind(*call)
        except TypeError as exc:
            hers = spec.signature(tuple(p.name if p.default is p.empty else
                                        f"{p.name}={p.default!r}"
                                        for p in signature.parameters.values()))
            return Result(name, FAIL, learner.where(name), f"it is {hers}, but {who} "
                          f"{spec.signature(call)}: {exc}")
    return None


def _grade(check: Check, call: Callable) -> None:
    """Raise CheckError (or the learner's own error) at the first check that fails."""
    cases = check.hand_cases() + check.random_cases(np.random.default_rng(1))
    try:
        _shapes(check, call, check.shape_case(np.random.default_rng(0)))
    except LearnerError:
        for case in cases:  # their code raises: on which case first, smallest first?
            _run(check, call, case)
        raise
    for case in cases:
        _values(check, call, case)
    if check.gradient_of:
        for case in check.random_cases(np.random.default_rng(2))[:2]:
            _gradients(check, call, case)


def _run(check: Check, call: Callable, case: Case) -> tuple:
    """The learner's outputs; CheckError (with the case) if they change their inputs."""
    before = {k: np.copy(v) for k, v in case.inputs.items() if isinstance(v, np.ndarray)}
    try:
        got = check.run(call, case)
    except CheckError as exc:
        raise CheckError(exc.headline, exc.details + example(check, case, shapes_only=True),
                         exc.mistake) from None
    except LearnerError as exc:
        raise LearnerError(exc.line, exc.details + example(check, case, not case.hand)) from None
    for key, value in before.items():
        if not np.array_equal(case[key], value):
            raise CheckError(f"it changes its input {key} in place; leave the arrays it is "
                             "given as they are (work on new ones)", example(check, case))
    return got


def _shapes(check: Check, call: Callable, case: Case) -> None:
    """Every output has the reference's shape and its input's dtype (float32 here)."""
    got = _run(check, call, case)
    expected = check.reference(case.as_float32())
    for name, value, want in zip(check.outputs, got, expected, strict=True):
        shape, wanted = np.shape(value), np.shape(want)
        if shape != wanted:
            mistake = check.identify(case, got, tol=1e-4) if not isinstance(
                value, (str, bytes)) else None
            text = f"{name} has shape {shape}, expected {wanted}"
            raise CheckError(f"{mistake.text} ({text})" if mistake else text,
                             example(check, case, shapes_only=True), mistake and mistake.text)
        source = check.dtypes.get(name)
        if source is not None and as_array(value).dtype != case[source].dtype:
            raise CheckError(f"{name} has dtype {as_array(value).dtype}, but {source} is "
                             f"{case[source].dtype}: create it with the dtype of {source} (e.g. "
                             f"np.zeros(shape, dtype={source}.dtype)); the network trains in "
                             "float32", example(check, case, shapes_only=True))


def _values(check: Check, call: Callable, case: Case) -> None:
    got = _run(check, call, case)
    expected = check.reference(case)
    wrong = differing(got, expected)
    if not wrong:
        return
    mistake = check.identify(case, got)
    name = check.outputs[wrong[0]]
    if mistake is not None:
        headline = f"wrong {name}: {mistake.text}"
    else:
        headline = f"wrong {name}: {_first_difference(got[wrong[0]], expected[wrong[0]])}"
    lines = example(check, case)
    for i in wrong[:2]:
        lines += _expected_and_got(check, check.outputs[i], expected[i], got[i])
    raise CheckError(headline, lines, mistake and mistake.text)


def _first_difference(got, expected) -> str:
    got, expected = as_array(got), as_array(expected)
    if got.shape != expected.shape:
        return f"shape {got.shape}, expected {expected.shape}"
    if got.ndim == 0:
        return f"expected {float(expected):.6g}, got {float(got):.6g}"
    gap = np.nan_to_num(np.abs(got.astype(np.float64) - expected), nan=np.inf)  # expected: finite
    index = np.unravel_index(np.argmax(gap), got.shape)
    return (f"at index {tuple(map(int, index))} expected {float(expected[index]):.6g}, got "
            f"{float(got[index]):.6g}")


def _expected_and_got(check: Check, name: str, expected, got) -> list[str]:
    layout = check.layouts.get(name, "plain")
    wrong = None
    if np.shape(got) == np.shape(expected) and np.ndim(expected) > 2:
        wrong = ~np.isclose(as_array(got), as_array(expected))
    return (show(f"expected {name}", expected, layout, wrong)
            + show(f"got {name}", got, layout, wrong))


def example(check: Check, case: Case, shapes_only: bool = False) -> list[str]:
    """The inputs of case as lines (their shapes only, or their values)."""
    kind = "worked by hand" if case.hand else "random"
    if shapes_only:
        parts = [f"{k} {v.shape} {v.dtype}" if isinstance(v, np.ndarray) else f"{k} = {v!r}"
                 for k, v in case.inputs.items()]
        return textwrap.wrap(f"With {', '.join(parts)}", 90, subsequent_indent="  ")
    lines = [f"The smallest example that fails ({kind}):"]
    for key, value in case.inputs.items():
        if isinstance(value, tuple):
            lines.append(f"{key} = {value}")
        else:
            lines += show(key, value, check.layouts.get(key, "plain"))
    return lines


def _gradients(check: Check, call: Callable, case: Case) -> None:
    for name, analytic, numeric in check.numerical(call, case):
        if not close(analytic, numeric, 1e-5) and gradient_error(analytic, numeric) > \
                GRADIENT_TOL:
            error = gradient_error(analytic, numeric)
            raise CheckError(f"{name} does not match the numerical gradient (central differences "
                             f"of your forward pass): relative error {error:.1e}",
                             example(check, case) + show(f"numerical {name}", numeric)
                             + show(f"your {name}", analytic))
