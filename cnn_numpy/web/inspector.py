"""The page's step inspector: one training step traced with cnn_numpy.trace on a copy of a
net (never the net a run trains, never the net the page shows), walked stage by stage
(forward layer by layer, the loss, backward layer by layer, the update), and any number
of it explained; and the multiply-add panel's explanation of one pixel of a drawing.

Which net is traced: a paused run's own (weights, optimizer state, random generator),
with the batch it takes next; else the last finished run's trained net; else the net the
page shows (a running run's last snapshot, or the served model), with its own optimizer.
The session keeps one Trace (the last one made) and one one-image trace for the
multiply-add panel, so memory stays bounded.
"""

from __future__ import annotations

import copy
import hashlib
import threading
from collections.abc import Mapping

import numpy as np

from ..net import DivergenceError, Net
from ..trace import Trace, trace_step
from . import own, stages
from .api import Model, RequestError, read_image
from .live import ConflictError, Trainer, _labels, _number, packed, shown_data

MAX_BATCH = 64                 # images in one traced step
MAX_TRACE_BYTES = 600 << 20    # a trace larger than this is refused (a very large network)
SOURCES = ("train", "test", "next")
DEFAULT_RATE = 0.001
MAX_TERMS_SHOWN = 200          # a pixel's explanation lists every term up to this many


def read_step(body: object) -> dict:
    """POST /api/inspect/step's body: {"source": "train", "seed", "batch_size",
    "learning_rate"} (a seeded batch of training images), {"source": "test", "indices"}
    (those test images) or {"source": "next"} (the paused run's next batch)."""
    body = {} if body is None else body
    if not isinstance(body, dict):
        raise RequestError("the body must be a JSON object like {\"source\": \"train\", "
                           "\"seed\": 0, \"batch_size\": 8}")
    known = {"source", "seed", "batch_size", "learning_rate", "indices"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise RequestError(f"unknown field {unknown[0]!r}: the fields are "
                           f"{', '.join(sorted(known))}")
    source = body.get("source", "train")
    if source not in SOURCES:
        raise RequestError(f"source must be one of {', '.join(SOURCES)}, got {source!r}")
    request = {"source": source, "seed": _number("seed", body.get("seed", 0)),
               "batch_size": _number("batch_size", body.get("batch_size", 8)),
               "learning_rate": None if body.get("learning_rate") is None
               else _number("learning_rate", body["learning_rate"])}
    if request["batch_size"] > MAX_BATCH:
        raise RequestError(f"batch_size must be at most {MAX_BATCH} for the inspector")
    if source == "test":
        indices = body.get("indices")
        if not isinstance(indices, list) or not 1 <= len(indices) <= MAX_BATCH or not all(
                isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in indices):
            raise RequestError(f"indices must be a list of 1 to {MAX_BATCH} test image "
                               "numbers (whole numbers >= 0)")
        request["indices"] = indices
    return request


def _int(query, name: str, low: int = 0) -> int:
    text = query.get(name)
    if text is None:
        raise RequestError(f"give {name}")
    try:
        value = int(text)
    except ValueError:
        raise RequestError(f"{name} must be a whole number, got {text!r}") from None
    if value < low:
        raise RequestError(f"{name} must be >= {low}, got {value}")
    return value


def _index(text: str | None) -> tuple[int, ...]:
    """"0,3,4,7" -> (0, 3, 4, 7); "" -> () (a number without axes)."""
    if text is None:
        raise RequestError("give index, e.g. index=0,3,4,7 (the batch position first)")
    try:
        return tuple(int(part) for part in text.split(",")) if text.strip() else ()
    except ValueError:
        raise RequestError(f"index must be whole numbers separated by commas, got "
                           f"{text!r}") from None


def trace_bytes(trace: Trace) -> int:
    return sum(a.nbytes for lt in trace.layers for a in lt.arrays.values())


class Inspector:
    """The session's inspector: the last traced step and the multiply-add panel's trace.
    Every method is called from request threads."""

    def __init__(self, model: Model, trainer: Trainer):
        self.model, self.trainer = model, trainer
        self.lock = threading.Lock()   # guards what follows
        self.trace: Trace | None = None
        self.number = 0                # the trace's number: each new trace gets the next
        self.summary: dict | None = None
        self.pixel_trace: tuple[tuple, Trace] | None = None

    # -- requests ------------------------------------------------------------------------
    def step(self, body: object) -> dict:
        """POST /api/inspect/step: trace one step on a copy of the net for a batch; the
        answer lists the batch and the stages."""
        request = read_step(body)
        net, next_step, about = self._net(request["source"])
        batch = self._batch(request, next_step, about, net)
        try:
            with self.model.compute:  # between two steps of a run, as every pass here
                trace = trace_step(net, batch["x"], batch["y"], batch["learning_rate"])
        except (ValueError, DivergenceError) as exc:
            raise RequestError(f"the step could not be traced: {exc}") from None
        if trace_bytes(trace) > MAX_TRACE_BYTES:
            raise RequestError(f"this network's step holds {trace_bytes(trace) >> 20:,} MB of "
                               f"arrays; the inspector keeps at most {MAX_TRACE_BYTES >> 20} "
                               "MB: trace a smaller batch")
        summary = stages.summary(trace, net, batch, about)
        with self.lock:
            self.number += 1
            self.trace, self.summary = trace, {**summary, "trace": self.number}
            return self.summary

    def last(self, _: Mapping[str, str] | None = None) -> dict:
        """GET /api/inspect: the last traced step's summary ({"trace": null} for none)."""
        with self.lock:
            return self.summary or {"trace": None}

    def array(self, query: Mapping[str, str]) -> dict:
        """GET /api/inspect/array?layer=&name=&sample=: one array of the traced step (one
        sample's part of a batch array), packed for display."""
        trace, number = self._current(query)
        lt = self._layer(trace, query)
        name = query.get("name") or ""
        try:
            canonical = lt.resolve(name)
        except ValueError as exc:
            raise RequestError(str(exc)) from None
        values = lt.arrays[canonical]
        batch = canonical in stages.BATCH and values.ndim >= 1
        sample = None
        if batch:
            sample = _int(query, "sample")
            if sample >= len(values):
                raise RequestError(f"sample must be 0..{len(values) - 1}, got {sample}")
            values = values[sample]
        finite = values[np.isfinite(values)] if values.size else values
        return {"trace": number, "layer": lt.number, "name": canonical,
                "shape": list(values.shape), "batch": batch, "sample": sample,
                "values": packed(values),
                "min": float(finite.min()) if finite.size else None,
                "max": float(finite.max()) if finite.size else None}

    def explain(self, query: Mapping[str, str]) -> dict:
        """GET /api/inspect/explain?layer=&name=&index=i,j,k: one number of the traced
        step explained (its 20 largest terms and the rest summed)."""
        trace, number = self._current(query)
        layer = self._layer(trace, query).number
        try:
            found = trace.explain(layer, query.get("name") or "", _index(query.get("index")))
        except ValueError as exc:
            raise RequestError(str(exc)) from None
        return {**found.to_dict(largest=20), "trace": number}

    def pixel(self, body: object) -> dict:
        """POST /api/inspect/pixel {"image", "layer", "index": [h, w, f]}: how the net shown
        computed Z[h, w, f] of that layer for the image (the multiply-add panel), with the
        output A there (what the map shows)."""
        image = read_image(body)
        layer, index = body.get("layer"), body.get("index")
        if isinstance(layer, bool) or not isinstance(layer, int) or layer < 0:
            raise RequestError("layer must be a layer number >= 0")
        if not isinstance(index, list) or not all(
                isinstance(i, int) and not isinstance(i, bool) for i in index):
            raise RequestError("index must be a list of whole numbers, e.g. [3, 4, 7]")
        trace, versions = self._pixel_trace(image)
        if layer >= len(trace.layers):
            raise RequestError(f"layer must be 0..{len(trace.layers) - 1}, got {layer}")
        try:
            found = trace.explain(layer, "Z", (0, *index))
            shown = float(trace[layer, "A"][(0, *found.index[1:])])
        except (ValueError, IndexError) as exc:
            raise RequestError(str(exc)) from None
        largest = None if found.count <= MAX_TERMS_SHOWN else 20
        return {**found.to_dict(largest=largest), "A": shown,
                "model_version": versions[0], "weights_version": versions[1]}

    # -- inside ------------------------------------------------------------------------
    def _current(self, query) -> tuple[Trace, int]:
        with self.lock:
            trace, number = self.trace, self.number
        if trace is None:
            raise ConflictError("no step traced yet: POST /api/inspect/step first")
        asked = query.get("trace")
        if asked is not None and asked != str(number):
            raise ConflictError(f"trace {asked} was replaced by trace {number}; trace again "
                                "or use the new one")
        return trace, number

    @staticmethod
    def _layer(trace: Trace, query):
        layer = _int(query, "layer")
        if layer >= len(trace.layers):
            raise RequestError(f"layer must be 0..{len(trace.layers) - 1}, got {layer}")
        return trace.layers[layer]

    def _net(self, source: str) -> tuple[Net, dict | None, dict]:
        """(a copy of the net to trace, the paused run's next step or None, about it:
        "where" the weights come from, its "dataset" and "learning_rate")."""
        trainer, model = self.trainer, self.model
        with trainer.lock:
            live, trained = trainer.active, trainer.trained
        if live is not None and live.paused:
            net, next_step = live.inspection()
            r = live.record
            return net, next_step, {
                "where": f"run {r.number}, paused after step {r.step}: its own weights and "
                         "optimizer state (a copy; the run goes on as if nothing happened)",
                "dataset": r.settings.dataset, "learning_rate": r.live["learning_rate"]}
        if source == "next":
            raise ConflictError("no run is paused: press Pause (or Step) in the Train panel to "
                                "inspect the step a run takes next")
        if live is None and trained is not None and model.net is trained[0]:
            _, net, r = trained
            return copy.deepcopy(net), None, {
                "where": f"run {r.number}'s trained net after its last step (step {r.step}), "
                         "with its optimizer state", "dataset": r.settings.dataset,
                "learning_rate": r.live["learning_rate"]}
        net, _ = model.copy()
        if live is not None:
            r = live.record
            return net, None, {
                "where": f"run {r.number}'s weights at its last snapshot (about step "
                         f"{r.step}); the run keeps its optimizer state, so this step's "
                         "optimizer starts fresh (pause the run to trace its own)",
                "dataset": r.settings.dataset, "learning_rate": r.live["learning_rate"]}
        return net, None, {"where": "the served model, with a fresh optimizer",
                           "dataset": model.dataset or trainer.datasets[0],
                           "learning_rate": DEFAULT_RATE}

    def _batch(self, request: dict, next_step: dict | None, about: dict, net: Net) -> dict:
        """The batch to trace: images x, labels y, learning rate, and what it is."""
        if request["source"] == "next":
            if next_step is None:
                raise ConflictError("the paused run took its last step: nothing comes next")
            return {**next_step, "what": f"the run's next batch: epoch {next_step['epoch']}, "
                                         f"batch {next_step['batch']}", "source": "next"}
        data = shown_data(net, self.trainer.load_data, about["dataset"])
        rate = request["learning_rate"] or about["learning_rate"]
        named = own.said(about["dataset"])
        if request["source"] == "train":
            rng = np.random.default_rng(request["seed"])
            count = min(request["batch_size"], len(data.x_train))
            indices = rng.choice(len(data.x_train), count, replace=False)
            return {"x": data.x_train[indices], "y": _labels(data.y_train[indices]),
                    "learning_rate": rate, "indices": indices, "source": "train",
                    "what": f"{count} training images of {named}, drawn with "
                            f"seed {request['seed']}"}
        indices = np.array(request["indices"])
        if indices.max() >= len(data.x_test):
            raise RequestError(f"indices must be test image numbers 0..{len(data.x_test) - 1}")
        return {"x": data.x_test[indices], "y": _labels(data.y_test[indices]),
                "learning_rate": rate, "indices": indices, "source": "test",
                "what": f"test image{'s' * (len(indices) > 1)} "
                        f"{', '.join(map(str, indices[:8]))}{' ...' * (len(indices) > 8)} "
                        f"of {named}"}

    def _pixel_trace(self, image: np.ndarray) -> tuple[Trace, tuple[int, int]]:
        """The one-image trace of the net shown for this image, made again when the image
        or the weights change (a step with learning rate 0 on a copy: its forward pass is
        the layers' own, on the weights shown)."""
        digest = hashlib.sha1(image.tobytes()).hexdigest()
        with self.lock:
            cached = self.pixel_trace
        versions = (self.model.version, self.model.weights)
        if cached is not None and cached[0] == (*versions, digest):
            return cached[1], versions
        net, versions = self.model.copy()
        if net.input_shape is None or net.input_shape[:2] != image.shape:
            raise RequestError(f"the model takes samples of shape {net.input_shape}")
        X = image[None, ..., None].astype(net.dtype)
        try:
            with self.model.compute:
                label = int(net.layer_outputs(X)[-1][0].argmax())
                trace = trace_step(net, X, np.array([label]), 0.0)
        except (ValueError, DivergenceError) as exc:
            raise RequestError(f"the pixel could not be traced: {exc}") from None
        with self.lock:
            self.pixel_trace = ((*versions, digest), trace)
        return trace, versions
