"""`dlrun watch FOLDER` (and `dlrun report --watch`): the live screen of a run or a sweep, drawn
again every `interval` seconds from its folder alone (no server, no port), until it ends or
the user leaves (q, Ctrl-C).

On a terminal it is a full-screen view (rich Live on the alternate screen) with keys read
without blocking; once it ends, the last screen is printed on the normal one, so that it stays
in the scrollback. Not on a terminal (a pipe, a file, CI) nothing is printed until the end,
then that last screen once: `dlrun watch DIR > log` waits for the sweep and records its end.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.live import Live

from dlrun.errors import ConfigError
from dlrun.report.follow import WAIT_S, check_folder, left, pressed_keys
from dlrun.report.html_watch import watch_html
from dlrun.report.live import LiveFolder, Watched
from dlrun.report.live_view import watch_view
from dlrun.report.options import latest_runs_folder, parse_thresholds
from dlrun.report.output import ReportRequest
from dlrun.report.thresholds import DEFAULT_THRESHOLDS, Thresholds

INTERVAL_S = 2.0


def watch_folder(
    folder: Path,
    interval: float = INTERVAL_S,
    wait_s: float = WAIT_S,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    screen: Console | None = None,
) -> Watched:
    """Follow `folder` until it ends or the user leaves; return what the last refresh saw
    (`ended` None when the user left first). ConfigError for a bad folder or interval."""
    if not interval > 0:
        raise ConfigError(f"--interval must be a number of seconds > 0, got {interval:g}")
    if wait_s < 0:
        raise ConfigError(f"--wait must be a number of seconds >= 0, got {wait_s:g}")
    check_folder(folder, wait_s)
    screen = screen or Console()
    reader = LiveFolder(folder, thresholds)
    try:
        watched = _follow(reader, interval, screen) if screen.is_terminal else _await(reader, interval)
    except KeyboardInterrupt:  # a second Ctrl-C: leave at once, all the same
        watched = reader.refresh()
    screen.print(watch_view(watched, screen.width))
    return watched


def _await(reader: LiveFolder, interval: float) -> Watched:
    watched = reader.refresh()
    while watched.ended is None and not left(interval, lambda: ""):
        watched = reader.refresh()
    return watched


def _follow(reader: LiveFolder, interval: float, screen: Console) -> Watched:
    watched = reader.refresh()
    with pressed_keys() as keys, Live(console=screen, screen=True, auto_refresh=False) as live:
        while True:
            live.update(watch_view(watched, screen.width, screen.height), refresh=True)
            if watched.ended is not None or left(interval, keys):
                return watched
            watched = reader.refresh()


def watch_report(request: ReportRequest, interval: float = INTERVAL_S, wait_s: float = WAIT_S) -> Watched:
    """`dlrun report --watch`: the watch of the one folder asked (default the latest sweep),
    diagnosed with the request's thresholds; with `--format html`, the page rewritten until the
    folder ends (dlrun/report/html_watch.py). ConfigError for options that a live screen of one
    folder cannot take."""
    if request.fmt == "html":
        return watch_html(request, wait_s=wait_s)
    given = {
        "--format": request.fmt != "table",
        "--output": request.output is not None,
        "--plot": request.plot,
        "--ensemble": request.ensemble,
        "--sort": request.sort is not None,
        "--top": request.top is not None,
        "--filter": request.where is not None,
        "--group-by": request.group is not None,
        "--columns": request.columns is not None,
    }
    refused = [name for name, used in given.items() if used]
    if refused:
        raise ConfigError(
            f"--watch cannot be used with {', '.join(refused)}: it shows the live screen of one run "
            "or sweep (it takes --threshold only)"
        )
    if len(request.paths) > 1:
        shown = ", ".join(map(str, request.paths))
        raise ConfigError(f"--watch follows one folder, got {len(request.paths)}: {shown}")
    folder = Path(request.paths[0]) if request.paths else latest_runs_folder()
    return watch_folder(folder, interval, wait_s, parse_thresholds(request.thresholds))
