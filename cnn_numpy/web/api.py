"""What the page asks for, computed by cnn-numpy's own layers: no web framework here.

Every function takes already-parsed JSON values, checks them, and returns a
JSON-able dict (NumPy arrays allowed: the server encodes them).  Any
problem with the request is a RequestError, which the server answers with
400 and the message.
"""

from __future__ import annotations

import base64
import binascii
import copy
import io
import threading
import time
from collections.abc import Mapping

import numpy as np

from ..data.idx import DataError
from ..data.images import decode_digit_image
from ..engines import ENGINES
from ..exercises.engine import PREFIX as EXERCISE_PREFIX
from ..layers import ConvLayer, PoolLayer
from ..models import CUSTOM, defaults, model_name
from ..net import Net
from ..training import LIMITS
from ..visual import saliency
from ..visual.explain import stride_group_table, untouched_cells

MAX_PNG_BYTES = 700_000        # a data: URL of this much base64 fits in a 1 MB body
MAX_EXPLAIN_INPUT = 32         # the stride-group panel draws an N x N grid
MAX_EXPLAIN_PAD = 4            # ... plus this much zero padding on each side at most
MAX_PNG_PIXELS = 4_000_000     # 2000 x 2000 (about 110 MB to decode): a PNG compresses far more
PNG_PREFIX = "data:image/png;base64,"
#: The settings a run takes live edits of: their ranges go to the page, which says at once
#: what it would refuse.
LIVE_LIMITS = ("learning_rate", "momentum", "batch_size", "weight_decay")


class RequestError(ValueError):
    """A bad request: answered with 400 and this message."""


def describe_model(net: Net) -> dict:
    """GET /api/model: the layers with their settings, output shapes and parameter counts,
    the first conv layer's filters and biases (for the page's multiply-add panel), and
    the training settings the command line would use for these layers (its defaults)."""
    shapes = net.shapes(net.input_shape)
    layers = [{"name": f"{i}: {type(layer).__name__}", "type": type(layer).__name__,
               "config": layer.config(), "output_shape": list(shape),
               "parameters": int(sum(p.size for p in layer.params().values()))}
              for i, (layer, shape) in enumerate(zip(net.layers, shapes, strict=True))]
    convs = [(i, layer) for i, layer in enumerate(net.layers) if isinstance(layer, ConvLayer)]
    first = None
    if convs:
        i, conv = convs[0]
        (top, _), (left, _) = conv.pads(*net.input_shape[:2])
        first = {"layer": i, "filter_width": conv.filter_width, "stride": conv.stride,
                 "pad_top": top, "pad_left": left, "weights": conv.W, "bias": conv.b,
                 "relu": type(conv).__name__ == "ConvLayer_ReLU"}
    try:
        text = net.describe()
    except ValueError:  # a layer of the user's own: the Train panel starts from the cnn
        text = None
    return {"input_shape": list(net.input_shape), "layers": layers, "first_conv": first,
            "engines": sorted(ENGINES), "engine": _engine_of(net), "layers_text": text,
            "class_names": None if net.class_names is None else list(net.class_names),
            "defaults": defaults(CUSTOM if text is None else model_name(text)),
            "limits": {name: {"whole": LIMITS[name].kind is int, "low": LIMITS[name].low,
                              "high": LIMITS[name].high, "low_open": LIMITS[name].low_open,
                              "high_open": LIMITS[name].high_open,
                              "text": LIMITS[name].describe()} for name in LIVE_LIMITS}}


def _engine_of(net: Net) -> str | None:
    for layer in net.layers:
        if isinstance(layer, (ConvLayer, PoolLayer)):
            return layer.engine
    return None


def read_image(body: object) -> np.ndarray:
    """The request's digit as a (28, 28) float32 image in [0, 1], white on black.

    {"image": 28 rows of 28 numbers in [0, 1]} or {"png": "data:image/png;base64,..."}
    (read as `cnn-numpy predict` reads a file).
    """
    if not isinstance(body, dict):
        raise RequestError("the body must be a JSON object with \"image\" or \"png\"")
    if ("image" in body) == ("png" in body):
        raise RequestError("give exactly one of \"image\" (28 rows of 28 numbers) or \"png\" "
                           "(a data:image/png;base64 URL)")
    if "png" in body:
        return _read_png(body["png"])
    rows = body["image"]
    if not isinstance(rows, list) or len(rows) != 28 or not all(
            isinstance(row, list) and len(row) == 28 for row in rows):
        raise RequestError("\"image\" must be 28 rows of 28 numbers")
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool)
               for row in rows for v in row):
        raise RequestError("\"image\" must hold only numbers")
    image = np.array(rows, dtype=np.float64)
    if not np.isfinite(image).all():
        raise RequestError("\"image\" holds NaN or infinite values")
    if image.min() < 0 or image.max() > 1:
        raise RequestError(f"\"image\" values must be in 0..1 (white digit on black), got "
                           f"{image.min():g}..{image.max():g}")
    return image.astype(np.float32)


def _read_png(url) -> np.ndarray:
    if not isinstance(url, str) or not url.startswith(PNG_PREFIX):
        raise RequestError("\"png\" must be a string starting with data:image/png;base64,")
    encoded = url[len(PNG_PREFIX):]
    if len(encoded) > MAX_PNG_BYTES * 4 // 3 + 4:
        raise RequestError(f"\"png\" is larger than {MAX_PNG_BYTES:,} bytes")
    try:
        data = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise RequestError("\"png\" is not valid base64") from None
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        raise RequestError("\"png\" is not a PNG image")
    try:
        return decode_digit_image(io.BytesIO(data), "\"png\"", max_pixels=MAX_PNG_PIXELS)
    except DataError as exc:
        raise RequestError(str(exc)) from None


class Turns:
    """A lock handed over first come, first served (a ticket lock): a run's thread that
    lets go of it between two steps and takes it again at once waits behind a request
    that was already waiting, so the request waits one step at most."""

    def __init__(self):
        self._changed = threading.Condition(threading.Lock())
        self._issued = self._serving = 0

    def acquire(self) -> None:
        with self._changed:
            ticket, self._issued = self._issued, self._issued + 1
            self._changed.wait_for(lambda: self._serving == ticket)

    def release(self) -> None:
        with self._changed:
            self._serving += 1
            self._changed.notify_all()

    def __enter__(self) -> Turns:
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


class Model:
    """A Net shared by the server's threads: one forward pass at a time.

    Layers keep what their last pass computed (for the backward pass), so two
    threads must not run the same Net at once; the lock makes them take turns.

    `compute` is held by a page run's thread while it takes a step, and by the requests
    whose passes may set NumPy's BLAS to one thread (the fast path does, for the whole
    process, while a pass runs on shards): such a pass never overlaps a step, so a run
    ends with the same weights whatever the page asks meanwhile.  Take it before `lock`.
    """

    def __init__(self, net: Net):
        self.net = net
        self.lock = threading.Lock()
        self.compute = Turns()
        self.version = 1  # a new net (a run of the Train panel) makes a new version
        self.weights = 1  # ... and so does every change of its weights (a run's snapshot)
        self.dataset: str | None = None  # what the net shown was trained on (None: unknown)

    def describe(self, _: Mapping[str, str] | None = None) -> dict:
        """GET /api/model for the net shown now."""
        with self.lock:
            return {**describe_model(self.net), "version": self.version,
                    "weights_version": self.weights, "dataset": self.dataset}

    def replace(self, net: Net, dataset: str | None = None) -> None:
        """Show `net`, trained on `dataset`, from now on (the caller holds the lock)."""
        self.net, self.dataset = net, dataset
        self.version += 1
        self.weights += 1

    def copy(self) -> tuple[Net, tuple[int, int]]:
        """A copy of the net shown now (weights, optimizer state, random generator) and its
        (version, weights version): what the inspector traces a step on, never the net."""
        with self.lock:
            return copy.deepcopy(self.net), (self.version, self.weights)

    def explain_gradients(self, body: object) -> dict:
        """POST /api/saliency: the drawn digit's saliency map and the smallest FGSM nudge
        that changes its prediction, from the layers' own backward pass."""
        image = read_image(body)
        with self.compute, self.lock:  # FGSM tries its steps with net.predict
            if len(self.net.input_shape) != 3 or self.net.input_shape[:2] != image.shape:
                raise RequestError(f"the model takes samples of shape {self.net.input_shape}")
            found = saliency.saliency(self.net, image[..., None])
            nudge = saliency.fgsm(self.net, image[..., None])
        return {"prediction": found.prediction, "probabilities": found.probabilities,
                "saliency": found.gradient[..., 0],
                "nudge": None if nudge.step is None else {
                    "step": nudge.step, "image": nudge.image[..., 0],
                    "prediction": nudge.prediction, "probabilities": nudge.probabilities},
                "largest_step": float(saliency.FGSM_STEPS[-1])}

    def predict(self, body: object) -> dict:
        """POST /api/predict: probabilities, prediction, every layer's output, time."""
        image = read_image(body)
        engine = body.get("engine")
        if engine is not None and (not isinstance(engine, str) or engine not in ENGINES):
            raise RequestError(f"unknown engine {engine!r}: choose one of "
                               f"{', '.join(sorted(ENGINES))}")
        with self.compute, self.lock, self.net.using_engine(engine):
            start = time.perf_counter()
            outputs = self.net.layer_outputs(image[None])
            milliseconds = (time.perf_counter() - start) * 1000
            # The maps come from the plain loop; the probabilities are exactly Net.predict's
            # (the fast path may add in another order: the same to rounding).
            probabilities = self.net.predict(image[None])[0]
        return {"probabilities": probabilities, "prediction": int(probabilities.argmax()),
                "image": image,
                "layers": [{"name": f"{i}: {type(layer).__name__}", "shape": list(a.shape[1:]),
                            "values": a[0]}
                           for i, (layer, a) in enumerate(zip(self.net.layers, outputs,
                                                              strict=True))],
                "milliseconds": milliseconds}

    def compare_engines(self, body: object) -> dict:
        """POST /api/engines: the same forward pass with every engine, each the median of
        several timed runs after one untimed, and the largest difference between their
        outputs."""
        image = read_image(body)
        results, outputs = [], {}
        with self.lock:
            for name in sorted(ENGINES):
                repeats = 3 if _loops(name) else ENGINE_REPEATS
                with self.net.using_engine(name):
                    outputs[name] = self.net.layer_outputs(image[None])
                    times = []
                    for _ in range(repeats):
                        start = time.perf_counter()
                        self.net.layer_outputs(image[None])
                        times.append((time.perf_counter() - start) * 1000)
                results.append({"engine": name, "milliseconds": float(np.median(times)),
                                "repeats": repeats})
        reference = outputs["naive"]
        for entry in results:
            entry["largest_difference"] = max(
                float(np.abs(a - b).max()) for a, b in zip(outputs[entry["engine"]], reference,
                                                          strict=True))
        return {"engines": results, "note": ENGINE_NOTE}


ENGINE_REPEATS = 15


def _loops(engine: str) -> bool:
    """Whether an engine computes one multiply-add at a time (the naive loops, or a
    learner's exercise engine, written the same way), so a few timed runs suffice."""
    return engine == "naive" or engine.startswith(EXERCISE_PREFIX)
ENGINE_NOTE = ("Each time is the median of several runs on this one image, on the server, "
               "after one untimed run. With one image, im2col and stride groups spend most of "
               "the time in per-call overhead and are close; the documentation's speed figures are "
               "for training batches of 32 to 128 images, where stride groups' few large "
               "matrix products pull ahead. The naive loops are the same arithmetic, one "
               "multiply-add at a time.")


def stride_groups(query: Mapping[str, str]) -> dict:
    """GET /api/stride-groups?filter=F&stride=S&input=N: the engine's groups, as `cnn-numpy
    explain stride-groups` computes them."""
    values = {}
    for name in ("filter", "stride", "input", "pad"):
        text = query.get(name, "0" if name == "pad" else None)
        if text is None:
            raise RequestError(f"give ?filter=F&stride=S&input=N (and &pad=P); {name} is "
                               "missing")
        try:
            values[name] = int(text)
        except ValueError:
            raise RequestError(f"{name} must be a whole number, got {text!r}") from None
        low, high = (0, MAX_EXPLAIN_PAD) if name == "pad" else (1, MAX_EXPLAIN_INPUT)
        if not low <= values[name] <= high:
            raise RequestError(f"{name} must be in {low}..{high}, got {values[name]}")
    pad, n = values["pad"], values["input"] + 2 * values["pad"]
    if pad >= values["filter"]:
        raise RequestError(f"pad must be below the filter width ({values['filter']}): a "
                           f"window would otherwise cover only padding")
    try:
        table = stride_group_table(values["filter"], values["stride"], n)
    except ValueError as exc:
        raise RequestError(str(exc)) from None
    return {"filter": table.filter_width, "stride": table.stride, "input": table.input_size,
            "out": table.out, "every": table.every, "pad": pad,
            "groups": [{"number": g.number, "positions": list(g.positions),
                        "cells": [list(c) for c in g.cells]} for g in table.groups],
            "untouched": untouched_cells(table),
            "padding_cells": [r * n + c + 1 for r in range(n) for c in range(n)
                              if min(r, c) < pad or max(r, c) >= n - pad]}


def random_test_image(images: np.ndarray, labels: np.ndarray,
                      rng: np.random.Generator) -> dict:
    """GET /api/random-image: one image of the bundled test set and its true label."""
    i = int(rng.integers(len(images)))
    return {"index": i, "label": int(labels[i]), "image": images[i]}
