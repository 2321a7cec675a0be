"""The training loop: epochs of shuffled mini-batches, with callbacks.

Everything that decides the result (weights, optimizer state, the shuffling RNG, the
Net's RNG that draws dropout masks, the position in the epoch, the running sums) is in
a checkpoint, so a run resumed from any checkpoint ends exactly where the uninterrupted
run would.  The learning rate of each step comes from the schedule and the step number,
and the random shifts of `augment` from (seed, epoch, batch), so neither needs saving.
"""

from __future__ import annotations

import copy
import math
import signal
import threading
import time
from collections.abc import Sequence

import numpy as np

from ..data.augment import random_shift
from ..net import DivergenceError
from ..schedules import learning_rate
from .callbacks import Callback
from .prepare import PreparedRun
from .settings import Progress

#: Held-out images evaluated between two looks at Ctrl-C.
EVAL_CHUNK = 1000


class _SigintFlag:
    """While active, Ctrl-C only sets a flag; the loop stops after the current batch.

    Signal handlers belong to the main thread; elsewhere Ctrl-C is left alone.
    """

    def __init__(self) -> None:
        self.raised = False
        self._active = threading.current_thread() is threading.main_thread()

    def __enter__(self):
        if self._active:
            self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum, frame) -> None:
        self.raised = True

    def __exit__(self, *exc) -> None:
        if self._active:
            signal.signal(signal.SIGINT, self._old)


def train(run: PreparedRun, callbacks: Sequence[Callback] = (),
          progress: Progress | None = None) -> Progress:
    """Train run.net on run.x_train until run.settings.epochs epochs are done; returns the
    final Progress (a copy of `progress`, where a resumed run starts).

    After every epoch the validation set is measured (or, when the run holds none
    out, the test set) and a history row appended; at the end of a run that holds
    out a validation set, the test set is measured once, into the last row.  Each
    callback sees every step and epoch (training.Callback); one returning True stops
    the run.  Ctrl-C stops after the current batch (or the current EVAL_CHUNK
    held-out images): the callbacks see outcome "interrupted" (a Checkpoint saves),
    then KeyboardInterrupt is raised.  A NaN or infinite loss raises DivergenceError
    naming the epoch and batch.
    """
    progress = copy.deepcopy(progress) if progress is not None else Progress()
    for callback in callbacks:
        callback.run, callback.progress, callback.outcome = run, progress, None
    outcome = "failed"
    try:
        with _SigintFlag() as sigint:
            for callback in callbacks:
                callback.on_train_begin(run.net)
            outcome = _epochs(run, progress, callbacks, sigint)
            if outcome != "interrupted" and not _final_test(run, progress, sigint):
                outcome = "interrupted"
    finally:
        for callback in callbacks:
            callback.outcome = outcome
            callback.on_train_end(run.net)
    if outcome == "interrupted":
        raise KeyboardInterrupt
    return progress


def _stop(callbacks: Sequence[Callback], hook: str, *args) -> bool:
    """Call the hook of every callback (all of them, even after one says stop)."""
    return any([bool(getattr(callback, hook)(*args)) for callback in callbacks])


def _epochs(run: PreparedRun, progress: Progress, callbacks, sigint) -> str:
    """The epochs still to do: "done", "stopped" (by a callback) or "interrupted"."""
    net, settings = run.net, run.settings
    rng = np.random.default_rng(settings.seed)
    if progress.epoch_rng_state is not None:
        rng.bit_generator.state = progress.epoch_rng_state
    while progress.epoch < settings.epochs:
        progress.epoch_rng_state = rng.bit_generator.state
        order = rng.permutation(len(run.x_train))
        started, seen_before = time.perf_counter(), progress.seen
        for callback in callbacks:
            callback.on_epoch_begin(net, progress.epoch + 1)
        for b in range(progress.batch, run.batches):
            cce, ce = _step(run, progress, order, b)
            if _stop(callbacks, "on_batch_end", net, b, cce, ce):
                return "stopped"
            if sigint.raised:
                return "interrupted"
        # Ctrl-C while the held-out images are measured: the epoch's training is done
        # (progress.batch == run.batches), so a resumed run goes straight to this.
        entry = _epoch_entry(run, progress, sigint, progress.seen - seen_before,
                             time.perf_counter() - started)
        if entry is None:
            return "interrupted"
        progress.history.append(entry)
        progress.epoch += 1
        progress.batch, progress.cce_sum, progress.ce_sum, progress.seen = 0, 0.0, 0.0, 0
        progress.epoch_rng_state = rng.bit_generator.state
        if _stop(callbacks, "on_epoch_end", net, entry):
            return "stopped"
        if sigint.raised and progress.epoch < settings.epochs:
            return "interrupted"
    return "done"


def _rate(run: PreparedRun, progress: Progress, batch: int) -> float:
    """The learning rate of step `batch` of the current epoch, from the schedule."""
    s, batches = run.settings, run.batches
    return learning_rate(s.schedule, s.learning_rate, progress.epoch * batches + batch,
                         s.epochs * batches)


def _step(run: PreparedRun, progress: Progress, order: np.ndarray, b: int):
    """One training step on batch b of the epoch's order; the progress counts it."""
    s = run.settings
    idx = order[b * s.batch_size : (b + 1) * s.batch_size]
    lr = _rate(run, progress, b)
    x = random_shift(run.x_train[idx], s.augment,
                     np.random.default_rng([s.seed, progress.epoch, b]))
    try:
        _, cce, ce = run.net.train(x, run.y_train[idx], lr)
    except DivergenceError as exc:  # say where, too
        raise DivergenceError(f"{str(exc).split('; ')[0]} in epoch {progress.epoch + 1}, "
                              f"batch {b + 1}; lower the learning rate (now {lr:.3g})") from None
    progress.batch = b + 1
    progress.cce_sum += cce * len(idx)
    progress.ce_sum += ce * len(idx)
    progress.seen += len(idx)
    return cce, ce


def _epoch_entry(run: PreparedRun, progress: Progress, sigint, processed: int,
                 seconds: float) -> dict | None:
    """The epoch's history row, or None if Ctrl-C came while the held-out set was measured."""
    held_out = len(run.x_val) > 0
    figures = _evaluate(run, run.x_val, run.y_val, sigint) if held_out else \
        _evaluate(run, run.x_test, run.y_test, sigint)
    if figures is None:
        return None
    nan = (math.nan, math.nan)
    val, test = (figures, nan) if held_out else (nan, figures)
    return {"epoch": progress.epoch + 1,
            "train_cce": progress.cce_sum / max(progress.seen, 1),
            "train_ce": progress.ce_sum / max(progress.seen, 1),
            "val_cce": val[0], "val_ce": val[1], "test_cce": test[0], "test_ce": test[1],
            "learning_rate": _rate(run, progress, run.batches - 1),
            "images_per_s": processed / seconds if processed and seconds > 0 else 0.0}


def _evaluate(run: PreparedRun, x: np.ndarray, y: np.ndarray, sigint):
    """(mean CCE, error rate) on x, y in chunks (NaN for none), or None on Ctrl-C."""
    if not len(x):
        return math.nan, math.nan
    cce_sum = ce_sum = 0.0
    for start in range(0, len(x), EVAL_CHUNK):
        chunk = x[start : start + EVAL_CHUNK]
        _, cce, ce = run.net.evaluate(chunk, y[start : start + EVAL_CHUNK])
        cce_sum += cce * len(chunk)
        ce_sum += ce * len(chunk)
        if sigint.raised:
            return None
    return cce_sum / len(x), ce_sum / len(x)


def _final_test(run: PreparedRun, progress: Progress, sigint) -> bool:
    """A run that held out a validation set measures its test set once, at the end of its
    last epoch, into the last history row.  False if Ctrl-C came meanwhile."""
    if not (len(run.x_val) and len(run.x_test) and progress.history) or progress.batch:
        return True  # nothing to measure, or stopped mid-epoch: the last row is older
    figures = _evaluate(run, run.x_test, run.y_test, sigint)
    if figures is None:
        return False
    progress.history[-1].update(test_cce=figures[0], test_ce=figures[1])
    return True
