"""The exercises: which functions, in which file, called how, in the order to write them."""

from __future__ import annotations

import dataclasses

PARTS = ("part1_conv.py", "part2_pool.py", "part3_dense.py")


@dataclasses.dataclass(frozen=True)
class Exercise:
    """One function to write.

    call          how the checker calls it (positional arguments), as the learner reads it
    engine_call   how the network's layers call it, for the six engine functions
    forward       for a backward pass: the learner's forward function whose cache it takes
    """

    name: str
    file: str
    call: tuple[str, ...]
    engine_call: tuple[str, ...] | None = None
    forward: str | None = None

    def signature(self, parameters: tuple[str, ...] | None = None) -> str:
        return f"{self.name}({', '.join(self.call if parameters is None else parameters)})"


EXERCISES: tuple[Exercise, ...] = (
    Exercise("zero_pad", PARTS[0], ("X", "pad")),
    Exercise("conv_single_step", PARTS[0], ("window", "W", "b")),
    Exercise("conv_forward", PARTS[0], ("x", "W", "b", "stride", "pad"),
             ("x", "W", "b", "stride")),
    Exercise("conv_backward", PARTS[0], ("dZ", "cache"), ("dZ", "cache"), "conv_forward"),
    Exercise("max_pool_forward", PARTS[1], ("x", "fw", "stride"), ("x", "fw", "stride")),
    Exercise("create_mask_from_window", PARTS[1], ("window",)),
    Exercise("max_pool_backward", PARTS[1], ("dout", "cache"), ("dout", "cache"),
             "max_pool_forward"),
    Exercise("avg_pool_forward", PARTS[1], ("x", "fw", "stride"), ("x", "fw", "stride")),
    Exercise("distribute_value", PARTS[1], ("dz", "shape")),
    Exercise("avg_pool_backward", PARTS[1], ("dout", "cache"), ("dout", "cache"),
             "avg_pool_forward"),
    Exercise("dense_forward", PARTS[2], ("A_prev", "W", "b")),
    Exercise("dense_backward", PARTS[2], ("dZ", "cache"), None, "dense_forward"),
    Exercise("softmax_cross_entropy", PARTS[2], ("Z", "Y")),
)

BY_NAME = {exercise.name: exercise for exercise in EXERCISES}
NAMES = tuple(BY_NAME)

#: The engine's six functions (cnn_numpy/engines/__init__.py's interface).
ENGINE_FUNCTIONS = tuple(e.name for e in EXERCISES if e.engine_call is not None)
#: What an engine made of the exercises must pass: parts 1 and 2 (the helpers too).
ENGINE_EXERCISES = tuple(e.name for e in EXERCISES if e.file in PARTS[:2])


def exercise(name: str) -> Exercise:
    """The exercise called name; ValueError listing them otherwise."""
    if name not in BY_NAME:
        raise ValueError(f"no exercise is called {name!r}; they are {', '.join(NAMES)}")
    return BY_NAME[name]
