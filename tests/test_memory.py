"""The group size estimate: the model's own parameter and activation sizes, traced, not hard-coded."""

import pytest

from dlrun import data
from dlrun.config.load import compose_config
from dlrun.sweep import memory

GIB = 2**30


def sizes(*overrides):
    cfg = compose_config(list(overrides))
    return memory.model_sizes(cfg, data.describe(cfg.data))


@pytest.mark.parametrize(
    "overrides, params, activations",
    [
        # 784 -> 512 -> 256 -> 10: the input, each Dense's output and the model's output (the logits)
        (["model=mlp"], 535818, 784 + 512 + 256 + 10 + 10),
        # the input, conv1 (28x28x6), conv2 (10x10x16), fc1, fc2, output and the model's output,
        # plus the CPU lowerings' patches: 25 shifted copies of the input, conv2's 10x10 x (5x5x6)
        (
            ["model=lenet"],
            61706,
            784 + 28 * 28 * 6 + 10 * 10 * 16 + 120 + 84 + 10 + 10 + 25 * 784 + 10 * 10 * 150,
        ),
        (["data=moons", "model.hidden=[16]"], 2 * 16 + 16 + 16 * 2 + 2, 2 + 16 + 2 + 2),
    ],
)
def test_sizes_are_the_models_own(overrides, params, activations):
    assert sizes(*overrides) == (params, activations)


def old_formula(cfg):
    """The estimate this replaces: activations as the input size times a number per model."""
    spec = data.describe(cfg.data)
    params, _ = memory.model_sizes(cfg, spec)
    inputs = 28 * 28
    return 4 * (6 * params + 3 * cfg.batch_size * inputs * (30 if cfg.model.name == "lenet" else 4))


@pytest.mark.parametrize("model", ["mlp", "lenet"])
def test_the_estimate_is_within_a_factor_of_two_of_the_old_formula(model):
    cfg = compose_config([f"model={model}"])
    assert 0.5 < memory.trial_bytes(cfg) / old_formula(cfg) < 2


@pytest.mark.parametrize("model", ["mlp", "lenet"])
def test_the_estimate_covers_what_xla_allocates_for_one_step(model):
    """XLA's own account of one compiled training step (arguments, outputs, temporaries)."""
    import functools

    import jax

    from dlrun.training import group, hparams, step

    cfg = compose_config([f"model={model}", "data.subset=1024"])
    dataset = data.load(cfg.data)
    program = group.build_program([cfg], dataset)
    state = step.create_state(program, jax.random.PRNGKey(0), hparams.state_hparams(cfg))
    x, y = dataset.x_train[: cfg.batch_size], dataset.y_train[: cfg.batch_size]
    compiled = (
        jax.jit(functools.partial(step.train_step, program))
        .lower(state, x, y, jax.random.PRNGKey(0))
        .compile()
    )
    used = compiled.memory_analysis()
    allocated = used.argument_size_in_bytes + used.output_size_in_bytes + used.temp_size_in_bytes
    assert allocated <= memory.trial_bytes(cfg) <= 4 * allocated


def test_a_bigger_model_fits_fewer_trials_in_a_group():
    small, big = (compose_config(["model=mlp", f"model.hidden={h}"]) for h in ("[64]", "[2048,2048]"))
    assert memory.trial_bytes(big) > 10 * memory.trial_bytes(small)
    assert memory.trials_that_fit(big, GIB) < memory.trials_that_fit(small, GIB) / 10
    # a bigger batch keeps more activations: fewer trials again
    batch = compose_config(["model=mlp", "model.hidden=[64]", "batch_size=1024"])
    assert memory.trials_that_fit(batch, GIB) < memory.trials_that_fit(small, GIB)


def test_a_model_too_big_for_the_budget_still_runs_alone():
    assert memory.trials_that_fit(compose_config(["model=mlp"]), budget=1000) == 1
    assert memory.device_memory() > GIB
