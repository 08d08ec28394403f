"""The per-trial hyperparameter table: every entry reaches the state and changes the curves.

A key in the table that did not reach its trial's state would silently train a whole group
with the first trial's value (the bug that commit 8014f03 fixed for init): each entry is
checked here by a real two-trial group that differs only in it.
"""

import jax
import numpy as np
import pytest

from dlrun import data, optim, results
from dlrun.sweep import executor, folder
from dlrun.sweep.plan import make_plan
from dlrun.training import hparams
from dlrun.training.group import GroupRun, stack

BASE = [
    "data=moons",
    "data.n_samples=1100",
    "data.val_size=100",
    "model.hidden=[16]",
    "epochs=2",
    "schedule=constant",
    "batch_size=64",
]
# key -> (overrides that give it a meaning, two values that must train differently)
CASES = {
    "lr": (["optim=sgd"], ("0.01", "0.3")),
    "optim.lr_scaling": (["optim=sgd", "batch_size=32"], ("none", "linear")),
    "optim.base_batch_size": (["optim=sgd", "optim.lr_scaling=linear"], ("128", "32")),
    "optim.momentum": (["optim=momentum"], ("0.5", "0.95")),
    "optim.b1": (["optim=adam"], ("0.5", "0.9")),
    "optim.b2": (["optim=adam"], ("0.9", "0.999")),
    "optim.eps": (["optim=adam"], ("1e-08", "0.1")),
    "optim.decay": (["optim=rmsprop"], ("0.5", "0.99")),
    "optim.weight_decay": (["optim=adamw", "lr=0.05"], ("0.0", "0.5")),
    "optim.l2": ([], ("0.0", "0.1")),
    "model.dropout": ([], ("0.0", "0.5")),
    "augment.noise_std": ([], ("0.0", "1.0")),
    "init": ([], ("he_normal", "glorot_uniform")),
    "init_scale": (["init=normal"], ("0.01", "0.5")),
    "bias_init": (["bias_scale=0.5"], ("zeros", "constant")),
    "bias_scale": (["bias_init=constant"], ("0.1", "0.9")),
    "seed": ([], ("0", "1")),
    "data_seed": ([], ("0", "1")),
    "early_stopping": ([], None),  # host-side: checked by test_early_stopping_works_per_trial
    "name": ([], None),  # bookkeeping only
}


def test_every_entry_has_a_case_here():
    assert set(CASES) == {entry.key for entry in hparams.TRIAL_HPARAMS}


@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
def test_every_injected_optimizer_number_is_in_the_table(name):
    assert set(optim.OPTIMIZERS[name][1]) <= hparams.injected_names()


def two_trials(key: str, tmp_path):
    """The two configs of a sweep over `key` alone, planned as the CLI plans them."""
    extra, values = CASES[key]
    plan = make_plan([*BASE, *extra, f"{key}={','.join(values)}"])
    assert len(plan.groups) == 1, f"{key} split the group: the planner does not read the table"
    return plan


def entry(key: str) -> hparams.TrialHparam:
    return next(e for e in hparams.TRIAL_HPARAMS if e.key == key)


TRAINED = sorted(key for key, (_, values) in CASES.items() if values)


@pytest.mark.parametrize("key", TRAINED)
def test_an_entry_reaches_the_state_of_each_trial(key, tmp_path):
    plan = two_trials(key, tmp_path)
    cfgs = [trial.cfg for trial in plan.trials]
    group = GroupRun(cfgs, [tmp_path / "a", tmp_path / "b"], data.load(cfgs[0].data))
    state = stack(group.states)
    how = entry(key)
    if how.reaches == hparams.OPTIMIZER:
        got = np.asarray(optim.injected_hyperparams(state.opt_state)[how.name])
        want = [optim.effective_lr(c) if how.name == "learning_rate" else c.optim[how.name] for c in cfgs]
        np.testing.assert_allclose(got, want, rtol=1e-6)
        assert got[0] != got[1]
    elif how.reaches == hparams.STATE:
        np.testing.assert_allclose(
            np.asarray(state.hparams[how.name]), [float(v) for v in CASES[key][1]], rtol=1e-6
        )
    elif how.reaches == hparams.ORDER:  # the two trials draw their own batch orders
        assert not group.shares_batches
    else:  # init and random keys: the two trials start from different parameters
        first = jax.tree_util.tree_leaves(state.params)
        assert any(not np.array_equal(leaf[0], leaf[1]) for leaf in first)


@pytest.mark.parametrize("key", TRAINED)
def test_two_trials_that_differ_only_in_an_entry_train_differently(key, tmp_path):
    plan = two_trials(key, tmp_path)
    out = tmp_path / "sweep"
    folder.prepare_folder(out, plan, "test")
    index = executor.run_plan(plan, out)
    assert list(index.status) == ["completed", "completed"]
    first, second = (results.read_metrics(out / trial.id) for trial in plan.trials)
    assert abs(first.train_loss.iloc[-1] - second.train_loss.iloc[-1]) > 1e-6
    # the lr column is read from each trial's state: the injected lr times the schedule
    for trial, metrics in zip(plan.trials, (first, second)):
        np.testing.assert_allclose(metrics.lr, optim.effective_lr(trial.cfg), rtol=1e-6)
