"""Pictures and plain-text explanations (matplotlib is needed only for the pictures).

    from cnn_numpy.visual import explain_stride_groups, draw_stride_groups, plot_history
    print(explain_stride_groups(2, 1, 4))

Install the optional plotting dependencies with ``pip install "cnn-numpy[plots]"``;
importing this package does not import matplotlib.
"""

from .explain import (
    GroupEntry,
    StrideGroupTable,
    draw_stride_groups,
    explain_stride_groups,
    filter_label,
    stride_group_table,
)
from .plots import plot_confusion, plot_filters, plot_history, plot_mistakes

__all__ = [
    "GroupEntry", "StrideGroupTable", "draw_stride_groups", "explain_stride_groups",
    "filter_label", "stride_group_table", "plot_confusion", "plot_filters", "plot_history",
    "plot_mistakes",
]
