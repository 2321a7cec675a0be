"""Tools for checking a layer you wrote: numerical gradient checks, in float64.

    from cnn_numpy.testing import check_layer
    check_layer(MyLayer(), (2, 6, 6, 3))      # raises AssertionError naming what is wrong

The idea (CS231n's "gradient check"): take the scalar L = sum(G * layer(X))
for a fixed random G, so that dL/dA = G.  backpropagate(G) must then return
dL/dX, and leave dL/dW in grads(); central differences,

    dL/dx ~ (L(x + eps) - L(x - eps)) / (2 eps)    one element at a time,

give the same numbers to about 1e-7 relative in float64 when the layer is
right, and usually wrong by O(1) when it is not.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from .layers import Layer

__all__ = ["check_layer", "numerical_gradient", "relative_error"]


def numerical_gradient(f: Callable[[], float], x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """dF/dx by central differences, one element at a time.

    f() computes the scalar from the current contents of x; x is changed in
    place during the call and restored.  Returns an array shaped like x.
    """
    grad = np.zeros_like(x)
    for idx in np.ndindex(x.shape):
        old = x[idx]
        x[idx] = old + eps
        up = f()
        x[idx] = old - eps
        down = f()
        x[idx] = old
        grad[idx] = (up - down) / (2 * eps)
    return grad


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """max |a - n| / max(|a|, |n|): the worst element, relative to the gradient's scale."""
    scale = max(np.abs(analytic).max(initial=0), np.abs(numeric).max(initial=0), 1e-12)
    return float(np.abs(analytic - numeric).max(initial=0) / scale)


def _compare(layer_name: str, what: str, analytic, numeric: np.ndarray, tol: float) -> None:
    if analytic is None or np.shape(analytic) != numeric.shape:
        raise AssertionError(f"{layer_name}: the gradient of {what} should have shape "
                             f"{numeric.shape}, got "
                             f"{None if analytic is None else np.shape(analytic)}")
    error = relative_error(analytic, numeric)
    if not error < tol:  # also catches NaN
        worst = np.unravel_index(np.argmax(np.abs(analytic - numeric)), numeric.shape)
        raise AssertionError(
            f"{layer_name}: the gradient of {what} is wrong at index {tuple(map(int, worst))}: "
            f"backpropagate gives {analytic[worst]:.6g}, central differences "
            f"{numeric[worst]:.6g} (relative error {error:.1e}, tolerance {tol:.0e})")


def check_layer(layer: Layer, input_shape: tuple[int, ...], *, seed: int = 0,
                training: bool | None = None, eps: float = 1e-6, tol: float = 1e-6) -> None:
    """Check a layer's backward pass against numerical gradients, in float64.

    layer        a new Layer, or one built for float64; its weights are replaced by
                 random ones, so do not pass a layer whose trained weights you need
    input_shape  the shape of the test input, batch axis first, e.g. (2, 6, 6, 3);
                 keep it small: every input and weight element costs two forward passes
    training     check in training mode (True), inference mode (False), or both (None)

    For a random X (standard normal) and random G, with the layer's weights
    set to random values (biases too, so no ReLU sits on its kink by
    construction), checks that
      - backpropagate(G) matches dL/dX and grads() match dL/dW for every
        weight in params(), where L = sum(G * forward_propagate(X));
      - forward_propagate leaves X unchanged and backpropagate leaves G unchanged;
      - the output has the shape output_shape() promises.
    Before each forward pass the layer's random generator is reset, so a
    layer that draws random numbers (Dropout) draws the same ones each time.

    Raises AssertionError saying which check failed, which gradient, at what
    index and by how much.  Returns None when everything agrees.
    """
    rng = np.random.default_rng(seed)
    X = rng.standard_normal(input_shape)
    layer.rng = np.random.default_rng(seed + 1)
    if not layer.built:
        layer.build(X.shape, layer.rng, np.float64)
    _require_float64(layer, input_shape)
    _randomize(layer, X, rng)
    for mode in (True, False) if training is None else (bool(training),):
        _check_mode(layer, X, rng, mode, seed=seed, eps=eps, tol=tol)


def _require_float64(layer: Layer, input_shape: tuple[int, ...]) -> None:
    """ValueError unless all the layer's weights and buffers are float64."""
    name = type(layer).__name__
    wrong = {str(v.dtype) for v in {**layer.params(), **layer.buffers()}.values()} - {"float64"}
    if wrong:
        raise ValueError(f"check_layer: {name} was built with {', '.join(sorted(wrong))} "
                         f"weights; numerical gradients need float64: pass a new layer, "
                         f"e.g. check_layer({name}(...), {tuple(input_shape)})")


def _randomize(layer: Layer, X: np.ndarray, rng: np.random.Generator) -> None:
    """Standard normal weights (biases too); running statistics moved away from their
    start values by one training pass over X * 0.5 + 1."""
    for param in layer.params().values():
        param[...] = rng.standard_normal(param.shape)
    if layer.buffers():
        layer.training = True
        layer.forward_propagate(X * 0.5 + 1)


def _check_mode(layer: Layer, X: np.ndarray, rng: np.random.Generator, mode: bool, *,
                seed: int, eps: float, tol: float) -> None:
    """check_layer's checks in one mode (training: True), for input X (batch first).

    The gradients are those of L = sum(G * forward_propagate(X)) for a random
    G drawn from rng, the shape of the output; the buffers are left as before.
    """
    name = type(layer).__name__

    def forward() -> np.ndarray:
        layer.training = mode
        layer.rng = np.random.default_rng(seed + 2)
        return layer.forward_propagate(X)

    out = _checked_forward(layer, X, forward)
    G = rng.standard_normal(out.shape)
    buffers = {k: v.copy() for k, v in layer.buffers().items()}

    def loss() -> float:
        return float(np.sum(G * forward()))

    dX, grads = _checked_backward(layer, G)
    where = "training" if mode else "inference"
    _compare(name, f"the input ({where} mode)", dX, numerical_gradient(loss, X, eps), tol)
    for key, param in layer.params().items():
        _compare(name, f"{key} ({where} mode)", grads.get(key),
                 numerical_gradient(loss, param, eps), tol)
    for key, value in buffers.items():  # undo the updates the extra passes made
        layer.buffers()[key][...] = value


def _checked_forward(layer: Layer, X: np.ndarray, forward: Callable[[], np.ndarray]
                     ) -> np.ndarray:
    """forward(), after checking that it leaves X unchanged and gives the output shape
    (batch, *output_shape(sample shape)) that the layer promises."""
    name = type(layer).__name__
    X_before = X.copy()
    out = forward()
    if not np.array_equal(X, X_before):
        raise AssertionError(f"{name}: forward_propagate changed its input")
    expected = (X.shape[0], *layer.output_shape(X.shape[1:]))
    if out.shape != expected:
        raise AssertionError(f"{name}: output shape {out.shape}, but output_shape() "
                             f"promises {expected}")
    return out


def _checked_backward(layer: Layer, G: np.ndarray) -> tuple[np.ndarray, dict]:
    """(backpropagate(G), a copy of grads()), after checking that G was left unchanged."""
    G_before = G.copy()
    dX = layer.backpropagate(G)
    if not np.array_equal(G, G_before):
        raise AssertionError(f"{type(layer).__name__}: backpropagate changed the gradient it "
                             "was given")
    grads = {k: None if v is None else np.array(v) for k, v in layer.grads().items()}
    return dX, grads
