"""The stride-group explanation: numbers checked by hand, by brute force and by the engine."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnn_numpy.engines.geometry import output_size
from cnn_numpy.engines.stride_groups import conv_forward, plan_stride_groups
from cnn_numpy.visual import explain
from cnn_numpy.visual.explain import (
    draw_stride_groups,
    explain_stride_groups,
    filter_label,
    stride_group_table,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

# (F, S, N): overlapping windows, S = F, S > F, F = 1, N not a multiple of anything, F = N
CASES = [
    (2, 1, 4), (3, 1, 5), (3, 2, 7), (3, 2, 8), (2, 2, 6), (3, 3, 10), (1, 1, 3), (1, 2, 6),
    (2, 3, 8), (3, 4, 10), (4, 3, 11), (5, 2, 12), (4, 4, 4), (6, 1, 8), (2, 1, 2), (5, 3, 13),
]


def brute_force_window(r: int, q: int, fw: int, s: int, n: int) -> list[int]:
    """Input cell numbers (1-based, row-major) under the window at output (r, q), row-major."""
    return [(r * s + a) * n + (q * s + b) + 1 for a in range(fw) for b in range(fw)]


# ------------------------------------------------------------- the FAQ example


def test_faq_example_groups_are_exact():
    table = stride_group_table(2, 1, 4)
    assert table.out == 3 and table.n_positions == 9 and table.letters == ("A", "B", "C", "D")
    assert [g.inputs for g in table.groups] == [
        {"A": (1, 3, 9, 11), "B": (2, 4, 10, 12), "C": (5, 7, 13, 15), "D": (6, 8, 14, 16)},
        {"A": (2, 10), "B": (3, 11), "C": (6, 14), "D": (7, 15)},
        {"A": (5, 7), "B": (6, 8), "C": (9, 11), "D": (10, 12)},
        {"A": (6,), "B": (7,), "C": (10,), "D": (11,)},
    ]
    assert [g.positions for g in table.groups] == [(1, 3, 7, 9), (2, 8), (4, 6), (5,)]
    assert table.over_all == {
        "A": (1, 2, 3, 5, 6, 7, 9, 10, 11),
        "B": (2, 3, 4, 6, 7, 8, 10, 11, 12),
        "C": (5, 6, 7, 9, 10, 11, 13, 14, 15),
        "D": (6, 7, 8, 10, 11, 12, 14, 15, 16),
    }


def test_faq_example_text():
    text = explain_stride_groups(2, 1, 4)
    lines = text.splitlines()
    over_all = lines.index("Over all positions:")
    assert lines[over_all + 1 : over_all + 5] == [
        "A * (1, 2, 3, 5, 6, 7, 9, 10, 11)",
        "B * (2, 3, 4, 6, 7, 8, 10, 11, 12)",
        "C * (5, 6, 7, 9, 10, 11, 13, 14, 15)",
        "D * (6, 7, 8, 10, 11, 12, 14, 15, 16)",
    ]
    first = lines.index("Stride group 1 of 4: positions 1, 3, 7, 9")
    assert first > over_all
    assert lines[first + 1 : first + 5] == [
        "A * (1, 3, 9, 11)", "B * (2, 4, 10, 12)", "C * (5, 7, 13, 15)", "D * (6, 8, 14, 16)",
    ]
    assert "Stride group 4 of 4: position 5" in lines
    assert "A * (6)" in lines and "D * (11)" in lines
    # the header: sizes, positions and groups
    assert "2 x 2" in text and "stride 1" in text and "4 x 4" in text and "3 x 3" in text
    assert "9 positions" in text and "Stride groups: 4" in text
    # the grids: the input numbered, the filter lettered
    assert "|  1 |  2 |  3 |  4 |" in text and "| 13 | 14 | 15 | 16 |" in text
    assert "| A | B |" in text and "| C | D |" in text


# ------------------------------------------------------------ every (F, S, N)


def check_table(fw: int, s: int, n: int) -> None:
    table = stride_group_table(fw, s, n)
    out = output_size(n, fw, s)
    assert table.out == out
    every = math.ceil(fw / s)
    assert table.every == every == plan_stride_groups(fw, s, out, out).every
    assert len(table.groups) >= 1 and len(table.groups) <= every**2
    assert len(table.letters) == fw * fw == len(set(table.letters))

    # the groups are the plan's, in the plan's order
    assert [g.group for g in table.groups] == list(plan_stride_groups(fw, s, out, out).groups)

    # every position in exactly one group
    seen = [cell for g in table.groups for cell in g.cells]
    assert sorted(seen) == [(r, q) for r in range(out) for q in range(out)]
    assert sorted(p for g in table.groups for p in g.positions) == list(range(1, out * out + 1))

    for g in table.groups:
        assert g.positions == tuple(r * out + q + 1 for r, q in g.cells)
        # members of a group are `every` positions apart
        assert all(r % every == g.group.row and q % every == g.group.col for r, q in g.cells)
        windows = [brute_force_window(r, q, fw, s, n) for r, q in g.cells]
        # no two windows of a group share an input cell
        flat = [cell for w in windows for cell in w]
        assert len(flat) == len(set(flat))
        # each letter meets exactly the cells the window definition says, in position order
        for e, letter in enumerate(table.letters):
            assert g.inputs[letter] == tuple(w[e] for w in windows)
            assert all(1 <= c <= n * n for c in g.inputs[letter])

    # over all positions: the union of the groups, per letter
    for e, letter in enumerate(table.letters):
        brute = [brute_force_window(r, q, fw, s, n)[e] for r in range(out) for q in range(out)]
        assert table.over_all[letter] == tuple(brute)
        assert sorted(table.over_all[letter]) == sorted(
            c for g in table.groups for c in g.inputs[letter])


@pytest.mark.parametrize("fw, s, n", CASES)
def test_groups_partition_positions_without_overlap(fw, s, n):
    check_table(fw, s, n)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(0, 10))
def test_groups_partition_positions_random(fw, s, extra):
    check_table(fw, s, fw + extra)


@pytest.mark.parametrize("fw, s, n", [(2, 1, 4), (3, 2, 7), (2, 3, 8), (4, 3, 11), (3, 1, 5)])
def test_table_matches_what_the_engine_computes(fw, s, n):
    """Run the engine with a one-hot filter over the numbered input: it picks the same cells."""
    table = stride_group_table(fw, s, n)
    x = np.arange(1, n * n + 1, dtype=np.float64).reshape(1, n, n, 1)
    W = np.zeros((fw, fw, 1, fw * fw))
    for e in range(fw * fw):
        W[e // fw, e % fw, 0, e] = 1.0  # filter e copies out filter cell e
    Z, _ = conv_forward(x, W, np.zeros(fw * fw), s)  # (1, out, out, fw*fw)
    picked = Z[0].round().astype(int)
    for e, letter in enumerate(table.letters):
        assert table.over_all[letter] == tuple(picked[:, :, e].ravel())
        for g in table.groups:
            assert g.inputs[letter] == tuple(picked[r, q, e] for r, q in g.cells)


@pytest.mark.parametrize("fw, s, n", CASES)
def test_text_has_a_line_per_letter_and_group(fw, s, n):
    table = stride_group_table(fw, s, n)
    text = explain_stride_groups(fw, s, n)
    lines = text.splitlines()
    assert f"{len(table.groups)}" in text
    for g in table.groups:
        assert any(line.startswith(f"Stride group {g.number} of {len(table.groups)}: position")
                   for line in lines)
        for letter, cells in g.inputs.items():
            assert f"{letter} * ({', '.join(map(str, cells))})" in lines
    for letter, cells in table.over_all.items():
        assert f"{letter} * ({', '.join(map(str, cells))})" in lines


def test_single_group_when_stride_covers_the_filter():
    for fw, s, n in [(2, 2, 6), (3, 3, 9), (2, 3, 8), (1, 1, 5)]:
        assert len(stride_group_table(fw, s, n).groups) == 1


def test_filter_labels_go_past_z():
    assert [filter_label(i) for i in (0, 1, 25, 26, 27, 51, 52, 701, 702)] == [
        "A", "B", "Z", "AA", "AB", "AZ", "BA", "ZZ", "AAA"]
    assert len({filter_label(i) for i in range(2000)}) == 2000
    table = stride_group_table(6, 1, 7)
    assert table.letters[25:28] == ("Z", "AA", "AB") and table.letters[-1] == "AJ"
    assert "AJ * (" in explain_stride_groups(6, 1, 7)


@pytest.mark.parametrize("args", [
    (0, 1, 4), (2, 0, 4), (2, 1, 0), (-1, 1, 4), (5, 1, 4), (2.0, 1, 4), (True, 1, 4),
    ("2", 1, 4), (2, None, 4),
])
def test_bad_arguments_raise_value_error(args):
    with pytest.raises(ValueError):
        explain_stride_groups(*args)
    with pytest.raises(ValueError):
        stride_group_table(*args)


def test_bad_arguments_raise_before_drawing(tmp_path):
    with pytest.raises(ValueError, match="filter_width <= input_size"):
        draw_stride_groups(5, 1, 4, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_numpy_integers_are_accepted():
    assert stride_group_table(np.int64(2), np.int32(1), np.int16(4)).out == 3


# ----------------------------------------------------------------- the picture


def read_png(path):
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    return imread(path)


def test_draw_faq_example(tmp_path, capture_figures):
    figures = capture_figures(explain)
    path = tmp_path / "groups.png"
    draw_stride_groups(2, 1, 4, path)
    image = read_png(path)
    assert image.shape[0] > 400 and image.shape[1] > 400
    assert image[..., :3].std() > 0.05

    (fig,) = figures
    titles = [ax.get_title() for sub in fig.subfigs for ax in sub.axes if ax.get_title()]
    assert titles[:9] == [f"position {p} (group {g})" for p, g in
                          zip(range(1, 10), (1, 2, 1, 3, 4, 3, 1, 2, 1), strict=True)]
    assert titles[9:] == ["group 1: positions 1, 3, 7, 9", "group 2: positions 2, 8",
                          "group 3: positions 4, 6", "group 4: position 5"]
    # group 1's panel shows the letters over the cells they meet: A over 1, 3, 9, 11
    group_1 = fig.subfigs[1].axes[0]
    where_a = [t.get_position() for t in group_1.texts if t.get_text() == "A"]
    assert sorted(round(r + 0.15) * 4 + round(c) + 1 for c, r in where_a) == [1, 3, 9, 11]
    # no two titles overlap
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    boxes = [ax.title.get_window_extent(renderer) for sub in fig.subfigs for ax in sub.axes
             if ax.get_title()]
    for i, a in enumerate(boxes):
        assert not any(a.overlaps(b) for b in boxes[i + 1 :])


def test_draw_caps_panels_for_big_inputs(tmp_path, capture_figures):
    figures = capture_figures(explain)
    path = tmp_path / "big.png"
    draw_stride_groups(2, 1, 8, path)  # 7 x 7 = 49 positions, 4 groups
    image = read_png(path)
    assert image[..., :3].std() > 0.05
    positions, groups = figures[0].subfigs
    # whole output rows of 7 panels, at most 36 panels: 35 shown
    assert any("first 35 of 49" in t.get_text() for t in positions.texts)
    assert sum(ax.axison for ax in positions.axes) == 35
    assert sum(ax.axison for ax in groups.axes) == 4
    assert any("all 4" in t.get_text() for t in groups.texts)


def test_draw_caps_groups_too(tmp_path, monkeypatch, capture_figures):
    figures = capture_figures(explain)
    monkeypatch.setattr(explain, "MAX_PANELS", 4)
    draw_stride_groups(3, 1, 5, tmp_path / "small.png")  # 9 positions, 9 groups
    positions, groups = figures[0].subfigs
    assert any("first 3 of 9" in t.get_text() for t in positions.texts)
    assert any("first 3 of 9" in t.get_text() for t in groups.texts)
    assert sum(ax.axison for ax in groups.axes) == 3


def test_draw_needs_matplotlib(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match=r'pip install "cnn-numpy\[plots\]"'):
        draw_stride_groups(2, 1, 4, tmp_path / "x.png")


# ------------------------------------------------------ cells no window touches (issue 13)


@pytest.mark.parametrize("fw, s, n, expected", [
    (2, 3, 7, [3, 6, 7, 10, 13, 14, 15, 16]),   # stride > filter skips cells, and the end
    (3, 2, 6, [6, 12, 18, 24, 30, 31, 32, 33]),  # the last row and column
    (2, 1, 4, []),
])
def test_untouched_cells_are_marked_and_listed(fw, s, n, expected):
    table = stride_group_table(fw, s, n)
    untouched = explain.untouched_cells(table)
    assert untouched[:8] == expected
    covered = {c for r in range(table.out) for q in range(table.out)
               for c in brute_force_window(r, q, fw, s, n)}
    assert set(untouched) == set(range(1, n * n + 1)) - covered
    text = explain_stride_groups(fw, s, n)
    if expected:
        assert f"({expected[0]})" in text and f"No window touches {len(untouched)} input" in text
    else:
        assert "No window touches" not in text and "(1)" not in text


def test_text_shows_the_engines_slice_reshape_and_product_for_group_1():
    text = explain_stride_groups(3, 2, 7)
    assert "  slice    x[0:8, 0:8]  -> (8, 8) (the engine first appends 1 zero row(s)/column(s)" \
        in text
    assert "  reshape  -> (2, 4, 2, 4), keep [:, :3, :, :3]  -> (2, 3, 2, 3): all 4 window(s)" \
        in text
    assert "  matrix   -> (9, 4): one column per window" in text
    # the same numbers as the engine's plan
    plan = plan_stride_groups(3, 2, 3, 3)
    assert (plan.groups[0].rows, plan.step) == (2, 4)


def test_draw_greys_the_cells_no_window_touches(tmp_path, capture_figures):
    figures = capture_figures(explain)
    draw_stride_groups(2, 3, 7, tmp_path / "g.png")
    (fig,) = figures
    assert fig._suptitle.get_text().endswith("\ngrey cells: no window touches them")
    image = fig.subfigs[0].axes[0].images[0].get_array()
    assert np.allclose(image[0, 2], explain.UNTOUCHED_GREY)   # cell 3
    assert np.allclose(image[0, 3], 1.0)                       # cell 4: under position 2
