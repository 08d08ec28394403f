"""A group's trial folders written off the training thread, one epoch behind at most.

Writing an epoch (32 trials: ~100 fsynced files) used to stop training until the disk was
done. The writes of epoch e now run in a few threads while epoch e+1 trains; the next epoch's
writes, a trial's final summary, a compaction and the group's end wait for them first, so a
folder's files keep their order (metrics before checkpoints before the summary). A kill can land
between two trials' files as before: resume already continues trials an epoch apart separately
(dlrun/sweep/executor.py jobs_for).
"""

from __future__ import annotations

import io
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Callable

import numpy as np

from dlrun import results

# Threads writing trial folders at once: enough to overlap the fsyncs of a large group.
WRITERS = 8


class FolderWrites:
    """The pending writes of a group's last recorded epoch."""

    def __init__(self):
        self._pool: ThreadPoolExecutor | None = None
        self._pending: list[Future] = []

    def submit(self, writes: list[Callable[[], None]]) -> None:
        """Start `writes` (one per trial folder) after the previous epoch's are done."""
        self.wait()
        if self._pool is None:
            self._pool = ThreadPoolExecutor(WRITERS, thread_name_prefix="dlrun-writes")
        self._pending = [self._pool.submit(write) for write in writes]

    def wait(self) -> None:
        """Block until every submitted write is on disk; a write's error is raised here."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def close(self) -> None:
        try:
            self.wait()
        finally:
            if self._pool is not None:
                self._pool.shutdown()
                self._pool = None


def write_predictions(run_dir, probabilities: np.ndarray, labels: np.ndarray) -> None:
    """Keep a trial's test-set probabilities, so that runs can vote (report --ensemble)."""
    buffer = io.BytesIO()
    np.savez_compressed(buffer, probabilities=probabilities.astype(np.float32), labels=np.asarray(labels))
    results.atomic_write_bytes(run_dir / results.PREDICTIONS_FILE, buffer.getvalue())


def cannot_write(error: OSError, folder) -> str:
    """'cannot write <path>: <reason>' for an OSError raised while writing a run folder.

    The path is the file or folder the error names, or `folder` where it names none (a write
    that found the disk full) or only the temporary file of an atomic write (results.py), whose
    name would mean nothing to the user: its folder is what could not be written.
    """
    named = error.filename2 or error.filename
    path = Path(folder) if named is None else Path(named)
    if path.name.startswith(".") and path.name.endswith(".tmp"):
        path = path.parent
    return f"cannot write {path}: {error.strerror or error}"
