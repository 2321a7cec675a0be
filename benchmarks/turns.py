"""Sizing the turns of an interleaved measurement (speed.py, zoo.py): imports nothing
but the standard library, so a memory run that imports it stays as small as before."""

from __future__ import annotations

import time
from collections.abc import Callable


def calls_per_turn(fns: dict[str, Callable[[], object]], slice_s: float) -> dict[str, int]:
    """{name: calls that take about slice_s seconds}, after one call of each to warm it up
    (weights built, caches filled) and one timed call."""
    calls = {}
    for name, fn in fns.items():
        fn()
        start = time.perf_counter()
        fn()
        calls[name] = max(1, round(slice_s / (time.perf_counter() - start)))
    return calls
