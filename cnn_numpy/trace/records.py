"""What a trace keeps for one layer (LayerTrace), and what every layer family gives the
trace: how to name and complete its arrays, and how to explain each of them (Family)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..layers import Layer
from .explanation import Explanation, Operand, Source, TermGroup, operand


@dataclass
class LayerTrace:
    """One layer's arrays in one training step, by the names of its docstring.

    arrays    canonical name -> array (copies: later steps do not change them);
    aliases   another name -> its canonical name (a linear layer's A is its Z, an
              activation layer's Z is its A_prev ...);
    arriving  the name of the gradient that came from above ("dA", or "dZ" for a
              linear layer and for the output layer, whose dZ the loss gives);
    decayed   parameter name -> where weight decay applies (a boolean array).
    """

    number: int
    layer: Layer
    engine: str | None
    arrays: dict[str, np.ndarray]
    aliases: dict[str, str] = field(default_factory=dict)
    arriving: str = "dA"
    decayed: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return type(self.layer).__name__

    def names(self) -> list[str]:
        """Every name this layer's arrays answer to: canonical first, then aliases."""
        return [*self.arrays, *self.aliases]

    def resolve(self, name: str) -> str:
        """The canonical name for `name`, or a ValueError listing the names there are."""
        name = self.aliases.get(name, name)
        if name not in self.arrays:
            raise ValueError(f"layer {self.number} ({self.kind}) has no array {name!r}; it "
                             f"has {', '.join(self.names())}")
        return name

    def __getitem__(self, name: str) -> np.ndarray:
        return self.arrays[self.resolve(name)]

    def check_index(self, name: str, index: Any) -> tuple[int, ...]:
        """index (an int, a sequence of ints, or () for a scalar) as a tuple inside the
        array's shape (negative counts from the end), else a ValueError."""
        shape = self[name].shape
        index = (index,) if isinstance(index, (int, np.integer)) else tuple(index or ())
        if len(index) != len(shape) or not all(isinstance(i, (int, np.integer))
                                               for i in index):
            raise ValueError(f"layer {self.number}'s {name} has shape {shape}: give "
                             f"{len(shape)} integer indices, got {index!r}")
        if not all(-d <= i < d for i, d in zip(index, shape, strict=True)):
            raise ValueError(f"index {index} is outside layer {self.number}'s {name} of "
                             f"shape {shape}")
        return tuple(int(i) % d for i, d in zip(index, shape, strict=True))

    def value(self, name: str, index: tuple[int, ...]) -> float:
        return float(self[name][index])

    def operand(self, name: str, index: tuple[int, ...], shown: str | None = None) -> Operand:
        """One element of one of this layer's arrays, for every term."""
        return operand(shown or name, self[name][index], self.number, index)

    def operands(self, name: str, indices: np.ndarray, shown: str | None = None) -> Operand:
        """Elements of an array at indices (count, ndim), one per term."""
        indices = np.asarray(indices, dtype=np.intp).reshape(-1, self[name].ndim)
        return operand(shown or name, self[name][tuple(indices.T)], self.number, indices)

    def explanation(self, name: str, index: tuple[int, ...], formula: str,
                    groups: list[TermGroup], sources: list[Source],
                    details: dict | None = None) -> Explanation:
        """The Explanation of self[name][index], made of these terms."""
        return Explanation(self.number, self.kind, name, index, self.value(name, index),
                           formula, tuple(groups), tuple(sources), details or {})


@dataclass(frozen=True)
class StepContext:
    """What explanations need to know of the step besides a layer's arrays."""

    learning_rate: float
    weight_decay: float
    optimizer_type: type
    optimizer_config: dict
    steps: int


Explainer = Callable[[LayerTrace, tuple, StepContext], Explanation]


@dataclass(frozen=True)
class Family:
    """What the trace knows of some layer types.

    complete(lt) names and adds the arrays the layer computed without keeping them
    (a ReLU's dZ, BatchNorm's mean), computed as the layer computes them, and the
    aliases; explainers maps each canonical name to its explainer."""

    complete: Callable[[LayerTrace], None]
    explainers: dict[str, Explainer]


def given(lt: LayerTrace, name: str, index: tuple[int, ...], formula: str,
          sources: list[Source]) -> Explanation:
    """A number the step did not compute but started from (the input, a weight before
    the update): one term, itself."""
    return lt.explanation(name, index, formula, [_itself(lt, name, index)], sources)


def _itself(lt: LayerTrace, name: str, index: tuple[int, ...]) -> TermGroup:
    return TermGroup("{0}", (lt.operand(name, index),),
                     np.asarray([lt.value(name, index)], dtype=np.float64))


def windows_over(position: int, fw: int, stride: int, count: int) -> list[tuple[int, int]]:
    """(output position o, window element a) for every window (o*stride, of width fw) of
    `count` that covers input `position`: o*stride + a == position."""
    first = max(0, -(-(position - fw + 1) // stride))
    last = min(count - 1, position // stride)
    return [(o, position - o * stride) for o in range(first, last + 1)]

