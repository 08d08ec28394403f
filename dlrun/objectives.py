"""What a search optimises: the metrics of a --metric text, the direction of each, and the
Pareto front of several. A leaf (numpy only): the sweep tells the study these directions and
the report draws the front by the same ones, so they cannot disagree.
"""

from __future__ import annotations

import numpy as np

# Costs: a smaller network or a shorter training is the better one.
MINIMISED = ("params", "train_time_s")


def metric_names(metric: str) -> list[str]:
    """The metrics of a --metric text, in its order ("a,b" -> ["a", "b"])."""
    return [name.strip() for name in str(metric).split(",")]


def direction(metric: str) -> str:
    """Losses, errors and costs are minimised, everything else (accuracies) maximised."""
    return "minimize" if ("loss" in metric or "error" in metric or metric in MINIMISED) else "maximize"


def directions(metric: str) -> list[str]:
    """The direction of each metric of a --metric text, in its order."""
    return [direction(name) for name in metric_names(metric)]


def pareto_front(points, maximise: list[bool]) -> np.ndarray:
    """A boolean mask over the rows of `points` (n x k): True for the rows no other row
    dominates. Row a dominates row b when a is at least as good on every column and better on
    one, as Optuna's `study.best_trials` counts it; rows with a NaN are never on the front.

    1. Turn every column into one to minimise (negate the maximised ones).
    2. A row is dominated when some row is <= on all columns and < on one (O(n^2 k), fine for
       the few thousand trials a sweep holds).
    """
    values = np.asarray(points, dtype=float).reshape(len(points), len(maximise))
    values = np.where(np.asarray(maximise, dtype=bool), -values, values)
    finite = np.isfinite(values).all(axis=1)
    kept = values[finite]
    no_worse = (kept[:, None, :] <= kept[None, :, :]).all(axis=2)  # [i, j]: i no worse than j
    better = (kept[:, None, :] < kept[None, :, :]).any(axis=2)
    dominated = (no_worse & better).any(axis=0)
    front = np.zeros(len(values), dtype=bool)
    front[np.flatnonzero(finite)[~dominated]] = True
    return front
