"""The page's error analysis: the confusion matrix of the net shown on held-out images of
the dataset it was trained on (the test set's first MAX_IMAGES), and the images of one
cell sorted by their loss, each with its top three classes and its saliency map."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Mapping

import numpy as np

from ..data.datasets import Dataset
from ..diagnostics import confusion_matrix, most_probable, worst_mistakes
from ..visual import saliency
from .api import Model, RequestError
from .live import _as_batch, _labels, packed, shown_data

MAX_IMAGES = 1000      # held-out images the matrix counts: the first of the test set
CELL_IMAGES = 12       # images a cell lists unless asked for fewer
MAX_CELL_IMAGES = 24


class ErrorAnalysis:
    """GET /api/confusion and /api/confusion/cell for the net the page shows; the
    predictions are kept until the weights change (one set: bounded memory)."""

    def __init__(self, model: Model, default_dataset: str, load_data: Callable):
        self.model, self.default, self.load_data = model, default_dataset, load_data
        self.lock = threading.Lock()
        self.found: dict | None = None

    def confusion(self, _: Mapping[str, str] | None = None) -> dict:
        """The counts: counts[t][p] images of true class t predicted as p; `matrix` names
        the images they were counted on (the cells ask for the same ones)."""
        found = self._predictions()
        k = found["probabilities"].shape[1]
        counts = confusion_matrix(found["labels"], found["predicted"], k)
        errors = int(len(found["labels"]) - np.trace(counts))
        return {"dataset": found["dataset"], "images": len(found["labels"]),
                "test_images": found["test_images"], "class_names": found["class_names"],
                "counts": counts.tolist(), "errors": errors,
                "error_rate": errors / max(len(found["labels"]), 1),
                "weights_version": found["key"][1], "matrix": found["key"][3]}

    def cell(self, query: Mapping[str, str]) -> dict:
        """The images of true class `true` predicted as `pred` in the matrix shown (its
        `matrix`, if given: a RequestError if it has been made again since), highest loss
        first (the most confident mistakes), each with its top three and saliency map."""
        data, key = self._data()
        with self.lock:
            found = self.found
        if found is None:  # a cell asked for before any matrix: the matrix first
            found = self._predictions(data, key)
        if found["key"] != key or query.get("matrix") not in (None, key[3]):
            raise RequestError("the net or its images have changed since this matrix: "
                               "compute the matrix again")
        k = found["probabilities"].shape[1]
        true, pred = (_class(query, name, k) for name in ("true", "pred"))
        limit = _class(query, "limit", MAX_CELL_IMAGES + 1, CELL_IMAGES)
        where = worst_mistakes(found["probabilities"], found["labels"], true, pred)
        order = where[:limit]
        images = _as_batch(data.x_test[order])
        shown = []
        with self.model.compute, self.model.lock:  # one net for the maps and the top three
            for i, image in zip(order, images, strict=True):
                seen = saliency.saliency(self.model.net, image)
                p = seen.probabilities
                shown.append({"index": int(i), "label": true, "prediction": seen.prediction,
                              "loss": float(-np.log(max(float(p[true]), 1e-30))),
                              "top": [list(top) for top in most_probable(p)],
                              "image": packed(image[..., 0]),
                              "saliency": packed(seen.gradient[..., 0])})
        return {"dataset": found["dataset"], "true": true, "pred": pred,
                "count": len(where), "images": shown}

    def _data(self) -> tuple[Dataset, tuple]:
        """The held-out set of the net shown, if its classes are the net's (shown_data),
        and what a matrix of it is keyed by: (net version, weights version, dataset, the
        images' digest)."""
        with self.model.lock:
            net, version, weights = self.model.net, self.model.version, self.model.weights
            name = self.model.dataset or self.default
        data = shown_data(net, self.load_data, name)  # outside the locks: a first read
        return data, (version, weights, name, _digest(data))  # takes time

    def _predictions(self, data: Dataset | None = None, key: tuple | None = None) -> dict:
        """The net shown's probabilities on the held-out images (`data`, keyed by `key`:
        _data's), made again when the net, its weights or the images change."""
        if data is None:
            data, key = self._data()
        with self.lock:
            found = self.found
        if found is not None and found["key"] == key:
            return found
        name = key[2]
        x, y = _as_batch(data.x_test[:MAX_IMAGES]), _labels(data.y_test[:MAX_IMAGES])
        with self.model.compute, self.model.lock:  # net.predict: the fast path
            if self.model.version != key[0]:  # another net: its classes were not checked
                raise RequestError("the net shown changed meanwhile: compute the matrix again")
            key = (self.model.version, self.model.weights, *key[2:])  # the weights predicting
            net = self.model.net
            if net.input_shape is not None and tuple(net.input_shape) != x.shape[1:]:
                raise RequestError(f"the net shown takes {net.input_shape} images; {name}'s "
                                   f"are {x.shape[1:]}")
            probabilities = net.predict(x)
            names = net.class_names
        found = {"key": key, "dataset": name, "probabilities": probabilities, "labels": y,
                 "predicted": probabilities.argmax(axis=1), "test_images": len(data.x_test),
                 "class_names": list(names) if names is not None else None}
        with self.lock:
            self.found = found
        return found


def _digest(data: Dataset) -> str:
    """What the matrix's held-out images are, in a few bytes: they change when your
    classes do, and then the matrix is made again."""
    return hashlib.sha1(data.x_test[:MAX_IMAGES].tobytes()
                        + data.y_test[:MAX_IMAGES].tobytes()).hexdigest()


def _class(query, name: str, below: int, default: int | None = None) -> int:
    text = query.get(name)
    if text is None and default is not None:
        return default
    try:
        value = int(text)
    except (TypeError, ValueError):
        raise RequestError(f"{name} must be a whole number, got {text!r}") from None
    low = 1 if default is not None else 0
    if not low <= value < below:
        raise RequestError(f"{name} must be in {low}..{below - 1}, got {value}")
    return value
