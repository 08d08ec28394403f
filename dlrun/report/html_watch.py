"""`dlrun report FOLDER --format html -o PAGE --watch`: the HTML report of a sweep that is
still training, written again every few seconds (atomically: a browser never reads half a
page) and reloading itself, until the sweep ends; then written once more, without the reload.

No server: the page asks the browser to reload it (`<meta http-equiv="refresh">`), so it works
from file:// and from any static host of the folder. The sweep's end is told as `dlrun watch`
tells it (dlrun/report/live.py).
"""

from __future__ import annotations

import html
import time
from pathlib import Path

from rich.console import Console

from dlrun.errors import ConfigError
from dlrun.interrupt import STOP
from dlrun.report.follow import WAIT_S, check_folder, left, pressed_keys
from dlrun.report.live import LiveFolder, Watched
from dlrun.report.options import latest_runs_folder, parse_thresholds
from dlrun.report.output import ReportRequest, report_text
from dlrun.results import atomic_write_text

# A page rebuilt every 5 s costs the report's build (~0.3 s for 100 runs): a browser's reload
# of it each time is as often as a person reads a page.
REFRESH_S = 5.0
# What a live page cannot do: a plot folder written each time, votes printed each time.
NOT_LIVE = ("--plot", "--ensemble")


def watch_html(request: ReportRequest, refresh_s: float = REFRESH_S, wait_s: float = WAIT_S) -> Watched:
    """Write the page every `refresh_s` until the folder's sweep ends (or the user leaves, which
    also writes it a last time without the reload); return what the last refresh saw."""
    refused = [name for name, used in zip(NOT_LIVE, (request.plot, request.ensemble)) if used]
    if refused:
        raise ConfigError(f"--watch of an HTML page cannot be used with {', '.join(refused)}")
    if request.output is None:
        raise ConfigError("--watch --format html needs --output PAGE.html: the page it rewrites")
    if len(request.paths) > 1:
        shown = ", ".join(map(str, request.paths))
        raise ConfigError(f"--watch follows one folder, got {len(request.paths)}: {shown}")
    folder = Path(request.paths[0]) if request.paths else latest_runs_folder()
    check_folder(folder, wait_s)
    reader = LiveFolder(folder, parse_thresholds(request.thresholds))
    notes = Console(stderr=True)
    notes.print(
        f"writing {request.output} every {refresh_s:g} s until {folder} ends (q or Ctrl-C leaves)",
        highlight=False,
        markup=False,
    )
    # warnings (a half-written file, say) once, not every refresh
    console, quiet = notes, Console(stderr=True, quiet=True)
    with pressed_keys() as keys:
        while True:
            watched = reader.refresh()
            live = watched.ended is None and not STOP.requested
            atomic_write_text(request.output, _page(request, folder, console, refresh_s if live else None))
            console = quiet
            if not live or left(refresh_s, keys):
                break
    if watched.ended is None:  # left early: the page stops reloading, and says so
        atomic_write_text(request.output, _page(request, folder, quiet, None, stopped=True))
    notes.print(f"wrote {request.output}", highlight=False, markup=False)
    return watched


def _page(request: ReportRequest, folder: Path, console: Console, refresh_s, stopped=False) -> str:
    try:
        page = report_text(request, console)
    except ConfigError:  # no run has written its files yet: a page that says so, and waits
        page = "<!doctype html><html lang='en'><head><meta charset='utf-8'></head><body></body></html>\n"
        page = _with_note(page, f"waiting for the first run of {folder}")
    if refresh_s is not None:
        page = page.replace("<head>", f"<head><meta http-equiv='refresh' content='{refresh_s:g}'>", 1)
        stamp = time.strftime("%H:%M:%S")
        note = f"live: written at {stamp}, reloads every {refresh_s:g} s until {folder} ends"
        return _with_note(page, note)
    if stopped:
        return _with_note(page, f"not watched since {time.strftime('%H:%M:%S')}: {folder} had not ended")
    return page


def _with_note(page: str, note: str) -> str:
    banner = f"<p class='live-note' role='status'><em>{html.escape(note)}</em></p>"
    return page.replace("<body>", f"<body>{banner}", 1)
