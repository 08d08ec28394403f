"""What `dlrun sweep` prints: the plan before it runs, the best trials after."""

from __future__ import annotations

import pandas as pd
from rich.markup import escape
from rich.table import Table

from dlrun.sweep.folder import FINAL_STATUSES
from dlrun.sweep.plan import Plan
from dlrun.text import plural

SHORT = {
    "epochs_run": "epochs",
    "best_val_loss": "val loss",
    "best_val_accuracy": "val acc",
    "test_accuracy": "test acc",
}


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


def _cell(column: str, value) -> str:
    """A cell as rich markup: a swept value such as `[relu]` is text, so it is escaped."""
    if isinstance(value, float):
        return "" if pd.isna(value) else (f"{value:.2%}" if "accuracy" in column else f"{value:.4g}")
    return escape(str(value))


def best_table(index: pd.DataFrame, plan: Plan, top: int = 10) -> Table:
    """Return the best trials by validation accuracy (or loss for regression) as a rich table."""
    finished = index[index.status.isin(FINAL_STATUSES + ("interrupted",))].copy()
    classification = "best_val_accuracy" in finished and finished.best_val_accuracy.notna().any()
    key = "best_val_accuracy" if classification else "best_val_loss"
    if key in finished:  # absent when no trial wrote a summary (all pending: a lost group)
        finished = finished.sort_values(key, ascending=not classification)
    finished = finished.head(top)
    table = Table(title=f"best {min(top, len(finished))} of {len(index)} trials (by {key})")
    columns = [
        "trial",
        *plan.space,
        "status",
        "epochs_run",
        "best_val_loss",
        "best_val_accuracy",
        "test_accuracy",
    ]
    columns = [c for c in columns if c in finished]
    for column in columns:
        table.add_column(
            escape(SHORT.get(column, column)),
            no_wrap=column in ("trial", "status"),
            justify="left" if column in ("trial", "status") else "right",
        )
    for _, row in finished.iterrows():
        table.add_row(*(_cell(column, row[column]) for column in columns))
    return table
