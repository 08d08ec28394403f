"""`dlrun watch FOLDER` (and `dlrun report --watch`): the live screen of a run or a sweep, drawn
again every `interval` seconds from its folder alone (no server, no port), until it ends or
the user leaves (q, Ctrl-C).

On a terminal it is a full-screen view (rich Live on the alternate screen) with keys read
without blocking; once it ends, the last screen is printed on the normal one, so that it stays
in the scrollback. Not on a terminal (a pipe, a file, CI) nothing is printed until the end,
then that last screen once: `dlrun watch DIR > log` waits for the sweep and records its end.
"""

from __future__ import annotations

import contextlib
import os
import select
import sys
import termios
import time
import tty
from pathlib import Path

from rich.console import Console
from rich.live import Live

from dlrun.claims import LOCK_FILE
from dlrun.errors import ConfigError
from dlrun.interrupt import STOP
from dlrun.report.build import RUN_FILES
from dlrun.report.live import LiveFolder, Watched
from dlrun.report.live_view import watch_view
from dlrun.report.options import latest_runs_folder, parse_thresholds
from dlrun.report.output import ReportRequest
from dlrun.report.thresholds import DEFAULT_THRESHOLDS, Thresholds
from dlrun.results import SWEEP_FILE

# `dlrun sweep ... &` then `dlrun watch`: the sweep writes its folder only once it has composed
# every trial and loaded the data, a few seconds; a folder that is not there waits this long.
WAIT_S = 10.0
INTERVAL_S = 2.0
TICK_S = 0.1  # how often a key press and Ctrl-C are looked for between two refreshes
LEAVE_KEYS = "qQ"
WHAT = "give a run folder or a sweep folder (what --out named)"


def _watchable(folder: Path) -> bool:
    return any((folder / name).is_file() for name in (SWEEP_FILE, *RUN_FILES))


def _being_set_up(folder: Path) -> bool:
    """Missing, empty, or held by a process setting it up (its claim's note is there)."""
    if not folder.exists():
        return True
    visible = [name for name in os.listdir(folder) if not name.startswith(".")]
    return not visible or (folder / LOCK_FILE).exists()


def check_folder(folder: Path, wait_s: float = WAIT_S) -> None:
    """Return once `folder` holds a run or a sweep; raise ConfigError, in one line, for a
    file, a folder of something else, or one that does not hold a run within `wait_s`."""
    folder = Path(folder)
    deadline = time.monotonic() + wait_s
    while not _watchable(folder):
        if folder.exists() and not folder.is_dir():
            raise ConfigError(f"{folder} is a file, not a folder; {WHAT}")
        if not _being_set_up(folder):
            raise ConfigError(
                f"{folder} is not a run or sweep folder: it holds no {SWEEP_FILE}, "
                f"{', '.join(RUN_FILES)}; {WHAT}"
            )
        if time.monotonic() >= deadline:
            what = f"no such folder: {folder}" if not folder.exists() else f"{folder} holds no run yet"
            raise ConfigError(f"{what} (waited {wait_s:g} s); {WHAT}")
        time.sleep(TICK_S)


@contextlib.contextmanager
def pressed_keys(stream=None):
    """A function returning the keys pressed since its last call ('' for none), without
    waiting: the terminal is in cbreak mode meanwhile (Ctrl-C still signals). Never a key
    when `stream` is not a terminal."""
    stream = stream or sys.stdin
    try:
        fd = stream.fileno()
        saved = termios.tcgetattr(fd) if stream.isatty() else None
    except (OSError, ValueError, termios.error):
        saved = None
    if saved is None:
        yield lambda: ""
        return
    tty.setcbreak(fd)
    try:
        yield lambda: os.read(fd, 64).decode(errors="replace") if select.select([fd], [], [], 0)[0] else ""
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


def _left(seconds: float, keys) -> bool:
    """Wait `seconds`; True as soon as the user asks to leave (q, or a Ctrl-C or SIGTERM, which
    dlrun's handler records as a stop request)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if STOP.requested or any(key in LEAVE_KEYS for key in keys()):
            return True
        time.sleep(min(TICK_S, max(0.0, deadline - time.monotonic())))
    return STOP.requested


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
    while watched.ended is None and not _left(interval, lambda: ""):
        watched = reader.refresh()
    return watched


def _follow(reader: LiveFolder, interval: float, screen: Console) -> Watched:
    watched = reader.refresh()
    with pressed_keys() as keys, Live(console=screen, screen=True, auto_refresh=False) as live:
        while True:
            live.update(watch_view(watched, screen.width, screen.height), refresh=True)
            if watched.ended is not None or _left(interval, keys):
                return watched
            watched = reader.refresh()


def watch_report(request: ReportRequest, interval: float = INTERVAL_S, wait_s: float = WAIT_S) -> Watched:
    """`dlrun report --watch`: the watch of the one folder asked (default the latest sweep),
    diagnosed with the request's thresholds. ConfigError for options that a live screen of one
    folder cannot take."""
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
