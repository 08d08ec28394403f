"""Shared batches: trials of a group that draw one batch order are fed each batch once.

The shared group must train every trial exactly as that trial trains alone; only the rounding
of the first layer's wider matmul may differ. `data_seed` picks the order apart from `seed`.
"""

import jax
import numpy as np
import pytest
from conftest import FLOAT32_MATH_RTOL

from dlrun import data, results
from dlrun.config.load import compose_config
from dlrun.training.group import GroupRun, run_group
from dlrun.training.trial import epoch_key, order_key

BASE = [
    "data=moons",
    "data.n_samples=1100",
    "data.val_size=100",
    "model.hidden=[32,16]",
    "epochs=2",
    "batch_size=64",
    "optim=momentum",
    "lr=0.05",
    "model.dropout=0.1",
]
COLUMNS = ["train_loss", "train_accuracy", "val_loss", "val_accuracy", "grad_norm"]


def configs(*per_trial: list) -> list:
    return [compose_config([*BASE, *extra]) for extra in per_trial]


def curves(cfgs: list, folder) -> list:
    """Train `cfgs` as one group; return each trial's metrics.csv columns."""
    dirs = [folder / f"t{index}" for index in range(len(cfgs))]
    summaries = run_group(cfgs, dirs)
    assert [s["status"] for s in summaries] == ["completed"] * len(cfgs)
    return [results.read_metrics(d)[COLUMNS].to_numpy() for d in dirs]


def alone(cfg, folder) -> np.ndarray:
    return curves([cfg], folder)[0]


def assert_same_curve(grouped, single):
    # a few hundred steps of float32 training from one start: the first layer's wide matmul
    # adds its terms in another order, an ulp per step, amplified a little by the updates
    np.testing.assert_allclose(grouped, single, rtol=FLOAT32_MATH_RTOL, atol=1e-6)


def test_an_unset_data_seed_shuffles_as_runs_before_it_did():
    cfg = compose_config([*BASE, "seed=7"])
    for epoch in (1, 2):
        before = jax.random.split(epoch_key(cfg, epoch))[0]
        np.testing.assert_array_equal(order_key(cfg, epoch), before)


def test_data_seed_changes_only_the_order():
    first, second = configs(["seed=3"], ["seed=3", "data_seed=4"])
    assert not np.array_equal(order_key(first, 1), order_key(second, 1))
    np.testing.assert_array_equal(epoch_key(first, 1), epoch_key(second, 1))


@pytest.mark.parametrize(
    "per_trial, shared",
    [
        ([["lr=0.01"], ["lr=0.1", "optim.l2=0.001"]], True),  # an lr sweep at one seed
        ([["seed=0", "data_seed=5"], ["seed=1", "data_seed=5"]], True),  # init seeds, one order
        ([["data_seed=0"], ["data_seed=1"]], False),  # seeds that also order the data: not shared
    ],
)
def test_each_trial_of_a_group_trains_as_it_does_alone(per_trial, shared, tmp_path):
    cfgs = configs(*per_trial)
    group = GroupRun(cfgs, [tmp_path / "x"] * len(cfgs), data.load(cfgs[0].data))
    assert group.shares_batches is shared
    grouped = curves(cfgs, tmp_path / "group")
    for index, cfg in enumerate(cfgs):
        assert_same_curve(grouped[index], alone(cfg, tmp_path / f"alone{index}"))
