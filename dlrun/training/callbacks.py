"""Hooks into a group's epoch loop: progress bars, early stopping, and what comes next
(pruning, live logging) all attach here instead of into the loop itself.

A callback is told when the group starts (`on_start`), after every epoch once its files are
written (`on_epoch`, with one metrics row per trial, None for a trial no longer training), and
when the loop ends for any reason (`on_end`). `on_epoch` may stop trials with
`group.stop_trial(index, status)`: their updates are masked from the next epoch on (and once
half the stacked trials stopped, the group is compacted; a trial's index never changes).
"""

from __future__ import annotations


class EpochCallback:
    def on_start(self, group, first_epoch: int) -> None:
        """Before the first epoch that runs (`first_epoch` > 1 when resuming)."""

    def on_epoch(self, group, epoch: int, rows: list) -> None:
        """After `epoch`: rows[i] is trial i's metrics row, None once it stopped."""

    def on_end(self, group) -> None:
        """After the last epoch, or when the loop is stopped or fails."""


class EarlyStopping(EpochCallback):
    """Stop a trial after `early_stopping.patience` epochs without a better validation metric."""

    def on_epoch(self, group, epoch: int, rows: list) -> None:
        for index, (trial, row) in enumerate(zip(group.trials, rows)):
            patience = trial.cfg.early_stopping.patience
            if row is not None and trial.live and 0 < patience <= trial.tracker.bad_epochs:
                group.stop_trial(index, "completed", early_stopped=True)
