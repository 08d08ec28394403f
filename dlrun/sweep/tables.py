"""What `dlrun sweep` prints: the plan before it runs, the best trials after."""

from __future__ import annotations

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dlrun.report.terminal import terminal_table
from dlrun.sweep.folder import FINAL_STATUSES
from dlrun.sweep.plan import Plan
from dlrun.text import plural

# What the end table may show of each trial, beside its swept values (the report's renderer
# picks those that fit the console).
METRICS = ("status", "pruned_epoch", "epochs_run", "best_val_loss", "best_val_accuracy", "test_accuracy")


def plan_table(plan: Plan) -> Table:
    """The plan as a table: one row per group, with what it costs."""
    from dlrun.data import describe

    groups = len(plan.groups)
    table = Table(
        title=f"{plural(len(plan.trials), 'trial')} ({plan.mode}) in "
        f"{plural(groups, 'group')} = {plural(groups, 'compiled program')}"
    )
    for column in ("group", "trials", "model", "data", "batch", "act", "optim", "epochs", "updates"):
        table.add_column(column, no_wrap=True)
    for group in plan.groups:
        cfg, shape = group.trials[0].cfg, group.shape
        steps = describe(cfg.data).n_train // cfg.batch_size
        cells = (
            group.id,
            group.size,
            shape["model"],
            shape["data"],
            shape["batch_size"],
            shape["activation"],
            shape["optim"],
            shape["epochs"],
            f"{group.size * cfg.epochs * steps:,}",
        )
        table.add_row(*(escape(str(cell)) for cell in cells))  # a user's model is named by them
    varied = escape(", ".join(plan.space)) or "nothing"
    cost = sum(g.size * g.trials[0].cfg.epochs for g in plan.groups)
    table.caption = (
        f"varied: {varied}; cost: {plural(cost, 'trial-epoch')} (updates = trials x epochs x steps)"
    )
    return table


def _typed(value):
    """A swept value as the report reads it from config.yaml: a number as a number (so that it is
    formatted as the report formats it), anything else as its text."""
    if not isinstance(value, str):
        return value
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


def best_table(index: pd.DataFrame, plan: Plan, top: int = 10, width: int | None = None) -> Table:
    """Return the best trials by validation accuracy (or loss for regression) as the report's
    terminal table (dlrun/report/terminal.py), `width` wide (default: the console's): one
    renderer, so the sweep shows every value as whole as `dlrun report` does."""
    finished = index[index.status.isin(FINAL_STATUSES + ("interrupted",))].copy()
    classification = "best_val_accuracy" in finished and finished.best_val_accuracy.notna().any()
    key = "best_val_accuracy" if classification else "best_val_loss"
    if key in finished:  # absent when no trial wrote a summary (all pending: a lost group)
        finished = finished.sort_values(key, ascending=not classification)
    finished = finished.head(top)
    varying = [k for k in plan.space if k in finished]
    metrics = [c for c in METRICS if c in finished]
    frame = finished[["trial", *varying, *metrics]].rename(columns={"trial": "run"})
    for column in varying:
        frame[column] = frame[column].map(_typed)
    title = f"best {min(top, len(finished))} of {len(index)} trials (by {key})"
    return terminal_table(frame.reset_index(drop=True), varying, title, width or Console().width)
