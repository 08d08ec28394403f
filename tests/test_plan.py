"""The sweep planner: composed trials, grouping by program shape, size limits, bad specs.

The grammar itself (grids, draws, glob) is tested in test_space.py."""

import pytest

from dlrun.errors import ConfigError
from dlrun.sweep.plan import make_plan, shape_key

MOONS = ["data=moons", "model.hidden=[8]"]


def test_grid_is_the_cartesian_product():
    plan = make_plan([*MOONS, "lr=0.1,0.01,0.001", "seed=range(3)"])
    assert len(plan.trials) == 9 and plan.mode == "grid"
    assert {(t.params["lr"], t.params["seed"]) for t in plan.trials} == {
        (lr, seed) for lr in ("0.1", "0.01", "0.001") for seed in ("0", "1", "2")
    }
    assert plan.trials[4].cfg.lr == 0.01 and plan.trials[4].cfg.seed == 1


def test_choice_range_and_glob():
    plan = make_plan(
        [*MOONS, "activation=choice(relu,tanh)", "batch_size=range(32,97,32)", "init=glob(he_*)"]
    )
    assert len(plan.trials) == 2 * 3 * 2
    assert {t.cfg.init for t in plan.trials} == {"he_normal", "he_uniform"}
    plan = make_plan(["data=xor", "optim=glob(*)"])
    assert {t.cfg.optim.name for t in plan.trials} == {
        "sgd",
        "momentum",
        "nesterov",
        "rmsprop",
        "adagrad",
        "adam",
        "adamw",
    }


def test_random_draws_reach_the_configs_typed_by_the_schema():
    plan = make_plan([*MOONS, "lr=tag(linear,interval(0.01,0.02))", "batch_size=interval(16,64)"], trials=20)
    assert plan.mode == "random" and len(plan.trials) == 20
    assert all(0.01 <= t.cfg.lr <= 0.02 for t in plan.trials)
    assert all(isinstance(t.cfg.batch_size, int) and 16 <= t.cfg.batch_size <= 64 for t in plan.trials)


def test_trials_that_differ_only_in_state_borne_keys_share_a_group():
    plan = make_plan(
        [
            *MOONS,
            "lr=0.1,0.01",
            "seed=0,1",
            "init=he_normal,glorot_uniform",
            "optim.l2=0,1e-4",
            "model.dropout=0,0.2",
        ]
    )
    assert len(plan.trials) == 32 and len(plan.groups) == 1


@pytest.mark.parametrize(
    "sweep, groups",
    [
        ("batch_size=32,64", 2),
        ("model.hidden=[8],[16]", 2),
        ("activation=relu,tanh", 2),
        ("optim=sgd,adam", 2),
        ("data=moons,circles", 2),
        ("epochs=5,10", 2),
    ],
)
def test_shape_changing_keys_start_new_groups(sweep, groups):
    assert len(make_plan([*MOONS, sweep, "lr=0.1,0.01"]).groups) == groups


def test_max_group_splits_a_group_into_chunks():
    plan = make_plan([*MOONS, "seed=range(10)"], max_group=4)
    assert [g.size for g in plan.groups] == [4, 4, 2]
    assert len({str(shape_key(t.cfg)) for t in plan.trials}) == 1


def test_the_size_limit_is_asked_once_per_program_shape():
    asked = []

    def limit(cfg):
        asked.append(cfg.batch_size)
        return 2 if cfg.batch_size == 32 else 3

    plan = make_plan([*MOONS, "batch_size=32,64", "seed=range(5)"], size_limit=limit)
    assert sorted(asked) == [32, 64]
    assert [(g.shape["batch_size"], g.size) for g in plan.groups] == [
        (32, 2),
        (32, 2),
        (32, 1),
        (64, 3),
        (64, 2),
    ]
    assert [g.id for g in plan.groups] == ["g000", "g001", "g002", "g003", "g004"]


def test_max_group_wins_over_the_size_limit():
    plan = make_plan([*MOONS, "seed=range(5)"], max_group=4, size_limit=lambda cfg: 1)
    assert [g.size for g in plan.groups] == [4, 1]


@pytest.mark.parametrize(
    "spec, message",
    [
        (["lr=interval(1e-4,1e-1)"], "add --trials N"),
        (["lr=0.1,-1"], "lr must be > 0, got -1.0 (trial 1: lr=-1)"),
        (["lr=0.1,fast"], "lr=fast is not a valid float"),
        # a later trial's values are checked alone (its base passed with the first): still refused
        (["lr=0.1,nan"], "lr=nan is not a finite number"),
        (["model.hidden=[8],[8,x]"], "model.hidden[1]=x is not a valid integer"),
        (["colour=red,blue"], "unknown config key 'colour'"),
        (["model=mlp,unet"], "unknown model 'unet'"),
        (["activation=glob(zz*)"], "matches no activation"),
        (["lr=0.1,,"], "cannot parse 'lr=0.1,,'"),
    ],
)
def test_bad_sweep_specs_are_refused_before_anything_trains(spec, message):
    with pytest.raises(ConfigError) as caught:
        make_plan([*MOONS, *spec])
    assert message in str(caught.value) and "\n" not in str(caught.value)
