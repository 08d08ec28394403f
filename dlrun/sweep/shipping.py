"""Trial folders between a Ray task and the driver's sweep folder, with no shared filesystem.

A group's Ray task trains into a scratch folder of its own node. After its trials' start and
after every epoch it pushes the files that changed to a `TrialMirror` actor, which keeps the
latest bytes of every file of the running groups and an outbox that the driver drains into
the sweep folder (atomic writes through dlrun/results.py). A task that starts, or that Ray
retries after its worker or node died, pulls the trial folders from the mirror: so it resumes
from the last epoch any attempt pushed, never from its original arguments.

Within a trial the files go in the order the trainer writes them (curves, then checkpoints,
summary last), so a driver killed in the middle of a drain leaves a folder that a local run
could have left: the same command again resumes it.
"""

from __future__ import annotations

from pathlib import Path

from dlrun import results
from dlrun.training.callbacks import EpochCallback

# what the trainer writes first goes first: metrics.csv before the checkpoints (a resume keeps
# the rows up to the checkpoint's epoch), summary.json last (it says the trial is finished)
_ORDER = {
    results.METRICS_FILE: 0,
    str(results.BEST_CHECKPOINT): 1,
    str(results.LAST_CHECKPOINT): 2,
    results.SUMMARY_FILE: 9,
}


def shipping_order(relative: str) -> int:
    return _ORDER.get(relative, 5)


class TrialMirror:
    """The driver's side of the running groups' folders (a Ray actor on the driver's node).

    `files` holds each running trial folder's files as the latest attempt pushed them;
    `outbox` the writes (and resets) the driver has not applied yet, in order.
    """

    def __init__(self):
        self.files: dict[str, dict[str, bytes]] = {}
        self.outbox: list = []
        self.stopping = False

    def seed(self, run_dir: str, files: dict) -> None:
        """What the driver's folder holds when the group is submitted."""
        self.files[run_dir] = {str(relative): data for relative, data in files.items()}

    def pull(self, run_dirs: list) -> dict:
        return {run_dir: dict(self.files.get(run_dir, {})) for run_dir in run_dirs}

    def push(self, run_dir: str, changed: list) -> bool:
        """Record changed files [(relative path, bytes)]; return whether a stop was requested."""
        folder = self.files.setdefault(run_dir, {})
        for relative, data in changed:
            folder[relative] = data
            self.outbox.append((run_dir, relative, data))
        return self.stopping

    def reset(self, run_dir: str) -> None:
        """A trial that starts afresh: its folder is emptied here and on the driver."""
        self.files[run_dir] = {}
        self.outbox.append((run_dir, None, None))

    def drain(self) -> list:
        outbox, self.outbox = self.outbox, []
        return outbox

    def forget(self, run_dirs: list) -> None:
        for run_dir in run_dirs:
            self.files.pop(run_dir, None)

    def request_stop(self) -> None:
        self.stopping = True

    def is_stopping(self) -> bool:
        return self.stopping


def apply(outbox: list) -> None:
    """Write drained pushes into the sweep folder, in order, each file atomically."""
    import shutil

    for run_dir, relative, data in outbox:
        if relative is None:
            shutil.rmtree(run_dir, ignore_errors=True)
        else:
            results.atomic_write_bytes(Path(run_dir) / relative, data)


def _stamp(path: Path) -> tuple:
    stat = path.stat()
    return stat.st_mtime_ns, stat.st_size


class Shipper(EpochCallback):
    """In the task: pushes what changed in the local trial folders to the mirror.

    `local` maps each trial's folder on the driver to its scratch folder on this node.
    """

    def __init__(self, mirror, local: dict):
        self.mirror = mirror
        self.local = local
        self.seen: dict[Path, tuple] = {}
        self.stop_requested = False

    def pull(self) -> None:
        """Put the trial folders' current contents (as the mirror holds them) in scratch."""
        import ray

        for run_dir, files in ray.get(self.mirror.pull.remote(list(self.local))).items():
            results.restore(self.local[run_dir], {Path(rel): data for rel, data in files.items()})
        self._mark_seen()

    def reset(self, run_dir: str) -> None:
        import shutil

        import ray

        shutil.rmtree(self.local[run_dir], ignore_errors=True)
        ray.get(self.mirror.reset.remote(run_dir))
        self._mark_seen()

    def _mark_seen(self) -> None:
        self.seen = {
            path: _stamp(path)
            for folder in self.local.values()
            for path in Path(folder).rglob("*")
            if path.is_file()
        }

    def ship(self) -> bool:
        """Push every changed file; return whether the driver asked to stop."""
        import ray

        calls = []
        for run_dir, folder in self.local.items():
            changed = []
            for path in sorted(
                (p for p in Path(folder).rglob("*") if p.is_file()),
                key=lambda p: shipping_order(str(p.relative_to(folder))),
            ):
                if path.name.startswith(".") or self.seen.get(path) == _stamp(path):
                    continue  # a temporary file of an atomic write, or nothing new
                self.seen[path] = _stamp(path)
                changed.append((str(path.relative_to(folder)), path.read_bytes()))
            if changed:
                calls.append(self.mirror.push.remote(run_dir, changed))
        stops = ray.get(calls) if calls else [ray.get(self.mirror.is_stopping.remote())]
        self.stop_requested = any(stops)
        return self.stop_requested

    def on_start(self, group, first_epoch: int) -> None:
        self.ship()

    def on_epoch(self, group, epoch: int, rows: list) -> None:
        from dlrun.interrupt import Interrupted

        if self.ship():  # the driver's stop: end here, as a Ctrl-C after this epoch would
            raise Interrupted()

    def on_end(self, group) -> None:
        self.ship()
