"""Claims on run and sweep folders: one process at a time trains into a folder.

A claim is an exclusive `flock` on the folder itself. The kernel drops it when its holder
dies, however it dies (kill -9 included), so a claim is never stale and needs no clean-up: a
pid in an O_EXCL file would have to be judged alive or dead, and judged again by two processes
racing to take it over. While it holds the claim, the holder names itself (pid, host,
command, since) in `<folder>/.dlrun.lock` for the message a second process shows; the file is
removed when the claim ends, and one left by a killed process is only a stale note (it is the
lock that counts, never the file).

Claims are re-entrant within a process: `dlrun train` claims its run folder before it decides
what to do there, and the group runner claims the same folder again while it trains it.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import tempfile
import time
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path

from dlrun.errors import ConfigError
from dlrun.interrupt import STOP

LOCK_FILE = ".dlrun.lock"
POLL_S = 0.25

_held: dict[str, int] = {}  # real path of a claimed folder -> depth


class FolderInUse(ConfigError):
    """Another live process holds the folder's claim."""


def holder(folder: Path) -> str:
    """Who holds the folder's claim, as words."""
    try:
        record = json.loads((Path(folder) / LOCK_FILE).read_text(encoding="utf-8"))
        return f"pid {record['pid']} on {record['host']} ({record['command']}, since {record['since']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def noted_as_held(folder: Path) -> bool:
    """Whether the folder's note names a process that may still hold its claim, read without
    probing the lock (a probe takes it for an instant, and a process claiming the folder at
    that instant would be refused): a note left by a dead process of this host is stale; one
    of another host, or one that names no process, cannot be judged and counts as held."""
    try:
        record = json.loads((Path(folder) / LOCK_FILE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return False
    except (OSError, ValueError):  # being written, or unreadable: judged held
        return True
    pid = record.get("pid") if isinstance(record, dict) else None
    if not isinstance(pid, int) or record.get("host") != socket.gethostname():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _write_note(folder: Path) -> None:
    """Name this process in the folder's note, atomically (a reader never sees half of it)."""
    since = datetime.now(timezone.utc).isoformat(timespec="seconds")
    text = json.dumps(
        {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "command": " ".join(["dlrun", *sys.argv[1:]])[:200],
            "since": since,
        }
    )
    handle, scratch = tempfile.mkstemp(dir=folder, prefix=".dlrun-lock-")
    with os.fdopen(handle, "w", encoding="utf-8") as stream:
        stream.write(text)
    os.replace(scratch, folder / LOCK_FILE)


def _remove_note(folder: Path) -> None:
    try:
        (folder / LOCK_FILE).unlink()
    except FileNotFoundError:
        pass


@contextmanager
def claimed(folder: Path, wait_s: float = 0.0, on_wait=None, note: bool = True):
    """Hold the folder's claim for the block; the folder is made if need be (and removed again
    if the block fails and left it empty). Another live holder: wait up to `wait_s` seconds
    (calling `on_wait(words)` once), then raise FolderInUse naming it. `note=False` only waits
    for the folder to be free and writes nothing there."""
    folder = Path(folder)
    made = [part for part in (folder, *folder.parents) if not part.exists()]
    folder.mkdir(parents=True, exist_ok=True)
    key = os.path.realpath(folder)
    if key in _held:
        _held[key] += 1
        try:
            yield
        finally:
            _held[key] -= 1
        return
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _acquire(fd, folder, wait_s, on_wait)
        _held[key] = 1
        try:
            if note:
                _write_note(folder)
            yield
        except BaseException:
            _unmake(made)  # a command refused at once leaves no folder behind
            raise
        finally:
            del _held[key]
            if note:
                _remove_note(folder)
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def is_claimed(folder: Path) -> bool:
    """Whether another live process holds the folder's claim now (a claim of this process's
    does not count; a missing folder is claimed by no one).

    The probe takes the lock for an instant, so a rival claiming at that very moment should
    retry briefly (see dlrun/sweep/executor.py's CLAIM_WAIT_S) rather than give up at once.
    """
    folder = Path(folder)
    if os.path.realpath(folder) in _held:
        return False
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    except (FileNotFoundError, NotADirectoryError):
        return False
    try:
        if _try_lock(fd):
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        return True
    finally:
        os.close(fd)


def _acquire(fd: int, folder: Path, wait_s: float, on_wait) -> None:
    deadline, told = time.monotonic() + wait_s, False
    while not _try_lock(fd):
        if time.monotonic() >= deadline:
            raise FolderInUse(
                f"{folder} is in use by {holder(folder)}; wait for it to end, or "
                "stop it, then run the same command again"
            )
        if on_wait is not None and not told:
            on_wait(f"{folder} is in use by {holder(folder)}: waiting up to {wait_s:.0f} s")
            told = True
        STOP.check()  # a Ctrl-C or SIGTERM while waiting ends the wait
        time.sleep(POLL_S)


def _unmake(made: list) -> None:
    """Remove the folders this claim made, if they hold nothing but its note."""
    if made:
        _remove_note(made[0])
    for part in made:
        try:
            part.rmdir()
        except OSError:  # not empty: something was written there
            return
