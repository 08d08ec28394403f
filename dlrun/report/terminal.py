"""The report as a terminal table that fits the console: every value whole, never an ellipsis.

Columns are chosen, not cropped: the run id, the varied settings, the headline metric and the
label always; then optional columns in order of use while they fit. Headers are short; a legend
line under the table names the column each short header stands for (the name `--sort` and
`--columns` take).
"""

from __future__ import annotations

import math
import os

import pandas as pd
from rich.markup import escape
from rich.table import Table

# Short headers, so that a narrow column is as wide as its numbers; the legend spells them out.
HEADERS = {
    "epochs_run": "ep",
    "best_epoch": "best ep",
    "best_val_loss": "val loss",
    "best_val_accuracy": "val acc",
    "test_accuracy": "test acc",
    "test_loss": "test loss",
    "test_psnr": "test PSNR",
    "test_psnr_noisy_input": "noisy PSNR",
    "train_loss": "train loss",
    "val_loss": "last val loss",
    "train_accuracy": "train acc",
    "val_accuracy": "last val acc",
    "time_s": "time s",
    "batch_size": "batch",
    "activation": "act",
    "weight_decay": "wd",
    "init_scale": "init sc",
}
# The order columns appear in, left to right, after the run id and the varied settings.
DISPLAY_ORDER = [
    "status",
    "epochs_run",
    "best_epoch",
    "train_loss",
    "best_val_loss",
    "test_loss",
    "train_accuracy",
    "best_val_accuracy",
    "test_accuracy",
    "test_psnr",
    "test_psnr_noisy_input",
    "gap",
    "time_s",
    "diagnosis",
    "flags",
]
# Which optional columns a wider console gains first: the test accuracy answers "which is best"
# (an image task's PSNR, in dB, beside the noisy input's), the loss tells apart runs at the
# same accuracy, the gap says over- or underfit.
OPTIONAL = [
    "test_accuracy",
    "test_psnr",
    "test_psnr_noisy_input",
    "best_val_loss",
    "epochs_run",
    "gap",
    "best_epoch",
    "time_s",
    "test_loss",
    "flags",
    "train_loss",
    "train_accuracy",
]
# rich's default box: one border per column plus one, and one space of padding each side.
BORDER_PER_COLUMN, BORDER_EDGE = 3, 1
LEFT = ("run", "status", "diagnosis", "flags")


def fmt_metric(column: str, value) -> str:
    """A metric as it fits a narrow column: 97.3%, 0.168, 4.59e+04, +0.046; blank when unknown."""
    if isinstance(value, (list, tuple)):
        return ", ".join(map(str, value))
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        if "accuracy" in column:
            return f"{value:.1%}"
        if column == "gap":
            return f"{value:+.2g}"
        if column in ("epochs_run", "best_epoch") and value.is_integer():
            return str(int(value))
        return f"{value:.3g}"
    return str(value)


def status_text(status, pruned_epoch) -> str:
    """A run's status; a pruned one with the epoch it stopped at, `pruned@2`, short for a narrow
    column (the legend spells it out)."""
    if status == "pruned" and not _missing(pruned_epoch):
        return f"pruned@{int(pruned_epoch)}"
    return str(status)


def setting_texts(values) -> list[str]:
    """The values of one setting as short texts that stay distinct: 3e-05, 0.0003, 10, [8, 8].

    Floats get the fewest significant digits (3 at least) that keep every distinct value
    distinct, so a random search's 0.0012345 and 0.0012399 do not read as one value.
    """
    values = list(values)
    distinct = len({_key(v) for v in values})
    for digits in range(3, 18):
        texts = [_setting(v, digits) for v in values]
        if len(set(texts)) >= distinct:
            return texts
    return [_setting(v, 17) for v in values]


def _key(value):
    return "" if _missing(value) else value


def _missing(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _setting(value, digits: int) -> str:
    if _missing(value):
        return ""
    if isinstance(value, float):
        if value.is_integer() and abs(value) < 1e15:
            return str(int(value))  # a seed read back as 1.0 beside a blank is still seed 1
        return min(f"{value:.{digits}g}", repr(value), key=len)
    return str(value)


def run_ids(names: list[str]) -> tuple[str, list[str]]:
    """(header, ids): the run names without the prefix they all share, e.g. ('trial', ['003'])."""
    if len(names) < 2:
        return "run", list(names)
    prefix = os.path.commonprefix(names)
    cut = max(prefix.rfind(sep) for sep in "-_/") + 1
    if cut == 0 or any(len(name) == cut for name in names):
        return "run", list(names)
    header = prefix[:cut].rstrip("-_/").rsplit("/", 1)[-1] or "run"
    return header, [name[cut:] for name in names]


def header_of(column: str, taken: set) -> str:
    """The short header of a column: HEADERS, else a setting's last dotted part when unique."""
    if column in HEADERS:
        return HEADERS[column]
    parts = column.split(".")
    # data.name=moons reads as "data moons"; a bare "name" would not say of what
    last = parts[-2] if parts[-1] == "name" and len(parts) > 1 else parts[-1]
    short = HEADERS.get(last, last)
    return short if short not in taken else column


def table_width(widths: list[int]) -> int:
    return sum(widths) + BORDER_PER_COLUMN * len(widths) + BORDER_EDGE


def fits(widths: list[int], limit: int) -> bool:
    return table_width(widths) <= limit


def choose(required: list[str], optional: list[str], widths: dict, limit: int) -> list[str]:
    """The required columns and, in order, each optional one that still fits in `limit`."""
    chosen = list(required)
    for column in optional:
        if fits([widths[c] for c in (*chosen, column)], limit):
            chosen.append(column)
    return chosen


def build_table(title: str, columns: list[str], headers: dict, cells: dict, width: int, left=LEFT) -> Table:
    """A rich table whose columns are exactly as wide as their widest cell: nothing to crop.
    At least as wide as its title (up to `width`), so that a folder's path in it is not broken.
    Every text is escaped: a folder or a value such as `[red]abc` is shown, not read as markup."""
    table = Table(title=escape(title), min_width=min(len(title), width))
    for column in columns:
        width = max([len(headers[column]), *map(len, cells[column])])
        # When even the required columns are too wide, rich narrows the wrapping columns first:
        # the run id folds onto a second line (whole, no ellipsis) and every number stays whole.
        wraps = column == columns[0]
        table.add_column(
            escape(headers[column]),
            min_width=min(width, 3) if wraps else width,
            no_wrap=not wraps,
            overflow="fold",
            justify="left" if column in left else "right",
        )
    for row in zip(*(cells[column] for column in columns)):
        table.add_row(*map(escape, row))
    return table


def legend(columns: list[str], headers: dict, width: int) -> list[str]:
    """Lines of 'val acc = best_val_accuracy, ...' (each short header in use and the column it
    names) at most `width` wide, broken between pairs so that no pair is split."""
    pairs = [f"{headers[c]} = {c}" for c in columns if headers[c] != c and c != "run"]
    lines = []
    for pair in pairs:
        if lines and len(lines[-1]) + len(", ") + len(pair) < width:
            lines[-1] += ", " + pair
        else:
            lines.append(pair)
    return [line + "," for line in lines[:-1]] + lines[-1:]


def check_columns(asked: list[str], valid: list[str], headers: dict) -> list[str]:
    """Columns named by `--columns` (by name or short header), as column names; ValueError names
    the first unknown one and the valid ones."""
    by_header = {headers.get(c, c): c for c in valid}
    out = []
    for name in asked:
        column = name if name in valid else by_header.get(name)
        if column is None:
            raise ValueError(f"unknown --columns column '{name}' (choose from: {', '.join(valid)})")
        out.append(column)
    return out


def terminal_table(
    frame: pd.DataFrame, varying: list, title: str, width: int = 80, columns: list[str] | None = None
) -> Table:
    """The runs as a table at most `width` wide (see the module docstring); `columns` picks the
    columns instead (ValueError for an unknown one)."""
    if "runs" in frame:
        return grouped_table(frame, title, width, columns)
    varying = [key for key in varying if key in frame]
    headers, cells = {}, {}
    headers["run"], cells["run"] = run_ids([str(name) for name in frame["run"]])
    for key in varying:
        headers[key], cells[key] = header_of(key, set(headers.values())), setting_texts(frame[key])
    metrics = [c for c in frame.columns if c not in headers and c not in ("folder", "advice", "evidence")]
    for column in metrics:
        headers[column] = HEADERS.get(column, column)
        cells[column] = [fmt_metric(column, value) for value in frame[column]]
    if "status" in frame and "pruned_epoch" in frame:
        cells["status"] = [status_text(s, e) for s, e in zip(frame["status"], frame["pruned_epoch"])]
    completed = len(frame) and "status" in frame and (frame["status"] == "completed").all()
    if completed:
        title += ", all completed"  # the title says so; the width goes to the numbers
    elif len(frame) and "status" in frame:
        title += ", " + ", ".join(f"{n} {s}" for s, n in frame["status"].value_counts().items())
    if columns:
        chosen = check_columns(columns, ["run", *varying, *metrics], headers)
        chosen = chosen if "run" in chosen else ["run", *chosen]
    else:
        chosen = _default_columns(frame, varying, column_widths(headers, cells), width, completed)
    table = build_table(title, chosen, headers, cells, width)
    _caption(table, frame, chosen, headers, column_widths(headers, cells))
    return table


def column_widths(headers: dict, cells: dict) -> dict:
    """Each column's width: its header or its widest cell."""
    return {c: max([len(headers[c]), *map(len, texts)]) for c, texts in cells.items()}


def _default_columns(frame, varying, widths: dict, width: int, completed: bool) -> list[str]:
    classification = "best_val_accuracy" in frame and frame["best_val_accuracy"].notna().any()
    headline = "best_val_accuracy" if classification else "best_val_loss"
    required = [
        "run",
        *varying,
        *(["status"] if not completed and "status" in frame else []),
        *[c for c in (headline, "diagnosis") if c in frame],
    ]
    optional = [
        c
        for c in OPTIONAL
        if c in frame
        and c not in required
        and _known(frame[c])
        and not (c == "test_accuracy" and not classification)
    ]
    chosen = choose(required, optional, widths, width)
    order = {c: i for i, c in enumerate(DISPLAY_ORDER)}
    head = ["run", *varying]
    return head + sorted((c for c in chosen if c not in head), key=lambda c: order.get(c, len(order)))


def _known(values: pd.Series) -> bool:
    """Whether a column has anything to show: a flags column of empty lists has not."""
    return bool(values.map(lambda v: bool(v) if isinstance(v, list) else not _missing(v)).any())


def _caption(table: Table, frame: pd.DataFrame, columns: list[str], headers: dict, widths: dict) -> None:
    lines = legend(columns, headers, table_width([widths[c] for c in columns]))
    if "status" in columns and "pruned_epoch" in frame and frame["pruned_epoch"].notna().any():
        lines.append("pruned@N = stopped by the search's pruner after epoch N")
    if "advice" in frame and "diagnosis" in frame:
        advice = frame.drop_duplicates("diagnosis").set_index("diagnosis")["advice"]
        lines.extend(f"{label}: {text}" for label, text in advice.items())
    table.caption, table.caption_justify = escape("\n".join(lines)) or None, "left"


def mean_std(column: str, mean, std) -> str:
    """'92.3±1.1%', '0.688±0.0057': a group's mean and spread, short enough to stay whole."""
    if _missing(mean):
        return ""
    if "accuracy" in column:
        return f"{mean:.1%}" if _missing(std) or std == 0 else f"{100 * mean:.1f}±{100 * std:.1f}%"
    text = fmt_metric(column, float(mean))
    return text if _missing(std) or std == 0 else f"{text}±{float(std):.2g}"


def grouped_table(
    frame: pd.DataFrame, title: str, width: int = 80, columns: list[str] | None = None
) -> Table:
    """Mean±std per group (e.g. over seeds), one row per value of the grouping column (the first),
    fitted to `width` like terminal_table; `columns` names metrics (best_val_loss, ...)."""
    key = frame.columns[0]
    metrics = [c[: -len("_mean")] for c in frame.columns if c.endswith("_mean")]
    headers = {key: header_of(key, set()), "runs": "runs", "diagnosis": "diagnosis"}
    cells = {
        key: setting_texts(frame[key]),
        "runs": [str(n) for n in frame["runs"]],
        "diagnosis": [str(label) for label in frame["diagnosis"]],
    }
    for metric in metrics:
        headers[metric] = HEADERS.get(metric, metric)
        cells[metric] = [
            mean_std(metric, m, s) for m, s in zip(frame[f"{metric}_mean"], frame[f"{metric}_std"])
        ]
    if columns:
        chosen = check_columns(columns, [key, "runs", *metrics, "diagnosis"], headers)
        chosen = chosen if key in chosen else [key, *chosen]
    else:
        widths = column_widths(headers, cells)
        headline = "best_val_accuracy" if "best_val_accuracy" in metrics else "best_val_loss"
        required = [key, "runs", *[m for m in (headline,) if m in metrics], "diagnosis"]
        optional = [c for c in OPTIONAL if c in metrics and c not in required]
        chosen = choose(required, optional, widths, width)
        order = {c: i for i, c in enumerate(DISPLAY_ORDER)}
        chosen = [key, "runs", *sorted(chosen[2:], key=lambda c: order.get(c, len(order)))]
    table = build_table(title, chosen, headers, cells, width, left=(key, "diagnosis"))
    widths = column_widths(headers, cells)
    lines = legend(chosen, headers, table_width([widths[c] for c in chosen]))
    table.caption = escape("\n".join([*lines, "mean±std over the runs of each group"]))
    table.caption_justify = "left"
    return table
