"""The pruner registry: each name gives its Optuna pruner with the epochs as its resource."""

import optuna
import pytest

from dlrun.errors import ConfigError
from dlrun.sweep.pruners import PRUNERS, make_pruner


@pytest.mark.parametrize(
    "name, kind",
    [
        ("median", optuna.pruners.MedianPruner),
        ("sha", optuna.pruners.SuccessiveHalvingPruner),
        ("hyperband", optuna.pruners.HyperbandPruner),
        ("none", optuna.pruners.NopPruner),
    ],
)
def test_each_name_gives_its_optuna_pruner(name, kind):
    assert isinstance(make_pruner(name, 1, 9), kind)
    assert name in PRUNERS.names


def test_the_min_and_max_epochs_are_the_pruners_resources():
    assert make_pruner("median", 3, 9)._n_warmup_steps == 3
    assert make_pruner("sha", 2, 9)._min_resource == 2
    hyperband = make_pruner("hyperband", 1, 27)
    assert (hyperband._min_resource, hyperband._max_resource) == (1, 27)


def _pruned_epochs(name: str, min_epochs: int) -> list:
    """Epochs at which a study with this pruner prunes 8 trials, each worse than every earlier
    one at every epoch (trial n reports (8 - n) x epoch); None for a trial that ran all 9."""
    study = optuna.create_study(
        direction="maximize",
        pruner=make_pruner(name, min_epochs, 9),
        sampler=optuna.samplers.RandomSampler(seed=0),
    )
    stopped = []
    for number in range(8):
        trial = study.ask()
        for epoch in range(1, 10):
            trial.report(float((8 - number) * epoch), epoch)
            if trial.should_prune():
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
                stopped.append(epoch)
                break
        else:
            study.tell(trial, float(9 * (8 - number)))
            stopped.append(None)
    return stopped


def test_median_prunes_the_losers_no_earlier_than_min_epochs():
    # Optuna's median pruner lets its first 5 trials run (n_startup_trials); the later ones are
    # below the median at every epoch, and stop as soon as min_epochs allows
    assert _pruned_epochs("median", 3) == [None] * 5 + [3] * 3
    assert _pruned_epochs("median", 1) == [None] * 5 + [1] * 3
    assert _pruned_epochs("none", 1) == [None] * 8


@pytest.mark.parametrize("name", ["asha", ""])
def test_an_unknown_pruner_is_one_line_with_the_choices(name):
    with pytest.raises(
        ConfigError, match=f"unknown pruner '{name}' \\(choose from: hyperband, median, none, sha\\)"
    ):
        make_pruner(name, 1, 3)


@pytest.mark.parametrize("low, high", [(0, 3), (4, 3)])
def test_min_epochs_outside_the_trials_epochs_is_refused(low, high):
    with pytest.raises(ConfigError, match=f"--min-epochs must be between 1 and .*got {low}"):
        make_pruner("sha", low, high)
