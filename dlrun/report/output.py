"""`dlrun report` as a library call: read the folders, select, and write the report where it
was asked for (the terminal, a file, standard output) in its format, with plots and votes.

matplotlib costs ~0.9 s of start-up, so the modules that draw (plots.py, html.py) are imported
only when a plot or an HTML page is asked for.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from dlrun.errors import ConfigError
from dlrun.report import lineage, options, pareto, render
from dlrun.report.build import PLOTS_FOLDER, build_report, group_by, select
from dlrun.report.settings import non_default
from dlrun.report.sweeps import read_sweeps
from dlrun.results import atomic_write_text
from dlrun.text import plural


@dataclass
class ReportRequest:
    """What `dlrun report` is asked for (its arguments and options)."""

    paths: list = field(default_factory=list)  # empty: the latest sweep, else runs/
    sort: str | None = None
    top: int | None = None
    where: str | None = None  # --filter (dlrun/report/query.py)
    group: str | None = None
    fmt: str = "table"
    plot: bool = False
    output: Path | None = None
    thresholds: list = field(default_factory=list)  # NAME=VALUE
    ensemble: bool = False
    columns: str | None = None


def show_report(request: ReportRequest, console: Console) -> None:
    """Build the report and write it; warnings and notes go to `console`. ConfigError for bad
    input, before anything is written."""
    text = report_text(request, console)
    if text is not None:
        _emit(text, request.output)


def report_text(request: ReportRequest, console: Console):
    """The report in its format, not yet written (None: a table already printed to the
    terminal); warnings, notes, plots and votes as show_report gives them."""
    paths, output, plot, fmt, group = (
        request.paths,
        request.output,
        request.plot,
        request.fmt,
        request.group,
    )
    options.check_options(request.top, fmt)
    thresholds = options.parse_thresholds(request.thresholds)
    targets = paths or [options.latest_runs_folder()]
    plot_folder = (output.parent if output else Path(targets[0])) / PLOTS_FOLDER
    options.check_outputs(output, plot_folder if plot else None)
    if paths and not any(Path(path).exists() for path in paths):  # beside a real one: a warning
        raise ConfigError(f"no such folder: {', '.join(map(str, paths))} (give run or sweep folders)")
    built = build_report(targets, thresholds)
    for warning in built.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
    if built.rows.empty:
        raise ConfigError(f"no runs found in {', '.join(map(str, targets))}")
    try:
        frame = select(built, where=request.where, sort=request.sort, top=request.top)
        shown = group_by(frame, group) if group else frame
    except ValueError as error:
        raise ConfigError(str(error)) from None
    if plot:
        _write_plots(built, frame, targets, plot_folder, console)
    if request.ensemble:  # runs of unknown settings cannot be told to differ only in their seed
        _print_votes(frame[~frame["folder"].isin(built.unknown_settings)], built.varying, fmt, console)
    return _render(fmt, built, frame, shown, targets, group is not None, request.columns, output)


def _write_plots(built, frame, targets, plot_folder: Path, console: Console) -> None:
    from dlrun.report import plots

    images = plots.write_plots(frame, built.varying, plot_folder, built.curves)
    # every trial of the search, not only those --filter/--top show
    images += plots.search_plot(built.rows, read_sweeps(targets), plot_folder)
    console.print(f"{plural(len(images), 'plot')} in {plot_folder}", highlight=False, markup=False)
    if plots.curves_note(frame):
        console.print(f"note: {plots.curves_note(frame)}", highlight=False, markup=False)


def _render(fmt: str, built, frame, shown, targets, grouped: bool, columns, output):
    """The report's text in `fmt`; None when the table went straight to the terminal."""
    if fmt == "table":
        title = render.report_title(len(frame), len(shown) if grouped else None, targets)
        parts = _table_parts(shown, built, title, columns, output)
        parts += _front_part(built, targets, 200 if output else Console().width)
        parts += [part for found in lineage.populations(built.rows) for part in lineage.terminal_parts(found)]
        return render.plain_text(parts) if output else _print_parts(parts)
    if fmt == "html":  # its figures are inline SVG, drawn whether or not --plot wrote PNGs
        from dlrun.report.html import report_html

        return report_html(
            built, frame, targets, non_default(built.constant, built.rows), shown if grouped else None
        )
    return render.render_text(shown, fmt, built.constant)


def _table_parts(shown, built, title: str, columns: str | None, output) -> list:
    """The terminal table's parts, as wide as the terminal (or 200 for a file, read in an editor)."""
    picked = [name.strip() for name in columns.split(",") if name.strip()] if columns else None
    try:
        return render.table_parts(
            shown,
            built.varying,
            non_default(built.constant, built.rows),
            title,
            width=200 if output else Console().width,
            columns=picked,
        )
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _front_part(built, targets, width: int) -> list:
    """A search of several metrics: its Pareto front over all its trials (report/pareto.py)."""
    found = pareto.front(built.rows, read_sweeps(targets))
    return [] if found is None else [pareto.front_table(*found, built.varying, width)]


def _print_parts(parts: list) -> None:
    screen = Console()
    for part in parts:
        screen.print(part, highlight=False)


def _print_votes(frame, varying, fmt: str, console: Console) -> None:
    """The seed ensembles' votes: on standard output beside a table, else on stderr."""
    votes = render.ensemble_part(frame, varying)
    if votes is None:
        console.print(f"[yellow]warning:[/] {render.NO_ENSEMBLES}")
    else:
        (Console() if fmt == "table" else console).print(votes)


def _emit(report, output: Path | None) -> None:
    """Write the report (text, or rich parts for the terminal) to `output` or standard output."""
    if isinstance(report, list) and not output:
        for part in report:
            Console().print(part, highlight=False)
        return
    text = render.plain_text(report) if isinstance(report, list) else report
    if output:
        atomic_write_text(output, text)
    else:
        sys.stdout.write(text)
