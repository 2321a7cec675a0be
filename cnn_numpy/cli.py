"""The command line: `cnn-numpy train | evaluate | predict | compare | explain | show | export |
serve`.

A user mistake (a bad option, a missing or damaged file, an output path
that cannot be written, no network) ends with one line on stderr and exit
code 2.  Output paths are checked before training starts.  Ctrl-C during
training saves a checkpoint and exits 130.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import socket
import sys
import time
from pathlib import Path

import numpy as np

from . import __version__
from .architecture import MAX_LENGTH, parse_layers
from .data import DATASETS, DataError, load_dataset
from .data.datasets import find_or_download
from .data.images import read_digit_image, save_digit_strip
from .engines import DEFAULT_ENGINE, ENGINES
from .fast import threads as parallel
from .files import check_writable
from .layers import ConvLayer, PoolLayer
from .net import Net
from .optimizers import OPTIMIZERS
from .runs import plot_runs, read_run, table, write_history
from .saving import ModelFileError, load, read
from .schedules import SCHEDULES, learning_rate
from .training import (
    CUSTOM,
    MAX_AUGMENT,
    MAX_EPOCHS,
    MODELS,
    DivergenceError,
    Progress,
    Settings,
    data_fingerprint,
    hold_out,
    load_checkpoint,
    train,
)
from .visual import (
    draw_stride_groups,
    explain_stride_groups,
    plot_confusion,
    plot_filters,
    plot_history,
    plot_mistakes,
)
from .visual.plots import require_matplotlib

PROG = "cnn-numpy"
DEFAULT_CHECKPOINT = "cnn-numpy-checkpoint.npz"
EXPLAIN_MAX_INPUT = 64  # an N x N input is printed whole: keep it readable

#: Out-of-the-box settings per model (see README, "How the defaults were chosen").
MODEL_DEFAULTS = {
    "cnn": {"epochs": 6, "batch_size": 32, "learning_rate": 0.001, "optimizer": "adam",
            "schedule": "cosine", "weight_decay": 0.0, "augment": 0},
    "flat": {"epochs": 10, "batch_size": 32, "learning_rate": 0.001, "optimizer": "adam",
             "schedule": "cosine", "weight_decay": 0.0, "augment": 0},
    "deep": {"epochs": 12, "batch_size": 64, "learning_rate": 0.002, "optimizer": "adam",
             "schedule": "cosine", "weight_decay": 0.0, "augment": 1},
}


#: The command line's models as architecture texts (cnn_numpy/architecture.py):
#:   cnn   the spec's CNN: conv 32 3x3 + ReLU -> max pool 2 -> dense 100 + ReLU -> softmax 10
#:   flat  dense only: dense 100 + ReLU -> softmax 10
#:   deep  two conv blocks (conv 3x3 -> BatchNorm -> ReLU -> max pool 2; 32 then 64
#:         filters) -> dropout -> dense 128 -> BatchNorm -> ReLU -> dropout -> softmax 10
MODEL_LAYERS = {
    "cnn": "ConvLayer_ReLU(32, 3), PoolLayer_Max(2), FlatLayer(), FCLayer_ReLU(100), "
           "FCLayer_Softmax(10)",
    "flat": "FlatLayer(), FCLayer_ReLU(100), FCLayer_Softmax(10)",
    "deep": "ConvLayer(32, 3), BatchNorm(), ReLULayer(), PoolLayer_Max(2), ConvLayer(64, 3), "
            "BatchNorm(), ReLULayer(), PoolLayer_Max(2), FlatLayer(), Dropout(rate=0.1), "
            "FCLayer(128), BatchNorm(), ReLULayer(), Dropout(rate=0.3), FCLayer_Softmax(10)",
}
#: A network given with --layers may have at most this many weights.
MAX_PARAMS = 20_000_000


def build_model(name: str, engine: str | None = None, seed: int | None = None,
                optimizer: str | None = None, weight_decay: float = 0.0,
                layers: str | None = None) -> Net:
    """The command line's model `name` (MODEL_LAYERS), or the architecture text `layers`."""
    text = MODEL_LAYERS[name] if layers is None else layers
    return Net(parse_layers(text), engine=engine, seed=seed, optimizer=optimizer,
               weight_decay=weight_decay)


def check_architecture(net: Net, image_shape: tuple[int, ...]) -> None:
    """ValueError unless `net` can train on images of image_shape: the layers fit, the last
    one computes a loss, and the weights fit in memory."""
    net.output_layer  # noqa: B018  (raises the error that names the last layer)
    shape, total = tuple(image_shape), 0
    for layer, after in zip(net.layers, net.shapes(shape), strict=True):
        total += sum(math.prod(s) for s in layer.param_shapes(shape).values())
        shape = after
    if total > MAX_PARAMS:
        raise ValueError(f"the network would have {total:,} weights for {image_shape} images; "
                         f"at most {MAX_PARAMS:,} on the command line")


class CLIError(Exception):
    """A mistake in how the command was called: reported in one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print the usage block and exit
        raise CLIError(f"{message} (see `{self.prog} --help`)")


def _number(kind, low=None, low_ok=True, high=None):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid {kind.__name__}") \
                from None
        try:
            finite = bool(np.isfinite(value))
        except (TypeError, OverflowError):  # an integer too large for any NumPy type
            finite = False
        if not finite or (low is not None and (value < low or
                                                           (value == low and not low_ok))) \
                or (high is not None and value >= high):
            bound = f"> {low}" if not low_ok else f">= {low}"
            if high is not None:
                bound += f" and < {high}"
            raise argparse.ArgumentTypeError(f"{text} is out of range: it must be {bound}")
        return value
    return parse


# Every number has a sane range: an absurd value is a clear error now, not a failure later
# (10**11 epochs would grow a checkpoint's history past what its loader reads).
EPOCHS = _number(int, 1, high=MAX_EPOCHS + 1)
BATCH_SIZE = _number(int, 1, high=65_537)
IMAGES = _number(int, 1, high=10**7 + 1)
SEED = _number(int, 0, high=2**32)
LEARNING_RATE = _number(float, 0, low_ok=False, high=100)
WEIGHT_DECAY = _number(float, 0, high=1)
FRACTION = _number(float, 0, low_ok=False, high=1)
SHARE = _number(float, 0, high=1)
#: The share of the training set --validation holds out by default, from this many
#: training images on (below, the default holds out none).
VALIDATION, MIN_VALIDATED = 0.1, 20
SHIFT = _number(int, 0, high=MAX_AUGMENT + 1)
FILTER = _number(int, 1, high=EXPLAIN_MAX_INPUT + 1)
THREADS = _number(int, 1, high=parallel.MAX_THREADS + 1)


def _add_threads_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=THREADS, default=None, metavar="N",
                   help=f"threads that compute (default: ${parallel.ENV_VAR}, else one per core); "
                        "results are the same for any N")


def _add_data_options(p: argparse.ArgumentParser, training: bool = False) -> None:
    p.add_argument("--dataset", choices=DATASETS, default=None,
                   help="mnist-sample is the bundled official MNIST test set (10,000 images, "
                        "split 9,000 / 1,000); default: full MNIST if present or "
                        "downloadable, else the sample")
    p.add_argument("--data-dir", default=None, metavar="DIR",
                   help="folder holding the dataset's four files (default: $CNN_NUMPY_DATA, "
                        "the cache, system folders)")
    p.add_argument("--split", type=FRACTION, default=None,
                   help="pool train+test and split randomly with this training fraction "
                        "(0.95 is the spec's split); default: the official split")
    p.add_argument("--seed", type=SEED, default=None,
                   help="seed for weights, shuffling, dropout and shifts (default 0)"
                   if training else "seed of the --split shuffle (default: the model's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="A convolutional neural network in NumPy.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    t = sub.add_parser("train", help="train the spec's cnn or flat model, the deep one, or "
                                     "any network (--layers)")
    t.add_argument("model", nargs="?", choices=MODELS,
                   help="cnn: conv-pool-dense (the spec's CNN); flat: dense only; deep: two "
                        "conv blocks with BatchNorm and dropout")
    t.add_argument("--layers", default=None, metavar="TEXT|FILE",
                   help="train this network instead of a named one: its layers as Python, "
                        "e.g. \"ConvLayer_ReLU(16, 5), PoolLayer_Max(2), FlatLayer(), "
                        "FCLayer_Softmax(10)\", or a file holding that text (the cnn's "
                        "defaults apply)")

    def default(name: str) -> str:
        values = {model: MODEL_DEFAULTS[model][name] for model in MODELS}
        if len(set(values.values())) == 1:
            return f"default {next(iter(values.values()))}"
        return "default " + ", ".join(f"{v} for {m}" for m, v in values.items())

    t.add_argument("--engine", choices=sorted(ENGINES), default=None,
                   help=f"how conv and pool layers compute (default {DEFAULT_ENGINE}); "
                        "naive is the spec's slow four loops")
    t.add_argument("--epochs", type=EPOCHS, default=None, metavar="N",
                   help=f"passes over the training set, 1..{MAX_EPOCHS} ({default('epochs')});"
                        " with --resume: the total to reach")
    t.add_argument("--batch-size", type=BATCH_SIZE, default=None, metavar="N",
                   help=f"images per training step ({default('batch_size')})")
    t.add_argument("--learning-rate", type=LEARNING_RATE, default=None, metavar="LR",
                   help=f"step size ({default('learning_rate')}); with --resume only a "
                        "lower one, for fine-tuning")
    t.add_argument("--optimizer", choices=list(OPTIMIZERS), default=None,
                   help=f"update rule ({default('optimizer')})")
    t.add_argument("--schedule", choices=SCHEDULES, default=None,
                   help="learning rate over the run: constant; step (/10 at 1/2 and 3/4 of "
                        f"the run); cosine (down to 0) ({default('schedule')})")
    t.add_argument("--weight-decay", type=WEIGHT_DECAY, default=None, metavar="L2",
                   help=f"L2 penalty on the conv and dense weights, 0..1 "
                        f"({default('weight_decay')})")
    t.add_argument("--augment", type=SHIFT, default=None, metavar="PIXELS",
                   help=f"shift each training image by up to PIXELS (0..{MAX_AUGMENT}) "
                        f"at random, every batch; 0: none ({default('augment')})")
    t.add_argument("--validation", type=SHARE, default=None, metavar="SHARE",
                   help=f"hold out this share of the training images, drawn with the seed, "
                        f"and report it after every epoch; the test set is evaluated once, "
                        f"at the end (default {VALIDATION}; 0: none, and the test set is "
                        "reported every epoch)")
    t.add_argument("--limit", type=IMAGES, default=None, metavar="N",
                   help="train on the first N training images only (default: all)")
    t.add_argument("--test-limit", type=IMAGES, default=None, metavar="N",
                   help="test on the first N test images only (default: all)")
    t.add_argument("--save", default=None, metavar="PATH",
                   help="write a checkpoint (model + training state) after every epoch")
    t.add_argument("--resume", default=None, metavar="PATH",
                   help="continue from a checkpoint until --epochs epochs in total")
    t.add_argument("--plot", default=None, metavar="FILE.png",
                   help="draw CCE and CE per epoch, redrawn after every epoch")
    t.add_argument("--history", default=None, metavar="FILE",
                   help="write the settings and the figures of every epoch so far, after "
                        "every epoch: JSON for FILE.json, else CSV (see `compare`)")
    _add_data_options(t, training=True)
    _add_threads_option(t)
    t.set_defaults(func=cmd_train)

    e = sub.add_parser("evaluate", help="print the test-set CCE and CE of a saved model")
    e.add_argument("model_file", metavar="MODEL",
                   help="a model file or checkpoint (cnn-numpy train --save)")
    _add_data_options(e)
    _add_threads_option(e)
    e.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("predict", help="classify PNG/JPEG images of digits")
    p.add_argument("model_file", metavar="MODEL",
                   help="a model file or checkpoint (cnn-numpy train --save)")
    p.add_argument("images", nargs="+", metavar="IMAGE",
                   help="PNG or JPEG pictures of one digit each: any size, any colours; "
                        "each one that cannot be read is reported and the others are "
                        "predicted (exit 2 if any could not)")
    p.add_argument("--show", metavar="FILE.png", default=None,
                   help="also save the 28 x 28 images the network saw, side by side")
    p.set_defaults(func=cmd_predict)

    c = sub.add_parser("compare", help="training runs side by side: settings, last figures "
                                       "and curves")
    c.add_argument("runs", nargs="+", metavar="RUN",
                   help="checkpoints (train --save) or history files (train --history)")
    c.add_argument("--plot", metavar="FILE.png", default=None,
                   help="also draw every run's train and held-out CCE and CE per epoch, "
                        "overlaid")
    c.set_defaults(func=cmd_compare)

    x = sub.add_parser("explain", help="show how a technique works, computed by the engine")
    topics = x.add_subparsers(dest="topic", required=True, parser_class=_Parser)
    g = topics.add_parser("stride-groups", help="which inputs each filter element meets, "
                                               "group by group")
    g.add_argument("--filter", type=FILTER, default=2, metavar="F", help="filter width (2)")
    g.add_argument("--stride", type=FILTER, default=1, metavar="S", help="stride (1)")
    g.add_argument("--input", type=FILTER, default=4, metavar="N",
                   help=f"input width and height, up to {EXPLAIN_MAX_INPUT} (4)")
    g.add_argument("--png", default=None, metavar="FILE",
                   help="also draw the sliding filter and the stride groups")
    g.set_defaults(func=cmd_explain)

    v = sub.add_parser("show", help="draw a saved model's filters, confusion matrix, mistakes")
    v.add_argument("model_file", metavar="MODEL", help="a model file or checkpoint")
    v.add_argument("--filters", metavar="FILE.png",
                   help="a conv layer's filters as a grid, on one colour scale")
    v.add_argument("--layer", type=_number(int, 0), default=None, metavar="I",
                   help="with --filters: which layer (its index in the summary; default: the "
                        "first conv layer)")
    v.add_argument("--channel", type=_number(int, 0), default=None, metavar="C",
                   help="with --filters: which input channel (default 0, or the mean over "
                        "channels for a layer with several)")
    v.add_argument("--confusion", metavar="FILE.png", help="test-set confusion matrix")
    v.add_argument("--mistakes", metavar="FILE.png", help="misclassified test images")
    _add_data_options(v)
    v.set_defaults(func=cmd_show)

    o = sub.add_parser("export", help="write a model for PyTorch or ONNX Runtime")
    o.add_argument("model_file", metavar="MODEL", help="a model file or checkpoint")
    o.add_argument("--format", choices=("onnx", "torch"), required=True,
                   help="onnx: an ONNX model (input images (n, h, w, c)); torch: a "
                        "torch.export program (input (n, c, h, w)); both output probabilities")
    o.add_argument("--output", required=True, metavar="FILE", help="the file to write")
    o.set_defaults(func=cmd_export)

    w = sub.add_parser("serve", help="a local web page: draw a digit, watch every layer work")
    w.add_argument("model_file", nargs="?", metavar="MODEL",
                   help="the model to show (default: train the spec's cnn on the bundled "
                        "sample first, about 10 s)")
    w.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (127.0.0.1: this machine only)")
    w.add_argument("--port", type=_number(int, 1, high=65536), default=8000,
                   help="port (8000)")
    w.add_argument("--engine", choices=sorted(ENGINES), default=None,
                   help=f"engine for the forward passes (the model's, else {DEFAULT_ENGINE})")
    w.add_argument("--no-progress", action="store_true", help="no progress bar while training")
    w.add_argument("--data-dir", metavar="DIR",
                   help="where the Train panel also looks for full MNIST and Fashion-MNIST "
                        "(it always has the bundled sample; nothing is downloaded)")
    _add_threads_option(w)
    w.set_defaults(func=cmd_serve)
    return parser


# -- helpers ------------------------------------------------------------------

def _say(text: str) -> None:
    print(text, flush=True)


def _summary_line(cce: float, ce: float) -> str:
    return f"Test set: CCE: {cce:.4f}  CE: {ce:.4f}"


def _load_data(settings: Settings, show_progress: bool | None):
    data = load_dataset(settings.dataset, settings.data_dir, split=settings.split,
                        seed=settings.seed, progress=show_progress is not False, log=_say)
    if settings.limit is not None:
        data = dataclasses.replace(data, x_train=data.x_train[: settings.limit],
                                   y_train=data.y_train[: settings.limit])
    if settings.test_limit is not None:
        data = dataclasses.replace(data, x_test=data.x_test[: settings.test_limit],
                                   y_test=data.y_test[: settings.test_limit])
    return data


def naive_estimate(net: Net, image_shape: tuple[int, ...], images: int) -> str:
    """Time two naive training steps on a copy of `net` and say how long an epoch would take."""
    import copy

    probe = copy.deepcopy(net)
    X = np.random.default_rng(0).random((2, *image_shape), dtype=np.float32)
    y = np.array([0, 1])
    probe.train(X, y, 0.0)  # builds the weights
    start = time.perf_counter()
    probe.train(X, y, 0.0)
    per_image = (time.perf_counter() - start) / 2
    return (f"The naive engine takes about {per_image:.2f} s per training image here: an epoch "
            f"of these {images:,} images would take about {per_image * images / 60:,.0f} "
            "minutes. Use --limit N (and --test-limit N) to train on fewer, or leave out "
            "--engine naive.")


def _layers_text(value: str) -> str:
    """--layers: the text itself, or the text in the file it names."""
    path = Path(value)
    if "(" not in value and path.is_file():
        if path.stat().st_size > MAX_LENGTH:
            raise CLIError(f"--layers {value}: the file is larger than {MAX_LENGTH:,} bytes")
        return path.read_text(encoding="utf-8", errors="replace")
    if "(" not in value:
        raise CLIError(f"--layers {value!r}: no such file, nor layers such as "
                       "\"FlatLayer(), FCLayer_Softmax(10)\"")
    return value


def _settings_from_args(args) -> Settings:
    if args.model is not None and args.layers is not None:
        raise CLIError(f"give a model name ({args.model}) or --layers, not both")
    if args.model is None and args.layers is None:
        raise CLIError("name a model to train: `cnn-numpy train cnn`, `... train flat` or "
                       "`... train deep`, or give its layers with --layers")
    layers = None if args.layers is None else _layers_text(args.layers)
    if layers is not None:
        parse_layers(layers)  # a ValueError names what it cannot read, before any data
    model = CUSTOM if layers is not None else args.model
    defaults = MODEL_DEFAULTS["cnn" if layers is not None else args.model]
    pick = lambda name: defaults[name] if getattr(args, name) is None else getattr(args, name)  # noqa: E731
    return Settings(model=model, layers=layers, epochs=pick("epochs"),
                    batch_size=pick("batch_size"),
                    learning_rate=pick("learning_rate"), optimizer=pick("optimizer"),
                    seed=0 if args.seed is None else args.seed, engine=args.engine,
                    dataset=args.dataset, data_dir=args.data_dir, split=args.split,
                    limit=args.limit, test_limit=args.test_limit, schedule=pick("schedule"),
                    weight_decay=pick("weight_decay"), augment=pick("augment"),
                    validation=VALIDATION if args.validation is None else args.validation)


def _resume(args):
    net, settings, progress, fingerprint = load_checkpoint(args.resume)
    # Engines compute the same numbers, so the engine may change; a lower learning rate
    # fine-tunes (the history records each epoch's rate).  The rest would make the run a
    # different one.
    if args.engine is not None:
        settings.engine = net.engine = args.engine
    if args.learning_rate is not None:
        if args.learning_rate > settings.learning_rate:
            raise CLIError(f"--learning-rate {args.learning_rate} is higher than the "
                           f"checkpoint's {settings.learning_rate}; resuming may only lower it")
        settings.learning_rate = args.learning_rate
    if args.layers is not None:
        raise CLIError("--layers gives a new network; leave it out when resuming (the "
                       "checkpoint holds its own)")
    for name in ("model", "batch_size", "optimizer", "seed", "dataset", "data_dir", "split",
                 "limit", "test_limit", "schedule", "weight_decay", "augment", "validation"):
        given, saved = getattr(args, name), getattr(settings, name)
        if given is not None and given != saved:
            option = name if name == "model" else "--" + name.replace("_", "-")
            raise CLIError(f"{option} {given} differs from the checkpoint's {saved}; "
                           "leave it out when resuming")
    args.planned_epochs = settings.epochs  # what the schedule was planned over (see below)
    if args.epochs is not None:
        settings.epochs = args.epochs
    if settings.epochs < progress.epoch:
        raise CLIError(f"--epochs {settings.epochs} is below the {progress.epoch} epochs "
                       f"{args.resume} has already trained; ask for more to continue")
    if settings.epochs == progress.epoch and progress.batch:  # stopped within an epoch
        raise CLIError(f"{args.resume} stopped partway through epoch {progress.epoch + 1}; "
                       f"resume with --epochs {progress.epoch + 1} or more")
    return net, settings, progress, fingerprint


# -- commands -----------------------------------------------------------------

def cmd_train(args) -> int:
    show = False if args.no_progress else None
    if args.plot is not None:
        _require_matplotlib()
        check_writable(args.plot, "--plot")
    if args.history is not None:
        check_writable(args.history, "--history")
    if args.save is not None:
        check_writable(args.save, "--save")
    if args.resume:
        net, settings, progress, fingerprint = _resume(args)
        checkpoint = args.save or args.resume
        if args.save is None:  # the checkpoint goes back into the file it came from
            check_writable(args.resume, "--resume (or give --save PATH)")
        if progress.epoch == settings.epochs:
            _say(f"{args.resume} has already trained {progress.epoch} epoch"
                 f"{'s' * (progress.epoch != 1)}; nothing to do "
                 "(ask for more with --epochs N)")
            if progress.history and not settings.validation:  # the file's weights' figures
                _say(_summary_line(progress.history[-1]["test_cce"],
                                   progress.history[-1]["test_ce"]))
            return 0
    else:
        settings = _settings_from_args(args)
        net = build_model(settings.model, settings.engine, settings.seed, settings.optimizer,
                          settings.weight_decay, layers=settings.layers)
        net.output_layer  # noqa: B018  (a network that cannot compute a loss: say so first)
        progress, fingerprint, checkpoint = Progress(), None, args.save
    data = _load_data(settings, show)
    check_architecture(net, data.x_train.shape[1:] + (1,) * (data.x_train.ndim == 3))
    settings.dataset = data.name  # the automatic choice, made explicit for --resume
    test = data  # evaluated after every epoch without a validation set, else once, at the end
    if settings.validation and args.validation is None and not args.resume \
            and len(data.x_train) < MIN_VALIDATED:
        _say(f"{len(data.x_train)} training images are too few to hold out a validation set: "
             "the test set is reported every epoch")
        settings.validation = 0.0
    if settings.validation:
        try:
            x, y, x_val, y_val = hold_out(data.x_train, data.y_train, settings.validation,
                                          settings.seed)
        except ValueError as exc:
            raise CLIError(f"--validation {settings.validation}: {exc}") from None
        data = dataclasses.replace(data, x_train=x, y_train=y, x_test=x_val, y_test=y_val)
    held_out = "validation" if settings.validation else "test"
    if fingerprint is not None and fingerprint != data_fingerprint(data.x_train, data.y_train):
        raise CLIError(f"the training data differs from the one {args.resume} was trained on; "
                       "check --data-dir and the dataset files")
    if args.resume and settings.epochs != args.planned_epochs:
        _say_replanned(settings, progress, args.planned_epochs, len(data.x_train))
    convolves = any(isinstance(layer, (ConvLayer, PoolLayer)) for layer in net.layers)
    if settings.engine == "naive" and convolves:
        _say(naive_estimate(net, data.x_train.shape[1:], len(data.x_train)))
    engine = f"engine {settings.engine or DEFAULT_ENGINE}, " if convolves else ""
    threads = parallel.get_threads()
    extras = "".join([f", weight decay {settings.weight_decay:g}" * bool(settings.weight_decay),
                      f", shifts up to {settings.augment} px" * bool(settings.augment)])
    if settings.model == CUSTOM:
        _say(f"Layers: {net.describe()}")
    validation = f"{len(data.x_test):,} validation / " if settings.validation else ""
    _say(f"Training {settings.model} on {data.name} ({len(data.x_train):,} train / "
         f"{validation}{len(test.x_test):,} test images, {data.source}): "
         f"{engine}{settings.optimizer} "
         f"lr {settings.learning_rate} ({settings.schedule}), batch {settings.batch_size}"
         f"{extras}, epochs {progress.epoch + 1}..{settings.epochs}, "
         f"{threads} thread{'s' * (threads > 1)}")

    chance = float(np.log(net.output_layer.num_neurons)) if net.layers else 1.0
    warned = []

    def on_epoch(state: Progress, entry: dict) -> None:
        if entry["train_cce"] > 10 * chance and not warned:  # far worse than guessing
            warned.append(entry["epoch"])
            print(f"{PROG}: warning: the training loss exploded in epoch {entry['epoch']} "
                  f"(train CCE {entry['train_cce']:.4g}; guessing scores {chance:.2f}): lower "
                  f"the learning rate (now {settings.learning_rate:g})", file=sys.stderr)
        _say(f"Epoch {entry['epoch']}/{settings.epochs}  train CCE: {entry['train_cce']:.4f}  "
             f"CE: {entry['train_ce']:.4f}  |  {held_out} CCE: {entry['test_cce']:.4f}  "
             f"CE: {entry['test_ce']:.4f}  ({entry['images_per_s']:,.0f} img/s)")
        if args.plot is not None:
            plot_history(state.history, args.plot, held_out=held_out)
        if args.history is not None:
            write_history(args.history, dataclasses.asdict(settings), state.history)

    try:
        progress = train(net, data, settings, progress=progress, checkpoint=checkpoint,
                         interrupt_checkpoint=DEFAULT_CHECKPOINT, show_progress=show,
                         on_epoch=on_epoch)
    except KeyboardInterrupt:
        saved_to = checkpoint or DEFAULT_CHECKPOINT
        print(f"{PROG}: interrupted; the training state is saved in {saved_to}; continue with"
              f" `{PROG} train --resume {saved_to}`", file=sys.stderr)
        return 130
    if settings.validation:  # the test set, once
        _, cce, ce = net.evaluate(test.x_test, test.y_test)
        _say(_summary_line(cce, ce))
    elif progress.history:
        last = progress.history[-1]
        _say(_summary_line(last["test_cce"], last["test_ce"]))
    if checkpoint is not None:
        _say(f"Saved to {checkpoint} (evaluate with `{PROG} evaluate {checkpoint}`)")
    return 0


def cmd_compare(args) -> int:
    if args.plot is not None:
        _require_matplotlib()
        check_writable(args.plot, "--plot")
    runs = [read_run(path) for path in args.runs]
    _say(table(runs))
    if args.plot is not None:
        plot_runs(runs, args.plot)
        _say(f"Drew {args.plot}")
    return 0


def _say_replanned(settings: Settings, progress: Progress, planned: int, images: int) -> None:
    """A scheduled rate is planned over the run's epochs: resuming with another count
    changes the rates from here on, which is said, with the rate before and after."""
    if settings.schedule == "constant":
        return
    batches = -(-images // settings.batch_size)
    step = progress.epoch * batches + progress.batch
    before = learning_rate(settings.schedule, settings.learning_rate, step, planned * batches)
    now = learning_rate(settings.schedule, settings.learning_rate, step,
                        settings.epochs * batches)
    _say(f"The {settings.schedule} schedule was planned over {planned} epoch"
         f"{'s' * (planned != 1)}; with --epochs {settings.epochs} it is planned over "
         f"{settings.epochs} now, so the learning rate at epoch {progress.epoch + 1} is "
         f"{now:.3g}, not {before:.3g} (the same rates a {settings.epochs}-epoch run has from "
         "the start)")


def _model_and_data(args):
    """The model and the data to test it on: the options given, else what the model was
    trained on.  A --data-dir without --dataset means that folder's data set (full MNIST
    for a model trained on the bundled sample, which has no folder)."""
    net, meta, _ = read(args.model_file)
    saved = meta.get("settings", {}) if isinstance(meta.get("settings"), dict) else {}
    dataset, data_dir = args.dataset, args.data_dir
    if dataset is None:
        dataset = saved.get("dataset")
        if data_dir is not None and dataset == "mnist-sample":
            dataset = "mnist"
    if data_dir is None and dataset == saved.get("dataset"):
        data_dir = saved.get("data_dir")
    settings = Settings(model=saved.get("model", "?"), epochs=0, batch_size=1,
                        learning_rate=0.0, optimizer="sgd",
                        seed=args.seed if args.seed is not None else saved.get("seed", 0),
                        dataset=dataset, data_dir=data_dir,
                        split=args.split if args.split is not None else saved.get("split"),
                        test_limit=saved.get("test_limit") if dataset == saved.get("dataset")
                        else None)
    data = _load_data(settings, False if args.no_progress else None)
    if data.x_test.shape[1:3] != net.input_shape[:2]:
        raise CLIError(f"{args.model_file} expects images of shape {net.input_shape}, "
                       f"{data.name} has {data.x_test.shape[1:]}")
    split = f" (random split {settings.split})" if settings.split is not None else ""
    _say(f"Evaluating on the {data.name} test set{split}: {len(data.x_test):,} images, from "
         f"{data.source}")
    if saved.get("dataset") == "mnist-sample" and data.name == "mnist" \
            and settings.split is None:
        print(f"{PROG}: warning: {args.model_file} was trained on the bundled sample, which is "
              "MNIST's test set: these figures are on its own training images",
              file=sys.stderr)
    return net, data


def cmd_evaluate(args) -> int:
    net, data = _model_and_data(args)
    _, cce, ce = net.evaluate(data.x_test, data.y_test)
    _say(_summary_line(cce, ce))
    return 0


def cmd_predict(args) -> int:
    net = load(args.model_file)
    if args.show is not None:
        check_writable(args.show, "--show")
    readable, images, bad = [], [], 0
    for path in args.images:  # every file gets its line: the bad ones on stderr
        try:
            images.append(read_digit_image(path))
            readable.append(path)
        except DataError as exc:
            if "needs Pillow" in str(exc):
                raise
            print(f"{PROG}: error: {exc}", file=sys.stderr)
            bad += 1
    if not images:
        return 2
    images = np.stack(images)
    A = net.predict(images)
    for path, image, probs in zip(readable, images, A, strict=True):
        if not image.any():
            _say(f"{path}: no ink found (the picture is one flat colour); not classified")
            continue
        top = np.argsort(probs)[::-1][:3]
        others = ", ".join(f"{int(k)} ({probs[k]:.3f})" for k in top[1:])
        _say(f"{path}: {int(top[0])} (probability {probs[top[0]]:.3f}; next: {others})")
    if args.show is not None:
        save_digit_strip(images, args.show)
        _say(f"Saved the {len(images)} image(s) the network saw to {args.show}")
    return 2 if bad else 0


def _require_matplotlib() -> None:
    try:
        require_matplotlib()
    except ImportError as exc:
        raise CLIError(str(exc)) from None


def cmd_explain(args) -> int:
    if args.filter > args.input:
        raise CLIError(f"--filter {args.filter} is wider than --input {args.input}: it fits only "
                       "with zero padding (ConvLayer's padding= adds rows and columns around "
                       f"the input); explain the padded size, e.g. --input "
                       f"{args.input + 2 * -(-(args.filter - args.input) // 2)}")
    if args.input > EXPLAIN_MAX_INPUT:
        raise CLIError(f"--input {args.input} is too large to explain in text; "
                       f"use at most {EXPLAIN_MAX_INPUT}")
    if args.png:
        _require_matplotlib()
        check_writable(args.png, "--png")
    print(explain_stride_groups(args.filter, args.stride, args.input))
    if args.png:
        draw_stride_groups(args.filter, args.stride, args.input, args.png)
        _say(f"Drew {args.png}")
    return 0


def cmd_show(args) -> int:
    if not (args.filters or args.confusion or args.mistakes):  # the architecture, as text
        if args.layer is not None or args.channel is not None:
            raise CLIError("--layer and --channel choose what --filters draws; add --filters "
                           "FILE.png")
        net = load(args.model_file)
        _say(f"{args.model_file}: {net.describe()}")
        _say("(draw with --filters, --confusion and/or --mistakes FILE.png)")
        return 0
    if not args.filters and (args.layer is not None or args.channel is not None):
        raise CLIError("--layer and --channel choose what --filters draws; add --filters FILE.png")
    _require_matplotlib()
    for option in ("filters", "confusion", "mistakes"):
        if getattr(args, option):
            check_writable(getattr(args, option), f"--{option}")
    drawing_data = args.confusion or args.mistakes
    net, data = _model_and_data(args) if drawing_data else (load(args.model_file), None)
    if args.filters:
        convs = [i for i, layer in enumerate(net.layers) if isinstance(layer, ConvLayer)]
        if not convs:
            raise CLIError(f"{args.model_file} has no convolution layer, so no filters to draw")
        index = convs[0] if args.layer is None else args.layer
        if index not in convs:
            raise CLIError(f"--layer {index} is not a convolution layer of {args.model_file}; "
                           f"its conv layers are {', '.join(map(str, convs))}")
        W = net.layers[index].W
        if args.channel is not None and args.channel >= W.shape[2]:
            raise CLIError(f"--channel {args.channel}: layer {index} has {W.shape[2]} input "
                           f"channel(s), 0..{W.shape[2] - 1}")
        plot_filters(W, args.filters, channel=args.channel,
                     layer=f"layer {index} ({type(net.layers[index]).__name__})")
        _say(f"Drew {args.filters}")
    if drawing_data:
        predicted = net.predict(data.x_test).argmax(axis=1)
        if args.confusion:
            plot_confusion(data.y_test, predicted, args.confusion)
            _say(f"Drew {args.confusion}")
        if args.mistakes:
            plot_mistakes(data.x_test, data.y_test, predicted, args.mistakes)
            _say(f"Drew {args.mistakes}")
    return 0


def cmd_export(args) -> int:
    from .interop import export_torch, to_onnx

    check_writable(args.output, "--output")
    net = load(args.model_file)
    write = to_onnx if args.format == "onnx" else export_torch
    try:
        write(net, args.output)
    except ImportError as exc:
        raise CLIError(str(exc)) from None
    shape = tuple(net.input_shape)
    if len(shape) == 2:  # (h, w): one channel
        shape = (*shape, 1)
    if len(shape) == 3:
        h, w, c = shape
        layout = f"(n, {h}, {w}, {c})" if args.format == "onnx" else f"(n, {c}, {h}, {w})"
    else:
        layout = f"(n, {', '.join(map(str, shape))})"
    dtype = "float32" if args.format == "onnx" else net.dtype.name
    _say(f"Wrote {args.output}: input {layout} {dtype}, output probabilities "
         f"(n, {net.output_layer.num_neurons})")
    return 0


def _check_can_listen(host: str, port: int) -> None:
    """CLIError unless a server could listen on host:port now (before minutes of work)."""
    try:
        family, kind, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
            probe.bind(address)
    except OSError as exc:
        raise CLIError(f"cannot listen on {host} port {port}: {exc.strerror or exc}; choose "
                       "another --port (or --host)") from None


def _page_datasets(sample, data_dir):
    """The datasets the page can train on (the sample, and the others found on this
    machine, never downloaded) and a loader that reads each once."""
    found = ["mnist-sample"]
    for name in ("mnist", "fashion-mnist"):
        try:
            find_or_download(name, data_dir, download=False, progress=False)
            found.append(name)
        except DataError:
            pass
    loaded = {"mnist-sample": sample}

    def load(name: str):
        if name not in loaded:
            loaded[name] = load_dataset(name, data_dir, download=False, progress=False)
        return loaded[name]
    return found, load


def cmd_serve(args) -> int:
    try:
        from .interop.common import require
        from .web.server import create_app, serve

        for module in ("starlette", "uvicorn", "orjson"):
            require(module, "web")
    except ImportError as exc:
        raise CLIError(str(exc)) from None
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"{PROG}: warning: listening on {args.host}: other machines on the network can "
              "reach this page", file=sys.stderr)
    _check_can_listen(args.host, args.port)
    sample = load_dataset("mnist-sample", progress=False)
    if args.model_file is None:
        net = build_model("cnn", args.engine, seed=0, optimizer="adam")
        settings = Settings(model="cnn", epochs=1, batch_size=32, learning_rate=0.001,
                            optimizer="adam", seed=0, engine=args.engine,
                            dataset="mnist-sample", schedule="cosine")
        _say("No model given: training the spec's cnn on the bundled sample for one epoch "
             "(about 10 s)")
        train(net, sample, settings, show_progress=False if args.no_progress else None)
    else:
        net = load(args.model_file)
        if args.engine is not None:
            net.engine = args.engine
        if net.input_shape[:2] != (28, 28) or (len(net.input_shape) == 3
                                                and net.input_shape[2] != 1):
            raise CLIError(f"{args.model_file} takes samples of shape {net.input_shape}; the "
                           "page draws 28 x 28 gray digits")
    datasets, load_data = _page_datasets(sample, args.data_dir)
    app = create_app(net, sample.x_test, sample.y_test, datasets=datasets, load_data=load_data)
    host = f"[{args.host}]" if ":" in args.host else args.host
    _say(f"Serving on http://{host}:{args.port}/ (Ctrl-C stops)")
    serve(app, args.host, args.port)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit code."""
    try:
        args = make_parser().parse_args(argv)
        threads = getattr(args, "threads", None)
        if threads is not None:
            parallel.set_threads(threads)
        else:
            parallel.get_threads()  # a bad CNN_NUMPY_THREADS is an error before any work
        return args.func(args)
    except (CLIError, DataError, ModelFileError, DivergenceError, ValueError) as exc:
        message = str(exc).replace("\n", " ")
        print(f"{PROG}: error: {message}", file=sys.stderr)
        return 2
    except OSError as exc:  # a file that cannot be read or written
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"{PROG}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130

