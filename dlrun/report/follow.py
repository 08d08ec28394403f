"""Following a folder another process writes, for `dlrun watch` and `dlrun report --watch`:
waiting until it holds a run or a sweep, and waiting between two looks while listening for
the user leaving (q, Ctrl-C, SIGTERM)."""

from __future__ import annotations

import contextlib
import os
import select
import sys
import termios
import time
import tty
from pathlib import Path

from dlrun.claims import noted_as_held
from dlrun.errors import ConfigError
from dlrun.interrupt import STOP
from dlrun.report.build import RUN_FILES
from dlrun.results import SWEEP_FILE

# `dlrun sweep ... &` then `dlrun watch`: the sweep writes its folder only once it has composed
# every trial and loaded the data, a few seconds; a folder that is not there waits this long.
WAIT_S = 10.0
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
    return not visible or noted_as_held(folder)


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


def left(seconds: float, keys) -> bool:
    """Wait `seconds`; True as soon as the user asks to leave (q, or a Ctrl-C or SIGTERM, which
    dlrun's handler records as a stop request)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if STOP.requested or any(key in LEAVE_KEYS for key in keys()):
            return True
        time.sleep(min(TICK_S, max(0.0, deadline - time.monotonic())))
    return STOP.requested
