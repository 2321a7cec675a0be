"""Window arithmetic shared by every engine and layer."""

from __future__ import annotations


def output_size(input_size: int, filter_width: int, stride: int) -> int:
    """Number of window positions along one axis: floor((in - fw) / s) + 1.

    Rows or columns at the end that no full window reaches are ignored, as in
    PyTorch and TensorFlow's "valid" mode.
    """
    return (input_size - filter_width) // stride + 1


def same_padding(input_size: int, filter_width: int, stride: int) -> tuple[int, int]:
    """(before, after) zero padding that makes out = ceil(in / s), TensorFlow's "same".

    The total is max((out - 1) * s + fw - in, 0); an odd total puts the extra
    row or column after, as TensorFlow does.
    """
    out = -(-input_size // stride)
    total = max((out - 1) * stride + filter_width - input_size, 0)
    return total // 2, total - total // 2
