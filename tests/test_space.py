"""The sweep space: Hydra's sweep grammar -> the values of each trial (nothing composed)."""

import math

import pytest

from dlrun.errors import ConfigError
from dlrun.sweep.space import LOG_SCALE_KEYS, expand, is_integer_key, parse_space


def values(overrides, trials=None, seed=0):
    fixed, swept = parse_space(overrides)
    return expand(swept, trials, seed)


def test_fixed_overrides_stay_apart_from_swept_ones():
    fixed, swept = parse_space(["data=moons", "lr=0.1,0.01", "model.hidden=[8]"])
    assert fixed == ["data=moons", "model.hidden=[8]"] and list(swept) == ["lr"]


def test_grid_is_the_cartesian_product():
    grid = values(["lr=0.1,0.01,0.001", "seed=range(3)"])
    assert len(grid) == 9
    assert {(v["lr"], v["seed"]) for v in grid} == {
        (lr, seed) for lr in ("0.1", "0.01", "0.001") for seed in ("0", "1", "2")
    }
    assert grid[4] == {"lr": "0.01", "seed": "1"}


def test_nothing_swept_is_one_trial():
    assert values(["lr=0.1"]) == [{}]


def test_choice_range_and_glob():
    grid = values(["activation=choice(relu,tanh)", "batch_size=range(32,97,32)", "init=glob(he_*)"])
    assert len(grid) == 2 * 3 * 2
    assert {v["batch_size"] for v in grid} == {"32", "64", "96"}
    assert {v["init"] for v in grid} == {"he_normal", "he_uniform"}
    assert {v["optim"] for v in values(["optim=glob(*)"])} == {
        "sgd",
        "momentum",
        "nesterov",
        "rmsprop",
        "adagrad",
        "adam",
        "adamw",
    }


def test_random_search_is_reproducible_and_log_uniform_for_lr():
    draw = lambda seed: [float(v["lr"]) for v in values(["lr=interval(1e-4,1e-1)"], 200, seed)]
    first, again, other = draw(0), draw(0), draw(1)
    assert first == again and first != other
    assert all(1e-4 <= lr <= 1e-1 for lr in first)
    # log-uniform: about a third of the draws in each decade
    below = sum(lr < 1e-3 for lr in first) / len(first)
    assert below == pytest.approx(1 / 3, abs=0.1)
    logs = [math.log10(lr) for lr in first]
    assert sum(logs) / len(logs) == pytest.approx(-2.5, abs=0.15)
    assert "lr" in LOG_SCALE_KEYS


def test_linear_tag_and_integer_intervals():
    draws = values(["lr=tag(linear,interval(0.01,0.02))", "batch_size=interval(16,64)"], 20)
    assert all(0.01 <= float(v["lr"]) <= 0.02 for v in draws)
    # linear: the mean of uniform draws sits near the middle, not the geometric mean
    assert sum(float(v["lr"]) for v in draws) / 20 == pytest.approx(0.015, abs=0.002)
    assert all(v["batch_size"].isdigit() and 16 <= int(v["batch_size"]) <= 64 for v in draws)


@pytest.mark.parametrize(
    "key, integer",
    [("batch_size", True), ("epochs", True), ("lr", False), ("optim.l2", False), ("nope", False)],
)
def test_integer_keys_follow_the_schema(key, integer):
    assert is_integer_key(key) is integer


@pytest.mark.parametrize(
    "spec, trials, message",
    [
        (["lr=interval(1e-4,1e-1)"], None, "add --trials N"),
        (["lr=interval(1e-1,1e-4)"], 2, "an interval's start must be below its end"),
        (["lr=interval(0,1)"], 2, "a log-scale interval needs a positive start"),
        (["lr=0.1"], 3, "--trials 3 needs a swept key"),
        (["seed=range(5,1)"], None, "seed=range(5,1) is empty"),
        (["activation=glob(zz*)"], None, "matches no activation"),
        (["lr=glob(*)"], None, "glob() works on"),
        (["lr=0.1,,"], None, "cannot parse 'lr=0.1,,'"),
    ],
)
def test_bad_grammar_is_refused_in_one_line(spec, trials, message):
    with pytest.raises(ConfigError) as caught:
        values(spec, trials)
    assert message in str(caught.value) and "\n" not in str(caught.value)
