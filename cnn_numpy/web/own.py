"""The page's own classes: a learner names two to ten classes, draws (or uploads) examples
of each, and trains any network on them.  The examples live in memory only, bounded;
nothing is written to the server's disk: the set downloads as a zip of class folders
(what `cnn-numpy train --images` reads) or as an .npz.
"""

from __future__ import annotations

import io
import math
import re
import threading
import zipfile
from collections.abc import Mapping

import numpy as np

from ..data.augment import random_shift
from ..data.datasets import Dataset
from ..data.folder import DEFAULT_TEST_SHARE, held_out_mask
from ..models import OWN_IMAGES
from ..training import default_validation
from .api import RequestError, read_image

MIN_CLASSES, MAX_CLASSES = 2, 10
MAX_EXAMPLES = 200          # per class
MAX_TOTAL = 1000            # in all
MAX_COPIES = 8              # shifted copies added with one example
MAX_NAME = 40               # characters in a class name
#: A class name: letters, digits, spaces and - _ . only, so that it is a folder name too.
NAME = re.compile(r"[\w][\w .-]*")
DATASET = "own"             # the Train panel's name for this set
MIN_EXAMPLES = 3            # of each class: a fifth of 3, rounded, is one test image


def said(name: str) -> str:
    """A dataset's name as the page says it: 'your classes' for this set (app.js's
    datasetName)."""
    return "your classes" if name == DATASET else name


class OwnClasses:
    """The examples drawn in this session, by class; every method is safe from any thread."""

    def __init__(self):
        self.lock = threading.Lock()
        self.names: list[str] = []
        self.examples: list[dict] = []   # {"id", "class", "image" (28, 28) float32}
        self.next_id = 1

    def state(self, _: Mapping[str, str] | None = None) -> dict:
        """GET /api/own: the classes, their examples (ids and images), and whether (and
        with which suggested epochs and shifts) the set can train."""
        with self.lock:
            counts = [sum(e["class"] == k for e in self.examples) for k in range(len(self.names))]
            return {"classes": [{"name": name, "count": count} for name, count
                                in zip(self.names, counts, strict=True)],
                    "examples": [{"id": e["id"], "class": e["class"], "image": e["image"]}
                                 for e in self.examples],
                    "ready": self._ready(counts), "suggested": self._suggested(),
                    "limits": {"classes": [MIN_CLASSES, MAX_CLASSES],
                               "per_class": MAX_EXAMPLES, "total": MAX_TOTAL,
                               "copies": MAX_COPIES}}

    def set_classes(self, body: object) -> dict:
        """POST /api/own/classes {"names": [...]}: the classes, in order.  Examples of a
        class that keeps its name stay (renumbered); the others are dropped."""
        names = body.get("names") if isinstance(body, dict) else None
        if not isinstance(names, list) or not MIN_CLASSES <= len(names) <= MAX_CLASSES:
            raise RequestError(f"names must be a list of {MIN_CLASSES} to {MAX_CLASSES} class "
                               "names")
        clean = [_name(name) for name in names]
        if len({name.casefold() for name in clean}) != len(clean):  # the zip's folders
            raise RequestError("each class needs its own name (names that differ only in "
                               "capitals count as one: they are folders in the download)")
        with self.lock:
            kept = {old: clean.index(name) for old, name in enumerate(self.names)
                    if name in clean}
            self.examples = [{**e, "class": kept[e["class"]]} for e in self.examples
                             if e["class"] in kept]
            self.names = clean
        return self.state()

    def add(self, body: object) -> dict:
        """POST /api/own/examples {"class": k, "image" or "png", "copies": n}: one example
        (drawn, or an uploaded picture read as `cnn-numpy predict` reads it) and n copies
        shifted by up to 2 pixels."""
        image = read_image(body)
        k, copies = body.get("class"), body.get("copies", 0)
        if isinstance(copies, bool) or not isinstance(copies, int) or \
                not 0 <= copies <= MAX_COPIES:
            raise RequestError(f"copies must be a whole number in 0..{MAX_COPIES}")
        with self.lock:
            if isinstance(k, bool) or not isinstance(k, int) or not 0 <= k < len(self.names):
                raise RequestError(f"class must be a class number 0..{len(self.names) - 1}"
                                   if self.names else "name the classes first")
            mine = sum(e["class"] == k for e in self.examples)
            if mine + 1 + copies > MAX_EXAMPLES or len(self.examples) + 1 + copies > MAX_TOTAL:
                raise RequestError(f"at most {MAX_EXAMPLES} examples a class and {MAX_TOTAL} "
                                   "in all; remove some first")
            if not image.any():
                raise RequestError("the example is empty: draw something first")
            rng = np.random.default_rng(self.next_id)
            shifted = random_shift(np.repeat(image[None], copies, 0), OWN_IMAGES["augment"],
                                   rng) if copies else []
            added = [self._store(k, picture) for picture in [image, *shifted]]
        return {"added": added, **self.state()}

    def remove(self, body: object) -> dict:
        """POST /api/own/remove {"id": n}: forget one example."""
        number = body.get("id") if isinstance(body, dict) else None
        with self.lock:
            before = len(self.examples)
            self.examples = [e for e in self.examples if e["id"] != number]
            if len(self.examples) == before:
                raise RequestError(f"no example {number!r}")
        return self.state()

    def dataset(self, seed: int = 0) -> Dataset:
        """The set as a Dataset, a seeded share of each class held out for testing."""
        with self.lock:
            counts = [sum(e["class"] == k for e in self.examples) for k in range(len(self.names))]
            if not self._ready(counts):
                raise RequestError(f"your classes need {MIN_CLASSES} or more names and at "
                                   f"least {MIN_EXAMPLES} examples of each before they "
                                   "can train")
            images = np.stack([e["image"] for e in self.examples])
            y = np.array([e["class"] for e in self.examples], np.int64)
            names = tuple(self.names)
        test = held_out_mask(y, DEFAULT_TEST_SHARE, seed)
        return Dataset(DATASET, images[~test], y[~test], images[test], y[test], len(names),
                       "your drawings", names)

    def zip_bytes(self, _: Mapping[str, str] | None = None) -> bytes:
        """The set as a zip of class folders of PNG files (cnn-numpy train --images)."""
        from PIL import Image

        with self.lock:
            examples, names = list(self.examples), list(self.names)
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for e in examples:
                png = io.BytesIO()
                Image.fromarray(np.round(e["image"] * 255).astype(np.uint8)).save(png, "PNG")
                archive.writestr(f"{names[e['class']]}/{e['id']:05d}.png", png.getvalue())
        return buffer.getvalue()

    def npz_bytes(self, _: Mapping[str, str] | None = None) -> bytes:
        """The set as an .npz of x (uint8), y and class_names (data.load_npz reads it)."""
        with self.lock:
            examples, names = list(self.examples), list(self.names)
        if not examples:
            raise RequestError("no examples to download yet")
        buffer = io.BytesIO()
        np.savez_compressed(buffer, x=np.round(np.stack([e["image"] for e in examples]) * 255)
                            .astype(np.uint8), y=np.array([e["class"] for e in examples]),
                            class_names=np.array(names))
        return buffer.getvalue()

    # -- inside (the caller holds the lock) ----------------------------------------------
    def _store(self, k: int, image: np.ndarray) -> int:
        self.examples.append({"id": self.next_id, "class": k,
                              "image": image.astype(np.float32)})
        self.next_id += 1
        return self.next_id - 1

    def _ready(self, counts: list[int]) -> bool:
        return len(counts) >= MIN_CLASSES and min(counts) >= MIN_EXAMPLES

    def _suggested(self) -> dict:
        """Epochs for at least OWN_IMAGES' steps in batches of 32 on the images left for
        training once the test and validation images are held out, and its shifts."""
        y = np.array([e["class"] for e in self.examples], np.int64)
        n = int((~held_out_mask(y, DEFAULT_TEST_SHARE, 0)).sum()) if len(y) else 0
        n -= int(round(n * default_validation(n)))
        batches = max(1, math.ceil(n / 32))
        return {"epochs": max(1, math.ceil(OWN_IMAGES["min_steps"] / batches)),
                "augment": OWN_IMAGES["augment"]}


def _name(value) -> str:
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > MAX_NAME \
            or not NAME.fullmatch(value.strip()):
        raise RequestError(f"a class name is 1 to {MAX_NAME} letters, digits, spaces, dots, "
                           f"dashes or underscores, starting with a letter or digit; got "
                           f"{value!r}")
    return value.strip()
