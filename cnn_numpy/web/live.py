"""Training from the page: one run at a time in a background thread, through the command
line's own loop (training.train), watched from the page by polling.

The training thread owns the training Net.  Between two steps (in train's on_batch hook)
it applies the page's live edits, and about twice a second copies the weights into the
page's viewing Net (api.Model.net, which predict and the saliency map use) and computes
the live views there: the probe image's maps and gradients, per-layer statistics, a few
test images' top classes.  The training Net is never touched by another thread, and the
views never change what it computes: a run without edits ends with the weights
`cnn-numpy train` gives with the same settings.

Why polling and not Server-Sent Events: every update is a whole picture of the run (maps,
curves, statistics), not a stream of small events; the answer is encoded once per update
and handed to every client as it is; a client that falls behind simply skips updates
instead of queueing them; and a poll is an ordinary JSON request, tested like the others.
"""

from __future__ import annotations

import base64
import csv
import dataclasses
import io
import math
import threading
import time
from collections.abc import Callable

import numpy as np

from .. import saving
from ..architecture import MAX_LENGTH, parse_layers
from ..engines import ENGINES
from ..layers import ConvLayer, ConvLayer_ReLU, FCLayer_ReLU, ReLULayer
from ..net import DivergenceError, Net
from ..optimizers import OPTIMIZERS
from ..runs import history_text
from ..schedules import SCHEDULES
from ..training import MAX_EPOCHS, Progress, Settings, hold_out, train, weight_arrays
from ..visual import saliency
from .api import Model, RequestError

SNAPSHOT_SECONDS = 0.45    # live views about 2.2 times a second while training
VALIDATE_SECONDS = 1.0     # the validation curve gets a point at most once a second
VALIDATION_IMAGES = 200    # ... measured on this many held-out images
STATS_IMAGES = 32          # activation statistics: a forward pass of this many held-out images
STREAM_IMAGES = 8          # test images shown with their top three classes per update
MAX_POINTS = 1000          # a curve longer than this is thinned: pairs of points merged
MAX_SPARK = 120            # points of each per-layer sparkline
MAX_RUNS = 50              # runs kept in a session (the oldest forgotten first)
MAX_MODEL_BYTES = 400 << 20  # trained models kept for download, all runs together
MAX_BATCH = 4096
LIVE = ("learning_rate", "momentum", "batch_size", "weight_decay")


class ConflictError(RequestError):
    """A request that the run's state does not allow now: answered with 409."""

    status = 409


# -- settings ------------------------------------------------------------------------

#: name: (type, lowest, highest, default); None as highest: no limit.
NUMBERS = {
    "epochs": (int, 1, MAX_EPOCHS, 1),
    "batch_size": (int, 1, MAX_BATCH, 32),
    "learning_rate": (float, 0.0, 100.0, 0.001),
    "momentum": (float, 0.0, 0.999, 0.9),
    "weight_decay": (float, 0.0, 1.0, 0.0),
    "validation": (float, 0.0, 0.9, 0.1),
    "limit": (int, 1, 10**7, None),
    "seed": (int, 0, 2**32 - 1, 0),
}
CHOICES = {"optimizer": tuple(OPTIMIZERS), "schedule": tuple(SCHEDULES),
           "engine": (None, *sorted(ENGINES))}


def _number(name: str, value):
    kind, low, high, _ = NUMBERS[name]
    if isinstance(value, bool) or not isinstance(value, (int, float)) \
            or (kind is int and not float(value).is_integer()):
        raise RequestError(f"{name} must be {'a whole number' if kind is int else 'a number'}, "
                           f"got {value!r}")
    if not (math.isfinite(value) and low <= value <= high):
        raise RequestError(f"{name} must be in {low:g}..{high:g}, got {value!r}")
    if name == "learning_rate" and value == 0:
        raise RequestError("learning_rate must be above 0")
    return kind(value)


def read_settings(body, datasets: list[str], default_layers: str) -> dict:
    """The run asked for: every setting checked, defaults filled in (RequestError naming
    the first bad one)."""
    if not isinstance(body, dict):
        raise RequestError("the body must be a JSON object of settings")
    known = {*NUMBERS, *CHOICES, "layers", "dataset", "edits"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise RequestError(f"unknown setting {unknown[0]!r}: the settings are "
                           f"{', '.join(sorted(known))}")
    settings = {name: default for name, (_, _, _, default) in NUMBERS.items()}
    settings.update(optimizer="adam", schedule="constant", engine=None, dataset=datasets[0],
                    layers=default_layers, edits=[])
    for name, value in body.items():
        if name in NUMBERS:
            settings[name] = None if value is None and NUMBERS[name][3] is None \
                else _number(name, value)
        elif name in CHOICES:
            if value not in CHOICES[name]:
                raise RequestError(f"{name} must be one of "
                                   f"{', '.join(map(str, CHOICES[name]))}, got {value!r}")
            settings[name] = value
        elif name == "dataset":
            if value not in datasets:
                raise RequestError(f"dataset must be one of {', '.join(datasets)} (the ones "
                                   f"found on this machine), got {value!r}")
            settings[name] = value
        elif name == "layers":
            if not isinstance(value, str) or not value.strip() or len(value) > MAX_LENGTH:
                raise RequestError(f"layers must be the architecture as text (at most "
                                   f"{MAX_LENGTH:,} characters), like "
                                   "\"FlatLayer(), FCLayer_Softmax(10)\"")
            settings[name] = value
        else:
            settings["edits"] = read_edits(value)
    try:
        parse_layers(settings["layers"])
    except ValueError as exc:
        raise RequestError(f"layers: {exc}") from None
    return settings


def read_edits(value) -> list[dict]:
    """A replay's edits: [{"after_step": N, "name": ..., "value": ...}, ...], in order."""
    if not isinstance(value, list) or len(value) > 10_000:
        raise RequestError("edits must be a list of at most 10,000 "
                           "{\"after_step\": N, \"name\": ..., \"value\": ...}")
    edits, last = [], 0
    for edit in value:
        if not isinstance(edit, dict) or set(edit) != {"after_step", "name", "value"}:
            raise RequestError("each edit must be {\"after_step\": N, \"name\": ..., "
                               "\"value\": ...}")
        step = edit["after_step"]
        if isinstance(step, bool) or not isinstance(step, int) or step < last:
            raise RequestError("after_step must be whole numbers >= 0, in order")
        if edit["name"] not in LIVE:
            raise RequestError(f"an edit's name must be one of {', '.join(LIVE)}, got "
                               f"{edit['name']!r}")
        edits.append({"after_step": step, "name": edit["name"],
                      "value": _number(edit["name"], edit["value"])})
        last = step
    return edits


def read_edit(body) -> dict[str, float]:
    """POST /api/train/set: {"learning_rate": 0.01, ...}: the live settings to change."""
    if not isinstance(body, dict) or not body:
        raise RequestError(f"give one or more of {', '.join(LIVE)}, e.g. "
                           "{\"learning_rate\": 0.01}")
    for name in body:
        if name not in LIVE:
            raise RequestError(f"{name!r} cannot change during a run; these can: "
                               f"{', '.join(LIVE)}")
    return {name: _number(name, value) for name, value in body.items()}


# -- what the page is sent ---------------------------------------------------------------

def packed(values: np.ndarray) -> dict:
    """An array for the page, small: signed bytes of round(127 v / scale), scale = max |v|.
    The page shows each value to 1/127 of its array's largest magnitude."""
    values = np.asarray(values, dtype=np.float32)
    scale = float(np.abs(values).max()) if values.size else 0.0
    q = np.zeros(values.shape, np.int8) if scale == 0 or not math.isfinite(scale) \
        else np.round(values * (127 / scale)).astype(np.int8)
    return {"shape": list(values.shape), "scale": scale,
            "q": base64.b64encode(q.tobytes()).decode()}


class Curve:
    """A curve over the run, in bounded memory: past MAX_POINTS, neighbours are merged
    (their figures averaged, weighted by how many steps each stands for)."""

    def __init__(self, keys: tuple[str, ...]):
        self.keys, self.points = keys, []

    def add(self, point: dict) -> None:
        self.points.append({**point, "n": point.get("n", 1)})
        if len(self.points) > MAX_POINTS:
            merged = []
            for a, b in zip(self.points[0::2], self.points[1::2], strict=False):
                n = a["n"] + b["n"]
                merged.append({**b, "n": n, **{k: (a[k] * a["n"] + b[k] * b["n"]) / n
                                               for k in self.keys}})
            if len(self.points) % 2:
                merged.append(self.points[-1])
            self.points = merged


def _is_relu(layer) -> bool:
    return isinstance(layer, (ConvLayer_ReLU, FCLayer_ReLU, ReLULayer))


# -- one run ---------------------------------------------------------------------------

@dataclasses.dataclass
class Run:
    """One run of the session: its settings, edits, curves and (once done) its model."""

    number: int
    settings: dict
    status: str = "starting"      # starting running paused done stopped diverged failed
    message: str = ""
    step: int = 0
    epoch: int = 0
    images: int = 0
    images_per_s: float = 0.0
    edits: list = dataclasses.field(default_factory=list)
    train: Curve = dataclasses.field(default_factory=lambda: Curve(("cce", "ce")))
    validation: Curve = dataclasses.field(default_factory=lambda: Curve(("cce", "ce")))
    epochs: list = dataclasses.field(default_factory=list)
    test: dict | None = None
    model: bytes | None = None

    def summary(self) -> dict:
        """What the runs list shows and overlays: no maps."""
        return {"number": self.number, "status": self.status, "message": self.message,
                "settings": {k: v for k, v in self.settings.items() if k != "edits"},
                "edits": self.edits, "step": self.step, "epoch": self.epoch,
                "images": self.images, "images_per_s": self.images_per_s,
                "train": self.train.points, "validation": self.validation.points,
                "epochs": self.epochs, "test": self.test, "has_model": self.model is not None}


class Trainer:
    """The page's training: start, pause, resume, step, live edits, reset; the runs.

    `load_data(name)` gives a Dataset by name (datasets[0] is the default); `model` is the
    page's viewing model, updated as the run trains.  All public methods are called from
    request threads; the run itself happens in one background thread.
    """

    def __init__(self, model: Model, datasets: list[str], load_data: Callable):
        self.model, self.datasets, self.load_data = model, datasets, load_data
        self.lock = threading.Condition()   # guards everything below
        self.runs: list[Run] = []
        self.active: Run | None = None      # the run of the thread, if one is alive
        self.thread: threading.Thread | None = None
        self.paused = False
        self.steps_allowed = 0              # while paused: steps still to take (Step)
        self.stop = False
        self.pending: dict[str, float] = {}  # live edits for the next gap between steps
        self.probe_image: np.ndarray | None = None  # (h, w, c); None: the first test image
        self.probe_label: int | None = None
        self.probe_changed = False
        self.version = 0                    # bumped whenever the state answer changes
        self.views: dict = {}               # the live views of the last snapshot
        self._answer: bytes | None = None   # the encoded state answer for self.version
        self.encode: Callable[[dict], bytes] | None = None

    # -- requests ---------------------------------------------------------------
    def start(self, body, paused: bool = False) -> dict:
        """POST /api/train/start: a new run with these settings (409 while one runs).
        paused: the run takes its first step, then waits (Step from nothing)."""
        default = self.model.net.describe()
        settings = read_settings(body, self.datasets, default)
        self._refuse_a_second()
        net, data, test = self._prepare(settings)  # outside the lock: data may take seconds
        with self.lock:
            self._refuse_a_second()
            run = Run(number=(self.runs[-1].number + 1 if self.runs else 1), settings=settings)
            self.runs.append(run)
            del self.runs[:-MAX_RUNS]
            self.active, self.paused, self.steps_allowed, self.stop = run, paused, 0, False
            self.pending = {}
            self.thread = threading.Thread(target=self._train, args=(run, net, data, test),
                                           name=f"cnn-numpy run {run.number}", daemon=True)
            self._changed()
            self.thread.start()
            return {"run": run.number}

    def _refuse_a_second(self) -> None:
        with self.lock:
            if self.active is not None:
                raise ConflictError(f"run {self.active.number} is {self.active.status}: one "
                                    "training at a time; press Reset to end it first")

    def pause(self, _=None) -> dict:
        with self.lock:
            run = self._running("pause")
            self.paused, self.steps_allowed = True, 0
            self._changed()
            return {"run": run.number, "status": "pausing"}

    def resume(self, _=None) -> dict:
        with self.lock:
            run = self._running("resume")
            self.paused = False
            self.lock.notify_all()
            self._changed()
            return {"run": run.number, "status": "running"}

    def step(self, body=None) -> dict:
        """One training step: of the paused run, or of a new run (with these settings)
        that then waits paused."""
        with self.lock:
            if self.active is None:
                pass
            elif not self.paused:
                raise ConflictError(f"run {self.active.number} is running; pause it to step")
            else:
                self.steps_allowed += 1
                self.lock.notify_all()
                return {"run": self.active.number, "status": "stepping"}
        return self.start(body or {}, paused=True)  # its first step is the one asked for

    def set(self, body) -> dict:
        """POST /api/train/set: live edits, applied between two steps."""
        edit = read_edit(body)
        with self.lock:
            run = self._running("change settings of")
            if "momentum" in edit and run.settings["optimizer"] == "sgd":
                raise RequestError("sgd has no momentum; start a run with optimizer "
                                   "momentum or adam to change it")
            self.pending.update(edit)
            self.lock.notify_all()
            return {"run": run.number, "after_step": run.step}

    def reset(self, _=None) -> dict:
        """POST /api/train/reset: end the run (it stays in the list, as stopped)."""
        with self.lock:
            thread, self.stop, self.paused = self.thread, True, False
            self.lock.notify_all()
        if thread is not None:
            thread.join()
        with self.lock:
            self._changed()
        return {"stopped": thread is not None}

    def set_probe(self, image: np.ndarray, label: int | None) -> None:
        """The image whose maps and gradients are shown (a drawn digit: label None)."""
        with self.lock:
            self.probe_image, self.probe_label, self.probe_changed = image, label, True
            self.lock.notify_all()
            idle = self.active is None
        if idle:
            self._snapshot_idle()

    def state(self, query) -> bytes | dict:
        """GET /api/train/state?since=V: the run and its live views (or just the version
        when nothing changed since V)."""
        since = query.get("since") if hasattr(query, "get") else None
        if not self.views and self.active is None:
            self._snapshot_idle()  # the probe's views with the model being served
        with self.lock:
            if since is not None and since == str(self.version):
                return {"version": self.version, "unchanged": True}
            if self._answer is None:
                self._answer = self.encode(self._state())
            return self._answer

    def runs_list(self, _=None) -> dict:
        with self.lock:
            return {"runs": [run.summary() for run in self.runs]}

    def find(self, number: str) -> Run:
        with self.lock:
            for run in self.runs:
                if str(run.number) == number:
                    return run
        raise RequestError(f"no run {number!r} in this session")

    def model_file(self, number: str) -> bytes:
        run = self.find(number)
        if run.model is None:
            raise ConflictError(f"run {run.number} has no model to download"
                           + (" yet: it ends with one (or press Reset)"
                              if run is self.active else
                              " (models of old runs are dropped to bound memory)"))
        return run.model

    def history_csv(self, number: str) -> str:
        """The run's curves, one row per point: step, images, training and validation
        figures, and the live settings in force."""
        run = self.find(number)
        rows = [{"step": p["step"], "images": p["images"], "train_cce": p["cce"],
                 "train_ce": p["ce"], **p["settings"]} for p in run.train.points]
        rows += [{"step": p["step"], "images": p["images"], "val_cce": p["cce"],
                  "val_ce": p["ce"], **p["settings"]} for p in run.validation.points]
        rows.sort(key=lambda r: (r["step"], "val_cce" in r))
        buffer = io.StringIO()
        columns = ("step", "images", "train_cce", "train_ce", "val_cce", "val_ce", *LIVE)
        writer = csv.DictWriter(buffer, columns, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()

    def history_json(self, number: str) -> str:
        """The run as `cnn-numpy compare` reads it: settings and one row per epoch, plus
        the edits (a replay: start a run with these settings and edits)."""
        run = self.find(number)
        settings = {**run.settings, "edits": run.edits, "model": "page run"}
        return history_text(settings, run.epochs, as_json=True)

    # -- inside -----------------------------------------------------------------
    def _running(self, what: str) -> Run:
        if self.active is None:
            raise ConflictError(f"no run to {what}; press Start first")
        return self.active

    def _changed(self) -> None:
        self.version += 1
        self._answer = None

    def _prepare(self, settings: dict):
        """(net, data, test set) as `cnn-numpy train --layers ...` would build them."""
        from ..cli import build_model, check_architecture

        net = build_model("custom", settings["engine"], settings["seed"],
                          settings["optimizer"], settings["weight_decay"],
                          layers=settings["layers"])
        _set_momentum(net, settings["momentum"])
        data = self.load_data(settings["dataset"])
        try:
            check_architecture(net, data.x_train.shape[1:] + (1,))
        except ValueError as exc:
            raise RequestError(f"layers: {exc}") from None
        if settings["limit"] is not None:
            data = dataclasses.replace(data, x_train=data.x_train[: settings["limit"]],
                                       y_train=data.y_train[: settings["limit"]])
        test = data
        if settings["validation"]:
            try:
                x, y, x_val, y_val = hold_out(data.x_train, data.y_train,
                                              settings["validation"], settings["seed"])
            except ValueError as exc:
                raise RequestError(f"validation: {exc}") from None
            data = dataclasses.replace(data, x_train=x, y_train=y, x_test=x_val, y_test=y_val)
        bs, n = settings["batch_size"], len(data.x_train)
        if n % bs == 1 and any(type(layer).__name__ == "BatchNorm" for layer in net.layers):
            raise RequestError(f"{n:,} training images in batches of {bs} leave a last batch "
                               "of one image, on which BatchNorm has no statistics; change "
                               "the batch size or the limit")
        return net, data, test

    def _train(self, run: Run, net: Net, data, test) -> None:
        """The background thread: the run from start to end."""
        LiveRun(self, run, net, data, test).run_to_end()

    def _views(self, view: Net, test, net: Net | None, held, sparks, ratios) -> dict:
        """The live views of `view` (the training net's weights): the probe image's maps
        and the gradients flowing back into them, the first conv layer's filters and the
        last step's dW, per-layer statistics, and a few test images' top classes."""
        image, label = self.probe_image, self.probe_label
        if image is None:
            image, label = _as_image(test.x_test[0]), int(test.y_test[0])
        X = image[None].astype(view.dtype)
        guess = int(view.predict(X)[0].argmax())
        outputs, gradients = saliency.probe(view, X, [guess if label is None else label])
        layers = [{"name": f"{i}: {type(layer).__name__}", "shape": list(A.shape[1:]),
                   "A": packed(A[0]), "dA": packed(dA[0])}
                  for i, (layer, A, dA) in enumerate(zip(view.layers, outputs, gradients,
                                                         strict=True))]
        filters = None
        for i, layer in enumerate(view.layers):
            if isinstance(layer, ConvLayer):
                dW = getattr(net.layers[i], "dW", None) if net is not None else None
                filters = {"layer": i, "W": packed(layer.W[:, :, 0, :]),
                           "dW": None if dW is None else packed(dW[:, :, 0, :])}
                break
        answer = {"probe": {"label": label, "prediction": guess,
                            "image": np.ascontiguousarray(image[..., 0]),
                            "loss_class": guess if label is None else label,
                            "layers": layers},
                  "filters": filters}
        if net is None:
            return answer
        x = held[0][:STATS_IMAGES]
        outputs = saliency.forward(view, _as_batch(x))
        weights = [list(layer.params().values()) for layer in net.layers]
        for i, (layer, A) in enumerate(zip(net.layers, outputs, strict=True)):
            grads = list(net.layers[i].grads().values()) if weights[i] else []
            figures = {"mean": float(A.mean()), "std": float(A.std()),
                       "dead": float((A.reshape(len(A), -1) <= 0).all(axis=0).mean())
                       if _is_relu(layer) else None,
                       "grad_norm": _norm(grads) if grads else None,
                       "update_ratio": None if ratios is None else ratios[i]}
            for key, value in figures.items():
                sparks[i][key].append(value)
                del sparks[i][key][:-MAX_SPARK]
        answer["stats"] = [{"name": f"{i}: {type(layer).__name__}",
                            **{key: list(values) for key, values in spark.items()}}
                           for i, (layer, spark) in enumerate(zip(net.layers, sparks,
                                                                  strict=True))]
        start = (self.version * STREAM_IMAGES) % max(len(test.x_test), 1)
        picks = (start + np.arange(STREAM_IMAGES)) % len(test.x_test)
        probabilities = view.predict(_as_batch(test.x_test[picks]))
        answer["stream"] = [{"index": int(j), "label": int(_labels(test.y_test[[j]])[0]),
                             "image": test.x_test[j],
                             "top": [[int(c), float(p[c])] for c in np.argsort(-p)[:3]]}
                            for j, p in zip(picks, probabilities, strict=True)]
        return answer

    def _snapshot_idle(self) -> None:
        """The probe's views with the page's current model, when no run is training."""
        test = self.load_data(self.datasets[0])
        with self.model.lock:
            views = self._views(self.model.net, test, None, None, None, None)
        with self.lock:
            self.views = views
            self._changed()

    def _state(self) -> dict:
        run = self.active or (self.runs[-1] if self.runs else None)
        return {"version": self.version, "run": None if run is None else run.summary(),
                "paused": self.paused and self.active is not None,
                "views": self.views, "datasets": self.datasets,
                "model_version": self.model.version}

    def _drop_old_models(self) -> None:
        """Keep the newest runs' models within MAX_MODEL_BYTES."""
        total = 0
        for run in reversed(self.runs):
            if run.model is not None:
                total += len(run.model)
                if total > MAX_MODEL_BYTES:
                    run.model = None


STAT_KEYS = ("mean", "std", "dead", "grad_norm", "update_ratio")


class LiveRun:
    """One page run in its background thread: training.train with hooks between steps.

    after_step (train's on_batch) applies the page's live edits and replayed ones,
    waits while paused, and every SNAPSHOT_SECONDS or so takes a snapshot: the
    weights copied into the page's viewing net, where the live views are computed.
    For a new batch size on_epoch stops train() at the end of the epoch, and
    run_to_end starts it again with that size.  Only this thread
    touches `net`; the trainer's state is read and written under its lock.
    """

    def __init__(self, trainer: Trainer, run: Run, net: Net, data, test):
        self.trainer, self.run, self.net, self.test = trainer, run, net, test
        self.data = data
        s = run.settings
        self.settings = Settings(
            model="custom", layers=s["layers"], epochs=s["epochs"], batch_size=s["batch_size"],
            learning_rate=s["learning_rate"], optimizer=s["optimizer"], seed=s["seed"],
            engine=s["engine"], dataset=s["dataset"], limit=s["limit"],
            schedule=s["schedule"], weight_decay=s["weight_decay"],
            validation=s["validation"])
        self.live = {name: s[name] for name in LIVE}  # the settings now, for each curve point
        self.replay = list(s["edits"])                # edits to apply again, by step
        self.view = Net(parse_layers(s["layers"]), engine=s["engine"],
                        optimizer=s["optimizer"], weight_decay=s["weight_decay"])
        self.held = (data.x_test, data.y_test) if len(data.x_test) else \
            (test.x_test, test.y_test)
        self.snapshot_at, self.validated_at = 0.0, -math.inf
        self.mark, self.marked_images = time.perf_counter(), 0  # for images per second
        self.seen = 0                                 # images of this epoch so far
        self.before: list[np.ndarray] | None = None   # weights before the measured step
        self.ratios: list[float | None] | None = None  # its |dW step| / |W|, per layer
        self.sparks = [{key: [] for key in STAT_KEYS} for _ in net.layers]
        self.new_batch_size: int | None = None        # for the next epoch

    def run_to_end(self) -> None:
        """Train to the last epoch, a Reset or an error, then record how it ended."""
        trainer, run, net = self.trainer, self.run, self.net
        status, message = "done", ""
        try:
            self._replay_until(0)
            with trainer.lock:
                run.status = "running"  # a paused start takes its first step, then waits
                trainer._changed()
            progress = Progress()
            while True:
                progress = train(net, self.data, self.settings, progress=progress,
                                 show_progress=False, on_batch=self.after_step,
                                 on_epoch=self.on_epoch)
                if trainer.stop or progress.epoch >= self.settings.epochs \
                        or self.new_batch_size is None:
                    break
                self.settings.batch_size, self.new_batch_size = self.new_batch_size, None
            if trainer.stop:
                status, message = "stopped", f"stopped by Reset after step {run.step}"
            else:
                _, cce, ce = net.evaluate(self.test.x_test, self.test.y_test)
                run.test = {"cce": cce, "ce": ce, "images": len(self.test.x_test)}
        except DivergenceError as exc:
            status, message = "diverged", str(exc)
        except Exception as exc:  # noqa: BLE001  (the server stays up and says what happened)
            status, message = "failed", f"{type(exc).__name__}: {exc}"
        if status in ("done", "stopped") and net.input_shape is not None:
            self.snapshot(last=True)
            run.model = saving.to_bytes(net)
        with trainer.lock:
            run.status, run.message = status, message
            trainer._drop_old_models()
            trainer.active = trainer.thread = None
            trainer._changed()

    def apply(self, edit: dict[str, float]) -> None:
        """A live edit, from the next step (a batch size from the next epoch); recorded."""
        for name, value in edit.items():
            self.live[name] = value
            if name == "learning_rate":
                self.settings.learning_rate = value
            elif name == "momentum":
                _set_momentum(self.net, value)
            elif name == "weight_decay":
                self.settings.weight_decay = self.net.weight_decay = value
            else:
                self.new_batch_size = int(value)  # on_epoch stops train() after this epoch
            self.run.edits.append({"after_step": self.run.step, "name": name, "value": value})

    def _replay_until(self, step: int) -> None:
        while self.replay and self.replay[0]["after_step"] <= step:
            edit = self.replay.pop(0)
            self.apply({edit["name"]: edit["value"]})

    def snapshot(self, last: bool = False) -> None:
        """Copy the weights to the viewing net and compute the live views there (the
        last one of a run always measures the validation set)."""
        trainer, run, view = self.trainer, self.run, self.view
        now = time.perf_counter()
        if now > self.mark:
            run.images_per_s = (run.images - self.marked_images) / (now - self.mark)
        validate = last or now - self.validated_at >= VALIDATE_SECONDS
        with trainer.model.lock:
            if view.input_shape is None:
                view.layer_outputs(np.zeros((1, *self.net.input_shape), view.dtype))
            for target, source in zip(weight_arrays(view), weight_arrays(self.net),
                                      strict=True):
                target[...] = source
            if trainer.model.net is not view:
                trainer.model.replace(view)
            views = trainer._views(view, self.test, self.net, self.held, self.sparks,
                                   self.ratios)
            if validate:
                _, cce, ce = view.evaluate(*(a[:VALIDATION_IMAGES] for a in self.held))
                run.validation.add({"step": run.step, "images": run.images, "cce": cce,
                                    "ce": ce, "settings": dict(self.live)})
                self.validated_at = now
        self.before = [W.copy() for W in _weights(self.net)]
        self.snapshot_at, self.mark, self.marked_images = now, now, run.images
        with trainer.lock:
            trainer.views = views
            trainer._changed()

    def after_step(self, progress: Progress, cce: float, ce: float) -> bool:
        """train's on_batch: record the step, apply edits, wait while paused, maybe take a
        snapshot.  True stops the run (Reset)."""
        trainer, run = self.trainer, self.run
        batch = progress.seen - self.seen if progress.seen > self.seen else progress.seen
        self.seen = progress.seen
        run.step += 1
        run.images += batch
        run.train.add({"step": run.step, "images": run.images, "cce": cce, "ce": ce,
                       "settings": dict(self.live)})
        if self.before is not None:
            self.ratios, self.before = _update_ratios(self.net, self.before), None
        with trainer.lock:
            self._replay_until(run.step)
            if self._wait_while_paused():
                return True
            if run.status == "paused":
                run.status = "running"
                trainer._changed()
            refresh, trainer.probe_changed = trainer.probe_changed, False
        if refresh or time.perf_counter() - self.snapshot_at >= SNAPSHOT_SECONDS:
            self.snapshot()
        return False

    def _wait_while_paused(self) -> bool:
        """Under the trainer's lock: pending edits applied, and while paused the lock
        released until Resume, Step or Reset (a snapshot when the pause begins or the
        probe changes).  True on Reset."""
        trainer, run = self.trainer, self.run
        while True:
            if trainer.pending:
                self.apply(trainer.pending)
                trainer.pending = {}
                trainer._changed()  # the page sees the edit, paused or not
            if trainer.stop:
                return True
            if not trainer.paused:
                return False
            if trainer.steps_allowed:
                trainer.steps_allowed -= 1
                return False
            if run.status != "paused" or trainer.probe_changed:
                run.status, trainer.probe_changed = "paused", False
                trainer.lock.release()  # the views are computed outside the lock
                try:
                    self.snapshot()
                finally:
                    trainer.lock.acquire()
                continue
            trainer.lock.wait()
            self.mark, self.marked_images = time.perf_counter(), run.images

    def on_epoch(self, progress: Progress, entry: dict) -> bool:
        """train's on_epoch: record the epoch; True ends training for a new batch size."""
        self.run.epoch = entry["epoch"]
        self.run.epochs.append(entry)
        self.seen = 0
        return self.new_batch_size is not None


def _set_momentum(net: Net, value: float) -> None:
    """The optimizer's momentum: Momentum's mu, Adam's beta1 (SGD has none)."""
    if hasattr(net.optimizer, "momentum"):
        net.optimizer.momentum = value
    elif hasattr(net.optimizer, "beta1"):
        net.optimizer.beta1 = value


def _weights(net: Net) -> list[np.ndarray]:
    return [W for layer in net.layers for W in layer.params().values()]


def _norm(arrays) -> float:
    return float(math.sqrt(sum(float(np.vdot(a, a)) for a in arrays)))


def _update_ratios(net: Net, before: list[np.ndarray]) -> list[float | None]:
    """Per layer, |W after - W before| / |W after| over its weights (None: no weights)."""
    ratios, k = [], 0
    for layer in net.layers:
        weights = list(layer.params().values())
        if not weights:
            ratios.append(None)
            continue
        old = before[k : k + len(weights)]
        k += len(weights)
        size = _norm(weights)
        ratios.append(_norm([w - o for w, o in zip(weights, old, strict=True)]) / size
                      if size else None)
    return ratios


def _as_image(x: np.ndarray) -> np.ndarray:
    return x[..., None] if x.ndim == 2 else x


def _as_batch(x: np.ndarray) -> np.ndarray:
    return (x[..., None] if x.ndim == 3 else x).astype(np.float32, copy=False)


def _labels(y: np.ndarray) -> np.ndarray:
    return y.argmax(axis=1) if y.ndim == 2 else y.astype(np.int64)
