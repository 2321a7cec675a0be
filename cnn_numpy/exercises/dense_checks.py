"""The checks of part 3: dense_forward, dense_backward, softmax_cross_entropy.  The
reference is what cnn_numpy/layers/dense.py and activations.py compute."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..layers.activations import log_softmax, softmax
from .base import AVERAGED, Case, Check, CheckError, Mistake, numerical_pairs
from .conv_checks import tenths
from .files import LearnerError
from .outputs import pair, values
from .passes import BackwardCheck

DENSE_HAND = ((np.array([[1.0, 2]]), np.array([[1.0, 0], [2, 1]]), np.array([0.5, -1])),
              (np.array([[1.0, 0, 2], [0, 1, 1]]), np.array([[1.0, 1, 0], [0, 2, -1]]),
               np.array([0.0, 1])))


def dense_cases(rng: np.random.Generator, with_dZ: bool = False) -> list[Case]:
    cases = []
    for n, k, m in ((1, 2, 2), (2, 3, 3), (3, 5, 4), (4, 6, 10)):
        case = Case({"A_prev": tenths(rng, (n, k)), "W": tenths(rng, (m, k)),
                     "b": tenths(rng, (m,))})
        if with_dZ:
            case.inputs["dZ"] = tenths(rng, (n, m))
        cases.append(case)
    return cases


class DenseForward(Check):
    name = "dense_forward"
    outputs = ("Z",)
    dtypes = {"Z": "A_prev"}

    def hand_cases(self) -> list[Case]:
        return [Case({"A_prev": A, "W": W, "b": b}, hand=True) for A, W, b in DENSE_HAND]

    def random_cases(self, rng: np.random.Generator) -> list[Case]:
        return dense_cases(rng)

    def reference(self, case: Case) -> tuple:
        return (case["A_prev"] @ case["W"].T + case["b"],)

    def run(self, call: Callable, case: Case) -> tuple:
        return (pair(call(self.name, case["A_prev"], case["W"], case["b"]), self.name, "Z")[0],)

    def mistakes(self) -> tuple[Mistake, ...]:
        return (Mistake("the bias is missing: each neuron adds its b[j] to its sum",
                        lambda c: (c["A_prev"] @ c["W"].T,)),
                Mistake("W is not transposed: neuron j's weights are the row W[j], so the sums "
                        "are A_prev @ W.T", lambda c: (c["A_prev"] @ c["W"] + c["b"],)))


class DenseBackward(BackwardCheck):
    name = "dense_backward"
    outputs = ("dA_prev", "dW", "db")
    dtypes = {"dA_prev": "dZ", "dW": "dZ", "db": "dZ"}
    upstream = "dZ"
    gradient_of = {"dA_prev": "A_prev", "dW": "W", "db": "b"}

    def hand_cases(self) -> list[Case]:
        return [Case({"A_prev": A, "W": W, "b": b, "dZ": np.arange(1.0, A.shape[0] * 2 + 1)
                      .reshape(A.shape[0], 2)}, hand=True) for A, W, b in DENSE_HAND]

    def random_cases(self, rng: np.random.Generator) -> list[Case]:
        return dense_cases(rng, with_dZ=True)

    def reference(self, case: Case) -> tuple:
        dZ, A, W = case["dZ"], case["A_prev"], case["W"]
        return dZ @ W, dZ.T @ A, dZ.sum(axis=0)

    def mistakes(self) -> tuple[Mistake, ...]:
        def averaged(c: Case) -> tuple:
            dA, dW, db = self.reference(c)
            return dA, dW / len(c["dZ"]), db / len(c["dZ"])

        def transposed(c: Case) -> tuple:
            dA, dW, db = self.reference(c)
            return dA, c["A_prev"].T @ c["dZ"], db

        return (Mistake(AVERAGED, averaged),
                Mistake("db is not summed over the batch: one bias serves every sample, so its "
                        "gradient is dZ summed over axis 0",
                        lambda c: (*self.reference(c)[:2], c["dZ"])),
                Mistake("dW is transposed: it has the shape of W, (m, k), which dZ.T @ A_prev "
                        "gives", transposed))


class SoftmaxCrossEntropy(Check):
    name = "softmax_cross_entropy"
    outputs = ("loss", "dZ")
    dtypes = {"dZ": "Z"}

    def hand_cases(self) -> list[Case]:
        return [Case({"Z": np.array([[0.0, 0.0]]), "Y": np.array([[1.0, 0.0]])}, hand=True),
                Case({"Z": np.array([[2.0, 1, 0], [0, 0, 3]]),
                      "Y": np.array([[1.0, 0, 0], [0, 1, 0]])}, hand=True),
                Case({"Z": np.array([[1000.0, 0, -1000]]), "Y": np.array([[0.0, 1, 0]])},
                     hand=True)]

    def random_cases(self, rng: np.random.Generator) -> list[Case]:
        cases = []
        for n, m in ((2, 3), (4, 5), (8, 10)):
            Y = np.eye(m)[rng.integers(0, m, n)]
            cases.append(Case({"Z": tenths(rng, (n, m)) * 3, "Y": Y}))
        return cases

    def reference(self, case: Case) -> tuple:
        Z, Y = case["Z"], case["Y"]
        return (-float(np.sum(Y * log_softmax(Z))) / len(Z), (softmax(Z) - Y) / len(Z))

    def run(self, call: Callable, case: Case) -> tuple:
        try:
            out = call(self.name, case["Z"], case["Y"])
        except LearnerError as exc:
            if "FloatingPointError" not in exc.line:
                raise
            raise CheckError(f"{OVERFLOW} ({exc.line})", exc.details, OVERFLOW) from None
        loss, dZ = values(out, self.outputs, self.name)
        if not (np.all(np.isfinite(loss)) and np.all(np.isfinite(dZ))):
            raise CheckError(OVERFLOW, mistake=OVERFLOW)
        return (float(np.ravel(loss)[0]) if np.size(loss) == 1 else loss), dZ

    def mistakes(self) -> tuple[Mistake, ...]:
        def axis0(c: Case) -> tuple:
            A = softmax(c["Z"].T).T
            return -float(np.sum(c["Y"] * np.log(A))) / len(A), (A - c["Y"]) / len(A)

        def n(c: Case) -> int:
            return len(c["Z"])

        return (Mistake("the loss is summed over the batch: take the mean (divide by n)",
                        lambda c: (self.reference(c)[0] * n(c), self.reference(c)[1])),
                Mistake("dZ is not divided by n: the loss is a mean, so each sample's (A - Y) "
                        "counts 1 / n", lambda c: (self.reference(c)[0],
                                                   self.reference(c)[1] * n(c))),
                Mistake("softmax runs over the batch axis: each row (one sample's scores) "
                        "must sum to 1, so the sums are over axis=1", axis0))

    def numerical(self, call: Callable, case: Case) -> list:
        def loss() -> float:
            return self.run(call, case)[0]

        got = self.run(call, case)
        return numerical_pairs(loss, case, got, self.outputs, {"dZ": "Z"})


OVERFLOW = ("softmax overflows: np.exp of a large score is inf, and inf / inf is NaN; take each "
            "row's maximum away from Z before np.exp (softmax does not change)")
