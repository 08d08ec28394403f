"""How a search progressed: the best value so far against trials and against trial-epochs
spent, the two axes on which searches (and pruning) are compared.

Trials are taken in the order they were started: by their number (trial-NNN is numbered in the
order the sampler proposed them; a batch starts together). Trial-epochs are the epochs each
trial ran, summed in that order, so a pruned trial counts only the epochs it trained. Pure
pandas over the report's rows; `draw` fills matplotlib axes that plots.py (PNG) and figures.py
(the HTML report's SVG) make.
"""

from __future__ import annotations

import pandas as pd

from dlrun.objectives import direction, metric_names

# Searches whose progress is worth a plot: every sampler's but the grid's, whose order is fixed.
NOT_ADAPTIVE = ("grid",)


def search_kind(records: list[dict]) -> str | None:
    """The `search` of the first sweep record (sweep.yaml) that has one, else its plan's mode
    (grid or random: sweeps written before searches were recorded); None for plain runs."""
    for record in records:
        plan = record.get("plan") if isinstance(record.get("plan"), dict) else {}
        kind = record.get("search") or plan.get("mode")
        if kind:
            return str(kind)
    return None


def objective(frame: pd.DataFrame, records: list[dict]) -> tuple[str, bool]:
    """(column, maximise): the sweep's recorded `metric` when the rows have it, else the
    validation accuracy for classifiers and the validation loss otherwise."""
    recorded = next((r.get("metric") for r in records if r.get("metric")), None)
    # several metrics (a Pareto search, report/pareto.py): its progress is the first one's
    recorded = metric_names(recorded)[0] if recorded else None
    if recorded in frame:
        metric = recorded
    elif "best_val_accuracy" in frame and frame["best_val_accuracy"].notna().any():
        metric = "best_val_accuracy"
    else:
        metric = "best_val_loss"
    return metric, direction(metric) == "maximize"


def best_so_far(frame: pd.DataFrame, metric: str, maximise: bool) -> pd.DataFrame:
    """One row per trial in start order (by the number in its name): `trials` (1..n),
    `trial_epochs` (epochs run so far, summed), `value` (the trial's own) and `best` (the best
    so far; NaN until a trial has a value: a diverged or failed trial's missing one is skipped)."""
    number = pd.to_numeric(frame["run"].astype(str).str.extract(r"(\d+)\D*$")[0], errors="coerce")
    runs = frame.assign(_number=number).sort_values(["_number", "run"], kind="stable")
    values = pd.to_numeric(runs[metric], errors="coerce").reset_index(drop=True)
    epochs = pd.to_numeric(runs["epochs_run"], errors="coerce").fillna(0).reset_index(drop=True)
    best = (values.cummax() if maximise else values.cummin()).ffill()
    return pd.DataFrame(
        {
            "run": runs["run"].to_numpy(),
            "trials": range(1, len(runs) + 1),
            "trial_epochs": epochs.cumsum(),
            "value": values,
            "best": best,
        }
    )


def progress(frame: pd.DataFrame, records: list[dict]) -> tuple[str, str, pd.DataFrame] | None:
    """(search kind, metric, best_so_far series) for a search worth plotting; None otherwise."""
    kind = search_kind(records)
    if kind is None or kind in NOT_ADAPTIVE or frame.empty:
        return None
    metric, maximise = objective(frame, records)
    return kind, metric, best_so_far(frame, metric, maximise)


def draw(axes, series: pd.DataFrame, metric: str, title: str) -> None:
    """Onto two matplotlib axes: each trial's value as a dot and the best so far as a step line,
    against trials started (how many proposals it took) and trial-epochs (what they cost)."""
    for axis, x, label in (
        (axes[0], "trials", "trials started"),
        (axes[1], "trial_epochs", "trial-epochs spent"),
    ):
        axis.scatter(series[x], series["value"], s=12, alpha=0.5, color="grey", label="trial")
        axis.step(series[x], series["best"], where="post", color="C0", label="best so far")
        axis.set_xlabel(label)
        axis.locator_params(axis="x", integer=True)  # whole trials and epochs
        axis.legend(fontsize=8)
    axes[0].set_ylabel(metric)
    axes[0].set_title(title, fontsize=9)
