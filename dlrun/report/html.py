"""The HTML report: one self-contained file that works offline, read top to bottom.

In this order: what was run (command, space, trials by status, time, the settings that differ
from the defaults), the best trials, a search's best value so far against trials and
trial-epochs (random and adaptive searches), the metric against each swept key, every curve overlaid
and coloured by the swept key, the table of runs (a click on a header sorts it; each label opens
on its evidence and advice), then each run's curves. Figures are inline SVG (figures.py); the
only script is the table sort, a few lines inline: no network, no CDN.
"""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd

from dlrun.report import figures
from dlrun.report.cells import cell_text
from dlrun.report.figures import value_text
from dlrun.report.html_parts import escape as _e
from dlrun.report.html_parts import figure as _figure
from dlrun.report.html_parts import section as _section
from dlrun.report.html_searches import pareto_section, population_sections, search_section
from dlrun.report.sweeps import read_sweeps
from dlrun.results import INSPECT_DIR, INSPECT_PAGE
from dlrun.text import plural

# The best trials listed at the top: enough to see whether the winner is a fluke of one seed.
BEST_SHOWN = 5
# The table's columns after the run and its swept keys; one that is blank in every run is dropped.
TABLE_COLUMNS = [
    "status",
    "pruned_epoch",
    "epochs_run",
    "best_epoch",
    "best_val_loss",
    "best_val_accuracy",
    "test_accuracy",
    "test_psnr",
    "test_psnr_noisy_input",
    "test_loss",
    "gap",
    "time_s",
]
HEADERS = {
    "epochs_run": "epochs",
    "best_epoch": "best epoch",
    "best_val_loss": "val loss",
    "best_val_accuracy": "val acc",
    "test_accuracy": "test acc",
    "test_loss": "test loss",
    "test_psnr": "test PSNR dB",
    "test_psnr_noisy_input": "noisy input PSNR dB",
    "time_s": "time s",
    "pruned_epoch": "pruned at",
}
# Columns of a run row that are not settings (so a frame without `varying` still finds its keys).
NOT_SETTINGS = {
    "run",
    "status",
    "epochs_run",
    "best_epoch",
    "train_loss",
    "val_loss",
    "best_val_loss",
    "train_accuracy",
    "val_accuracy",
    "best_val_accuracy",
    "test_accuracy",
    "test_psnr",
    "test_psnr_noisy_input",
    "test_loss",
    "gap",
    "time_s",
    "params",
    "pruned_epoch",
    "diagnosis",
    "flags",
    "advice",
    "evidence",
    "folder",
}

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:0 auto;padding:1em 2em 4em;max-width:1250px;color:#222}
h1{font-size:1.5em;margin-bottom:.1em}h2{margin-top:1.8em;border-bottom:1px solid #ddd}
code{background:#f3f3f3;padding:0 .25em;border-radius:3px}
dl{display:grid;grid-template-columns:9em 1fr;gap:.25em 1em}
dt{color:#666}dd{margin:0}ul.shared{columns:3 16em;margin:0;padding-left:1.2em}
.wide{overflow-x:auto}table{border-collapse:collapse;font-size:13px}
th,td{padding:3px 9px;border-bottom:1px solid #e4e4e4;text-align:right;vertical-align:top;white-space:nowrap}
th{background:#f7f7f7;position:sticky;top:0}td.w,th.w{text-align:left}
table.sortable th{cursor:pointer;user-select:none}table.sortable th:hover{background:#ececec}
th[data-dir=asc]::after{content:" \\25B2"}th[data-dir=desc]::after{content:" \\25BC"}
details{white-space:normal;max-width:34em}summary{cursor:pointer}.flag{color:#a40;font-size:12px}
figure{margin:1em 0}figcaption{color:#666;font-size:13px}svg{max-width:100%;height:auto}
.hint{color:#666;font-size:13px}
"""
# Sort the run table on a header click: numbers as numbers, blanks last either way.
SCRIPT = """
document.querySelectorAll("table.sortable th").forEach((th, i) => th.addEventListener("click", () => {
  const body = th.closest("table").tBodies[0], up = th.dataset.dir !== "asc";
  th.parentNode.querySelectorAll("th").forEach(h => delete h.dataset.dir);
  th.dataset.dir = up ? "asc" : "desc";
  const key = row => row.cells[i].dataset.v ?? row.cells[i].textContent;
  const order = (a, b) => {
    const x = key(a), y = key(b);
    if (x === "" || y === "") return (x === "") - (y === "");
    const d = isNaN(x) || isNaN(y) ? x.localeCompare(y, undefined, {numeric: true}) : x - y;
    return up ? d : -d;
  };
  body.append(...[...body.rows].sort(order));
}));
"""


def _cell_text(column: str, value) -> str:
    return cell_text(column, value)


def _is_blank(value) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _sweep_lines(sweep: dict) -> list[tuple[str, str]]:
    plan = sweep.get("plan") if isinstance(sweep.get("plan"), dict) else {}
    space = plan.get("space") if isinstance(plan.get("space"), dict) else {}
    lines = [("command", f"<code>{_e(sweep.get('command', '?'))}</code>")]
    if space:
        lines.append(("space", ", ".join(f"<code>{_e(k)} = {_e(v)}</code>" for k, v in space.items())))
    counts = [
        f"{plural(len(plan[name]), word)}"
        for name, word in (("trials", "trial"), ("groups", "group"))
        if isinstance(plan.get(name), list)
    ]
    if plan.get("mode") or counts:
        lines.append(("plan", _e(", ".join([str(plan.get("mode", "")), *counts]).strip(", "))))
    if sweep.get("created_at"):
        lines.append(("started", _e(sweep["created_at"])))
    return lines


def _varied(frame: pd.DataFrame, varying: list) -> str:
    """Each swept key with every value it took, written whole."""
    return (
        "<br>".join(
            f"<code>{_e(key)}</code>: "
            + ", ".join(_e(value_text(v)) for v in dict.fromkeys(frame[key].dropna()))
            for key in varying
        )
        or "nothing: every run has the same settings"
    )


def _time(frame: pd.DataFrame) -> str:
    seconds = pd.to_numeric(frame["time_s"], errors="coerce").dropna() if "time_s" in frame else pd.Series()
    if seconds.empty:
        return "unknown"
    return f"{seconds.sum():.1f} s of training in all, {seconds.median():.2g} s a run (median)"


def what_was_run(frame, varying, shared, sweeps, sources, warnings) -> str:
    """The opening section: the sweep's command and space, the runs by status, the time, the
    settings shared by every run that differ from the defaults, and any warnings."""
    lines = [line for sweep in sweeps for line in _sweep_lines(sweep)]
    lines.append(("runs", _e(f"{len(frame)} from {', '.join(map(str, sources))}")))
    status = frame["status"].value_counts() if "status" in frame else pd.Series(dtype=int)
    lines.append(("by status", _e(", ".join(f"{count} {name}" for name, count in status.items()))))
    lines += [("varied", _varied(frame, varying)), ("time", _e(_time(frame)))]
    items = "".join(f"<li><code>{_e(f'{k}={v}')}</code></li>" for k, v in shared.items())
    lines.append(("same in every run", f"<ul class='shared'>{items}</ul>" if items else "defaults only"))
    if warnings:
        listed = "".join(f"<li>{_e(w)}</li>" for w in warnings)
        lines.append(
            (
                "warnings",
                f"<details><summary>{plural(len(warnings), 'warning')}</summary><ul>{listed}</ul></details>",
            )
        )
    body = "".join(f"<dt>{name}</dt><dd>{text}</dd>" for name, text in lines)
    return f"<section id='run'><h2>What was run</h2><dl>{body}</dl></section>"


def _headline(frame: pd.DataFrame) -> str:
    """The column that ranks runs: validation accuracy when they classify, else loss."""
    return figures.metrics_of(frame)[-1]


def ranked(frame: pd.DataFrame) -> pd.DataFrame:
    """The runs best first by their headline metric; runs without it last."""
    metric = _headline(frame)
    return frame.sort_values(metric, ascending=metric.endswith("loss"), na_position="last", kind="stable")


def _table(frame: pd.DataFrame, columns: list, settings: list, css: str = "") -> str:
    """Rows as an HTML table; each cell keeps its raw value in data-v for sorting."""
    words = {"run", "status", "diagnosis"}
    words |= {c for c in columns if not pd.api.types.is_numeric_dtype(frame[c])}
    head = "".join(
        f"<th class='{'w' if c in words else 'n'}' title='{_e(c)}'>{_e(HEADERS.get(c, c))}</th>"
        for c in columns
    )
    body = []
    for _, row in frame.iterrows():
        cells = []
        for column in columns:
            value = row[column]
            if column == "diagnosis" and "evidence" in frame:  # a --group-by row has no evidence
                cells.append(_diagnosis_cell(row))
                continue
            raw = "" if _is_blank(value) else value_text(value)
            # a setting is shown as written (3e-05, never 3e-0…); a result in the report's format
            shown = _e(raw if column in settings else _cell_text(column, value))
            if column == "run" and _inspected(row):
                page = (Path(row["folder"]) / INSPECT_DIR / INSPECT_PAGE).absolute().as_uri()
                shown += f" <a class='inspect' href='{_e(page)}'>inspect</a>"
            cells.append(f"<td class='{'w' if column in words else 'n'}' data-v='{_e(raw)}'>{shown}</td>")
        body.append(f"<tr>{''.join(cells)}</tr>")
    return (
        f"<div class='wide'><table class='{css}'><thead><tr>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _inspected(row: pd.Series) -> bool:
    """Whether `dlrun inspect` has drawn the row's run (its page is linked from the run's name)."""
    folder = row.get("folder")
    return isinstance(folder, str) and (Path(folder) / INSPECT_DIR / INSPECT_PAGE).is_file()


def _diagnosis_cell(row: pd.Series) -> str:
    """The label, opening on its evidence and advice (and the gradient and unit flags)."""
    flags = row.get("flags") if isinstance(row.get("flags"), list) else []
    marks = "".join(f" <span class='flag'>{_e(flag)}</span>" for flag in flags)
    parts = [f"<p>{_e(row.get('evidence', ''))}</p>", f"<p><b>advice:</b> {_e(row.get('advice', ''))}</p>"]
    return (
        f"<td class='w' data-v='{_e(row['diagnosis'])}'><details><summary>{_e(row['diagnosis'])}{marks}"
        f"</summary>{''.join(parts)}</details></td>"
    )


def _columns(frame: pd.DataFrame, varying: list) -> list:
    shown = [c for c in TABLE_COLUMNS if c in frame and frame[c].notna().any()]
    return ["run", *[k for k in varying if k in frame], *shown, "diagnosis"]


def best_trials(frame: pd.DataFrame, varying: list) -> str:
    best = ranked(frame).head(BEST_SHOWN)
    note = f"the {len(best)} best of {len(frame)} by {_headline(frame).replace('_', ' ')}"
    return _section(
        "best",
        "Best trials",
        f"<p class='hint'>{_e(note)}</p>{_table(best, _columns(frame, varying), varying, 'best')}",
    )


def sensitivity_section(frame: pd.DataFrame, varying: list) -> str:
    keys = [
        k
        for k in varying
        if k != "seed" and frame[k].astype(str).nunique() > 1 and frame[k].notna().sum() > 1
    ]
    spread = (
        "a bar of one standard deviation over the runs that differ only in seed"
        if "seed" in varying
        else "one run per value: no seeds were swept, so no spread"
    )
    body = (
        "".join(
            _figure(
                figures.sensitivity_svg(frame, key, varying),
                f"The best validation metrics against {key}: a dot per run, the mean joined, {spread}.",
            )
            for key in keys
        )
        or "<p>No setting other than the seed was varied.</p>"
    )
    return _section("sensitivity", "Sensitivity", body)


def curves_section(frame: pd.DataFrame, varying: list, curves: dict) -> str:
    """Every run's validation curves overlaid, once coloured by each swept key (the seed only
    when nothing else was swept)."""
    keys = [k for k in varying if k != "seed"] or list(varying)
    usable = [k for k in keys if frame[k].notna().sum() > 1]
    drawn = frame[frame["run"].isin(curves)]
    if not usable or len(drawn) < 2:
        return _section(
            "curves", "All curves", "<p>Fewer than two runs with curves and a varied setting.</p>"
        )
    body = "".join(
        _figure(
            figures.overlay_svg(frame, curves, key),
            f"Validation curves of {len(drawn)} runs, coloured by {key}.",
        )
        for key in usable
    )
    return _section("curves", "All curves", body)


def runs_section(frame: pd.DataFrame, varying: list, grouped: pd.DataFrame | None) -> str:
    by_group = ""
    if grouped is not None:
        columns = list(grouped.columns)
        by_group = (
            f"<h3>By {_e(columns[0])}</h3>{_table(grouped.astype(object), columns, columns[:1])}"
            "<h3>Each run</h3>"
        )
    hint = "Click a header to sort; click a label for its evidence and advice."
    return _section(
        "runs",
        "Runs",
        f"{by_group}<p class='hint'>{hint}</p>"
        f"{_table(frame, _columns(frame, varying), varying, 'runs sortable')}",
    )


def per_run_section(frame: pd.DataFrame, varying: list, curves: dict) -> str:
    svg = figures.grid_svg(ranked(frame), curves, varying)
    shown = min(len(frame[frame["run"].isin(curves)]), figures.MAX_GRID_RUNS)
    caption = f"{plural(shown, 'run')}, best first: train and validation loss, the best epoch dotted."
    return _section("per-run", "Per-run curves", _figure(svg, caption) or "<p>No curves.</p>")


def report_page(
    frame: pd.DataFrame,
    *,
    varying: list | None = None,
    shared: dict | None = None,
    curves: dict | None = None,
    sweeps: list | None = None,
    sources: list | None = None,
    warnings: list | None = None,
    grouped: pd.DataFrame | None = None,
    title: str = "dlrun report",
    rows: pd.DataFrame | None = None,
) -> str:
    """The whole page as text. `frame` has a row per run (build.Report.rows, selected); `curves`
    maps a row's run name to its metrics; `grouped` is the --group-by table, shown above the runs;
    `rows` every run, for a search's progress (default `frame`)."""
    varying = [c for c in frame.columns if c not in NOT_SETTINGS] if varying is None else varying
    curves = curves or {}
    sections = [
        what_was_run(frame, varying, shared or {}, sweeps or [], sources or ["-"], warnings or []),
        best_trials(frame, varying),
        search_section(frame if rows is None else rows, sweeps or []),
        pareto_section(frame if rows is None else rows, sweeps or []),
        population_sections(frame if rows is None else rows),
        sensitivity_section(frame, varying),
        curves_section(frame, varying, curves),
        runs_section(frame, varying, grouped),
        per_run_section(frame, varying, curves),
    ]
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>"
        f"<meta name='viewport' content='width=device-width'><style>{STYLE}</style></head><body>"
        f"<h1>{_e(title)}</h1>{''.join(sections)}<script>{SCRIPT}</script></body></html>\n"
    )


def report_html(
    report, frame: pd.DataFrame, sources: list, shared: dict, grouped: pd.DataFrame | None = None
) -> str:
    """The page for `dlrun report --format html`: `report` is the build.Report, `frame` its
    selected rows, `shared` the constant settings worth reading."""
    curves = {row.run: report.curves[row.folder] for row in frame.itertuples() if row.folder in report.curves}
    return report_page(
        frame,
        varying=report.varying,
        shared=shared,
        curves=curves,
        sweeps=read_sweeps(sources),
        sources=sources,
        warnings=report.warnings,
        grouped=grouped,
        rows=report.rows,
    )
