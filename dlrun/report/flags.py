"""Flags beside the label: gradients that vanish or explode, units that die or saturate.

Independent of the label (diagnose.py) and read from the last few epochs of the per-epoch
gradient norms and unit statistics that training records.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from dlrun.report.curves import arrays, column, median, recent
from dlrun.report.thresholds import DEFAULT_THRESHOLDS, Thresholds

FLAGS = ("vanishing_gradients", "exploding_gradients", "dead_units", "saturated_units")


def _gradient_flags(metrics: dict, t: Thresholds) -> dict[str, str]:
    """vanishing_gradients from the per-layer norms, exploding_gradients from the global norm."""
    flags = {}
    layers = [c for c in metrics if c.startswith("grad_norm_")]
    if len(layers) >= 2:  # column order is network order: first layer first
        first, last = recent(metrics, layers[0], t.window), recent(metrics, layers[-1], t.window)
        if first is not None and last and first / last < t.vanishing_ratio:
            flags["vanishing_gradients"] = (
                f"{layers[0]} {first:.3g} vs {layers[-1]} {last:.3g} "
                f"(ratio {first / last:.1e}, median of last {t.window} epochs)"
            )
    norms = column(metrics, "grad_norm")
    if norms is None:
        return flags
    if np.isinf(norms).any():
        epoch = int(np.flatnonzero(np.isinf(norms))[0]) + 1
        flags["exploding_gradients"] = f"grad_norm infinite at epoch {epoch}"
        return flags
    finite = norms[np.isfinite(norms)]
    latest = median(finite[-t.window :]) if len(finite) else None
    if latest is not None and latest > t.exploding_norm:
        flags["exploding_gradients"] = f"grad_norm {latest:.3g} (median of last {t.window} epochs)"
    elif latest is not None and finite[0] > 0 and latest / finite[0] > t.exploding_growth:
        flags["exploding_gradients"] = (
            f"grad_norm grew {latest / finite[0]:.0f}x: {finite[0]:.3g} "
            f"at first to {latest:.3g} (median of last {t.window} epochs)"
        )
    return flags


def gradient_and_unit_flags(
    metrics: pd.DataFrame | None, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> dict[str, str]:
    """Return {flag: evidence} for each of FLAGS that fires, read from the last few epochs."""
    metrics = arrays(metrics)
    if not metrics or len(next(iter(metrics.values()))) == 0:
        return {}
    with np.errstate(divide="ignore", invalid="ignore"):
        flags = _gradient_flags(metrics, thresholds)
    for flag, name, limit in (
        ("dead_units", "dead_fraction", thresholds.dead_fraction),
        ("saturated_units", "saturated_fraction", thresholds.saturated_fraction),
    ):
        share = recent(metrics, name, thresholds.window)
        if share is not None and share > limit:
            flags[flag] = f"{name} {share:.2f} > {limit:g} (median of last {thresholds.window} epochs)"
    return {flag: flags[flag] for flag in FLAGS if flag in flags}
