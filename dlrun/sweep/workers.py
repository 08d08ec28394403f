"""Several `dlrun sweep` processes on one sweep folder, as Optuna's workers on one storage.

The sweep folder's claim (dlrun/claims.py) is held only while a process sets the folder up
(sweep.yaml, the study, its reconciliation with the folders) and, in an adaptive search, while
it asks: those must not race. Training holds the claims of the trial folders alone, so:

1. A process trains a group only once it holds every one of its trial folders' claims, and only
   if the folders are still as it planned them (finished by nobody, at the epoch it resumes
   from). Otherwise it trains nothing there (`Deferred`) and plans again from the folders.
2. A trial folder another live process holds is left to it; once nothing else is left, a
   process waits for the others (a killed one's claims vanish with it, and its unfinished
   trials are then taken over), so each process ends with the whole sweep finished.
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

from dlrun.claims import LOCK_FILE, is_claimed
from dlrun.interrupt import STOP
from dlrun.sweep.folder import FINAL_STATUSES, resumable_epoch, trial_dir, trial_status

# Setting a sweep folder up is short (a data set's first load is the longest part), but an
# experiment's pre-training stage runs under the same claim: a second process waits it out.
SETUP_WAIT_S = 3600
# A probe (claims.is_claimed) holds a folder's lock for an instant: a claim retries this long
# before it leaves the group to whoever holds it.
CLAIM_WAIT_S = 2
WAIT_POLL_S = 1.0  # how often a process with nothing left checks on the others' trials


class Deferred(str):
    """A group job's outcome when it trained nothing: another process holds or changed one of
    its folders (the reason is the text). A str, so that it pickles as an error message does."""


def stale(job) -> Deferred | None:
    """Why the job's folders, claimed now, are no longer as it was planned (None: train it).
    A trial starting afresh is emptied first, under its claim, so that nobody else can be
    training into it meanwhile."""
    epochs = set()
    for run_dir in map(Path, job.run_dirs):
        if trial_status(run_dir) in FINAL_STATUSES:
            return Deferred(f"{run_dir.name} was finished by another process")
        epochs.add(resumable_epoch(run_dir, quiet=True))  # said when it was planned
    if job.resume and (0 in epochs or len(epochs) > 1 or (job.epoch and epochs != {job.epoch})):
        return Deferred("another process trained these trials meanwhile")
    if not job.resume and epochs != {0}:
        return Deferred("another process trained these trials meanwhile")
    if not job.resume:
        for run_dir in map(Path, job.run_dirs):
            _empty(run_dir)
    return None


def _empty(run_dir: Path) -> None:
    """Remove what an unfinished trial that cannot continue left, but the folder and its claim's
    note: removing the folder itself would let another process claim a new one beside ours."""
    for path in run_dir.iterdir():
        if path.name == LOCK_FILE:
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def busy_trials(plan, out: Path) -> list:
    """The plan's unfinished trials whose folders another live process holds."""
    return [
        trial
        for trial in plan.trials
        if trial_status(trial_dir(out, trial)) not in FINAL_STATUSES and is_claimed(trial_dir(out, trial))
    ]


class Waiting:
    """A process with nothing left to train, waiting for the others' trials: said once."""

    def __init__(self, say):
        self.say, self.said = say, False

    def wait(self, count: int) -> None:
        if not self.said:
            word = "trial is" if count == 1 else "trials are"
            self.say(f"{count} {word} being trained by another process: waiting for them to end")
            self.said = True
        deadline = time.monotonic() + WAIT_POLL_S
        while time.monotonic() < deadline and not STOP.requested:
            time.sleep(0.1)
