"""Turn report rows into what a person reads: a terminal table, CSV, Markdown, JSON, HTML, LaTeX.

The terminal table shows the columns that matter at a glance; every other format carries every
column (JSON: one object per run, `flags` a list, plus the run's folder).
"""

from __future__ import annotations

import io
import json
import math

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from dlrun.report.cells import cell_text
from dlrun.report.ensemble import ACCURACIES, ensembles
from dlrun.report.terminal import terminal_table
from dlrun.text import plural

FORMATS = ("table", "csv", "markdown", "json", "html", "latex")


def report_title(runs: int, groups: int | None, folders: list) -> str:
    """'1 run from runs/x', or with --group-by '2 groups of 6 runs from runs/x'."""
    counted = plural(runs, "run") if groups is None else f"{plural(groups, 'group')} of {plural(runs, 'run')}"
    return f"{counted} from {', '.join(map(str, folders))}"


def table_parts(
    frame: pd.DataFrame,
    varying: list,
    shared: dict,
    title: str,
    width: int = 80,
    columns: list[str] | None = None,
) -> list:
    """What `report --format table` prints: the shared settings in one line, then the table
    fitted to `width` (terminal.py). ValueError names an unknown column of `columns`."""
    line = escape(", ".join(header_lines(shared)) or "-")  # [relu] is text, not rich markup
    return [
        f"[dim]same in every run (defaults left out): {line}[/]",
        terminal_table(frame, varying, title, width, columns),
    ]


def ensemble_table(votes: pd.DataFrame) -> Table:
    """The votes, one row per ensemble: its settings as in the report, accuracies as percentages."""
    table = Table(title="ensembles (test accuracy)")
    for column in votes.columns:
        table.add_column(escape(column), justify="right")
    for _, row in votes.iterrows():  # a setting such as [8, 8] is text, not rich markup
        table.add_row(
            *(
                f"{value:.2%}"
                if column in ACCURACIES
                else str(int(value))
                if column == "members"
                else escape(cell_text(column, value))
                for column, value in row.items()
            )
        )
    return table


NO_ENSEMBLES = "no ensembles: need 2+ runs that differ only in seed, with test_predictions.npz"


def ensemble_part(frame: pd.DataFrame, varying: list) -> Table | None:
    """The vote of each group of runs that differ only in their seed; None when there is none."""
    votes = ensembles(frame, varying)
    return None if votes.empty else ensemble_table(votes)


def plain_text(parts: list, width: int = 200) -> str:
    """What rich would print of `parts` (markup, tables), as text without colour for a file;
    wide, so that a file's columns are not cut to a terminal's width."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=width)  # a StringIO is no terminal: no colour codes
    for part in parts:
        console.print(part, highlight=False)
    return buffer.getvalue()


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame.copy()
    if "flags" in out:
        out["flags"] = out["flags"].map(lambda flags: ";".join(flags) if isinstance(flags, list) else flags)
    return out


def to_json(frame: pd.DataFrame) -> str:
    records = []
    for record in frame.to_dict("records"):
        records.append(
            {
                key: (None if isinstance(value, float) and math.isnan(value) else value)
                for key, value in record.items()
            }
        )
    return json.dumps(records, indent=2, default=str) + "\n"


def header_lines(constant: dict) -> list[str]:
    """The hyperparameters shared by every run, printed once above the table."""
    return [f"{key}={value}" for key, value in constant.items()]


def render_text(frame: pd.DataFrame, fmt: str, constant: dict) -> str:
    """Return the rows as csv, markdown, json, html (without curves) or latex text."""
    if fmt == "csv":
        return _plain(frame).to_csv(index=False)
    if fmt == "json":
        return to_json(frame)
    if fmt == "markdown":
        shared = "".join(f"- `{line}`\n" for line in header_lines(constant))
        return (shared + "\n" if shared else "") + _plain(frame).to_markdown(index=False) + "\n"
    if fmt == "latex":
        return _plain(frame).to_latex(index=False, float_format="%.4g", na_rep="")
    if fmt == "html":  # here, not above: the page's figures cost matplotlib's start-up
        from dlrun.report.html import report_page

        return report_page(frame, shared=constant)
    raise ValueError(f"unknown format '{fmt}' (choose from: {', '.join(FORMATS)})")
