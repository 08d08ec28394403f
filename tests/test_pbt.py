"""PBT's decision (dlrun/sweep/pbt.py) and its device half (dlrun/training/population.py):
the explore stays in the space, the exploit follows Ray Tune's truncation rule, and a copy
moves every leaf of a member's state bit for bit."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from dlrun import data
from dlrun.config.compose import with_values
from dlrun.config.load import compose_config
from dlrun.sweep import pbt
from dlrun.training import hparams
from dlrun.training.population import exploit_arrays, exploited
from dlrun.training.program import build_program, initial_state, stack, take

SPACE = {
    "lr": FloatDistribution(1e-3, 1.0, log=True),
    "optim.l2": FloatDistribution(0.0, 0.01),
    "width": IntDistribution(8, 64),
    "name": CategoricalDistribution(["a", "b", "c", "d"]),
}


@pytest.mark.parametrize(
    ("live", "quantile", "count"), [(16, 0.25, 4), (4, 0.25, 1), (5, 0.5, 2), (2, 0.1, 1)]
)
def test_the_quantiles_hold_the_fraction_rounded_up_at_most_half(live, quantile, count):
    assert pbt.quantile_count(live, quantile) == count


def test_explore_stays_in_the_space_and_scales_by_ray_tunes_factors():
    rng = np.random.default_rng(0)
    for _ in range(500):
        values = {key: pbt.sample(dist, rng) for key, dist in SPACE.items()}
        for key, dist in SPACE.items():
            assert dist._contains(dist.to_internal_repr(values[key]))
            moved = pbt.perturb(dist, values[key], rng, resample=0.0)
            assert dist._contains(dist.to_internal_repr(moved))
            if key == "lr":  # scaled by 0.8 or 1.2, or clipped to the bound it crossed
                ratio = moved / values[key]
                assert any(math.isclose(ratio, f) for f in pbt.FACTORS) or moved in (dist.low, dist.high)
            if key == "name":  # a neighbouring choice (or the end it stays at)
                assert abs(dist.choices.index(moved) - dist.choices.index(values[key])) <= 1


def test_every_value_is_drawn_anew_when_resample_is_one():
    rng = np.random.default_rng(1)
    moved = [pbt.perturb(SPACE["lr"], 0.5, rng, resample=1.0) for _ in range(200)]
    # a draw from the log-uniform space, not 0.4 or 0.6: the space's lower decades appear
    assert min(moved) < 0.01 and not {0.4, 0.6} & set(moved)


def decide(scores, seed=0, quantile=0.25):
    values = [{"lr": 0.01 * (i + 1)} for i in range(len(scores))]
    options = pbt.PbtOptions(population=len(scores), quantile=quantile)
    return pbt.decide(4, scores, values, {"lr": SPACE["lr"]}, options, seed, maximize=True)


def test_the_bottom_copy_the_top_and_members_out_of_training_take_no_part():
    scores = [0.5, 0.9, None, 0.1, 0.7, 0.3, 0.8, 0.2, float("nan")]  # 7 ranked: 2 each side
    exploits = decide(scores)
    assert sorted(e.member for e in exploits) == [3, 7]
    assert all(e.source in (1, 6) for e in exploits)
    for e in exploits:
        assert e.before == {"lr": 0.01 * (e.member + 1)} and e.epoch == 4
        assert SPACE["lr"]._contains(e.after["lr"])


def test_the_decision_is_seeded():
    scores = list(np.random.default_rng(3).random(16))
    assert decide(scores, seed=5) == decide(scores, seed=5)
    assert decide(scores, seed=5) != decide(scores, seed=6)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (pbt.PbtOptions(population=1), "--population must be >= 2"),
        (pbt.PbtOptions(perturb_every=4), "--perturb-every 4 must be below epochs=4"),
        (pbt.PbtOptions(quantile=0.6), "--quantile must be in (0, 0.5], got 0.6"),
        (pbt.PbtOptions(quantile=0), "--quantile must be in (0, 0.5], got 0"),
        (pbt.PbtOptions(resample=1.5), "--resample must be in [0, 1], got 1.5"),
    ],
)
def test_bad_options_are_refused_in_one_line(options, message):
    with pytest.raises(Exception, match=None) as error:
        options.check(epochs=4)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.fixture(scope="module")
def population():
    """Three members of a batch-norm MLP with different seeds and values, stacked."""
    cfgs = [
        compose_config(
            ["model=mlp", "data=spirals", "model.batch_norm=true", f"seed={i}", f"lr={0.1 * (i + 1)}"]
        )
        for i in range(3)
    ]
    dataset = data.load(cfgs[0].data)
    program = build_program(cfgs, dataset)
    state = stack([initial_state(program, cfg, dataset.spec)[0] for cfg in cfgs])
    # a step's worth of optimizer state and batch statistics that differ per member
    state = jax.tree_util.tree_map(
        lambda leaf: (
            leaf + jnp.arange(3).reshape(-1, *[1] * (leaf.ndim - 1)).astype(leaf.dtype)
            if jnp.issubdtype(leaf.dtype, jnp.floating)
            else leaf
        ),
        state,
    )
    return cfgs, state


def test_an_exploit_copies_every_leaf_of_the_state_bit_for_bit(population):
    cfgs, state = population
    keys = ["lr", "optim.l2"]
    new = with_values(cfgs[2], {"lr": 0.37, "optim.l2": 0.004})
    reached = {2: hparams.reached_values(new, keys)}
    sources, columns, rows = exploit_arrays(3, {2: 0}, reached)
    after = exploited(state, sources, {k: jnp.asarray(v) for k, v in columns.items()}, jnp.asarray(rows))
    written = 0
    for (path, leaf), (_, old) in zip(
        jax.tree_util.tree_flatten_with_path(after)[0], jax.tree_util.tree_flatten_with_path(state)[0]
    ):
        names = [getattr(part, "name", getattr(part, "key", None)) for part in path]
        np.testing.assert_array_equal(np.asarray(leaf[:2]), np.asarray(old[:2]))  # rows not copied
        if names[-1] in ("learning_rate", "l2"):
            expected = {"learning_rate": 0.37, "l2": 0.004}[names[-1]]
            assert float(leaf[2]) == np.float32(expected)
            written += 1
        else:  # params, batch stats, optimizer moments and counts: the source's, exactly
            np.testing.assert_array_equal(np.asarray(leaf[2]), np.asarray(old[0]))
    assert written == 2
    assert jax.tree_util.tree_leaves(take(after, 2).batch_stats)  # batch-norm statistics were there
