"""Optimizers: how a Net turns gradients into weight updates.

Each optimizer gets, every step, the list of (key, param, grad) triples of
the whole network and updates every param in place.  Per-parameter state
(velocities, moment estimates) is kept under the key, so an optimizer can
be saved and restored with state_dict() / load_state_dict().
"""

from __future__ import annotations

import numpy as np

Triple = tuple[str, np.ndarray, np.ndarray]


class Optimizer:
    name = "optimizer"

    def __init__(self) -> None:
        self.state: dict[str, np.ndarray] = {}
        self.steps = 0

    def step(self, triples: list[Triple], learning_rate: float) -> None:
        self.steps += 1
        for key, param, grad in triples:
            self.update(key, param, grad, learning_rate)

    def update(self, key: str, param: np.ndarray, grad: np.ndarray, lr: float) -> None:
        raise NotImplementedError

    def config(self) -> dict:
        return {}

    def state_dict(self) -> dict[str, np.ndarray]:
        """Arrays that, with config(), restore this optimizer exactly."""
        return {"steps": np.array(self.steps), **{f"state/{k}": v for k, v in self.state.items()}}

    def load_state_dict(self, arrays: dict[str, np.ndarray]) -> None:
        self.steps = int(arrays["steps"])
        self.state = {k[len("state/"):]: np.array(v) for k, v in arrays.items()
                      if k.startswith("state/")}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.config().items())
        return f"{type(self).__name__}({args})"


class SGD(Optimizer):
    """Plain gradient descent, the spec's rule:  W -= lr * dW."""

    name = "sgd"

    def update(self, key, param, grad, lr):
        param -= lr * grad


class Momentum(Optimizer):
    """SGD with momentum (PyTorch's form):  v = mu * v + dW;  W -= lr * v."""

    name = "momentum"

    def __init__(self, momentum: float = 0.9):
        super().__init__()
        if not 0 <= momentum < 1:
            raise ValueError(f"Momentum: momentum must be in [0, 1), got {momentum!r}")
        self.momentum = float(momentum)

    def config(self) -> dict:
        return {"momentum": self.momentum}

    def update(self, key, param, grad, lr):
        v = self.state.get(key)
        if v is None:
            v = self.state[key] = np.zeros_like(param)
        v *= self.momentum
        v += grad
        param -= lr * v


class Adam(Optimizer):
    """Adam (Kingma & Ba, 2015) with bias correction:

        m = b1 m + (1 - b1) g,   v = b2 v + (1 - b2) g^2
        W -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
    """

    name = "adam"

    def __init__(self, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        super().__init__()
        for what, value in (("beta1", beta1), ("beta2", beta2)):
            if not 0 <= value < 1:
                raise ValueError(f"Adam: {what} must be in [0, 1), got {value!r}")
        if not eps > 0:
            raise ValueError(f"Adam: eps must be > 0, got {eps!r}")
        self.beta1, self.beta2, self.eps = float(beta1), float(beta2), float(eps)

    def config(self) -> dict:
        return {"beta1": self.beta1, "beta2": self.beta2, "eps": self.eps}

    def update(self, key, param, grad, lr):
        if key + "/m" not in self.state:
            self.state[key + "/m"] = np.zeros_like(param)
            self.state[key + "/v"] = np.zeros_like(param)
        m, v = self.state[key + "/m"], self.state[key + "/v"]
        m *= self.beta1
        m += (1 - self.beta1) * grad
        v *= self.beta2
        v += (1 - self.beta2) * grad * grad
        m_hat_scale = lr / (1 - self.beta1 ** self.steps)
        v_hat = v / (1 - self.beta2 ** self.steps)
        param -= m_hat_scale * m / (np.sqrt(v_hat) + self.eps)


OPTIMIZERS: dict[str, type[Optimizer]] = {"sgd": SGD, "momentum": Momentum, "adam": Adam}


def make_optimizer(spec: str | Optimizer | None) -> Optimizer:
    """An Optimizer from a name ('sgd', 'momentum', 'adam'), an instance, or None (SGD)."""
    if spec is None:
        return SGD()
    if isinstance(spec, Optimizer):
        return spec
    if isinstance(spec, str) and spec in OPTIMIZERS:
        return OPTIMIZERS[spec]()
    raise ValueError(f"unknown optimizer {spec!r}: choose one of {', '.join(OPTIMIZERS)} "
                     "or pass an Optimizer instance")
