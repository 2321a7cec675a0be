"""Shared pytest hooks."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import threadpoolctl
from hypothesis import settings

from cnn_numpy.cli import main
from cnn_numpy.data import load_dataset

ROOT = Path(__file__).resolve().parents[1]

# Two or more xdist workers keep every core busy already: BLAS's own threads in each
# worker (and in the programs the tests start) would only crowd the cores, and
# OpenBLAS's waiting threads spin, taking time from the other worker (the suite took
# 285-303 s on 2 cores so, 233 s with one BLAS thread a worker).  Tests that are about
# thread counts set their own.
if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1:
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    threadpoolctl.threadpool_limits(int(os.environ["OPENBLAS_NUM_THREADS"]), user_api="blas")


# In CI (the environment variable CI set to 1 or true, as .ci/run does) every run draws
# the same examples: a new draw must not turn CI red by chance.  Runs elsewhere draw
# afresh each time and so keep searching; a failure they find becomes an @example.
# (The fast path's float32 comparisons hold on all but rare draws: ill-conditioned ones,
# and a max pool whose two largest values in a window differ by a rounding error, where
# the two paths may route the gradient to different inputs, both rightly.)
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI", "").strip().lower() in ("1", "true", "yes"):
    settings.load_profile("ci")


@pytest.fixture(scope="session", autouse=True)
def subprocesses_import_this_checkout():
    """Python subprocesses (the command line, the examples) import this checkout's
    cnn_numpy, whatever is installed: a script's own folder starts its sys.path, and an
    editable install may point at another clone, or at one since deleted."""
    before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), before]))
    yield
    if before is None:
        del os.environ["PYTHONPATH"]
    else:
        os.environ["PYTHONPATH"] = before


@pytest.fixture(scope="module")
def sample():
    """The bundled MNIST sample (10,000 real digits), loaded once per test module."""
    return load_dataset("mnist-sample", progress=False)


@pytest.fixture(scope="session")
def model(tmp_path_factory) -> Path:
    """A cnn model file trained briefly on the sample (about 97% accurate); read it, never
    write it."""
    path = tmp_path_factory.mktemp("model") / "cnn.npz"
    assert main(["train", "cnn", "--dataset", "mnist-sample", "--no-progress", "--limit", "3000",
                 "--epochs", "2", "--validation", "0", "--save", str(path)]) == 0
    return path


@pytest.fixture
def capture_figures(monkeypatch):
    """capture_figures(module) -> a list that collects every Figure module.save_figure
    writes, in order (the files are still written)."""

    def start(module) -> list:
        saved = []
        original = module.save_figure

        def capture(fig, path):
            saved.append(fig)
            original(fig, path)

        monkeypatch.setattr(module, "save_figure", capture)
        return saved

    return start


def pytest_terminal_summary(terminalreporter):
    """Report the largest error the PyTorch cross-checks saw, when they ran."""
    module = sys.modules.get("test_torch")
    if module is not None and any(module.WORST.values()):
        worst = ", ".join(f"{k} {v:.1e}" for k, v in module.WORST.items())
        terminalreporter.write_line(f"PyTorch cross-check, largest relative error: {worst}")
