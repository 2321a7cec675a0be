"""Reading what a learner's function returned: the right number of values, arrays where
arrays are due, and a message that says what came back instead."""

from __future__ import annotations

import numpy as np

from .base import CheckError


def describe(value: object) -> str:
    """What a value is, in words: 'None', 'an array of shape (2, 3)', 'a tuple of 3 values'."""
    if value is None:
        return "None (is a `return` missing?)"
    if isinstance(value, np.ndarray):
        return f"an array of shape {value.shape}"
    if isinstance(value, (tuple, list)):
        return f"a {type(value).__name__} of {len(value)} values"
    return f"a {type(value).__name__}"


def values(value: object, names: tuple[str, ...], function: str) -> tuple:
    """value as a tuple of len(names) values; CheckError if it is not that."""
    if len(names) == 1:
        if value is None:
            raise CheckError(f"{function} returned {describe(value)}; it must return {names[0]}")
        return (value,)
    if not isinstance(value, (tuple, list)) or len(value) != len(names):
        raise CheckError(f"{function} must return {len(names)} values, ({', '.join(names)}); it "
                         f"returned {describe(value)}")
    if any(v is None for v in value):
        missing = [n for n, v in zip(names, value, strict=True) if v is None]
        raise CheckError(f"{function} returned None for {', '.join(missing)}")
    return tuple(value)


def pair(value: object, function: str, first: str) -> tuple:
    """A forward pass's (output, cache); CheckError otherwise."""
    return values(value, (first, "cache"), function)
