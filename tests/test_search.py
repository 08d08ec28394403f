"""The sweep grammar as an Optuna space, the samplers, and the options of an adaptive search."""

import math
import random
import re

import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

from dlrun.errors import ConfigError
from dlrun.sweep import search
from dlrun.sweep.plan import make_plan
from dlrun.sweep.space import parse_space


def space_of(*overrides):
    return search.distributions(parse_space(list(overrides))[1])


@pytest.mark.parametrize(
    "override, expected",
    [
        ("lr=interval(1e-4,1)", FloatDistribution(1e-4, 1, log=True)),  # a scale-like key: log
        ("lr=tag(linear,interval(0.1,1))", FloatDistribution(0.1, 1)),  # the tag wins
        ("model.dropout=interval(0,0.5)", FloatDistribution(0, 0.5)),
        ("model.dropout=tag(log,interval(0.01,0.5))", FloatDistribution(0.01, 0.5, log=True)),
        ("batch_size=interval(16,256)", IntDistribution(16, 256)),  # an integer key: int
        ("seed=range(0,10,3)", IntDistribution(0, 9, step=3)),
        ("seed=range(5)", IntDistribution(0, 4)),
        ("activation=relu,tanh", CategoricalDistribution(["relu", "tanh"])),
        ("optim=choice(sgd,adam)", CategoricalDistribution(["sgd", "adam"])),
        ("model.hidden=[8],[16,16]", CategoricalDistribution(["[8]", "[16,16]"])),
    ],
)
def test_each_sweep_form_becomes_its_optuna_distribution(override, expected):
    key = override.partition("=")[0]
    assert space_of(override) == {key: expected}


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "init=glob(he_*)",
            "glob() is grid-only, a sampler needs the choices written out, e.g. "
            "init=choice(he_uniform,he_normal)",
        ),
        ("lr=interval(1,0.1)", "start must be below its end"),
        ("lr=interval(0,1)", "log-scale interval needs a positive start"),
    ],
)
def test_what_a_sampler_cannot_use_is_refused_in_one_line(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        space_of(override)


@pytest.mark.parametrize(
    "options, message",
    [
        (
            dict(search="bayes", trials=4),
            "unknown --search 'bayes' (choose from: grid, random, tpe, cmaes, qmc, nsga2, pbt)",
        ),
        (dict(search="tpe"), "--search tpe needs a budget: add --trials N"),
        (dict(search="tpe", trials=4, pruner="asha"), "unknown --pruner 'asha' (choose from: none, median"),
        (
            dict(search="tpe", trials=4, metric="acc"),
            "unknown --metric 'acc' (choose from: best_val_accuracy",
        ),
        (dict(search="grid", trials=4), "--search grid runs every combination"),
        (dict(search="random"), "--search random draws trials: add --trials N"),
        (dict(trials=4, pruner="median"), "--pruner needs an adaptive search"),
        (dict(search="tpe", trials=4, batch=0), "--batch must be >= 1"),
    ],
)
def test_contradicting_options_are_refused(options, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        search.SearchOptions(**options).check()


def test_values_go_back_as_exact_override_text():
    assert search.value_text(0.1234567891234) == "0.1234567891234"
    assert search.value_text(3) == "3" and search.value_text("[8]") == "[8]"


def test_direction_follows_the_metric_name():
    assert search.direction("best_val_accuracy") == "maximize"
    assert search.direction("best_val_loss") == "minimize"
    assert search.epoch_value("best_val_accuracy", {"val_accuracy": 0.5}) == 0.5


@pytest.mark.parametrize("name", search.SAMPLERS)
def test_every_sampler_is_seeded_by_the_sweep_seed(name):
    space = space_of("lr=interval(1e-4,1)", "activation=relu,tanh", "seed=range(0,10,2)")

    def draws(seed):
        study = optuna.create_study(sampler=search.make_sampler(name, seed))
        out = []
        for index in range(12):
            trial = study.ask(space)
            study.tell(trial, trial.params["lr"] * (1 + trial.params["seed"]))
            out.append(trial.params)
        return out

    assert draws(3) == draws(3) and draws(3) != draws(4)


def test_a_tpe_batch_asked_before_any_is_told_is_not_one_point_repeated():
    """Constant liar: the trials asked but not told count as bad, so the batch spreads out."""
    space = space_of("lr=interval(1e-4,1)", "model.dropout=interval(0,0.5)")
    study = optuna.create_study(direction="maximize", sampler=search.make_sampler("tpe", 0))
    for _ in range(12):  # past TPE's random start-up trials
        trial = study.ask(space)
        study.tell(trial, -abs(trial.params["model.dropout"] - 0.2))
    batch = [study.ask(space).params for _ in range(8)]
    dropouts = sorted(params["model.dropout"] for params in batch)
    assert len({tuple(p.values()) for p in batch}) == 8
    assert dropouts[-1] - dropouts[0] > 0.01  # spread out, not eight near-copies


def test_grid_and_random_plans_are_todays():
    """`--search grid|random` use the planner: the same command and seed give the same trials."""
    random_plan = make_plan(["data=xor", "lr=interval(1e-3,1)", "seed=0,1"], trials=5, seed=7)
    again = make_plan(["data=xor", "lr=interval(1e-3,1)", "seed=0,1"], trials=5, seed=7)
    assert [t.params for t in random_plan.trials] == [t.params for t in again.trials]
    # the draws themselves are those of the planner's seeded random.Random, as before
    first = random.Random(7).uniform(math.log(1e-3), math.log(1))
    assert float(random_plan.trials[0].params["lr"]) == pytest.approx(math.exp(first), rel=1e-5)


def test_dry_run_shows_the_search_and_writes_nothing(tmp_path):
    from typer.testing import CliRunner

    from dlrun.cli import app

    result = CliRunner().invoke(
        app,
        [
            "sweep",
            "data=xor",
            "lr=interval(1e-3,1)",
            "seed=range(3)",
            "--search",
            "tpe",
            "--trials",
            "4",
            "--batch",
            "2",
            "--pruner",
            "median",
            "--dry-run",
            "--out",
            str(tmp_path / "s"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert (
        "tpe search, 4 trials asked 2 at a time, best_val_accuracy, median pruner: "
        "lr=interval(1e-3,1), seed=range(3)"
    ) in " ".join(result.output.split())
    assert not (tmp_path / "s").exists()


def test_a_storage_is_opened_once_per_process_and_again_for_a_new_file(tmp_path):
    """Every group of a sweep shares the driver's storage; a study file deleted and made again
    gets a new connection (a pooled one would write to the deleted file)."""
    import warnings

    from dlrun.sweep import study_store

    url = f"sqlite:///{tmp_path / 'study.db'}"
    first = study_store.open_storage(url)
    assert study_store.open_storage(url) is first
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optuna.create_study(storage=first, study_name="before")
    (tmp_path / "study.db").unlink()
    second = study_store.open_storage(url)
    assert second is not first
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        optuna.create_study(storage=second, study_name="after")
    assert [s.study_name for s in optuna.get_all_study_summaries(url)] == ["after"]
