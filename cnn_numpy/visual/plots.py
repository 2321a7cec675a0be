"""Pictures of training and of a trained model, drawn with matplotlib's object API.

Every function writes one picture and returns nothing, in the format its file's suffix
names (.png, .jpg or .jpeg, .pdf, .svg; any other suffix is a ValueError before
anything is drawn: cnn_numpy.files.FIGURE_FORMATS).  matplotlib is imported
only when a picture is drawn, so the rest of the package works without it;
install it with ``pip install "cnn-numpy[plots]"``.  No pyplot state is
touched: each picture is its own ``matplotlib.figure.Figure``, and files are
written atomically (a temporary file in the same folder, then ``os.replace``)
so a viewer that reloads the file never sees half a picture.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from ..extras import MissingExtraError
from ..files import PathLike, atomic_write, picture_format

if TYPE_CHECKING:
    from matplotlib.colors import LinearSegmentedColormap

INSTALL_HINT = 'plotting needs matplotlib: pip install "cnn-numpy[plots]"'


def require_matplotlib() -> Any:
    """The ``matplotlib.figure.Figure`` class; ImportError with an install hint if missing."""
    try:
        from matplotlib.figure import Figure
    except ImportError as exc:
        raise MissingExtraError(INSTALL_HINT) from exc
    return Figure


def new_figure(width: float, height: float) -> Any:
    """A fresh ``matplotlib.figure.Figure`` of width x height inches (no pyplot involved).

    Raises ImportError with an installation hint when matplotlib is missing.
    """
    return require_matplotlib()(figsize=(width, height), dpi=100, layout="constrained")


def save_figure(fig: Any, path: PathLike) -> None:
    """Write fig to path atomically (see cnn_numpy.files.atomic_write), in the format its
    suffix names (PNG for .png, JPEG for .jpg, ...); ValueError for a suffix not in
    cnn_numpy.files.FIGURE_FORMATS."""
    form = picture_format(path)
    atomic_write(path, lambda f: fig.savefig(f, format=form, facecolor="white"))


def _grid_shape(count: int, max_cols: int = 8) -> tuple[int, int]:
    """(rows, cols) for count small panels, close to square and at most max_cols wide."""
    cols = min(max_cols, max(1, math.ceil(math.sqrt(count))))
    return math.ceil(count / cols), cols


def _labels(y: Any, name: str) -> np.ndarray:
    """Class indices (n,) from integer labels (n,) or one-hot / score rows (n, k)."""
    y = np.asarray(y)
    if y.ndim == 2:
        y = y.argmax(axis=1)
    if y.ndim != 1:
        raise ValueError(f"{name} must be labels (n,) or one-hot rows (n, k), got shape {y.shape}")
    if y.size and not np.all(np.equal(np.mod(y, 1), 0)):
        raise ValueError(f"{name} must hold whole-number class labels")
    return y.astype(np.intp)


# --------------------------------------------------------------------- history


def plot_history(history: list[dict], path: PathLike) -> None:
    """Two panels from per-epoch records: categorical cross-entropy and classification error.

    history: one dict per epoch (a history row: training.HISTORY_KEYS) with keys
    ``epoch``, ``train_cce``, ``train_ce`` and any of ``val_cce``, ``val_ce``,
    ``test_cce``, ``test_ce`` (floats; the ``*_ce`` values are error fractions in
    [0, 1] and are drawn as percentages).  A figure that is missing, None or NaN is
    left out of the picture (a test figure measured once shows as one point).  The file is
    replaced atomically, so it can be redrawn after every epoch while someone
    watches it.
    """
    picture_format(path)  # an unknown suffix is refused before anything is drawn
    if not history:
        raise ValueError("history is empty: it needs at least one epoch")
    epochs = [int(record["epoch"]) for record in history]
    fig = new_figure(10, 4)
    from matplotlib.ticker import MaxNLocator

    ax_cce, ax_ce = fig.subplots(1, 2)
    panels = (
        (ax_cce, "cce", 1.0, "categorical cross-entropy", "CCE (loss)"),
        (ax_ce, "ce", 100.0, "classification error", "CE (% misclassified)"),
    )
    styles = {"train": dict(color="tab:blue", marker="o"),
              "val": dict(color="tab:orange", marker="s"),
              "test": dict(color="tab:green", marker="D")}
    names = {"train": "train", "val": "validation", "test": "test"}
    highest = {"cce": 0.0, "ce": 0.0}  # each panel's y axis runs from 0 to a bit above this
    for ax, key, scale, title, ylabel in panels:
        for split, style in styles.items():
            values = [record.get(f"{split}_{key}") for record in history]
            points = [(e, v * scale) for e, v in zip(epochs, values, strict=True)
                      if v is not None and np.isfinite(v)]
            if points:
                xs, ys = zip(*points, strict=True)
                highest[key] = max(highest[key], *ys)
                ax.plot(xs, ys, label=names[split], linewidth=1.8,
                        markersize=5, **style)
        ax.set_title(f"{title} per epoch")
        ax.set_xlabel("epoch")
        ax.set_ylabel(ylabel)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
        ax.set_xlim(min(epochs) - 0.5, max(epochs) + 0.5)
        ax.grid(alpha=0.3)
        if highest[key] > 0:
            ax.set_ylim(0, 1.12 * highest[key])
        if ax.has_data():
            ax.legend(loc="upper right")
    save_figure(fig, path)


# --------------------------------------------------------------------- filters


def plot_filters(W: np.ndarray, path: PathLike, channel: int | None = None,
                 layer: str = "first-layer") -> None:
    """A grid of a conv layer's filters, on one diverging colour scale with a colour bar.

    W: (fw, fw, c_in, n_f).  channel picks the input channel each filter
    image shows (default: 0 with one input channel, else the mean over
    channels).  Every filter shares one scale, symmetric around 0 (blue
    negative, red positive, white 0), so weights can be compared across
    filters.  layer names the layer in the title.
    """
    picture_format(path)
    W = np.asarray(W, dtype=float)
    if W.ndim != 4 or W.shape[0] != W.shape[1] or W.shape[3] < 1:
        raise ValueError(f"W must have shape (fw, fw, c_in, n_f), got {W.shape}")
    fw, _, c_in, n_f = W.shape
    if channel is not None and not 0 <= channel < c_in:
        raise ValueError(f"channel must be in 0..{c_in - 1} for filters with {c_in} input "
                         f"channel(s), got {channel}")
    if channel is None and c_in > 1:
        images, what = W.mean(axis=2), f"mean of {c_in} channels"
    else:
        images, what = W[:, :, channel or 0, :], f"channel {channel or 0}"
    scale = float(np.abs(images).max()) or 1.0
    rows, cols = _grid_shape(n_f)
    fig = new_figure(max(1.3 * cols + 1.0, 4.5), 1.3 * rows + 0.7)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    shown = None
    for index, ax in enumerate(axes):
        ax.set_axis_off()
        if index < n_f:
            shown = ax.imshow(images[:, :, index], cmap=sign_colormap(), vmin=-scale, vmax=scale,
                              interpolation="nearest")
            ax.set_title(str(index), fontsize=9)
    fig.colorbar(shown, ax=axes.tolist(), shrink=0.8, label="weight: blue < 0 < orange")
    fig.suptitle(f"{n_f} {layer} filters, {fw} x {fw} ({what})")
    save_figure(fig, path)


#: The sign colours of every picture, here and in the page: blue negative, orange positive.
NEGATIVE, POSITIVE = "#3fb0ff", "#f0883e"


def sign_colormap() -> LinearSegmentedColormap:
    """Blue (negative) through white (zero) to orange (positive): the page's colours."""
    from matplotlib.colors import LinearSegmentedColormap

    return LinearSegmentedColormap.from_list("cnn_numpy_sign", [NEGATIVE, "#ffffff", POSITIVE])


# ------------------------------------------------------------------- confusion


def plot_confusion(y_true: Any, y_pred: Any, path: PathLike,
                   class_names: Sequence[str] | None = None) -> None:
    """A k x k confusion matrix with the count in every cell.

    y_true, y_pred: class labels (n,) or one-hot / score rows (n, k).  Rows
    are the true class, columns the predicted one; k is len(class_names) when
    given, else one more than the largest label seen.  The title gives the
    overall accuracy.
    """
    picture_format(path)
    t, p = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred differ in length: {t.shape[0]} vs {p.shape[0]}")
    if t.size == 0:
        raise ValueError("no labels to compare")
    if min(t.min(), p.min()) < 0:
        raise ValueError("class labels must be >= 0")
    k = len(class_names) if class_names is not None else int(max(t.max(), p.max())) + 1
    if max(t.max(), p.max()) >= k:
        raise ValueError(f"a label is >= len(class_names) = {k}")
    names = list(class_names) if class_names is not None else [str(i) for i in range(k)]
    matrix = np.zeros((k, k), dtype=np.int64)
    np.add.at(matrix, (t, p), 1)
    accuracy = float(np.trace(matrix)) / t.size

    cell = 0.55 if k <= 15 else 0.38  # inches per cell
    side = max(4.5, cell * k + 2.0)
    fig = new_figure(side + 1.0, side)
    ax = fig.subplots()
    image = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=max(int(matrix.max()), 1))
    fig.colorbar(image, ax=ax, shrink=0.8, label="count")
    cmap, norm = image.get_cmap(), image.norm
    fontsize = 9 if k <= 15 else 7
    for i in range(k):
        for j in range(k):
            red, green, blue, _ = cmap(norm(matrix[i, j]))
            brightness = 0.299 * red + 0.587 * green + 0.114 * blue
            ax.text(j, i, str(matrix[i, j]), ha="center", va="center", fontsize=fontsize,
                    color="white" if brightness < 0.5 else "black")
    ax.set_xticks(range(k), names)
    ax.set_yticks(range(k), names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"confusion matrix: accuracy {100 * accuracy:.2f}% "
                 f"({int(np.trace(matrix))} of {t.size})")
    save_figure(fig, path)


# -------------------------------------------------------------------- mistakes


def plot_mistakes(images: np.ndarray, y_true: Any, y_pred: Any, path: PathLike,
                  max_images: int = 36, class_names: Sequence[str] | None = None) -> None:
    """A grid of misclassified images, each captioned "true 3 / pred 5" (or with the
    class names, when given).

    images: (n, h, w), (n, h, w, 1) or colour (n, h, w, 3) floats in [0, 1].
    y_true, y_pred: labels (n,) or one-hot / score rows (n, k).  At most
    max_images mistakes are shown, the first ones in order; with none at all,
    the picture says so.
    """
    picture_format(path)
    images = np.asarray(images, dtype=float)
    if images.ndim == 4 and images.shape[3] == 1:
        images = images[..., 0]
    if images.ndim != 3 and not (images.ndim == 4 and images.shape[3] == 3):
        raise ValueError(f"images must be (n, h, w), (n, h, w, 1) or (n, h, w, 3), got "
                         f"{images.shape}")
    t, p = _labels(y_true, "y_true"), _labels(y_pred, "y_pred")
    if not t.shape[0] == p.shape[0] == images.shape[0]:
        raise ValueError(f"images, y_true and y_pred differ in length: "
                         f"{images.shape[0]}, {t.shape[0]}, {p.shape[0]}")
    if isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 1:
        raise ValueError(f"max_images must be a positive int, got {max_images!r}")
    wrong = np.flatnonzero(t != p)
    if wrong.size == 0:
        fig = new_figure(6, 2.5)
        fig.text(0.5, 0.5, f"No mistakes: all {t.size} images classified correctly.",
                 ha="center", va="center", fontsize=14)
        save_figure(fig, path)
        return
    shown = wrong[:max_images]
    rows, cols = _grid_shape(shown.size, max_cols=6 if shown.size <= 36 else 10)
    fig = new_figure(max(1.5 * cols, 4.5), 1.6 * rows + 0.6)
    axes = np.atleast_1d(fig.subplots(rows, cols, squeeze=False)).ravel()
    for ax in axes:
        ax.set_axis_off()
    for ax, index in zip(axes, shown, strict=False):
        ax.imshow(images[index], cmap="gray_r", vmin=0.0, vmax=1.0, interpolation="nearest")
        name = (lambda k: str(k)) if class_names is None else (lambda k: class_names[k])
        ax.set_title(f"true {name(t[index])} / pred {name(p[index])}", fontsize=9,
                     color="firebrick")
    count = (f"all {wrong.size}" if shown.size == wrong.size
             else f"first {shown.size} of {wrong.size}")
    fig.suptitle(f"misclassified images: {count} (of {t.size} images)")
    save_figure(fig, path)
