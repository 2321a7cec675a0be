"""Learning-rate schedules: the rate for each training step, from the step number alone.

A schedule is a pure function of (step, total steps), so a resumed run
follows exactly the same rates as an uninterrupted one and nothing needs
saving beyond the schedule's name.

    constant   lr
    step       lr, then lr / 10 from half-way, lr / 100 from three quarters of the run
    cosine     lr * (1 + cos(pi * step / total)) / 2: from lr down to almost 0, smoothly
"""

from __future__ import annotations

import math

SCHEDULES = ("constant", "step", "cosine")


def learning_rate(schedule: str, base: float, step: int, total: int) -> float:
    """The learning rate for training step `step` (0-based) of `total` steps."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown learning-rate schedule {schedule!r}: choose one of "
                         f"{', '.join(SCHEDULES)}")
    fraction = step / max(total, 1)
    if schedule == "step":
        return base * (1.0 if fraction < 0.5 else 0.1 if fraction < 0.75 else 0.01)
    if schedule == "cosine":
        return base * 0.5 * (1 + math.cos(math.pi * min(fraction, 1.0)))
    return base
