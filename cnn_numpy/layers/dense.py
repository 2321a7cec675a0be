"""Fully connected layers: FCLayer (linear), FCLayer_ReLU, FCLayer_Sigmoid, FCLayer_Softmax."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from . import activations as act
from .base import Layer, check_ndim, positive_int


class FCLayer(Layer):
    """A dense layer with the bias stored as the last column of W (the spec's layout).

        Z = [A_prev, 1] @ W.T = A_prev @ W[:, :-1].T + W[:, -1]

    Shapes:  A_prev (n, k)  ->  Z (n, num_neurons)
             W (num_neurons, k + 1): weights, then the bias column

    The "augmented" input [A_prev, 1] is never built: the bias column is
    added on its own, which saves copying the whole input every batch.
    Subclasses add an activation: Z, then A = g(Z).
    """

    input_ndims = (1,)
    param_names = ("W",)

    def __init__(self, num_neurons: int):
        self.num_neurons = positive_int(num_neurons, "num_neurons", type(self).__name__)
        self.W: np.ndarray | None = None
        self.dW: np.ndarray | None = None

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (self.num_neurons,)

    def config(self) -> dict:
        return {"num_neurons": self.num_neurons}

    def _init_std(self, fan_in: int, fan_out: int) -> float:
        """Glorot (Xavier) normal scale, right for sigmoid, softmax and linear outputs."""
        return float(np.sqrt(2.0 / (fan_in + fan_out)))

    def param_shapes(self, input_shape: tuple[int, ...]) -> dict[str, tuple[int, ...]]:
        return {"W": (self.num_neurons, input_shape[0] + 1)}

    def build(self, input_shape: tuple[int, ...], rng: np.random.Generator,
              dtype: npt.DTypeLike) -> None:
        super().build(input_shape, rng, dtype)
        k = input_shape[1]
        std = self._init_std(k, self.num_neurons)
        self.W = np.zeros(self.param_shapes(self.input_shape)["W"], dtype=dtype)
        self.W[:, :-1] = rng.standard_normal((self.num_neurons, k)) * std

    def decayed(self) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(self.W[:, :-1], self.dW[:, :-1])]  # not the bias column

    def _check_input(self, A_prev: np.ndarray) -> None:
        """ValueError unless A_prev is (n, k) with the k the layer was built for."""
        name = type(self).__name__
        check_ndim(A_prev, 2, name, "of shape (n, features); put a FlatLayer before it")
        if self.built and A_prev.shape[1] != self.input_shape[0]:
            raise ValueError(f"{name}: built for {self.input_shape[0]} inputs per sample, "
                             f"got input of shape {A_prev.shape}")

    def _linear_forward(self, A_prev: np.ndarray) -> np.ndarray:
        """A_prev (n, k) -> Z (n, num_neurons); keeps A_prev and Z."""
        if np.shape(A_prev)[1:] != self.input_shape:  # the first batch, or a new sample shape
            self._check_input(A_prev)
            self._ensure_built(A_prev)
        self.A_prev = A_prev
        self.Z = A_prev @ self.W[:, :-1].T + self.W[:, -1]
        return self.Z

    def forward_propagate(self, A_prev: np.ndarray) -> np.ndarray:
        """A_prev (n, k) -> Z (n, num_neurons)."""
        return self._linear_forward(A_prev)

    def backpropagate_dZ(self, dZ: np.ndarray) -> np.ndarray:
        """dZ (n, num_neurons) -> dA_prev (n, k); stores dW (num_neurons, k + 1).

        dW[:, :-1] = dZ.T @ A_prev,  dW[:, -1] = sum of dZ over the batch,
        dA_prev = dZ @ W[:, :-1] (the bias column has no input to pass back to).
        """
        self.dW = np.empty_like(self.W)
        self.dW[:, :-1] = dZ.T @ self.A_prev
        self.dW[:, -1] = dZ.sum(axis=0)
        return dZ @ self.W[:, :-1]

    def backpropagate(self, dA: np.ndarray) -> np.ndarray:
        """dA (n, num_neurons) -> dA_prev (n, k).  Linear, so dZ = dA."""
        return self.backpropagate_dZ(dA)


class FCLayer_ReLU(FCLayer):
    """FCLayer then A = max(Z, 0).  He initialisation."""

    def _init_std(self, fan_in: int, fan_out: int) -> float:
        return float(np.sqrt(2.0 / fan_in))

    def forward_propagate(self, A_prev: np.ndarray) -> np.ndarray:
        """A_prev (n, k) -> A (n, num_neurons)."""
        self.A = act.relu(self._linear_forward(A_prev))
        return self.A

    def backpropagate(self, dA: np.ndarray) -> np.ndarray:
        """dA (n, num_neurons) -> dA_prev (n, k): dZ = dA where Z > 0, then as FCLayer."""
        return self.backpropagate_dZ(act.relu_backward(dA, self.Z))


class OutputLayer(FCLayer):
    """An FC layer that can end a Net: it knows the loss and its gradient w.r.t. Z.

    loss(Y) -> (loss, dZ) for the last forward pass, with Y one-hot (n, k):
    the mean cross-entropy over the batch, computed from Z so it stays
    finite, and dZ = dloss/dZ without ever dividing by A.  With the
    matching loss both output layers have the same simple gradient,
    dZ = (A - Y) / n.
    """

    def loss(self, Y: np.ndarray) -> tuple[float, np.ndarray]:
        raise NotImplementedError


class FCLayer_Sigmoid(OutputLayer):
    """FCLayer then A = 1 / (1 + exp(-Z)), computed without overflow.

    As the last layer of a Net it is trained on the binary cross-entropy
    (see loss); the Net's CCE figure is then that loss.
    """

    def forward_propagate(self, A_prev: np.ndarray) -> np.ndarray:
        """A_prev (n, k) -> A (n, num_neurons), each in (0, 1)."""
        self.A = act.sigmoid(self._linear_forward(A_prev))
        return self.A

    def backpropagate(self, dA: np.ndarray) -> np.ndarray:
        """dA (n, num_neurons) -> dA_prev (n, k): dZ = dA * A * (1 - A), then as FCLayer."""
        return self.backpropagate_dZ(act.sigmoid_backward(dA, self.A))

    def loss(self, Y: np.ndarray) -> tuple[float, np.ndarray]:
        """Binary cross-entropy, each output its own yes/no question:

            loss = -1/n sum(Y log A + (1 - Y) log(1 - A)),   dZ = (A - Y) / n

        with log A = log_sigmoid(Z) and log(1 - A) = log_sigmoid(-Z), finite for
        any Z.  (The categorical -Y log A alone would never push the wrong
        outputs down: every output could learn to say 1.)
        """
        n = Y.shape[0]
        log_likelihood = Y * act.log_sigmoid(self.Z) + (1 - Y) * act.log_sigmoid(-self.Z)
        loss = -float(np.sum(log_likelihood, dtype=np.float64)) / n
        return loss, ((self.A - Y) / n).astype(self.Z.dtype, copy=False)


class FCLayer_Softmax(OutputLayer):
    """FCLayer then A = softmax(Z) over the neurons of each sample (rows sum to 1)."""

    def forward_propagate(self, A_prev: np.ndarray) -> np.ndarray:
        """A_prev (n, k) -> A (n, num_neurons)."""
        self.A = act.softmax(self._linear_forward(A_prev))
        return self.A

    def backpropagate(self, dA: np.ndarray) -> np.ndarray:
        """Through the full softmax Jacobian; Net.train uses the shortcut in loss()."""
        return self.backpropagate_dZ(act.softmax_backward(dA, self.A))

    def loss(self, Y: np.ndarray) -> tuple[float, np.ndarray]:
        """cce = -1/n sum(Y log softmax(Z));  dZ = (A - Y) / n.

        That is (A * sum(Y) - Y) / n with each row of Y summing to 1, as a
        one-hot row does; the general form is used so any Y is right.
        """
        n = Y.shape[0]
        cce = -float(np.sum(Y * act.log_softmax(self.Z), dtype=np.float64)) / n
        dZ = (self.A * Y.sum(axis=1, keepdims=True) - Y) / n
        return cce, dZ.astype(self.Z.dtype, copy=False)
