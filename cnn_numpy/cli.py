"""The command line: `cnn-numpy train | evaluate | predict | compare | explain | show | export |
serve`.  It parses the arguments and calls the library; what it decides is only what to
print.

A user mistake (a bad option, a missing or damaged file, an output path that cannot be
written, no network) ends with one line on stderr and exit code 2.  Output paths are
checked before training starts.  Ctrl-C during training saves a checkpoint and exits 130.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

import numpy as np

from . import __version__
from .architecture import MAX_LENGTH
from .data import DATASETS, DataError, available_datasets, load_dataset
from .data.folder import DEFAULT_SIZE, DEFAULT_TEST_SHARE, read_input
from .data.images import save_digit_strip
from .diagnostics import naive_seconds_per_image
from .engines import DEFAULT_ENGINE, ENGINES, saved_engine
from .exercises import EngineReport
from .exercises.cli import add_commands as add_exercise_commands
from .exercises.cli import engine_option
from .extras import MissingExtraError
from .fast import threads as parallel
from .files import PIXEL_FORMATS, check_picture, check_writable
from .layers import ConvLayer, PoolLayer
from .models import (
    CUSTOM,
    MODEL_DEFAULTS,
    MODELS,
    OWN_IMAGES,
    build_model,
    check_architecture,
)
from .net import DivergenceError, Net
from .optimizers import OPTIMIZERS
from .runs import plot_runs, read_run, table
from .saving import ModelFileError, read_meta
from .schedules import SCHEDULES
from .training import (
    LIMITS,
    VALIDATION,
    Checkpoint,
    EpochLog,
    HistoryFile,
    LossWarning,
    PlotFile,
    Progress,
    ProgressBar,
    check_setting,
    evaluation_data,
    evaluation_warning,
    load_checkpoint,
    load_run_data,
    prepare_run,
    record_data,
    replanned_note,
    resume_settings,
    run_settings,
    train,
)
from .visual import (
    draw_stride_groups,
    explain_stride_groups,
    plot_confusion,
    plot_filters,
    plot_mistakes,
)

PROG = "cnn-numpy"
DEFAULT_CHECKPOINT = "cnn-numpy-checkpoint.npz"
EXPLAIN_MAX_INPUT = 64  # an N x N input is printed whole: keep it readable


class CLIError(Exception):
    """A mistake in how the command was called: reported in one line, exit 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str):  # argparse would print the usage block and exit
        if "(see `" in message:  # the message names where to look already
            raise CLIError(message)
        raise CLIError(f"{message} (see `{self.prog} --help`)")


def _setting(name: str):
    """An argparse type for the setting `name`: its range is training.LIMITS's."""
    limit = LIMITS[name]

    def parse(text: str):
        try:
            value = limit.kind(text) if limit.kind is float else int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid {limit.kind.__name__}") \
                from None
        try:
            return check_setting(name, value)
        except (ValueError, OverflowError):
            raise argparse.ArgumentTypeError(f"{text} is out of range: it must be "
                                             f"{limit.describe()}") from None
    return parse


def _whole(low: int, high: int):
    """An argparse type for a whole number in low..high."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a valid int") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{text} is out of range: it must be in "
                                             f"{low}..{high}")
        return value
    return parse


FILTER = _whole(1, EXPLAIN_MAX_INPUT)


def _default(name: str) -> str:
    """The --help text of a training setting's default, per model where they differ."""
    values = {model: MODEL_DEFAULTS[model][name] for model in MODELS}
    if len(set(values.values())) == 1:
        return f"default {next(iter(values.values()))}"
    return "default " + ", ".join(f"{v} for {m}" for m, v in values.items())


def _add_threads_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--threads", type=_whole(1, parallel.MAX_THREADS), default=None, metavar="N",
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
    p.add_argument("--split", type=_setting("split"), default=None,
                   help="pool train+test and split randomly with this training fraction "
                        "(0.95 is the spec's split); default: the official split")
    p.add_argument("--seed", type=_setting("seed"), default=None,
                   help="seed for weights, shuffling, dropout and shifts (default 0)"
                   if training else "seed of the --split shuffle (default: the model's)")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")


def _add_train(sub) -> None:
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
    t.add_argument("--engine", type=engine_option, default=None, metavar="NAME|DIR",
                   help=f"how conv and pool layers compute: {', '.join(sorted(ENGINES))} "
                        f"(default {DEFAULT_ENGINE}; naive is the spec's slow four loops), or "
                        "the folder of your exercise files (cnn-numpy exercises)")
    for name, metavar, text in (
            ("epochs", "N", f"passes over the training set ({_default('epochs')}); with "
                            "--resume: the total to reach"),
            ("batch_size", "N", f"images per training step ({_default('batch_size')})"),
            ("learning_rate", "LR", f"step size ({_default('learning_rate')}); with --resume "
                                    "only a lower one, for fine-tuning"),
            ("weight_decay", "L2", "L2 penalty on the conv and dense weights "
                                   f"({_default('weight_decay')})"),
            ("augment", "PIXELS", "shift each training image by up to PIXELS at random, "
                                  f"every batch; 0: none ({_default('augment')})"),
            ("validation", "SHARE", "hold out this share of the training images, drawn with "
                                    "the seed, and report it after every epoch; the test set "
                                    f"is evaluated once, at the end (default {VALIDATION}; 0: "
                                    "none, and the test set is reported every epoch)"),
            ("limit", "N", "train on the first N training images only (default: all)"),
            ("test_limit", "N", "test on the first N test images only (default: all)")):
        t.add_argument(f"--{name.replace('_', '-')}", type=_setting(name), default=None,
                       metavar=metavar, help=f"{text}; {LIMITS[name].describe()}")
    t.add_argument("--optimizer", choices=list(OPTIMIZERS), default=None,
                   help=f"update rule ({_default('optimizer')})")
    t.add_argument("--schedule", choices=SCHEDULES, default=None,
                   help="learning rate over the run: constant; step (/10 at 1/2 and 3/4 of "
                        f"the run); cosine (down to 0) ({_default('schedule')})")
    for option, metavar, text in (
            ("--save", "PATH", "write a checkpoint (model + training state) after every epoch"),
            ("--resume", "PATH", "continue from a checkpoint until --epochs epochs in total"),
            ("--plot", "FILE.png", "draw CCE and CE per epoch, redrawn after every epoch"),
            ("--history", "FILE", "write the settings and the figures of every epoch so far, "
                                  "after every epoch: JSON for FILE.json, else CSV (see "
                                  "`compare`)")):
        t.add_argument(option, default=None, metavar=metavar, help=text)
    _add_data_options(t, training=True)
    _add_images_options(t)
    _add_threads_option(t)
    t.set_defaults(func=cmd_train)


def _add_images_options(t: argparse.ArgumentParser) -> None:
    t.add_argument("--images", default=None, metavar="DIR|FILE.npz",
                   help="train on your own images instead of --dataset: a folder with one "
                        "subfolder of PNG, JPEG, BMP or GIF files per class (its name is the "
                        "class name; train/ and test/ folders, if there, are the split), or an "
                        ".npz of x and y (and class_names)")
    t.add_argument("--image-size", type=_whole(4, 1024), nargs=2, default=None,
                   metavar=("H", "W"), help="with --images: resize every image to H x W "
                                            f"(default {DEFAULT_SIZE[0]} {DEFAULT_SIZE[1]})")
    t.add_argument("--channels", type=int, choices=(1, 3), default=None,
                   help="with --images: 1 (grey) or 3 (colour); default: colour only when "
                        "some image has colour")
    t.add_argument("--test-share", type=_setting("test_share"), default=None, metavar="SHARE",
                   help="with --images and no test/ folder: hold out this share of each "
                        f"class for testing, drawn with the seed (default {DEFAULT_TEST_SHARE})")


def _add_model_commands(sub) -> None:
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

    v = sub.add_parser("show", help="draw a saved model's filters, confusion matrix, mistakes")
    v.add_argument("model_file", metavar="MODEL", help="a model file or checkpoint")
    v.add_argument("--filters", metavar="FILE.png",
                   help="a conv layer's filters as a grid, on one colour scale")
    v.add_argument("--layer", type=_whole(0, 10**6), default=None, metavar="I",
                   help="with --filters: which layer (its index in the summary; default: the "
                        "first conv layer)")
    v.add_argument("--channel", type=_whole(0, 10**6), default=None, metavar="C",
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


def _add_other_commands(sub) -> None:
    c = sub.add_parser("compare", help="training runs side by side: settings, last figures "
                                       "and curves")
    c.add_argument("runs", nargs="+", metavar="RUN",
                   help="checkpoints (train --save) or history files (train --history)")
    c.add_argument("--plot", metavar="FILE.png", default=None,
                   help="also draw every run's train, validation and test CCE and CE per "
                        "epoch, overlaid")
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

    w = sub.add_parser("serve", help="a local web page: draw a digit, watch every layer work")
    w.add_argument("model_file", nargs="?", metavar="MODEL",
                   help="the model to show (default: train the spec's cnn on the bundled "
                        "sample first, about 10 s)")
    w.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (127.0.0.1: this machine only)")
    w.add_argument("--port", type=_whole(1, 65535), default=8000, help="port (8000)")
    w.add_argument("--engine", type=engine_option, default=None, metavar="NAME|DIR",
                   help=f"engine for the forward passes (the model's, else {DEFAULT_ENGINE}), "
                        "or the folder of your exercise files")
    w.add_argument("--no-progress", action="store_true", help="no progress bar while training")
    w.add_argument("--data-dir", metavar="DIR",
                   help="where the Train panel also looks for full MNIST and Fashion-MNIST "
                        "(it always has the bundled sample; nothing is downloaded)")
    _add_threads_option(w)
    w.set_defaults(func=cmd_serve)


def make_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="A convolutional neural network in NumPy.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    _add_train(sub)
    _add_model_commands(sub)
    _add_other_commands(sub)
    add_exercise_commands(sub)
    return parser


# -- helpers ------------------------------------------------------------------

def _say(text: str) -> None:
    print(text, flush=True)


def _warn(text: str) -> None:
    print(f"{PROG}: warning: {text}", file=sys.stderr)


def _summary_line(cce: float, ce: float) -> str:
    return f"Test set: CCE: {cce:.4f}  CE: {ce:.4f}"


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


#: The training options that are settings of a run (Settings names).
SETTING_OPTIONS = ("engine", "epochs", "batch_size", "learning_rate", "optimizer", "seed",
                   "dataset", "data_dir", "split", "limit", "test_limit", "schedule",
                   "weight_decay", "augment", "validation", "images", "image_size", "channels",
                   "test_share")


def _option(name: str) -> str:
    return name if name == "model" else "--" + name.replace("_", "-")


def _asked(args) -> dict:
    """The settings the command line gives (None: not given)."""
    if args.images is not None:
        given = [option for option in ("dataset", "data_dir", "split")
                 if getattr(args, option) is not None]
        if given:
            raise CLIError(f"--images names the data; leave out --{given[0].replace('_', '-')}")
    elif args.image_size or args.channels or args.test_share is not None:
        raise CLIError("--image-size, --channels and --test-share go with --images DIR")
    asked = {name: getattr(args, name) for name in SETTING_OPTIONS}
    asked["layers"] = None if args.layers is None else _layers_text(args.layers)
    asked["model"] = args.model
    return asked


def _check_outputs(args) -> None:
    if args.plot is not None:
        check_picture(args.plot, "--plot")
    for option in ("history", "save"):
        if getattr(args, option) is not None:
            check_writable(getattr(args, option), f"--{option}")


# -- train --------------------------------------------------------------------

def _new_run(args, asked: dict):
    """(net (None: built once the data is known), settings, progress, fingerprint, save
    path) of a new run."""
    model, layers = asked.pop("model"), asked.pop("layers")
    if model is not None and layers is not None:
        raise CLIError(f"give a model name ({model}) or --layers, not both")
    if model is None and layers is None:
        raise CLIError("name a model to train: `cnn-numpy train cnn`, `... train flat` or "
                       "`... train deep`, or give its layers with --layers")
    settings = run_settings(model, layers, **asked)
    _build(settings).output_layer  # noqa: B018  (a network without a loss: say so first)
    return None, settings, None, None, args.save


def _build(settings, classes: int | None = None) -> Net:
    return build_model(settings.model, settings.engine, settings.seed, settings.optimizer,
                       settings.weight_decay, layers=settings.layers, classes=classes)


def _resumed_run(args, asked: dict):
    """(net, settings, progress, fingerprint, save path) of a resumed run, or None when
    the checkpoint has nothing left to do (which is said)."""
    net, saved, progress, fingerprint = load_checkpoint(args.resume)
    settings = resume_settings(saved, progress, asked, spell=_option, name=args.resume)
    if asked["engine"] is None:  # a learner's engine ran in its own process only
        settings.engine = saved_engine(settings.engine)
    if asked["engine"] is not None:
        net.engine = asked["engine"]
    if args.save is None:  # the checkpoint goes back into the file it came from
        check_writable(args.resume, "--resume (or give --save PATH)")
    if progress.epoch == settings.epochs:
        _say(f"{args.resume} has already trained {progress.epoch} epoch"
             f"{'s' * (progress.epoch != 1)}; nothing to do (ask for more with --epochs N)")
        last = progress.history[-1] if progress.history else None
        if last is not None and not np.isnan(last["test_cce"]):  # the file's weights'
            _say(_summary_line(last["test_cce"], last["test_ce"]))
        return None
    args.planned_epochs = saved.epochs
    return net, settings, progress, fingerprint, args.save or args.resume


def _duration(seconds: float) -> str:
    """A time in words, rounded: '1 second', '40 seconds', '1 minute', '12 minutes',
    '3.5 hours'."""
    if seconds >= 90 * 60:
        return f"{seconds / 3600:,.1f} hours"
    if seconds >= 90:
        return f"{seconds / 60:.0f} minutes"
    if seconds >= 60:
        return "1 minute"
    whole = max(1, round(seconds))
    return f"{whole} second{'' if whole == 1 else 's'}"


def _say_start(run, progress) -> None:
    settings, net = run.settings, run.net
    convolves = any(isinstance(layer, (ConvLayer, PoolLayer)) for layer in net.layers)
    if settings.engine == "naive" and convolves:
        per_image = naive_seconds_per_image(net, run.x_train.shape[1:])
        _say(f"The naive engine takes about {per_image:.2f} s per training image here: an "
             f"epoch of these {len(run.x_train):,} images would take about "
             f"{_duration(per_image * len(run.x_train))}. Use --limit N (and "
             "--test-limit N) to train on fewer, or leave out --engine naive.")
    for note in run.notes:
        _say(note)
    if settings.model == CUSTOM:
        _say(f"Layers: {net.describe()}")
    threads = parallel.get_threads()
    extras = "".join([f", weight decay {settings.weight_decay:g}" * bool(settings.weight_decay),
                      f", shifts up to {settings.augment} px" * bool(settings.augment)])
    engine = f"engine {settings.engine}, " if convolves else ""
    validation = f"{len(run.x_val):,} validation / " if len(run.x_val) else ""
    _say(f"Training {settings.model} on {settings.dataset} ({len(run.x_train):,} train / "
         f"{validation}{len(run.x_test):,} test images, {run.source}): {engine}"
         f"{settings.optimizer} lr {settings.learning_rate} ({settings.schedule}), batch "
         f"{settings.batch_size}{extras}, epochs {progress.epoch + 1}..{settings.epochs}, "
         f"{threads} thread{'s' * (threads > 1)}")


def _callbacks(args, save_to) -> list:
    show = False if args.no_progress else None
    callbacks = [EngineReport(_say), ProgressBar(show), EpochLog(_say), LossWarning(_warn)]
    if args.plot is not None:
        callbacks.append(PlotFile(args.plot))
    if args.history is not None:
        callbacks.append(HistoryFile(args.history))
    return [*callbacks, Checkpoint(save_to, interrupt_path=DEFAULT_CHECKPOINT)]


def cmd_train(args: argparse.Namespace) -> int:
    _check_outputs(args)
    asked = _asked(args)
    started = _resumed_run(args, asked) if args.resume else _new_run(args, asked)
    if started is None:
        return 0
    net, settings, progress, fingerprint, save_to = started
    data = load_run_data(settings, progress=not args.no_progress, log=_say)
    net = net or _build(settings, data.num_classes)
    check_architecture(net, data.x_train.shape[1:] + (1,) * (data.x_train.ndim == 3))
    record_data(settings, data)
    run = prepare_run(net, settings, data.x_train, data.y_train, data.x_test, data.y_test,
                      source=data.source, class_names=data.class_names,
                      images_as="resized" if settings.images else "digits",
                      min_steps=OWN_IMAGES["min_steps"] if settings.images and not args.resume
                      and args.epochs is None else None)
    if fingerprint is not None and fingerprint != run.fingerprint:
        raise CLIError(f"the training data differs from the one {args.resume} was trained on; "
                       "check --data-dir and the dataset files")
    if args.resume:
        note = replanned_note(run.settings, progress, args.planned_epochs, run.batches)
        if note:
            _say(note)
    _say_start(run, progress or Progress())
    callbacks = _callbacks(args, save_to)
    try:
        progress = train(run, callbacks, progress)
    except KeyboardInterrupt:
        saved_to = callbacks[-1].saved_to
        print(f"{PROG}: interrupted; the training state is saved in {saved_to}; continue with"
              f" `{PROG} train --resume {saved_to}`", file=sys.stderr)
        return 130
    last = progress.history[-1] if progress.history else None
    if last is not None and not np.isnan(last["test_cce"]):
        _say(_summary_line(last["test_cce"], last["test_ce"]))
    if save_to is not None:
        _say(f"Saved to {save_to} (evaluate with `{PROG} evaluate {save_to}`)")
    return 0


# -- the other commands ---------------------------------------------------------

def cmd_compare(args: argparse.Namespace) -> int:
    if args.plot is not None:
        check_picture(args.plot, "--plot")
    runs = [read_run(path) for path in args.runs]
    _say(table(runs))
    if args.plot is not None:
        plot_runs(runs, args.plot)
        _say(f"Drew {args.plot}")
    return 0


def _model_and_data(args):
    """The model and the data to test it on: the options given, else what it was trained
    on (training.evaluation_data)."""
    meta = read_meta(args.model_file)
    net = Net.load(args.model_file)
    saved = meta.get("settings") if isinstance(meta.get("settings"), dict) else {}
    where = evaluation_data(saved, args.dataset, args.data_dir, args.split, args.seed)
    data = load_run_data(where, progress=not args.no_progress, log=_say)
    if where["test_limit"] is not None:
        data = dataclasses.replace(data, x_test=data.x_test[: where["test_limit"]],
                                   y_test=data.y_test[: where["test_limit"]])
    if data.x_test.shape[1:3] != net.input_shape[:2]:
        raise CLIError(f"{args.model_file} expects images of shape {net.input_shape}, "
                       f"{data.name} has {data.x_test.shape[1:]}")
    split = f" (random split {where['split']})" if where["split"] is not None else ""
    _say(f"Evaluating on the {data.name} test set{split}: {len(data.x_test):,} images, from "
         f"{data.source}")
    warning = evaluation_warning(saved, data.name, where["split"])
    if warning:
        _warn(f"{args.model_file} {warning}")
    return net, data


def cmd_evaluate(args: argparse.Namespace) -> int:
    net, data = _model_and_data(args)
    _, cce, ce = net.evaluate(data.x_test, data.y_test)
    _say(_summary_line(cce, ce))
    return 0


def cmd_predict(args: argparse.Namespace) -> int:
    net = Net.load(args.model_file)
    if args.show is not None:
        check_picture(args.show, "--show", PIXEL_FORMATS)
    readable, images, bad = [], [], 0
    for path in args.images:  # every file gets its line: the bad ones on stderr
        try:
            images.append(read_input(path, net.input_shape, net.images_as))
            readable.append(path)
        except DataError as exc:
            if "needs Pillow" in str(exc):
                raise
            print(f"{PROG}: error: {exc}", file=sys.stderr)
            bad += 1
    if not images:
        return 2
    images = np.stack(images)
    for path, image, probs in zip(readable, images, net.predict(images), strict=True):
        if not image.any():
            _say(f"{path}: no ink found (the picture is one flat colour); not classified")
            continue
        top = np.argsort(probs)[::-1][:3]
        others = ", ".join(f"{net.class_name(k)} ({probs[k]:.3f})" for k in top[1:])
        _say(f"{path}: {net.class_name(top[0])} (probability {probs[top[0]]:.3f}; next: "
             f"{others})")
    if args.show is not None:
        save_digit_strip(images, args.show)
        _say(f"Saved the {len(images)} image(s) the network saw to {args.show}")
    return 2 if bad else 0


def cmd_explain(args: argparse.Namespace) -> int:
    if args.filter > args.input:
        raise CLIError(f"--filter {args.filter} is wider than --input {args.input}: it fits only "
                       "with zero padding (ConvLayer's padding= adds rows and columns around "
                       f"the input); explain the padded size, e.g. --input "
                       f"{args.input + 2 * -(-(args.filter - args.input) // 2)}")
    if args.png:
        check_picture(args.png, "--png")
    print(explain_stride_groups(args.filter, args.stride, args.input))
    if args.png:
        draw_stride_groups(args.filter, args.stride, args.input, args.png)
        _say(f"Drew {args.png}")
    return 0


def _filters_layer(net: Net, args) -> int:
    """The conv layer --filters draws (--layer, else the first), checked with --channel."""
    convs = [i for i, layer in enumerate(net.layers) if isinstance(layer, ConvLayer)]
    if not convs:
        raise CLIError(f"{args.model_file} has no convolution layer, so no filters to draw")
    index = convs[0] if args.layer is None else args.layer
    if index not in convs:
        raise CLIError(f"--layer {index} is not a convolution layer of {args.model_file}; "
                       f"its conv layers are {', '.join(map(str, convs))}")
    channels = net.layers[index].W.shape[2]
    if args.channel is not None and args.channel >= channels:
        raise CLIError(f"--channel {args.channel}: layer {index} has {channels} input "
                       f"channel(s), 0..{channels - 1}")
    return index


def cmd_show(args: argparse.Namespace) -> int:
    if not args.filters and (args.layer is not None or args.channel is not None):
        raise CLIError("--layer and --channel choose what --filters draws; add --filters "
                       "FILE.png")
    if not (args.filters or args.confusion or args.mistakes):  # the architecture, as text
        _say(f"{args.model_file}: {Net.load(args.model_file).describe()}")
        _say("(draw with --filters, --confusion and/or --mistakes FILE.png)")
        return 0
    for option in ("filters", "confusion", "mistakes"):
        if getattr(args, option):
            check_picture(getattr(args, option), f"--{option}")
    drawing_data = args.confusion or args.mistakes
    net, data = _model_and_data(args) if drawing_data else (Net.load(args.model_file), None)
    if args.filters:
        index = _filters_layer(net, args)
        plot_filters(net.layers[index].W, args.filters, channel=args.channel,
                     layer=f"layer {index} ({type(net.layers[index]).__name__})")
        _say(f"Drew {args.filters}")
    if drawing_data:
        predicted = net.predict(data.x_test).argmax(axis=1)
        if args.confusion:
            plot_confusion(data.y_test, predicted, args.confusion, class_names=net.class_names)
            _say(f"Drew {args.confusion}")
        if args.mistakes:
            plot_mistakes(data.x_test, data.y_test, predicted, args.mistakes,
                          class_names=net.class_names)
            _say(f"Drew {args.mistakes}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from .interop import export_torch, to_onnx

    check_writable(args.output, "--output")
    net = Net.load(args.model_file)
    write = to_onnx if args.format == "onnx" else export_torch
    write(net, args.output)
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


def _served_net(args, sample) -> Net:
    """The model to serve: the file given, else the spec's cnn trained on the sample for
    one epoch (with the command line's cnn settings)."""
    if args.model_file is not None:
        net = Net.load(args.model_file)
        if args.engine is not None:
            net.engine = args.engine
        if net.input_shape[:2] != (28, 28) or (len(net.input_shape) == 3
                                                and net.input_shape[2] != 1):
            raise CLIError(f"{args.model_file} takes samples of shape {net.input_shape}; the "
                           "page draws 28 x 28 gray digits")
        return net
    settings = run_settings("cnn", epochs=1, dataset="mnist-sample", validation=0.0)
    net = build_model("cnn", seed=settings.seed, optimizer=settings.optimizer)
    _say("No model given: training the spec's cnn on the bundled sample for one epoch "
         "(about 10 s)")
    run = prepare_run(net, settings, sample.x_train, sample.y_train)
    train(run, [ProgressBar(False if args.no_progress else None)])
    net.engine = args.engine  # for the forward passes (the epoch trains on the default)
    return net


def cmd_serve(args: argparse.Namespace) -> int:
    from .web.server import check_can_listen, create_app, require_web, serve

    require_web()
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        _warn(f"listening on {args.host}: other machines on the network can reach this page")
    check_can_listen(args.host, args.port)
    sample = load_dataset("mnist-sample", progress=False)
    net = _served_net(args, sample)
    app = create_app(net, sample.x_test, sample.y_test,
                     datasets=available_datasets(args.data_dir), data_dir=args.data_dir)
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
    except MissingExtraError as exc:  # an optional extra that is not installed
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # the reader of the output stopped (`| head`): nothing to say
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 1
    except OSError as exc:  # a file that cannot be read or written
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"{PROG}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
