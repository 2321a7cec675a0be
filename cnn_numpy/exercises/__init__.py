"""Build it yourself: the course's functions as exercises, checked with hints, then
trained with.

    cnn-numpy exercises DIR        writes the exercise files (never over a changed one)
    cnn-numpy check DIR [NAME]     grades them in order, naming the likely mistake
    cnn-numpy train cnn --engine DIR --dataset mnist-sample --limit 64

From Python:

    from cnn_numpy.exercises import check_exercises, load_engine, write_exercises
    print(check_exercises("DIR"))
    net = Net([...], engine=load_engine("DIR"))

The reference answers are cnn-numpy's naive engine (cnn_numpy/engines/naive.py) and
its dense layer (cnn_numpy/layers/dense.py).
"""

from __future__ import annotations

from .checker import Report, Result, check_exercises
from .engine import (
    EngineReport,
    compare_engines,
    describe_comparison,
    is_learner_engine,
    load_engine,
)
from .files import write_exercises
from .spec import ENGINE_FUNCTIONS, NAMES

__all__ = ["ENGINE_FUNCTIONS", "NAMES", "EngineReport", "Report", "Result", "check_exercises",
           "compare_engines", "describe_comparison", "is_learner_engine", "load_engine",
           "write_exercises"]
