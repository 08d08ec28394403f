"""Which trials stop early: `--pruner median|sha|hyperband|none`, each an Optuna pruner.

The pruner only decides; the sweep reports every trial's validation metric to the study after
each epoch and a trial it prunes is stopped inside its group (`group.stop_trial(index,
"pruned", pruned_epoch=epoch)`), frozen and, once half the group is, compacted away
(dlrun/training/compaction.py). One Optuna step is one epoch, so `--min-epochs` is the
resource every trial gets before it can be pruned and `epochs` the most it can get; the step
reported is the epoch number, counted from 1.
"""

from __future__ import annotations

from typing import Callable

import optuna

from dlrun.errors import ConfigError
from dlrun.registry import Registry

# name -> (min_epochs, max_epochs) -> pruner
PRUNERS: Registry[Callable[[int, int], optuna.pruners.BasePruner]] = Registry(
    "pruner",
    {
        # a trial below the median of the others' values at the same epoch stops, once it ran
        # min_epochs: Optuna prunes from step n_warmup_steps on, and the step reported is the epoch
        "median": lambda low, high: optuna.pruners.MedianPruner(n_warmup_steps=low),
        "sha": lambda low, high: optuna.pruners.SuccessiveHalvingPruner(min_resource=low),
        "hyperband": lambda low, high: optuna.pruners.HyperbandPruner(min_resource=low, max_resource=high),
        "none": lambda low, high: optuna.pruners.NopPruner(),
    },
)


def make_pruner(name: str, min_epochs: int, max_epochs: int) -> optuna.pruners.BasePruner:
    """Return the Optuna pruner `name` for trials of `max_epochs` epochs, none stopped before
    `min_epochs`. Raises ConfigError (one line, the choices) for an unknown name or bad bounds."""
    factory = PRUNERS.get(name)
    if not 1 <= min_epochs <= max_epochs:
        raise ConfigError(
            f"--min-epochs must be between 1 and the trials' epochs ({max_epochs}), got {min_epochs}"
        )
    return factory(int(min_epochs), int(max_epochs))
