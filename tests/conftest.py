"""Shared pytest hooks."""

from __future__ import annotations

import sys


def pytest_terminal_summary(terminalreporter):
    """Report the largest error the PyTorch cross-checks saw, when they ran."""
    module = sys.modules.get("test_torch")
    if module is not None and any(module.WORST.values()):
        worst = ", ".join(f"{k} {v:.1e}" for k, v in module.WORST.items())
        terminalreporter.write_line(f"PyTorch cross-check, largest relative error: {worst}")
