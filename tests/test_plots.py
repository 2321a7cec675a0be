"""Training and model pictures: each one is written, is a real PNG, and is not blank."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from cnn_numpy.visual import plots
from cnn_numpy.visual.plots import plot_confusion, plot_filters, plot_history, plot_mistakes

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def read_png(path, min_side: int = 200) -> np.ndarray:
    """The PNG at path as an (h, w, channels) float array, once it looks like a picture."""
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    image = imread(path)
    assert image.ndim == 3 and min(image.shape[:2]) >= min_side
    assert image[..., :3].std() > 0.03, "the picture is (almost) one colour"
    return image


@pytest.fixture
def figures(capture_figures):
    """Every Figure the plots module saves, in order (still written to disk)."""
    return capture_figures(plots)


def history(epochs: int, with_test: bool = True) -> list[dict]:
    rows = []
    for e in range(1, epochs + 1):
        row = {"epoch": e, "train_cce": 1.0 / e, "train_ce": 0.3 / e}
        row.update({"test_cce": 1.1 / e, "test_ce": 0.33 / e} if with_test else
                   {"test_cce": None, "test_ce": None})
        rows.append(row)
    return rows


# --------------------------------------------------------------------- history


def test_history_two_panels(tmp_path, figures):
    path = tmp_path / "history.png"
    plot_history(history(8), path)
    read_png(path)
    (fig,) = figures
    ax_cce, ax_ce = fig.axes
    for ax in (ax_cce, ax_ce):
        assert ax.get_xlabel() == "epoch" and ax.get_title()
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train", "test"]
        assert all(float(tick).is_integer() for tick in ax.get_xticks())
    # CE is drawn as a percentage
    assert np.allclose(ax_ce.lines[0].get_ydata(), [30.0 / e for e in range(1, 9)])
    assert "%" in ax_ce.get_ylabel()


def test_history_single_epoch_and_rewrite(tmp_path, figures):
    path = tmp_path / "live" / "history.png"
    path.parent.mkdir()
    plot_history(history(1), path)
    first = read_png(path)
    ticks = figures[0].axes[0].get_xticks()
    assert all(float(tick).is_integer() for tick in ticks) and 1 in ticks
    plot_history(history(2), path)  # rewritten in place, as during training
    assert read_png(path).shape == first.shape
    assert [p.name for p in path.parent.iterdir()] == ["history.png"]  # no temp files left


def test_history_without_test_set(tmp_path, figures):
    plot_history(history(3, with_test=False), tmp_path / "h.png")
    read_png(tmp_path / "h.png")
    for ax in figures[0].axes:
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["train"]


def test_history_needs_an_epoch(tmp_path):
    with pytest.raises(ValueError, match="empty"):
        plot_history([], tmp_path / "h.png")


# --------------------------------------------------------------------- filters


@pytest.mark.parametrize("shape", [(3, 3, 1, 8), (5, 5, 3, 5), (3, 3, 1, 1)])
def test_filters(tmp_path, figures, shape):
    W = np.random.default_rng(0).normal(size=shape)
    path = tmp_path / "filters.png"
    plot_filters(W, path)
    read_png(path, min_side=150)
    fig = figures[0]
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == [str(i) for i in range(shape[3])]
    assert f"{shape[3]} first-layer filters" in fig.get_suptitle()
    images = [ax.images[0] for ax in fig.axes if ax.images]
    expected = W[:, :, 0, 0] if shape[2] == 1 else W[:, :, :, 0].mean(axis=2)
    assert np.allclose(images[0].get_array(), expected)
    # one diverging scale, symmetric around 0, shared by every filter, with a colour bar
    limits = {image.get_clim() for image in images}
    assert len(limits) == 1 and limits.pop()[0] < 0
    assert images[0].get_cmap().name == "cnn_numpy_sign"  # the page's blue < 0 < orange
    assert any(ax.get_ylabel() == "weight: blue < 0 < orange" for ax in fig.axes)


def test_filters_of_a_chosen_channel(tmp_path, figures):
    W = np.random.default_rng(1).normal(size=(3, 3, 4, 6))
    plot_filters(W, tmp_path / "f.png", channel=2, layer="layer 4 (ConvLayer)")
    fig = figures[0]
    assert fig.get_suptitle() == "6 layer 4 (ConvLayer) filters, 3 x 3 (channel 2)"
    assert np.allclose([ax.images[0].get_array() for ax in fig.axes if ax.images][5],
                       W[:, :, 2, 5])
    with pytest.raises(ValueError, match="channel must be in 0..3"):
        plot_filters(W, tmp_path / "f.png", channel=4)


def test_filters_bad_shape(tmp_path):
    with pytest.raises(ValueError, match="fw, fw, c_in, n_f"):
        plot_filters(np.zeros((3, 3, 4)), tmp_path / "f.png")


# ------------------------------------------------------------------- confusion


def test_confusion_counts_accuracy_and_contrast(tmp_path, figures):
    y_true = np.array([0, 0, 0, 0, 0, 0, 1, 1, 2, 2])
    y_pred = np.array([0, 0, 0, 0, 0, 1, 1, 2, 2, 2])
    path = tmp_path / "confusion.png"
    plot_confusion(y_true, y_pred, path, class_names=["zero", "one", "two"])
    read_png(path)
    ax = figures[0].axes[0]
    cells = {(round(t.get_position()[1]), round(t.get_position()[0])): t for t in ax.texts}
    counts = np.array([[int(cells[i, j].get_text()) for j in range(3)] for i in range(3)])
    assert counts.tolist() == [[5, 1, 0], [0, 1, 1], [0, 0, 2]]
    assert "80.00%" in ax.get_title()
    assert ax.get_xlabel() == "predicted" and ax.get_ylabel() == "true"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["zero", "one", "two"]
    # dark cell -> light text, light cell -> dark text
    assert cells[0, 0].get_color() == "white" and cells[0, 2].get_color() == "black"


def test_confusion_accepts_one_hot(tmp_path, figures):
    y = np.random.default_rng(1).integers(0, 10, 200)
    plot_confusion(np.eye(10)[y], y, tmp_path / "c.png")
    read_png(tmp_path / "c.png")
    assert "100.00%" in figures[0].axes[0].get_title()


def test_confusion_bad_input(tmp_path):
    with pytest.raises(ValueError, match="differ in length"):
        plot_confusion([0, 1], [0], tmp_path / "c.png")
    with pytest.raises(ValueError, match="class_names"):
        plot_confusion([0, 3], [0, 1], tmp_path / "c.png", class_names=["a", "b"])


# -------------------------------------------------------------------- mistakes


def digits(n: int) -> np.ndarray:
    """n fake 28 x 28 'digits': a bright bar on a dark background, in [0, 1]."""
    images = np.zeros((n, 28, 28))
    for i in range(n):
        images[i, 4:24, 8 + i % 12 : 12 + i % 12] = 1.0
    return images


def test_mistakes_grid(tmp_path, figures):
    y_true = np.arange(20) % 10
    y_pred = y_true.copy()
    y_pred[[2, 5, 11]] = [7, 0, 4]
    path = tmp_path / "mistakes.png"
    plot_mistakes(digits(20)[..., None], y_true, y_pred, path)  # (n, 28, 28, 1) input
    read_png(path)
    fig = figures[0]
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles == ["true 2 / pred 7", "true 5 / pred 0", "true 1 / pred 4"]
    assert "all 3" in fig.get_suptitle()


def test_mistakes_capped(tmp_path, figures):
    y_true = np.zeros(50, dtype=int)
    y_pred = np.ones(50, dtype=int)
    plot_mistakes(digits(50), y_true, y_pred, tmp_path / "m.png", max_images=12)
    read_png(tmp_path / "m.png")
    fig = figures[0]
    assert sum(1 for ax in fig.axes if ax.images) == 12
    assert "first 12 of 50" in fig.get_suptitle()


def test_no_mistakes(tmp_path, figures):
    y = np.arange(10)
    path = tmp_path / "none.png"
    plot_mistakes(digits(10), y, y, path)
    read_png(path, min_side=150)
    assert any("No mistakes" in t.get_text() for t in figures[0].texts)


def test_mistakes_bad_input(tmp_path):
    with pytest.raises(ValueError, match="images must be"):
        plot_mistakes(np.zeros((4, 28)), [0] * 4, [1] * 4, tmp_path / "m.png")
    with pytest.raises(ValueError, match="differ in length"):
        plot_mistakes(digits(4), [0] * 4, [1] * 3, tmp_path / "m.png")
    with pytest.raises(ValueError, match="max_images"):
        plot_mistakes(digits(4), [0] * 4, [1] * 4, tmp_path / "m.png", max_images=0)


# ---------------------------------------------------------------- no pyplot


def test_no_pyplot_and_lazy_matplotlib(tmp_path):
    """Importing cnn_numpy.visual loads no matplotlib; drawing never touches pyplot."""
    script = textwrap.dedent(f"""
        import sys
        import cnn_numpy.visual as visual
        assert "matplotlib" not in sys.modules, "imported matplotlib too early"
        visual.plot_history([{{"epoch": 1, "train_cce": 1.0, "train_ce": 0.5,
                               "test_cce": 1.2, "test_ce": 0.6}}], {str(tmp_path / "h.png")!r})
        visual.draw_stride_groups(2, 2, 4, {str(tmp_path / "g.png")!r})
        assert "matplotlib" in sys.modules
        assert "matplotlib.pyplot" not in sys.modules, "pyplot was imported"
    """)
    result = subprocess.run([sys.executable, "-W", "error", "-c", script],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    read_png(tmp_path / "h.png")
    read_png(tmp_path / "g.png")


def test_missing_matplotlib_message(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r'pip install "cnn-numpy\[plots\]"'):
        plot_filters(np.zeros((3, 3, 1, 2)), tmp_path / "f.png")
