"""Whether a path dlrun is about to write can be written, asked before any data loads or any
run is read: otherwise a sweep fails only after loading and compiling, a report after reading
2,000 runs. One rule for run folders, sweep folders, report files and plot folders."""

from __future__ import annotations

import os
from pathlib import Path

from dlrun.errors import ConfigError


def _nearest_existing(path: Path, label: str) -> Path:
    """The path itself or its closest ancestor that exists (what a mkdir -p would write into)."""
    for part in (path, *path.parents):
        try:
            part.stat()
            return part
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as error:
            raise ConfigError(f"{label}: cannot read {part} ({error.strerror})") from None
    return Path(".")


def check_writable(path: Path, *, folder: bool = True, option: str = "") -> None:
    """Raise ConfigError, in one line naming `path` (after `option`, e.g. "--out"), unless it
    can be written as a folder (`folder`) or a file: anything already there must be of that
    kind, and the nearest existing folder on its way must be a writable folder."""
    path = Path(path)
    label = f"{option} {path}" if option else f"cannot write {path}"
    nearest = _nearest_existing(path, label)
    if nearest == path and path.is_dir() and not folder:
        raise ConfigError(f"{label}: it is a folder; give a file path")
    if not nearest.is_dir() and (folder or nearest != path):
        raise ConfigError(f"{label}: {nearest} is a file, not a folder; give a folder path")
    if nearest == path and not folder:
        nearest = path.parent
    if not os.access(nearest, os.W_OK | os.X_OK):
        raise ConfigError(f"{label}: {nearest} is not writable; give a folder you can write to")
