"""A search of several metrics (`--metric a,b`): its Pareto front, the trials no other trial
beats on every metric at once. Pure pandas over the report's rows (the directions are
dlrun/objectives.py's, the ones the study was told); `front_table` is the terminal's table and
`draw` fills the matplotlib axes of the HTML report's scatter (figures.py).
"""

from __future__ import annotations

import pandas as pd
from rich.table import Table

from dlrun.objectives import direction, metric_names, pareto_front
from dlrun.report.terminal import HEADERS, build_table, choose, column_widths, fmt_metric, setting_texts

# A summary's field -> the report row's column that holds it
COLUMNS = {"train_time_s": "time_s"}


def recorded_metrics(records: list[dict]) -> list[str]:
    """The metrics the first sweep record that names any optimised, in its order."""
    recorded = next((r.get("metric") for r in records if r.get("metric")), None)
    return metric_names(recorded) if recorded else []


def front(frame: pd.DataFrame, records: list[dict]) -> tuple[list[str], pd.DataFrame] | None:
    """(the row columns of the metrics, the finished trials with an `on_front` column, the front
    first and each part best first by the first metric); None unless the sweep optimised
    several metrics that the rows hold."""
    metrics = recorded_metrics(records)
    columns = [COLUMNS.get(name, name) for name in metrics]
    if len(columns) < 2 or any(c not in frame for c in columns) or frame.empty:
        return None
    finished = frame[frame["status"].isin(("completed", "diverged"))] if "status" in frame else frame
    values = finished[columns].apply(pd.to_numeric, errors="coerce")
    maximise = [direction(name) == "maximize" for name in metrics]
    rows = finished.assign(on_front=pareto_front(values.to_numpy(), maximise))
    rows = rows.sort_values(["on_front", columns[0]], ascending=[False, not maximise[0]], kind="stable")
    return columns, rows


def _arrow(column: str) -> str:
    name = next((k for k, v in COLUMNS.items() if v == column), column)
    return "up" if direction(name) == "maximize" else "down"


def describe(columns: list[str]) -> str:
    """'val acc up, params down': the metrics and which way is better."""
    return ", ".join(f"{HEADERS.get(c, c)} {_arrow(c)}" for c in columns)


def front_table(columns: list[str], rows: pd.DataFrame, varying: list, width: int = 80) -> Table:
    """The front's trials as a table at most `width` wide: the run, the metrics, then as many
    of the swept settings as fit."""
    on = rows[rows["on_front"]]
    headers = {"run": "run", **{c: HEADERS.get(c, c) for c in columns}}
    cells = {"run": [str(name) for name in on["run"]]}
    cells.update({c: [fmt_metric(c, v) for v in on[c]] for c in columns})
    settings = [key for key in varying if key in on and key not in headers]
    for key in settings:
        headers[key], cells[key] = key.rsplit(".", 1)[-1], setting_texts(on[key])
    chosen = choose(["run", *columns], settings, column_widths(headers, cells), width)
    title = f"Pareto front: {len(on)} of {len(rows)} finished trials ({describe(columns)})"
    return build_table(title, chosen, headers, cells, width)


def draw(axis, columns: list[str], rows: pd.DataFrame) -> None:
    """The first two metrics as a scatter: every finished trial grey, the front in colour and
    joined in the order of the first metric, so the trade-off reads as one line."""
    x, y = columns[0], columns[1]
    off, on = rows[~rows["on_front"]], rows[rows["on_front"]].sort_values(x)
    axis.scatter(off[x], off[y], s=14, color="grey", alpha=0.5, label="dominated")
    axis.plot(on[x], on[y], "o-", color="C3", label="Pareto front")
    for _, row in on.iterrows():
        at = (row[x], row[y])
        axis.annotate(str(row["run"]), at, fontsize=7, xytext=(3, 3), textcoords="offset points")
    axis.set_xlabel(f"{HEADERS.get(x, x)} ({_arrow(x)} is better)")
    axis.set_ylabel(f"{HEADERS.get(y, y)} ({_arrow(y)} is better)")
    # parameter counts grow by factors as a network widens: equal steps on a log axis
    if x == "params":
        axis.set_xscale("log")
    if y == "params":
        axis.set_yscale("log")
    axis.legend(fontsize=8)
