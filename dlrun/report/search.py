"""How an adaptive search progressed: the best value so far against trials and against
trial-epochs spent, the two axes on which searches (and pruning) are compared.

Trials are taken in the order they were started: by their number (trial-NNN is numbered in the
order the sampler proposed them; a batch starts together). Trial-epochs are the epochs each
trial ran, summed in that order, so a pruned trial counts only the epochs it trained. Pure
pandas over the report's rows; the PNG (plots.py's matplotlib) is drawn by `search_plot`.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from dlrun.report.html import read_sweeps

# Searches whose progress is worth a plot: every sampler's but the grid's, whose order is fixed.
NOT_ADAPTIVE = ("grid",)


def search_kind(paths: list[Path]) -> str | None:
    """The `search` recorded in the first sweep.yaml among `paths`, else its plan's mode (grid or
    random: sweeps written before searches were recorded); None for plain runs."""
    for record in read_sweeps(paths):
        plan = record.get("plan") if isinstance(record.get("plan"), dict) else {}
        kind = record.get("search") or plan.get("mode")
        if kind:
            return str(kind)
    return None


def objective(frame: pd.DataFrame, paths: list[Path]) -> tuple[str, bool]:
    """(column, maximise): the sweep's recorded `metric` when the rows have it, else the
    validation accuracy for classifiers and the validation loss otherwise."""
    recorded = next((r.get("metric") for r in read_sweeps(paths) if r.get("metric")), None)
    if recorded in frame:
        metric = recorded
    elif "best_val_accuracy" in frame and frame["best_val_accuracy"].notna().any():
        metric = "best_val_accuracy"
    else:
        metric = "best_val_loss"
    return metric, not metric.endswith("loss")


def best_so_far(frame: pd.DataFrame, metric: str, maximise: bool) -> pd.DataFrame:
    """One row per trial in start order (by run name): `trials` (1..n), `trial_epochs` (epochs
    run so far, summed), `value` (the trial's own) and `best` (the best value so far; NaN until
    a trial has one: a diverged or failed trial's missing value is skipped)."""
    number = pd.to_numeric(frame["run"].astype(str).str.extract(r"(\d+)\D*$")[0], errors="coerce")
    runs = frame.assign(_number=number).sort_values(["_number", "run"], kind="stable")
    values = pd.to_numeric(runs[metric], errors="coerce").reset_index(drop=True)
    epochs = pd.to_numeric(runs["epochs_run"], errors="coerce").fillna(0).reset_index(drop=True)
    best = (values.cummax() if maximise else values.cummin()).ffill()
    return pd.DataFrame({"run": runs["run"].to_numpy(), "trials": range(1, len(runs) + 1),
                         "trial_epochs": epochs.cumsum(), "value": values, "best": best})


def search_plot(frame: pd.DataFrame, paths: list[Path], folder: Path) -> list[Path]:
    """Draw `search_progress.png` into `folder` for an adaptive search; return [] otherwise."""
    kind = search_kind(paths)
    if kind is None or kind in NOT_ADAPTIVE or frame.empty:
        return []
    from dlrun.report import plots  # matplotlib only when drawing

    metric, maximise = objective(frame, paths)
    series = best_so_far(frame, metric, maximise)
    return [plots.search_progress(series, metric, f"{kind} search", folder / "search_progress.png")]
