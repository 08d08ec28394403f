"""Each epoch, tell the study every live trial's metric and stop those its pruner gives up on
(told to the study at once, so a dashboard on the storage sees a running search as it goes).

A group job of an adaptive sweep carries a `StudyLink` (plain data: it pickles to a worker
process): the storage URL, the study's name, the pruner, and which Optuna trial each run folder
is. `StudyPruning` is the epoch callback built from it wherever the group runs.
"""

from __future__ import annotations

import math
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from dlrun import results
from dlrun.sweep.pruners import make_pruner
from dlrun.sweep.study_store import open_storage, tell
from dlrun.training.callbacks import EpochCallback


@dataclass
class StudyLink:
    storage: str  # an Optuna RDB URL
    study: str
    metric: str
    pruner: str = "none"
    min_epochs: int = 1
    max_epochs: int = 1
    trials: dict = field(default_factory=dict)  # run folder name -> Optuna trial id


class FirstObjective:
    """A study of several metrics as its pruner sees it: Optuna's pruners read `study.direction`,
    which such a study refuses (Optuna has no pruning for several: its issue #3450). The epochs
    report the first metric, so the pruner judges them by the first metric's direction; the rest
    (trials, storage, rungs) is the study's own."""

    def __init__(self, study, direction):
        self._study, self.direction = study, direction

    def __getattr__(self, name):
        return getattr(self._study, name)


class StudyPruning(EpochCallback):
    """Report each live trial's epoch value to its Optuna trial; prune the ones it says to."""

    def __init__(self, link: StudyLink):
        self.link = link
        self.study = None
        self.best_first = True  # the study's (first) direction, once loaded
        self.judged = None  # what the pruner is shown: the study, or its first objective
        # reports go to the storage from a thread of their own: each is a committed (fsynced)
        # transaction, ~10 ms while the epoch's checkpoints are written; only a pruning
        # decision waits for them
        self.reporter = ThreadPoolExecutor(1, thread_name_prefix="dlrun-study")
        self.pending: list = []

    def on_start(self, group, first_epoch: int) -> None:
        import optuna

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.study = optuna.load_study(
                study_name=self.link.study,
                storage=open_storage(self.link.storage),
                pruner=make_pruner(self.link.pruner, self.link.min_epochs, self.link.max_epochs),
            )
        # the values reported are the first metric's, so its direction is the one they rank by
        first = self.study.directions[0]
        self.best_first = first == optuna.study.StudyDirection.MAXIMIZE
        self.judged = FirstObjective(self.study, first) if len(self.study.directions) > 1 else self.study

    def on_epoch(self, group, epoch: int, rows: list) -> None:
        """1. report every live trial (the group's trials then compete with each other too),
        2. ask the pruner about each; the last epoch is never pruned (nothing left to save).

        Straight to the storage: `optuna.Trial(...).report` first reads the whole trial back."""
        from dlrun.sweep.search import epoch_value

        storage = self.study._storage
        reported = []
        for index, (trial, row) in enumerate(zip(group.trials, rows)):
            # by folder, every epoch: the trial an index names is the folder's, whatever the group does
            trial_id = self.link.trials.get(Path(trial.run_dir).name)
            value = epoch_value(self.link.metric, row) if row is not None else None
            if trial_id is None or not trial.live or value is None or not math.isfinite(value):
                continue
            # an epoch trained again after a resume reports the value it had
            self.pending.append(
                self.reporter.submit(storage.set_trial_intermediate_value, trial_id, epoch, float(value))
            )
            reported.append((float(value), index, trial_id))
        if self.link.pruner == "none" or epoch >= self.link.max_epochs:
            return
        self._wait()
        # Judged best first. Optuna's pruners judge a trial against those judged before it, and
        # a group's trials reach each epoch together: in any other order a trial can go on while
        # a better one of the same epoch is pruned (the worse one, judged first, had fewer rivals).
        for _, index, trial_id in sorted(reported, key=lambda r: r[0], reverse=self.best_first):
            frozen = storage.get_trial(trial_id)
            if self.study.pruner.prune(self.judged, frozen):
                group.stop_trial(index, "pruned", pruned_epoch=epoch)
                # told now, not when the group ends: a dashboard on the study sees it stop
                summary = results.read_summary(Path(group.trials[index].run_dir))
                tell(self.study, frozen.number, summary, self.link.metric)

    def on_end(self, group) -> None:
        """Every report is in the study before the group's trials are told their end."""
        try:
            self._wait()
        finally:
            self.reporter.shutdown()

    def _wait(self) -> None:
        pending, self.pending = self.pending, []
        for report in pending:
            report.result()
