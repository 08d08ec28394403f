"""A run's per-epoch metrics as float arrays, and the robust summaries the diagnosis reads.

Shared by the label rules (diagnose.py) and the flags (flags.py). Plain numpy, no JAX.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def arrays(metrics) -> dict[str, np.ndarray]:
    """The frame's columns as float arrays (unparseable cells NaN), converted in one pass: pandas'
    per-column access costs ~50 us a column, a third of the diagnosis of a 2,000-run report.
    A dict (already converted) is returned as it is."""
    if isinstance(metrics, dict):
        return metrics
    if metrics is None or len(metrics.columns) == 0:
        return {}
    try:
        table = metrics.to_numpy(dtype=float)
    except (TypeError, ValueError):  # text cells in a foreign file: convert column by column
        return {
            str(name): pd.to_numeric(metrics[name], errors="coerce").to_numpy(dtype=float)
            for name in metrics.columns
        }
    return dict(zip(map(str, metrics.columns), table.T))


def column(metrics: dict, name: str, keep_all_nan: bool = False) -> np.ndarray | None:
    """Return a column of `arrays(...)`, or None if absent or all NaN.

    An all-NaN column usually carries nothing (accuracy for regression, dead_fraction unknown);
    an all-NaN train loss is kept (`keep_all_nan`) because it means the run diverged at once.
    """
    values = metrics.get(name)
    if values is None or keep_all_nan:
        return values
    return None if len(values) == 0 or np.isnan(values).all() else values


def recent(metrics: dict, name: str, window: int) -> float | None:
    """Median of a column's last `window` finite values (robust to one odd epoch), or None."""
    values = column(metrics, name)
    if values is None:
        return None
    finite = values[np.isfinite(values)]
    return median(finite[-window:]) if len(finite) else None


def median(values: np.ndarray) -> float:
    """np.median of a few values, ~20x quicker (its generality costs ~50 us a call)."""
    ordered = sorted(values.tolist())
    middle = len(ordered) // 2
    return float(ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2)
