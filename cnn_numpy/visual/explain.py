"""Stride groups, explained with numbers, letters and pictures.

A small worked example makes the stride-group engine easy to follow: number
the cells of an N x N input 1, 2, ..., N*N row by row, call the cells of the
F x F filter A, B, C, ... row by row, and list, for every filter cell, which
input cells it gets multiplied with.  Over all window positions those lists
overlap (one input cell meets several filter cells), which is why a plain
reshape cannot line them up.  Inside one stride group they do not overlap,
so one slice + reshape of the input lines them all up at once.

Everything here is computed from the engine's own plan,
``cnn_numpy.engines.stride_groups.plan_stride_groups``, so the explanation
shows the groups the engine really loops over.  Positions are numbered
1, 2, ... row by row over the output, like the input cells.

    >>> print(explain_stride_groups(2, 1, 4))          # doctest: +SKIP
    >>> draw_stride_groups(2, 1, 4, "stride-groups.png")  # doctest: +SKIP
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..engines.geometry import output_size
from ..engines.stride_groups import StrideGroup, plan_stride_groups
from ..files import PathLike
from .plots import new_figure, require_matplotlib, save_figure

MAX_PANELS = 36
"""The most small panels either picture draws; the titles say when some are left out."""

UNTOUCHED_GREY = 0.78
"""The shade of input cells that no window touches."""

MAX_CELL_TEXTS = 1600
"""Above this many cell numbers in (a), only the cells under each window are numbered."""


# ------------------------------------------------------------------ the table


@dataclass(frozen=True)
class GroupEntry:
    """One stride group of the plan, spelled out.

    number: 1-based, in the plan's order.  group: the plan's StrideGroup.
    cells: the output (row, col) of each window in the group, 0-based, row by
    row.  positions: the same windows as 1-based position numbers.
    inputs: filter letter -> the input cell numbers it multiplies, one per
    window, in position order.
    """

    number: int
    group: StrideGroup
    cells: tuple[tuple[int, int], ...]
    positions: tuple[int, ...]
    inputs: dict[str, tuple[int, ...]]


@dataclass(frozen=True)
class StrideGroupTable:
    """Who multiplies whom, for an F x F filter with stride S over an N x N input.

    out: windows per axis (out x out positions).  every: the plan's k =
    ceil(F / S), the output distance between members of a group.  letters:
    the filter cells' names, row by row (F*F of them).  over_all: letter ->
    input cell numbers over ALL positions, in position order.  groups: one
    GroupEntry per stride group.
    """

    filter_width: int
    stride: int
    input_size: int
    out: int
    every: int
    letters: tuple[str, ...]
    over_all: dict[str, tuple[int, ...]]
    groups: tuple[GroupEntry, ...]

    @property
    def n_positions(self) -> int:
        """out * out."""
        return self.out * self.out


def filter_label(index: int) -> str:
    """Name of filter cell number index (0-based): A ... Z, then AA, AB, ..., AZ, BA, ..."""
    if index < 0:
        raise ValueError(f"index must be >= 0, got {index}")
    label = ""
    index += 1
    while index:
        index, rest = divmod(index - 1, 26)
        label = chr(ord("A") + rest) + label
    return label


def _check_arguments(filter_width: Any, stride: Any, input_size: Any) -> tuple[int, int, int]:
    values = {"filter_width": filter_width, "stride": stride, "input_size": input_size}
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise ValueError(f"{name} must be a positive int, got {value!r}")
        if value < 1:
            raise ValueError(f"{name} must be a positive int, got {value}")
    if filter_width > input_size:
        raise ValueError(f"the filter ({filter_width} x {filter_width}) must fit in the input "
                         f"({input_size} x {input_size}): need filter_width <= input_size")
    return int(filter_width), int(stride), int(input_size)


def _window_cells(row: int, col: int, fw: int, stride: int, n: int) -> list[int]:
    """Input cell numbers under the window at output (row, col), in filter-cell order."""
    top, left = row * stride, col * stride
    return [(top + a) * n + left + b + 1 for a in range(fw) for b in range(fw)]


def stride_group_table(filter_width: int, stride: int, input_size: int) -> StrideGroupTable:
    """The plan the engine uses for an (F, S, N) sweep, as numbered cells per filter letter.

    Raises ValueError unless F, S and N are positive ints with F <= N.
    """
    fw, s, n = _check_arguments(filter_width, stride, input_size)
    out = output_size(n, fw, s)
    plan = plan_stride_groups(fw, s, out, out)
    letters = tuple(filter_label(i) for i in range(fw * fw))

    def by_letter(cells: list[tuple[int, int]]) -> dict[str, tuple[int, ...]]:
        windows = [_window_cells(r, q, fw, s, n) for r, q in cells]
        return {letter: tuple(w[e] for w in windows) for e, letter in enumerate(letters)}

    every_cell = [(r, q) for r in range(out) for q in range(out)]
    groups = []
    for number, g in enumerate(plan.groups, start=1):
        cells = [(g.row + plan.every * i, g.col + plan.every * j)
                 for i in range(g.rows) for j in range(g.cols)]
        groups.append(GroupEntry(number, g, tuple(cells),
                                 tuple(r * out + q + 1 for r, q in cells), by_letter(cells)))
    return StrideGroupTable(fw, s, n, out, plan.every, letters, by_letter(every_cell),
                            tuple(groups))


# ------------------------------------------------------------------- the text


def _text_grid(rows: list[list[str]]) -> str:
    """A small box-drawn table of right-aligned strings."""
    width = max(len(cell) for row in rows for cell in row)
    rule = "+" + "+".join("-" * (width + 2) for _ in rows[0]) + "+"
    lines = [rule]
    for row in rows:
        lines.append("| " + " | ".join(cell.rjust(width) for cell in row) + " |")
    lines.append(rule)
    return "\n".join(lines)


def _product(letter: str, cells: tuple[int, ...]) -> str:
    return f"{letter} * ({', '.join(str(c) for c in cells)})"


def _number_list(numbers: tuple[int, ...]) -> str:
    return ", ".join(str(x) for x in numbers)


def explain_stride_groups(filter_width: int, stride: int, input_size: int) -> str:
    """A plain-text walk through the stride groups of an F x F filter, stride S, N x N input.

    The text has: a header (sizes, number of positions and of groups), the
    numbered input, the lettered filter and the numbered output positions as
    small tables, then one ``A * (1, 2, ...)`` line per filter cell over all
    positions, then the same lines for each stride group in turn.
    Raises ValueError unless F, S and N are positive ints with F <= N.
    """
    table = stride_group_table(filter_width, stride, input_size)
    fw, s, n, out = table.filter_width, table.stride, table.input_size, table.out
    n_groups = len(table.groups)
    bound = math.ceil(fw / s) ** 2
    untouched = set(untouched_cells(table))
    lines = [
        f"Filter {fw} x {fw}, stride {s}, input {n} x {n}",
        f"Output size: {out} x {out}, so the filter visits {table.n_positions} position"
        f"{'s' if table.n_positions != 1 else ''}",
        f"Stride groups: {n_groups} (never more than ceil({fw}/{s})^2 = {bound}); windows "
        f"{table.every} position{'s' if table.every != 1 else ''} apart never overlap",
        "",
        "Input cells, numbered row by row" + (", (in brackets) if no window touches them:"
                                              if untouched else ":"),
        _text_grid([[f"({k})" if k in untouched else str(k)
                     for k in range(r * n + 1, r * n + n + 1)] for r in range(n)]),
        "",
        "Filter cells:",
        _text_grid([[table.letters[r * fw + c] for c in range(fw)] for r in range(fw)]),
        "",
        "Output positions, numbered row by row:",
        _text_grid([[str(r * out + c + 1) for c in range(out)] for r in range(out)]),
        "",
        "Over all positions:",
    ]
    lines += [_product(letter, cells) for letter, cells in table.over_all.items()]
    if untouched:
        lines += ["", f"No window touches {len(untouched)} input cell"
                      f"{'s' if len(untouched) != 1 else ''}: "
                      f"{_number_list(tuple(sorted(untouched)))}. "
                      + " ".join(reason for reason, applies in (
                          ("The stride is larger than the filter, so windows skip cells.",
                           s > fw),
                          ("The last rows and columns are too few for one more window.",
                           (n - fw) % s != 0)) if applies)]
    lines += ["", *_group_arrays(table)]
    for entry in table.groups:
        plural = "s" if len(entry.positions) != 1 else ""
        lines += ["", f"Stride group {entry.number} of {n_groups}: position{plural} "
                      f"{_number_list(entry.positions)}"]
        lines += [_product(letter, cells) for letter, cells in entry.inputs.items()]
    return "\n".join(lines) + "\n"


def untouched_cells(table: StrideGroupTable) -> list[int]:
    """Input cells (1-based, row by row) that no window position covers."""
    covered = {cell for cells in table.over_all.values() for cell in cells}
    return [k for k in range(1, table.input_size ** 2 + 1) if k not in covered]


def _group_arrays(table: StrideGroupTable) -> list[str]:
    """How the engine lines up group 1's windows: slice, reshape, product, with the shapes
    for one image with one channel (the engine keeps the batch and channel axes too)."""
    g = table.groups[0].group
    fw, s, every = table.filter_width, table.stride, table.every
    step = every * s
    top, left = g.row * s, g.col * s
    rows, cols = g.rows * step, g.cols * step
    beyond = max(top + rows, left + cols) - table.input_size
    reach = (f" (the engine first appends {beyond} zero row(s)/column(s) so the slice fits)"
             if beyond > 0 else "")
    windows = g.rows * g.cols
    return [
        f"In the engine, group 1 for one {table.input_size} x {table.input_size} image:",
        f"  slice    x[{top}:{top + rows}, {left}:{left + cols}]  -> ({rows}, {cols}){reach}",
        f"  reshape  -> ({g.rows}, {step}, {g.cols}, {step}), keep [:, :{fw}, :, :{fw}]  -> "
        f"({g.rows}, {fw}, {g.cols}, {fw}): all {windows} window(s) at once",
        f"  matrix   -> ({fw * fw}, {windows}): one column per window; the filter ({fw * fw},)"
        f" times it gives the group's {windows} output(s) in one product",
    ]


# ---------------------------------------------------------------- the picture


def _group_colours(count: int) -> list[tuple[float, float, float]]:
    """count clearly different colours: tab10's, or beyond ten, turbo ones.

    Turbo is sampled in golden-ratio steps so that groups with neighbouring
    numbers (whose windows sit next to each other) get far-apart colours.
    """
    from matplotlib import colormaps

    if count <= 10:
        return [tuple(colormaps["tab10"](i)[:3]) for i in range(count)]
    turbo = colormaps["turbo"]
    return [tuple(turbo(0.08 + 0.84 * ((i * 0.6180339887) % 1.0))[:3]) for i in range(count)]


def _dark(colour: tuple[float, float, float]) -> tuple[float, float, float]:
    """A darker shade of colour, for window outlines."""
    return tuple(0.6 * np.asarray(colour))


def _tint(colour: tuple[float, float, float], amount: float = 0.45) -> np.ndarray:
    """colour mixed with white: amount 1 is the colour, 0 is white."""
    return 1.0 - amount * (1.0 - np.asarray(colour))


def _font_size(panel_inches: float, n: int, longest: float) -> float:
    """Largest font (points, <= 9) whose longest label fits in one of n x n cells; 0 if < 4.5."""
    cell_points = 72.0 * panel_inches / n
    size = min(9.0, 0.8 * cell_points / (0.62 * max(longest, 1)), 0.6 * cell_points)
    return size if size >= 4.5 else 0.0


# Cell labels sit inside their axes: leaving them out of the layout computation keeps
# constrained layout from measuring thousands of texts (it made big grids very slow).
_IN_CELL = {"in_layout": False, "clip_on": True}


def _grid_axes(ax: Any, image: np.ndarray) -> None:
    """Show an (n, n, 3) colour image as a grid of cells with thin borders and no ticks.

    Above 40 cells a side the borders would hide the cells, so they are left out.
    """
    n = image.shape[0]
    ax.imshow(image, interpolation="nearest")
    if n <= 40:
        edges = np.arange(n + 1) - 0.5
        ax.vlines(edges, -0.5, n - 0.5, colors="0.7", linewidth=0.4)
        ax.hlines(edges, -0.5, n - 0.5, colors="0.7", linewidth=0.4)
    ax.set_xlim(-0.5, n - 0.5)
    ax.set_ylim(n - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])


def _panel_layout(total: int, natural_cols: int) -> tuple[int, int, int]:
    """(shown, rows, cols): how many of total panels to draw, and in what grid.

    When the panels form rows of natural_cols (the output's width, or the
    groups per row) and that is at most 8, the grid copies those rows, showing
    only whole rows if not all fit; otherwise the panels wrap at 6 columns.
    """
    if natural_cols <= 8:
        shown = min(total, (MAX_PANELS // natural_cols) * natural_cols)
        return shown, math.ceil(shown / natural_cols), natural_cols
    shown = min(total, MAX_PANELS)
    cols = min(6, math.ceil(math.sqrt(shown)))
    return shown, math.ceil(shown / cols), cols


def draw_stride_groups(filter_width: int, stride: int, input_size: int,
                       path: PathLike) -> None:
    """Write a PNG with two pictures of an F x F filter, stride S, over an N x N input.

    Top: the filter at every position (at most 36 small panels), the numbered
    input with that position's window shaded in its group's colour.  Bottom:
    one panel per stride group (at most 36), each of its windows outlined,
    with the filter letters in the cells it covers.  Raises ValueError for
    bad sizes, ImportError when matplotlib is missing.
    """
    table = stride_group_table(filter_width, stride, input_size)
    require_matplotlib()
    shown_positions, rows_a, cols_a = _panel_layout(table.n_positions, table.out)
    shown_groups, rows_b, cols_b = _panel_layout(len(table.groups),
                                                 min(table.every, table.out))
    panel = 2.0 if table.input_size <= 8 else 2.3  # inches a side
    look = _look(table, panel, shown_positions)
    fig, fig_a, fig_b = _two_part_figure(panel, (rows_a, cols_a), (rows_b, cols_b))
    _draw_part(fig_a, rows_a, cols_a, shown_positions, lambda ax, i: _draw_position(ax, look, i))
    fig_a.suptitle(f"(a) the filter sliding over every position "
                   f"({_how_many(shown_positions, table.n_positions)})", fontsize=11)
    _draw_part(fig_b, rows_b, cols_b, shown_groups, lambda ax, i: _draw_group(ax, look, i))
    fig_b.suptitle(f"(b) stride groups ({_how_many(shown_groups, len(table.groups))}): "
                   "windows in one group never overlap", fontsize=11)
    fig.suptitle(_picture_title(look), fontsize=12)
    save_figure(fig, path)


@dataclass(frozen=True)
class _Look:
    """What the panels of draw_stride_groups share.

    colours: one per group.  group_of: position number -> group number.
    untouched: (n, n) bool, the input cells no window touches.  Font sizes
    in points, 0 for none: number_size for the cell numbers in (a),
    letter_size for the filter letters in (b), small_size for the cell
    numbers under the letters in (b), drawn when `both`.
    number_everything: (a) numbers every cell, not only those under the window.
    """

    table: StrideGroupTable
    colours: list[tuple[float, float, float]]
    group_of: dict[int, int]
    untouched: np.ndarray
    number_size: float
    number_everything: bool
    letter_size: float
    small_size: float
    both: bool


def _look(table: StrideGroupTable, panel: float, shown_positions: int) -> _Look:
    """The colours, untouched cells and font sizes for panels of `panel` inches a side."""
    n = table.input_size
    untouched = np.zeros(n * n, dtype=bool)
    untouched[np.array(untouched_cells(table), dtype=int) - 1] = True
    number_size = _font_size(panel, n, len(str(n * n)))
    letter_size = _font_size(panel, n, 1.2 * len(table.letters[-1]))  # bold is wider
    small_size = min(7.0, 0.2 * 72.0 * panel / n)
    return _Look(
        table=table,
        colours=_group_colours(len(table.groups)),
        group_of={p: entry.number for entry in table.groups for p in entry.positions},
        untouched=untouched.reshape(n, n),
        number_size=number_size,
        # matplotlib draws a few thousand texts per second: with many big panels, (a)
        # numbers only the cells under the window
        number_everything=shown_positions * n * n <= MAX_CELL_TEXTS,
        letter_size=letter_size,
        small_size=small_size,
        # (b) also numbers the cells, small, under the letters when the cells are big enough
        both=letter_size > 0 and small_size >= 5.5 and number_size > 0,
    )


def _two_part_figure(panel: float, grid_a: tuple[int, int], grid_b: tuple[int, int]
                     ) -> tuple[Any, Any, Any]:
    """(figure, top subfigure, bottom subfigure) for grids of (rows, cols) panels."""
    (rows_a, cols_a), (rows_b, cols_b) = grid_a, grid_b
    head = 0.75  # inches for a subfigure's title
    fig = new_figure(max(cols_a, cols_b, 3) * panel + 0.4,
                     (rows_a + rows_b) * (panel + 0.3) + 2 * head)
    fig_a, fig_b = fig.subfigures(2, 1, height_ratios=[rows_a * (panel + 0.3) + head,
                                                       rows_b * (panel + 0.3) + head])
    return fig, fig_a, fig_b


def _draw_part(subfig: Any, rows: int, cols: int, shown: int,
               draw: Callable[[Any, int], None]) -> None:
    """A rows x cols grid of panels in subfig: draw(ax, index) for the first `shown`,
    the rest left blank."""
    for index, ax in enumerate(subfig.subplots(rows, cols, squeeze=False).ravel()):
        if index >= shown:
            ax.set_axis_off()
            continue
        draw(ax, index)


def _how_many(shown: int, total: int) -> str:
    """How many panels a part shows: "all 9", or "first 36 of 49" when not all fit."""
    return f"all {total}" if shown == total else f"first {shown} of {total}"


def _outline(ax: Any, r: int, q: int, look: _Look, colour: tuple[float, float, float]) -> None:
    """Outline the window at output (r, q) in a dark shade of colour."""
    from matplotlib.patches import Rectangle

    fw, s = look.table.filter_width, look.table.stride
    ax.add_patch(Rectangle((q * s - 0.5, r * s - 0.5), fw, fw, fill=False,
                           edgecolor=_dark(colour), linewidth=2.0))


def _draw_position(ax: Any, look: _Look, index: int) -> None:
    """Panel (a) number index: the window at position index + 1, in its group's colour,
    over the numbered input."""
    table = look.table
    fw, s, n = table.filter_width, table.stride, table.input_size
    r, q = divmod(index, table.out)
    group = look.group_of[index + 1]
    image = np.ones((n, n, 3))
    image[look.untouched] = UNTOUCHED_GREY
    image[r * s : r * s + fw, q * s : q * s + fw] = _tint(look.colours[group - 1])
    _grid_axes(ax, image)
    _outline(ax, r, q, look, look.colours[group - 1])
    if look.number_size:
        numbered = (range(n * n) if look.number_everything else
                    [(r * s + a) * n + q * s + b for a in range(fw) for b in range(fw)])
        for cell in numbered:
            ax.text(cell % n, cell // n, str(cell + 1), ha="center", va="center",
                    fontsize=look.number_size, **_IN_CELL)
    ax.set_title(f"position {index + 1} (group {group})", fontsize=9)


def _draw_group(ax: Any, look: _Look, index: int) -> None:
    """Panel (b) number index: stride group index + 1, each window outlined and lettered."""
    table = look.table
    fw, s, n = table.filter_width, table.stride, table.input_size
    entry, colour = table.groups[index], look.colours[index]
    covered = np.zeros((n, n), dtype=bool)
    for r, q in entry.cells:
        covered[r * s : r * s + fw, q * s : q * s + fw] = True
    _grid_axes(ax, np.where(covered[:, :, None], _tint(colour),
                            np.where(look.untouched[:, :, None], UNTOUCHED_GREY, 1.0)))
    for r, q in entry.cells:
        _outline(ax, r, q, look, colour)
        if look.letter_size:
            for e, letter in enumerate(table.letters):
                y = r * s + e // fw - (0.15 if look.both else 0.0)
                ax.text(q * s + e % fw, y, letter, ha="center", va="center",
                        fontsize=look.letter_size, fontweight="bold", **_IN_CELL)
    if look.both:
        _number_under_letters(ax, look, covered)
    plural = "s" if len(entry.positions) != 1 else ""
    listed = f"position{plural} {_number_list(entry.positions)}"
    if len(listed) > 24:
        listed = f"{len(entry.positions)} positions"
    ax.set_title(f"group {entry.number}: {listed}", fontsize=9)


def _number_under_letters(ax: Any, look: _Look, covered: np.ndarray) -> None:
    """Number every input cell, small: below the letter in a covered cell (covered, (n, n)
    bool), centred and lighter elsewhere."""
    n = look.table.input_size
    for cell in range(n * n):
        row, col = divmod(cell, n)
        under = bool(covered[row, col])
        ax.text(col, row + (0.25 if under else 0.0), str(cell + 1), ha="center",
                va="center", fontsize=look.small_size, color="0.25" if under else "0.6",
                **_IN_CELL)


def _picture_title(look: _Look) -> str:
    """The whole picture's title: the sizes, the counts, and what grey cells mean."""
    table = look.table
    fw, s, n = table.filter_width, table.stride, table.input_size
    k_groups = len(table.groups)
    grey = "\ngrey cells: no window touches them" if look.untouched.any() else ""
    return (f"{fw} x {fw} filter, stride {s}, {n} x {n} input: {table.n_positions} positions, "
            f"{k_groups} stride group{'s' if k_groups != 1 else ''}{grey}")
