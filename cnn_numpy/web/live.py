"""Training from the page: one run at a time in a background thread, through the command
line's own run preparation and loop (training.prepare_run, training.train), watched from
the page by polling.

A LiveRun is one run: a training.Callback of the loop, with a public interface the
session calls from request threads (pause, resume, step, edit, stop).  Between two
steps (its on_batch_end) it applies the page's live edits, waits while paused, and about
twice a second copies the weights into the page's viewing Net (api.Model.net, which
predict and the saliency map use) and computes the live views there with the library's
diagnostics.  The training Net is never touched by another thread, and the views never
change what it computes: a run without edits ends with the weights `cnn-numpy train`
gives with the same settings.

Why polling and not Server-Sent Events: every update is a whole picture of the run (maps,
curves, statistics), not a stream of small events; the answer is encoded once per update
and handed to every client as it is; a client that falls behind simply skips updates
instead of queueing them; and a poll is an ordinary JSON request, tested like the others.
"""

from __future__ import annotations

import base64
import copy
import csv
import dataclasses
import io
import math
import threading
import time
from collections.abc import Callable, Mapping

import numpy as np

from .. import diagnostics, saving
from ..architecture import MAX_LENGTH, parse_layers
from ..data.augment import random_shift
from ..data.datasets import Dataset
from ..engines import ENGINES
from ..layers import Dropout
from ..models import build_model, check_architecture, model_name
from ..net import DivergenceError, Net
from ..optimizers import OPTIMIZERS
from ..schedules import SCHEDULES, learning_rate
from ..training import (
    Callback,
    PreparedRun,
    Settings,
    check_setting,
    prepare_run,
    run_settings,
    train,
    weight_arrays,
)
from ..training.history_files import history_text
from ..visual import saliency
from .api import Model, RequestError
from .own import DATASET as OWN
from .own import said

SNAPSHOT_SECONDS = 0.45    # live views about 2.2 times a second while training
VALIDATE_SECONDS = 1.0     # the validation curve gets a point at most once a second
VALIDATION_IMAGES = 200    # ... measured on this many held-out images
STATS_IMAGES = 32          # activation statistics: a forward pass of this many held-out images
STREAM_IMAGES = 8          # test images shown with their top three classes per update
MAX_POINTS = 1000          # a curve longer than this is thinned: pairs of points merged
MAX_SPARK = 120            # points of each per-layer sparkline
MAX_RUNS = 50              # runs kept in a session (the oldest forgotten first)
MAX_MODEL_BYTES = 400 << 20  # trained models kept for download, all runs together
LIVE = ("learning_rate", "momentum", "batch_size", "weight_decay")
STAT_KEYS = ("mean", "std", "dead", "grad_norm", "update_ratio")


class ConflictError(RequestError):
    """A request that the run's state does not allow now: answered with 409."""

    status = 409


# -- settings ------------------------------------------------------------------------

#: The numbers a run's settings hold (their ranges: training.LIMITS).
NUMBERS = ("epochs", "batch_size", "learning_rate", "momentum", "weight_decay", "augment",
           "validation", "limit", "seed")
CHOICES = {"optimizer": tuple(OPTIMIZERS), "schedule": tuple(SCHEDULES),
           "engine": (None, *sorted(ENGINES))}


def _number(name: str, value):
    try:
        return check_setting(name, value)
    except ValueError as exc:
        raise RequestError(str(exc)) from None


def read_settings(body: object, datasets: list[str], default_layers: str) -> Settings:
    """The run asked for, as Settings: every setting checked, the rest the command line's
    defaults for its layers (a named model's own, else the cnn's); RequestError naming
    the first bad one."""
    if not isinstance(body, dict):
        raise RequestError("the body must be a JSON object of settings")
    known = {*NUMBERS, *CHOICES, "layers", "dataset", "edits"}
    unknown = sorted(set(body) - known)
    if unknown:
        raise RequestError(f"unknown setting {unknown[0]!r}: the settings are "
                           f"{', '.join(sorted(known))}")
    layers = _layers(body.get("layers", default_layers))
    given = {"dataset": datasets[0]}
    for name, value in body.items():
        if name in NUMBERS:
            given[name] = None if value is None and name in ("limit", "validation", "momentum") \
                else _number(name, value)
        elif name in CHOICES:
            if value not in CHOICES[name]:
                raise RequestError(f"{name} must be one of "
                                   f"{', '.join(map(str, CHOICES[name]))}, got {value!r}")
            given[name] = value
        elif name == "dataset":
            if value not in datasets:
                raise RequestError(f"dataset must be one of {', '.join(datasets)} (the ones "
                                   f"found on this machine), got {value!r}")
            given[name] = value
    settings = run_settings(layers=layers, **given)
    settings.model = model_name(layers)
    return settings


def _layers(value) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_LENGTH:
        raise RequestError(f"layers must be the architecture as text (at most "
                           f"{MAX_LENGTH:,} characters), like \"FlatLayer(), "
                           "FCLayer_Softmax(10)\"")
    try:
        parse_layers(value)
    except ValueError as exc:
        raise RequestError(f"layers: {exc}") from None
    return value


def read_edits(value: object) -> list[dict]:
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


def read_edit(body: object) -> dict[str, float]:
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


class Probe:
    """The image whose maps and gradients the page shows: a test image with its label, a
    class among `names`, or a drawing (label None); `changed` until a view has been
    computed for it."""

    def __init__(self):
        self.image: np.ndarray | None = None  # (h, w, c); None: the first test image
        self.label: int | None = None
        self.names: tuple[str, ...] | None = None
        self.changed = False

    def label_for(self, view: Net) -> int | None:
        """The label as a class of `view`'s: None for a drawing, and for a test image of
        other classes than the net's (which is then read as a drawing is)."""
        return self.label if self.names == class_names(view) else None  # names: None for
        # a drawing; set_probe refused a label beyond them


def class_names(net: Net) -> tuple[str, ...]:
    """The names of `net`'s outputs (their numbers where it has none)."""
    return tuple(net.class_name(k) for k in range(net.output_layer.num_neurons))


def shown_data(net: Net, load: Callable[[str], Dataset], name: str) -> Dataset:
    """The dataset `name` for the net shown (test images, traced batches, the matrix), if
    its classes are the net's; a RequestError saying why otherwise: labels of other
    classes would name other things than the net's outputs."""
    mine = class_names(net)
    try:
        data = load(name)
    except RequestError:  # your classes can no longer make a set
        raise RequestError(f"your classes have changed since the net shown was trained on "
                           f"{', '.join(mine)}: train it again on your classes") from None
    if data.names() == mine:
        return data
    if name == OWN:
        raise RequestError(f"your classes are now {', '.join(data.names())}; the net shown "
                           f"was trained on {', '.join(mine)}: train it again on your classes")
    raise RequestError(f"the net shown has the classes {', '.join(mine)}, and {name}'s are "
                       f"{', '.join(data.names())}: its test images cannot be scored by it")


def probe_views(view: Net, probe: Probe, test: Dataset) -> dict:
    """The probe image's maps A and the gradients dA flowing back into them (each layer
    packed), and the names of the net's classes, which label every view."""
    image, label = probe.image, probe.label_for(view)
    if image is None:
        image, label = _as_image(test.x_test[0]), int(test.y_test[0])
    X = image[None].astype(view.dtype)
    guess = int(view.predict(X)[0].argmax())
    outputs, gradients = saliency.probe(view, X, [guess if label is None else label])
    layers = [{"name": f"{i}: {type(layer).__name__}", "shape": list(A.shape[1:]),
               "A": packed(A[0]), "dA": packed(dA[0])}
              for i, (layer, A, dA) in enumerate(zip(view.layers, outputs, gradients,
                                                     strict=True))]
    return {"probe": {"label": label, "prediction": guess,
                      "image": np.ascontiguousarray(image[..., 0]),
                      "loss_class": guess if label is None else label, "layers": layers},
            "class_names": None if view.class_names is None else list(view.class_names)}


def _packed_filters(filters: dict | None, dW_from: Net | None) -> dict | None:
    if filters is None:
        return None
    dW = diagnostics.first_filters(dW_from)["dW"] if dW_from is not None else None
    return {"layer": filters["layer"], "W": packed(filters["W"]),
            "dW": None if dW is None else packed(dW)}


# -- one run ---------------------------------------------------------------------------

@dataclasses.dataclass
class Run:
    """One run of the session as the page lists it: the settings it started with (a copy:
    live edits change the loop's settings, not these), its edits, the live values in force
    now, its curves and (once done) its model."""

    number: int
    settings: Settings
    live: dict = dataclasses.field(default_factory=dict)
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
    # the images the validation curve measures: the validation set's first ones, or the
    # test set's where the run holds no validation set out (the command line does so too)
    measured: dict = dataclasses.field(default_factory=lambda: {"on": "validation",
                                                                "images": 0})

    def page_settings(self) -> dict:
        s = self.settings
        return {"layers": s.layers, "dataset": s.dataset, "optimizer": s.optimizer,
                **{name: getattr(s, name) for name in NUMBERS}, "schedule": s.schedule,
                "engine": s.engine}

    def summary(self) -> dict:
        """What the runs list shows and overlays: no maps."""
        return {"number": self.number, "status": self.status, "message": self.message,
                "settings": self.page_settings(), "edits": self.edits, "live": self.live,
                "step": self.step,
                "epoch": self.epoch, "images": self.images, "images_per_s": self.images_per_s,
                "train": self.train.points, "validation": self.validation.points,
                "epochs": self.epochs, "test": self.test, "has_model": self.model is not None,
                "measured": self.measured}


def _set_momentum(net: Net, value: float | None) -> None:
    """The optimizer's momentum: Momentum's mu, Adam's beta1 (SGD has none)."""
    if value is None:
        return
    if hasattr(net.optimizer, "momentum"):
        net.optimizer.momentum = value
    elif hasattr(net.optimizer, "beta1"):
        net.optimizer.beta1 = value


class LiveRun(Callback):
    """One page run in its background thread: training.train with this callback, which
    records every step, applies live edits, waits while paused and takes snapshots.

    Public, for request threads: start(), pause(), resume(), step() (one step while
    paused), edit(changes) (from the next step; a batch size from the next epoch),
    stop() (Stop: ends the run and waits for its thread), next_step() (a copy of the
    paused run's net and the batch it would take next, for the inspector).  `record` is the page's
    record of the run; `session` is told of every change (changed(), show(views),
    finished(live)).  Only this run's thread touches the training net.
    """

    def __init__(self, record: Run, prepared: PreparedRun, session: Trainer, test: Dataset,
                 paused: bool, replay: list):
        self.record, self.prepared, self.session, self.test = record, prepared, session, test
        self.lock = threading.Condition()   # guards paused, steps_allowed, stopping, pending
        self.paused, self.steps_allowed, self.stopping = paused, 0, False
        self.pending: dict[str, float] = {}
        self.replay = list(replay)          # edits to apply again, by step
        s = record.settings
        self.live = {"learning_rate": s.learning_rate, "momentum": s.momentum,
                     "batch_size": s.batch_size, "weight_decay": s.weight_decay}
        record.live = dict(self.live)
        self.parked = False                 # waiting while paused, the lock released
        self.holds_compute = False          # Model.compute, held while taking steps
        self.view = Net(parse_layers(s.layers), optimizer=s.optimizer,
                        weight_decay=s.weight_decay)
        for shown, trained in zip(self.view.layers, prepared.net.layers, strict=True):
            if hasattr(trained, "engine"):  # as asked: None stays None (the default)
                shown.engine = trained.engine
        self.view.set_classes(prepared.net.class_names, prepared.net.images_as)
        self.held = (prepared.x_val, prepared.y_val) if len(prepared.x_val) else \
            (test.x_test, test.y_test)
        record.measured = {"on": "validation" if len(prepared.x_val) else "test",
                           "images": min(len(self.held[1]), VALIDATION_IMAGES)}
        self.snapshot_at, self.validated_at = 0.0, -math.inf
        self.mark, self.marked_images = time.perf_counter(), 0  # for images per second
        self.before: list[np.ndarray] | None = None   # weights before the measured step
        self.ratios: list[float | None] | None = None  # its |dW step| / |W|, per layer
        self.sparks = [{key: [] for key in STAT_KEYS} for _ in prepared.net.layers]
        self.new_batch_size: int | None = None        # for the next epoch
        self.thread = threading.Thread(target=self._run_to_end, daemon=True,
                                       name=f"cnn-numpy run {record.number}")

    # -- the public interface, for request threads -----------------------------------
    def start(self) -> None:
        self.thread.start()

    def pause(self) -> None:
        with self.lock:
            self.paused, self.steps_allowed = True, 0

    def resume(self) -> None:
        with self.lock:
            self.paused = False
            self.lock.notify_all()

    def step(self) -> bool:
        """One more step while paused; False if the run is not paused."""
        with self.lock:
            if not self.paused:
                return False
            self.steps_allowed += 1
            self.lock.notify_all()
            return True

    def edit(self, changes: dict[str, float]) -> None:
        with self.lock:
            self.pending.update(changes)
            self.lock.notify_all()

    def stop(self) -> None:
        with self.lock:
            self.stopping, self.paused = True, False
            self.lock.notify_all()
        self.thread.join()

    def probe_changed(self) -> None:
        """The probe image changed: a paused run takes a snapshot for it."""
        with self.lock:
            self.lock.notify_all()

    def inspection(self, wait: float = 10.0) -> tuple[Net, dict | None]:
        """A copy of the paused run's net (weights, optimizer state, random generator) and
        the step it would take next ({"x", "y", "learning_rate", "epoch", "batch",
        "indices"}; None after its last step).  The run is left as it was.  ConflictError
        unless the run is paused (a Pause, Step or edit on its way is waited for up to
        `wait` seconds)."""
        with self.lock:
            self.lock.wait_for(lambda: self.stopping or not self.paused
                               or (self.parked and not self.pending), wait)
            if self.stopping or not self.parked or self.pending:
                raise ConflictError(f"run {self.record.number} is not paused now; pause it "
                                    "to inspect its next step")
            return copy.deepcopy(self.prepared.net), self._next_batch()

    # -- the loop's callbacks, on the run's thread -------------------------------------
    def on_train_begin(self, net: Net) -> None:
        self._computing(True)
        self.before = initial_weights(net, self.prepared.x_train.shape[1:])
        self._replay_until(0)
        self.record.status = "running"  # a paused start takes its first step, then waits
        self.session.changed()

    def on_batch_end(self, net: Net, batch: int, cce: float, ce: float) -> bool:
        """Between two steps: the page's passes may run (Model.compute is let go)."""
        self._computing(False)
        try:
            return self._between_steps(net, batch, cce, ce)
        finally:
            self._computing(True)

    def on_train_end(self, net: Net) -> None:
        self._computing(False)

    def _computing(self, steps: bool) -> None:
        """Hold Model.compute while the run's thread takes steps (see api.Model)."""
        if steps and not self.holds_compute:
            self.session.model.compute.acquire()
        elif not steps and self.holds_compute:
            self.session.model.compute.release()
        self.holds_compute = steps

    def _between_steps(self, net: Net, batch: int, cce: float, ce: float) -> bool:
        record = self.record
        record.step += 1
        record.images += min(self.prepared.settings.batch_size,
                             len(self.prepared.x_train) - batch * self.prepared.settings.batch_size)
        record.train.add({"step": record.step, "images": record.images, "cce": cce, "ce": ce,
                          "settings": dict(self.live)})
        if self.before is not None:
            self.ratios, self.before = diagnostics.update_ratios(net, self.before), None
        self._replay_until(record.step)
        if self._wait_while_paused():
            return True
        if record.status == "paused":
            record.status = "running"
            self.session.changed()
        if self.session.probe.changed or \
                time.perf_counter() - self.snapshot_at >= SNAPSHOT_SECONDS:
            self.snapshot()
        return False

    def on_epoch_end(self, net: Net, entry: dict) -> None:
        self.record.epoch = entry["epoch"]
        self.record.epochs.append(entry)
        if self.new_batch_size is not None:
            self.prepared.settings.batch_size, self.new_batch_size = self.new_batch_size, None

    # -- inside ----------------------------------------------------------------------
    def _next_batch(self) -> dict | None:
        """The step the loop takes next, as training.loop._step takes it (the epoch's
        shuffled order, the schedule's rate, the seeded shifts); None after the last one.
        Called while the run is parked in on_batch_end (progress.batch steps are done)."""
        run, progress, s = self.prepared, self.progress, self.prepared.settings
        rng = np.random.default_rng(s.seed)
        rng.bit_generator.state = progress.epoch_rng_state
        order = rng.permutation(len(run.x_train))
        epoch, b, size = progress.epoch, progress.batch, s.batch_size
        if b >= run.batches:  # the epoch is done: the next one's first step
            if epoch + 1 >= s.epochs:
                return None
            order, epoch, b = rng.permutation(len(run.x_train)), epoch + 1, 0
            size = self.new_batch_size or size
        batches = -(-len(run.x_train) // size)
        idx = order[b * size : (b + 1) * size]
        rate = learning_rate(s.schedule, s.learning_rate, epoch * batches + b,
                             s.epochs * batches)
        x = random_shift(run.x_train[idx], s.augment, np.random.default_rng([s.seed, epoch, b]))
        return {"x": x, "y": run.y_train[idx], "learning_rate": rate, "epoch": epoch + 1,
                "batch": b + 1, "indices": idx}

    def _run_to_end(self) -> None:
        """Train to the last epoch, a Stop or an error, then record how it ended."""
        record, net = self.record, self.prepared.net
        status, message = "done", ""
        try:
            progress = train(self.prepared, [self])
            if self.outcome == "stopped":
                status, message = "stopped", f"stopped by Stop after step {record.step}"
            elif progress.history:
                last = progress.history[-1]
                record.test = {"cce": last["test_cce"], "ce": last["test_ce"],
                               "images": len(self.prepared.x_test)}
        except DivergenceError as exc:
            status, message = "diverged", str(exc)
        except Exception as exc:  # noqa: BLE001  (the server stays up and says what happened)
            status, message = "failed", f"{type(exc).__name__}: {exc}"
        if status in ("done", "stopped") and net.input_shape is not None:
            self.snapshot(last=True)
            record.model = saving.to_bytes(net)
        record.status, record.message = status, message
        self.session.finished(self)

    def _apply(self, edit: dict[str, float]) -> None:
        """A live edit, from the next step (a batch size from the next epoch); recorded."""
        settings, net = self.prepared.settings, self.prepared.net
        for name, value in edit.items():
            self.live[name] = value
            if name == "learning_rate":
                settings.learning_rate = value
            elif name == "momentum":
                _set_momentum(net, value)
            elif name == "weight_decay":
                settings.weight_decay = net.weight_decay = value
            else:
                self.new_batch_size = int(value)
            self.record.edits.append({"after_step": self.record.step, "name": name,
                                      "value": value})
        self.record.live = dict(self.live)

    def _replay_until(self, step: int) -> None:
        while self.replay and self.replay[0]["after_step"] <= step:
            edit = self.replay.pop(0)
            self._apply({edit["name"]: edit["value"]})

    def _wait_while_paused(self) -> bool:
        """Pending edits applied, and while paused the lock released until Resume, Step or
        Stop (a snapshot when the pause begins or the probe changes).  True on Stop."""
        with self.lock:
            while True:
                if self.pending:
                    self._apply(self.pending)
                    self.pending = {}
                    self.session.changed()  # the page sees the edit, paused or not
                if self.stopping:
                    return True
                if not self.paused:
                    return False
                if self.steps_allowed:
                    self.steps_allowed -= 1
                    return False
                if self.record.status != "paused" or self.session.probe.changed:
                    self.record.status = "paused"
                    self.lock.release()  # the views are computed outside the lock
                    try:
                        self.snapshot(last=True)  # the views and curves of this step
                    finally:
                        self.lock.acquire()
                    continue
                self.parked = True
                self.lock.notify_all()  # an inspection waiting for the pause goes on
                self.lock.wait()
                self.parked = False
                self.mark, self.marked_images = time.perf_counter(), self.record.images

    def snapshot(self, last: bool = False) -> None:
        """Copy the weights to the viewing net and compute the live views there (the last
        one of a run, and the one a pause takes, always measure the validation set, once a
        step: the curves then end where the weights are)."""
        record, view, model = self.record, self.view, self.session.model
        now = time.perf_counter()
        if now > self.mark:
            record.images_per_s = (record.images - self.marked_images) / (now - self.mark)
        with model.lock:
            if view.input_shape is None:
                view.layer_outputs(np.zeros((1, *self.prepared.net.input_shape), view.dtype))
            for target, source in zip(weight_arrays(view), weight_arrays(self.prepared.net),
                                      strict=True):
                target[...] = source
            if model.net is not view:
                model.replace(view, record.settings.dataset)
            model.weights += 1
            self.session.probe.changed = False
            views = {**probe_views(view, self.session.probe, self.test),
                     "filters": _packed_filters(diagnostics.first_filters(view),
                                                self.prepared.net),
                     "stats": self._stats(view), "stream": stream(view, self.test, record.step)}
            points = record.validation.points
            measured = bool(points) and points[-1]["step"] == record.step
            if not measured and (last or now - self.validated_at >= VALIDATE_SECONDS):
                _, cce, ce = view.evaluate(*(a[:VALIDATION_IMAGES] for a in self.held))
                record.validation.add({"step": record.step, "images": record.images,
                                       "cce": cce, "ce": ce, "settings": dict(self.live)})
                self.validated_at = now
        self.before = diagnostics.trained_weights(self.prepared.net)
        self.snapshot_at, self.mark, self.marked_images = now, now, record.images
        self.session.show(views)

    def _stats(self, view: Net) -> list[dict]:
        """Per layer, the sparklines of its statistics, with this snapshot's added."""
        net = self.prepared.net
        stats = diagnostics.layer_statistics(view, _as_batch(self.held[0][:STATS_IMAGES]))
        norms = diagnostics.gradient_norms(net)
        ratios = self.ratios or [None] * len(net.layers)
        for spark, figures, grad, ratio in zip(self.sparks, stats, norms, ratios, strict=True):
            for key, value in {**figures, "grad_norm": grad, "update_ratio": ratio}.items():
                spark[key].append(value)
                del spark[key][:-MAX_SPARK]
        return [{"name": f"{i}: {type(layer).__name__}",
                 **{key: list(values) for key, values in spark.items()}}
                for i, (layer, spark) in enumerate(zip(net.layers, self.sparks, strict=True))]


def initial_weights(net: Net, sample_shape: tuple[int, ...]) -> list[np.ndarray] | None:
    """The weights before a run's first step, for its |update| / |W|: the net's own once
    built; else those a copy builds, which are what the first step's own build draws
    (None when a Dropout layer draws masks from the same generator in between)."""
    if net.input_shape is not None:
        return diagnostics.trained_weights(net)
    if any(isinstance(layer, Dropout) for layer in net.layers):
        return None
    probe = copy.deepcopy(net)
    probe.build((*sample_shape, 1) if len(sample_shape) == 2 else tuple(sample_shape))
    return diagnostics.trained_weights(probe)


def stream(view: Net, test: Dataset, version: int) -> list[dict]:
    """STREAM_IMAGES test images (all of them, each once, where there are fewer), a
    different few each time, with their top three classes."""
    count = min(STREAM_IMAGES, len(test.x_test))
    start = (version * count) % max(len(test.x_test), 1)
    picks = (start + np.arange(count)) % len(test.x_test)
    tops = diagnostics.top_classes(view, _as_batch(test.x_test[picks]))
    return [{"index": int(j), "label": int(_labels(test.y_test[[j]])[0]),
             "image": test.x_test[j], "top": [list(t) for t in top]}
            for j, top in zip(picks, tops, strict=True)]


def _as_image(x: np.ndarray) -> np.ndarray:
    return x[..., None] if x.ndim == 2 else x


def _as_batch(x: np.ndarray) -> np.ndarray:
    return (x[..., None] if x.ndim == 3 else x).astype(np.float32, copy=False)


def _labels(y: np.ndarray) -> np.ndarray:
    return y.argmax(axis=1) if y.ndim == 2 else y.astype(np.int64)


class Trainer:
    """The page's training session: its runs, the one that is alive, the probe image, and
    the state answer the page polls.  Its methods are called from request threads; a
    run calls changed(), show(views) and finished(live).  The session never calls into
    a run while it holds its own lock, so the two locks never wait for each other.
    """

    def __init__(self, model: Model, datasets: list[str], load_data: Callable):
        self.model, self.datasets, self.load_data = model, datasets, load_data
        self.lock = threading.Lock()       # guards everything below
        self.runs: list[Run] = []
        self.active: LiveRun | None = None
        self.probe = Probe()
        self.version = 0                   # bumped whenever the state answer changes
        self.views: dict = {}              # the live views of the last snapshot
        self._answer: bytes | None = None  # the encoded state answer for self.version
        #: (viewing net, training net, record) of the last run that ended with a model
        self.trained: tuple[Net, Net, Run] | None = None
        self.encode: Callable[[dict], bytes] | None = None

    # -- what a run tells the session -----------------------------------------------------
    def changed(self) -> None:
        with self.lock:
            self.version += 1
            self._answer = None

    def show(self, views: dict) -> None:
        with self.lock:
            self.views = views
        self.changed()

    def finished(self, live: LiveRun) -> None:
        """A run ended: it is no longer active; old runs' models are dropped past
        MAX_MODEL_BYTES."""
        with self.lock:
            if self.active is live:
                self.active = None
            if live.record.model is not None:  # its trained net, optimizer state and all
                self.trained = (live.view, live.prepared.net, live.record)
            total = 0
            for run in reversed(self.runs):
                if run.model is not None:
                    total += len(run.model)
                    if total > MAX_MODEL_BYTES:
                        run.model = None
        self.changed()

    # -- requests ---------------------------------------------------------------------
    def start(self, body: object, paused: bool = False) -> dict:
        """POST /api/train/start: a new run with these settings (409 while one runs).
        paused: the run takes its first step, then waits (Step from nothing)."""
        settings = read_settings(body, self.datasets, self.model.net.describe())
        replay = read_edits(body.get("edits", []))
        self._refuse_a_second()
        prepared, test = self._prepare(settings)  # outside the lock: data may take seconds
        with self.lock:
            if self.active is not None:
                raise self._conflict()
            record = Run(number=(self.runs[-1].number + 1 if self.runs else 1),
                         settings=dataclasses.replace(prepared.settings))
            self.runs.append(record)
            del self.runs[:-MAX_RUNS]
            self.active = LiveRun(record, prepared, self, test, paused, replay)
            live = self.active
        self.changed()
        live.start()
        return {"run": record.number}

    def pause(self, _: Mapping[str, str] | None = None) -> dict:
        live = self._live("pause")
        live.pause()
        self.changed()
        return {"run": live.record.number, "status": "pausing"}

    def resume(self, _: Mapping[str, str] | None = None) -> dict:
        live = self._live("resume")
        live.resume()
        self.changed()
        return {"run": live.record.number, "status": "running"}

    def step(self, body: object = None) -> dict:
        """One training step: of the paused run, or of a new run (with these settings)
        that then waits paused."""
        with self.lock:
            live = self.active
        if live is None:
            return self.start(body or {}, paused=True)  # its first step is the one asked for
        if not live.step():
            raise ConflictError(f"run {live.record.number} is running; pause it to step")
        return {"run": live.record.number, "status": "stepping"}

    def set(self, body: object) -> dict:
        """POST /api/train/set: live edits, applied between two steps."""
        edit = read_edit(body)
        live = self._live("change settings of")
        if "momentum" in edit and live.record.settings.optimizer == "sgd":
            raise RequestError("sgd has no momentum; start a run with optimizer momentum or "
                               "adam to change it")
        live.edit(edit)
        return {"run": live.record.number, "after_step": live.record.step}

    def reset(self, _: Mapping[str, str] | None = None) -> dict:
        """POST /api/train/reset (the Stop button): end the run; it stays in the list, as
        stopped, with its model, and the page keeps showing its weights."""
        with self.lock:
            live = self.active
        if live is not None:
            live.stop()
        self.changed()
        return {"stopped": live is not None}

    def set_probe(self, image: np.ndarray, label: int | None,
                  dataset: str | None = None) -> None:
        """The image whose maps and gradients are shown (a drawn digit: label None; a test
        image: its label, a class of `dataset`'s, None: the page's own test set's)."""
        names = None if label is None else self._class_names(dataset or self.datasets[0])
        if names is not None and label >= len(names):
            raise RequestError(f"label must be one of {said(dataset or self.datasets[0])}: "
                               f"0..{len(names) - 1}, got {label}")
        with self.lock:
            probe = self.probe
            probe.image, probe.label, probe.names, probe.changed = image, label, names, True
            live = self.active
        if live is not None:
            live.probe_changed()
        else:
            self._snapshot_idle()

    def state(self, query: Mapping[str, str]) -> bytes | dict:
        """GET /api/train/state?since=V: the run and its live views (or just the version
        when nothing changed since V)."""
        since = query.get("since") if hasattr(query, "get") else None
        with self.lock:
            idle = not self.views and self.active is None
        if idle:
            self._snapshot_idle()  # the probe's views with the model being served
        with self.lock:
            if since is not None and since == str(self.version):
                return {"version": self.version, "unchanged": True}
            if self._answer is None:
                self._answer = self.encode(self._state())
            return self._answer

    def runs_list(self, _: Mapping[str, str] | None = None) -> dict:
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
        if run.model is not None:
            return run.model
        alive = self.active is not None and self.active.record is run
        if alive:
            why = " yet: it ends with one (or press Stop)"
        elif run.status in ("failed", "diverged"):
            why = f": it {run.status} ({run.message})"
        else:
            why = " any more: the models of old runs are dropped to bound memory"
        raise ConflictError(f"run {run.number} has no model to download{why}")

    def history_csv(self, number: str) -> str:
        """The run's curves, one row per point: step, images, training and held-out
        figures (val_* on validation images, or test_* where the run measured test images:
        Run.measured), and the live settings in force."""
        run = self.find(number)
        held = "val" if run.measured["on"] == "validation" else "test"
        rows = [{"step": p["step"], "images": p["images"], "train_cce": p["cce"],
                 "train_ce": p["ce"], **p["settings"]} for p in run.train.points]
        rows += [{"step": p["step"], "images": p["images"], f"{held}_cce": p["cce"],
                  f"{held}_ce": p["ce"], **p["settings"]} for p in run.validation.points]
        rows.sort(key=lambda r: (r["step"], f"{held}_cce" in r))
        buffer = io.StringIO()
        columns = ("step", "images", "train_cce", "train_ce", f"{held}_cce", f"{held}_ce", *LIVE)
        writer = csv.DictWriter(buffer, columns, lineterminator="\n", extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        return buffer.getvalue()

    def history_json(self, number: str) -> str:
        """The run as `cnn-numpy compare` reads it: settings and one row per epoch, plus
        the edits (a replay: start a run with these settings and edits)."""
        run = self.find(number)
        settings = {**dataclasses.asdict(run.settings), "edits": run.edits}
        return history_text(settings, run.epochs, as_json=True)

    # -- inside -----------------------------------------------------------------------
    def _conflict(self) -> ConflictError:
        return ConflictError(f"run {self.active.record.number} is "
                             f"{self.active.record.status}: one training at a time; press "
                             "Stop to end it first")

    def _refuse_a_second(self) -> None:
        with self.lock:
            if self.active is not None:
                raise self._conflict()

    def _live(self, what: str) -> LiveRun:
        with self.lock:
            if self.active is None:
                raise ConflictError(f"no run to {what}; press Start first")
            return self.active

    def _prepare(self, settings: Settings):
        """(prepared run, dataset) as `cnn-numpy train --layers ...` would prepare it."""
        net = build_model(settings.model, settings.engine, settings.seed, settings.optimizer,
                          settings.weight_decay, layers=settings.layers)
        _set_momentum(net, settings.momentum)
        data = self.load_data(settings.dataset)
        try:
            check_architecture(net, data.x_train.shape[1:] + (1,))
        except ValueError as exc:
            raise RequestError(f"layers: {exc}") from None
        try:
            prepared = prepare_run(net, settings, data.x_train, data.y_train, data.x_test,
                                   data.y_test, source=data.source,
                                   class_names=data.class_names)
        except ValueError as exc:
            raise RequestError(str(exc)) from None
        return prepared, data

    def _class_names(self, dataset: str) -> tuple[str, ...] | None:
        """The names of `dataset`'s classes (their numbers where it has none); None where
        it cannot be loaded now (your classes, changed since: no label can be trusted)."""
        try:
            return self.load_data(dataset).names()
        except ValueError:  # RequestError, DataError
            return None

    def _snapshot_idle(self) -> None:
        """The probe's views with the page's current model, when no run is training."""
        test = self.load_data(self.datasets[0])
        with self.model.compute, self.model.lock:  # net.predict: the fast path
            net = self.model.net
            self.probe.changed = False
            views = {**probe_views(net, self.probe, test),
                     "filters": _packed_filters(diagnostics.first_filters(net), None)}
        self.show(views)

    def _state(self) -> dict:
        live = self.active
        run = live.record if live is not None else (self.runs[-1] if self.runs else None)
        return {"version": self.version, "run": None if run is None else run.summary(),
                "paused": live is not None and live.paused,
                "views": self.views, "datasets": self.datasets,
                "model_version": self.model.version, "weights_version": self.model.weights,
                "dataset": self.model.dataset}
