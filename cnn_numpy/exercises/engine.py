"""A learner's finished functions as an engine: checked, registered in
cnn_numpy.engines.ENGINES under "yours:FOLDER", and compared with the shipped engines.

    name = load_engine("my-exercises")           # "yours:/home/me/my-exercises"
    net = Net([...], engine=name)                # layers store the name, as for "naive"

The registered engine is a module with the six functions of the engine interface
(cnn_numpy/engines/__init__.py), each calling the learner's function; an error in
their code becomes a ValueError whose message names the file, the line and the
function.  The fast path runs it only through the layers' own passes (as it runs the
naive loops), and model files record no engine for it (the default then), since the
learner's code is not in the file.
"""

from __future__ import annotations

import copy
import dataclasses
import time
import types
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np

from ..engines import DEFAULT_ENGINE, ENGINES
from ..layers import ConvLayer, PoolLayer
from ..net import Net
from ..training import Callback
from .checker import check_source
from .files import Source, describe_error, read_source
from .spec import ENGINE_EXERCISES

PREFIX = "yours:"
#: The shipped engines a learner's is compared with, the reference first.
SHIPPED = ("naive", "stride_groups", "im2col")


def is_learner_engine(name: object) -> bool:
    """Whether name is the name of an engine load_engine registered."""
    return isinstance(name, str) and name.startswith(PREFIX)


def load_engine(source: str | Path | Mapping[str, object], name: str | None = None) -> str:
    """Check the learner's convolution and pooling functions (parts 1 and 2) and register
    them as an engine; returns its name, "yours:" and the folder's absolute path (or
    "yours:notebook" for a mapping such as a notebook's globals(), unless `name` says).

    Loading again reads the files again (an edited function takes effect).  ValueError
    with the check's first message when a function does not pass (the engine is then
    not registered).  The engine lives in this process only: a model file saved from
    a net that uses it records no engine (the default, im2col)."""
    learner = read_source(source)
    report = check_source(learner, ENGINE_EXERCISES)
    if not report.passed:
        where = learner.label
        raise ValueError(f"{where} is not an engine yet: {report.message} (see "
                         f"`cnn-numpy check {where}`)")
    if name is None:
        name = PREFIX + (str(learner.folder.resolve()) if learner.folder else "notebook")
    elif not is_learner_engine(name):
        name = PREFIX + name
    ENGINES[name] = engine_module(name, learner)
    return name


def engine_module(name: str, learner: Source) -> types.ModuleType:
    """The engine interface's six functions, each calling the learner's."""
    functions, files = learner.functions, learner.files

    def call(function: str, *args: object) -> object:
        try:
            return functions[function](*args)
        except Exception as exc:  # their code's error, said in one line
            raise describe_error(exc, files, f" (while the network ran {function})") from None

    def conv_forward(x: np.ndarray, W: np.ndarray, b: np.ndarray, stride: int) -> tuple:
        return call("conv_forward", x, W, b, stride)

    def conv_backward(dZ: np.ndarray, cache: object) -> tuple:
        return call("conv_backward", dZ, cache)

    def max_pool_forward(x: np.ndarray, fw: int, stride: int) -> tuple:
        return call("max_pool_forward", x, fw, stride)

    def max_pool_backward(dout: np.ndarray, cache: object) -> np.ndarray:
        return call("max_pool_backward", dout, cache)

    def avg_pool_forward(x: np.ndarray, fw: int, stride: int) -> tuple:
        return call("avg_pool_forward", x, fw, stride)

    def avg_pool_backward(dout: np.ndarray, cache: object) -> np.ndarray:
        return call("avg_pool_backward", dout, cache)

    module = types.ModuleType(name, f"The learner's engine, from {learner.label}.")
    for function in (conv_forward, conv_backward, max_pool_forward, max_pool_backward,
                     avg_pool_forward, avg_pool_backward):
        setattr(module, function.__name__, function)
    return module


@dataclasses.dataclass
class EngineStep:
    """One engine's training step: its seconds, and the largest difference of its loss and
    of its gradients from the reference's (the first engine compared)."""

    engine: str
    seconds: float
    loss_difference: float
    gradient_difference: float


def _gradients(net: Net) -> list[np.ndarray]:
    return [np.asarray(g) for layer in net.layers for g in layer.grads().values()
            if g is not None]


def compare_engines(net: Net, X: np.ndarray, Y: np.ndarray, learning_rate: float = 0.001,
                    engines: Sequence[str] | None = None) -> list[EngineStep]:
    """One training step on (X, Y) from copies of net (its weights and optimizer state as
    they are; built for X first if need be), one copy per engine: its time, and how far
    its loss and gradients are from the first engine's.  engines defaults to the
    learner's engine that net runs (if any), then naive, stride_groups and im2col.  net
    itself is not changed."""
    if engines is None:
        yours = learner_engine_of(net)
        engines = ((yours,) if yours else ()) + SHIPPED
    base = copy.deepcopy(net)
    if base.input_shape is None:
        base.build(X.shape[1:] if X.ndim == 4 else (*X.shape[1:], 1))
    warm = copy.deepcopy(base)  # the first step of a process starts threads: not timed
    warm.engine = "im2col"
    warm.train(X, Y, learning_rate)
    steps, reference = [], None
    for name in engines:
        trial, loss, seconds = _timed_step(base, name, X, Y, learning_rate)
        grads = _gradients(trial)
        if reference is None:
            reference = loss, grads
        gap = max((float(np.abs(g - r).max(initial=0)) for g, r in
                   zip(grads, reference[1], strict=True)), default=0.0)
        steps.append(EngineStep(name, seconds, abs(loss - reference[0]), gap))
    return steps


#: A step quicker than this (seconds) is timed REPEATS times, the fastest kept: on a busy
#: machine one step of a fast engine can wait for a core longer than it computes.
QUICK, REPEATS = 0.5, 3


def _timed_step(base: Net, engine: str, X: np.ndarray, Y: np.ndarray,
                learning_rate: float) -> tuple[Net, float, float]:
    """(the trained copy, its loss, the step's seconds) of one step of a copy of base on
    engine: the fastest of REPEATS for a quick step."""
    times = []
    while len(times) < (REPEATS if times and times[0] < QUICK else 1):
        trial = copy.deepcopy(base)
        trial.engine = engine
        start = time.perf_counter()
        loss = trial.train(X, Y, learning_rate).cce
        times.append(time.perf_counter() - start)
    return trial, loss, min(times)


def learner_engine_of(net: Net) -> str | None:
    """The learner's engine that one of net's conv or pool layers runs on, if any."""
    for layer in net.layers:
        if isinstance(layer, (ConvLayer, PoolLayer)) and is_learner_engine(layer.engine):
            return layer.engine
    return None


def describe_comparison(steps: list[EngineStep], images: int) -> str:
    """The comparison as the command line prints it; steps[0] is the learner's engine."""
    yours, others = steps[0], steps[1:]
    lines = [f"Your engine ({yours.engine[len(PREFIX):]}) against the shipped ones, one "
             f"training step on {images} image{'s' * (images != 1)}:"]
    width = max(len(step.engine) for step in others)
    lines.append(f"  {'yours'.ljust(width)}  {yours.seconds:8.4f} s")
    for step in others:
        ratio = step.seconds / max(yours.seconds, 1e-9)
        speed = f"{ratio:.3g}x faster" if ratio >= 1 else f"{1 / ratio:.3g}x slower"
        lines.append(f"  {step.engine.ljust(width)}  {step.seconds:8.4f} s   yours is {speed}; "
                     f"largest difference after the step: {step.gradient_difference:.2g} in the "
                     f"gradients, {step.loss_difference:.2g} in the loss")
    return "\n".join(lines)


class EngineReport(Callback):
    """Before training a net whose conv or pool layers run a learner's engine: time one
    step on its first `images` training images with that engine and the shipped ones,
    and say how much faster and how different each is (nothing for other nets)."""

    def __init__(self, say: Callable[[str], None] = print, images: int = 2):
        self.say, self.images = say, images

    def on_train_begin(self, net: Net) -> None:
        if learner_engine_of(net) is None:
            return
        X, Y = self.run.x_train[: self.images], self.run.y_train[: self.images]
        steps = compare_engines(net, X, Y, self.run.settings.learning_rate)
        self.say(describe_comparison(steps, len(X)))
        per_image = steps[0].seconds / len(X)
        if per_image * len(self.run.x_train) > 60:
            self.say(f"That is {per_image:.2f} s per image in a step of {len(X)}: --limit N "
                     "trains on fewer images.")
        self.say(f"A model file saved from this run records the default engine "
                 f"({DEFAULT_ENGINE}): your code is not saved in it.")
