"""The progress bars of a sweep: trials over the whole sweep, and the epochs of the group
running now (or, for groups trained in other processes or on Ray, the epochs their folders
gain)."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from dlrun.training.callbacks import EpochCallback
from dlrun.training.progress import progress_bar


class SweepProgress:
    """Trials and epochs bars over a whole sweep; `group()` gives the callback of one group."""

    def __init__(self, console: Console, total_trials: int, done: int):
        self.progress = progress_bar(console, "note")
        self.trials = self.progress.add_task("trials", total=total_trials, completed=done, note="")
        self.epochs = None

    def __enter__(self):
        self.progress.start()
        return self

    def __exit__(self, *exc):
        self.progress.stop()

    def trials_done(self, count: int, note: str = "") -> None:
        self.progress.update(self.trials, advance=count, note=escape(note))

    def group(self, group_id: str, size: int) -> EpochCallback:
        return GroupEpochs(self, f"{group_id} ({size} trials) epochs")

    @contextlib.contextmanager
    def watching(self, jobs: list, executor, keep: bool = True):
        """While `executor` runs `jobs` out of this process's sight (worker processes, Ray), a
        trial-epochs bar counts the rows their folders' metrics.csv gain; an executor whose
        groups report their epochs here (`reports_epochs`) needs none. `keep`: leave the bar
        once done (an adaptive search drops each round's)."""
        if getattr(executor, "reports_epochs", False) or not jobs:
            yield
            return
        watcher = FolderEpochs(self, jobs)
        watcher.start()
        try:
            yield
        finally:
            watcher.stop()
            if not keep:
                self.progress.remove_task(watcher.task)


class FolderEpochs(threading.Thread):
    """Counts, every second, the epochs written into the folders of groups trained elsewhere.

    A folder is read again only when its metrics.csv changed size, so a large sweep costs one
    stat per running trial a second."""

    EVERY_S = 1.0

    def __init__(self, sweep: SweepProgress, jobs: list):
        super().__init__(daemon=True, name="dlrun-folder-epochs")
        self.sweep, self._stopped = sweep, threading.Event()
        self.files = {
            Path(run_dir) / "metrics.csv": int(container["epochs"])
            for job in jobs
            for run_dir, container in zip(job.run_dirs, job.containers)
        }
        self.seen: dict = {}  # file -> (size, epochs written)
        self.task = sweep.progress.add_task(
            "trial-epochs", total=sum(self.files.values()), completed=self._count(), note=""
        )

    def _count(self) -> int:
        total = 0
        for path, epochs in self.files.items():
            try:
                size = path.stat().st_size
            except OSError:
                size = 0
            if self.seen.get(path, (None,))[0] != size:
                try:  # rows after the header; a file being replaced reads as before
                    rows = max(0, len(path.read_bytes().splitlines()) - 1) if size else 0
                except OSError:
                    rows = self.seen.get(path, (0, 0))[1]
                self.seen[path] = (size, min(rows, epochs))
            total += self.seen[path][1]
        return total

    def run(self) -> None:
        while not self._stopped.wait(self.EVERY_S):
            self.refresh()

    def refresh(self) -> None:
        self.sweep.progress.update(self.task, completed=self._count())

    def stop(self) -> None:
        self._stopped.set()
        self.join()
        self.refresh()


class GroupEpochs(EpochCallback):
    """The epochs bar of the group running now, with its live trials and best validation loss."""

    def __init__(self, sweep: SweepProgress, description: str):
        self.sweep, self.description = sweep, description

    def on_start(self, group, first_epoch: int) -> None:
        progress = self.sweep.progress
        if self.sweep.epochs is not None:
            progress.remove_task(self.sweep.epochs)
        self.sweep.epochs = progress.add_task(
            escape(self.description),
            total=group.epochs,
            completed=first_epoch - 1,
            note="compiled, training...",
        )

    def on_epoch(self, group, epoch: int, rows: list) -> None:
        live = [row for row in rows if row is not None]
        note = f"{len(live)} live"
        if live:
            note += f", best val loss {min(row['val_loss'] for row in live):.4f}"
        self.sweep.progress.update(self.sweep.epochs, completed=epoch, note=note)
