"""What the checks of a backward pass share: it runs on the cache of the learner's own
forward pass, twice (a gradient added onto the last call's shows), and is compared with
central differences of that forward pass."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .base import Case, Check, CheckError, differing, numerical_pairs
from .outputs import pair, values
from .spec import BY_NAME

ADDED_EARLIER = ("a gradient is added where it should be written: called twice with the same "
                 "gradient and cache, it gave other numbers the second time, so it adds onto an "
                 "array kept from the first call (in the cache, or at the top of the file); "
                 "create each gradient afresh, from zeros, in every call")


class BackwardCheck(Check):
    """A backward pass: upstream names the gradient it is given (dZ, dout)."""

    upstream: str

    def forward_args(self, case: Case) -> tuple:
        return tuple(case[p] for p in BY_NAME[self.exercise.forward].call)

    def forward_output(self, call: Callable, case: Case) -> tuple:
        """(output, cache) of the learner's forward pass."""
        forward = self.exercise.forward
        return pair(call(forward, *self.forward_args(case)), forward, "its output")

    def run(self, call: Callable, case: Case) -> tuple:
        cache = self.forward_output(call, case)[1]
        first = values(call(self.name, case[self.upstream], cache), self.outputs, self.name)
        first = tuple(np.array(v, copy=True) for v in first)  # the learner may keep them
        second = values(call(self.name, case[self.upstream], cache), self.outputs, self.name)
        if differing(tuple(map(np.asarray, second)), first):
            raise CheckError(ADDED_EARLIER, mistake=ADDED_EARLIER)
        return first

    def numerical(self, call: Callable, case: Case) -> list:
        def loss() -> float:
            return float(np.sum(case[self.upstream] * self.forward_output(call, case)[0]))

        return numerical_pairs(loss, case, self.run(call, case), self.outputs, self.gradient_of)
