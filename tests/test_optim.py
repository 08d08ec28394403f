import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import FLOAT32_RTOL
from omegaconf import OmegaConf

from dlrun import optim
from dlrun.config.load import compose_config
from dlrun.errors import ConfigError


def one_update(overrides, grads, params):
    cfg = compose_config(["data=xor", *overrides])
    optimizer = optim.make_optimizer(cfg, steps_per_epoch=10)
    updates, _ = optimizer.update(grads, optimizer.init(params), params)
    return np.asarray(optax.apply_updates(params, updates))


def test_sgd_step_is_w_minus_lr_grad():
    w, g = jnp.array([1.0, -2.0]), jnp.array([0.5, 0.25])
    # Two roundings (lr * g, then w - that), or one where the CPU fuses them: either way a few eps.
    np.testing.assert_allclose(one_update(["optim=sgd", "lr=0.1"], g, w), [0.95, -2.025], rtol=FLOAT32_RTOL)


def test_adam_first_step_moves_each_weight_by_lr():
    # Adam's bias-corrected first step is lr * g / |g| (up to eps)
    w, g = jnp.array([1.0, -2.0]), jnp.array([0.5, -3.0])
    np.testing.assert_allclose(one_update(["optim=adam", "lr=0.01"], g, w), [0.99, -1.99], rtol=1e-5)


def test_clipping_bounds_the_update():
    w, g = jnp.zeros(2), jnp.array([30.0, 40.0])  # norm 50, clipped to 1
    np.testing.assert_allclose(
        one_update(["optim=sgd", "lr=1", "optim.clip_norm=1"], g, w), [-0.6, -0.8], rtol=FLOAT32_RTOL
    )


@pytest.mark.parametrize("name", sorted(optim.OPTIMIZERS))
def test_every_optimizer_injects_its_hyperparameters(name):
    cfg = compose_config(["data=xor", f"optim={name}", "lr=0.05"])
    state = optim.make_optimizer(cfg, 10).init({"w": jnp.zeros(3)})
    hyper = optim.injected_hyperparams(state)
    assert float(hyper["learning_rate"]) == pytest.approx(0.05)
    for field in optim.OPTIMIZERS[name][1]:
        assert float(hyper[field]) == pytest.approx(float(cfg.optim[field]))


def test_schedules_shape_the_lr():
    def multipliers(name, *extra):
        cfg = compose_config(["data=xor", f"schedule={name}", "epochs=10", *extra])
        schedule = optim.make_schedule(cfg, steps_per_epoch=100)
        return [float(schedule(step)) for step in (0, 100, 300, 500, 1000)]

    assert multipliers("constant") == [1.0] * 5
    np.testing.assert_allclose(
        multipliers("step", "schedule.decay_epochs=3", "schedule.gamma=0.1"),
        [1, 1, 0.1, 0.1, 0.001],
        rtol=1e-5,
    )
    np.testing.assert_allclose(
        multipliers("exponential", "schedule.gamma=0.5"), [1, 0.5, 0.125, 0.03125, 0.5**10], rtol=1e-5
    )
    np.testing.assert_allclose(
        multipliers("cosine"),
        [1, 0.5 * (1 + np.cos(np.pi * 0.1)), 0.5 * (1 + np.cos(np.pi * 0.3)), 0.5, 0],
        atol=1e-6,
    )
    warm = multipliers("warmup_cosine", "schedule.warmup_epochs=2")
    assert warm[0] == 0.0 and warm[1] == pytest.approx(0.5) and warm[4] == pytest.approx(0.0, abs=1e-6)


def test_linear_and_sqrt_lr_scaling_with_batch_size():
    cfg = compose_config(["data=xor", "lr=0.1", "batch_size=512", "optim.lr_scaling=linear"])
    assert optim.effective_lr(cfg) == pytest.approx(0.4)
    cfg = compose_config(["data=xor", "lr=0.1", "batch_size=512", "optim.lr_scaling=sqrt"])
    assert optim.effective_lr(cfg) == pytest.approx(0.2)


def test_bad_schedules_are_refused():
    with pytest.raises(ConfigError, match="warmup_epochs"):
        compose_config(["data=xor", "schedule=warmup_cosine", "schedule.warmup_epochs=20", "epochs=5"])
    with pytest.raises(ConfigError, match="gamma"):
        compose_config(["data=xor", "schedule=step", "schedule.gamma=2"])


def test_optim_check_reads_only_the_fields_the_config_holds():
    """A config typed by an optimizer's and a schedule's own schemas has only their fields."""
    cfg = OmegaConf.create(
        {
            "epochs": 10,
            "optim": {
                "name": "sgd",
                "l2": 0.0,
                "clip_norm": 0.0,
                "lr_scaling": "none",
                "base_batch_size": 128,
            },
            "schedule": {"name": "constant", "restarts": []},
        }
    )
    optim.check(cfg)
    cfg.schedule = {"name": "step", "decay_epochs": 0.0, "gamma": 0.1, "restarts": []}
    with pytest.raises(ConfigError, match=r"^schedule.decay_epochs must be > 0, got 0.0$"):
        optim.check(cfg)
    cfg.schedule = {"name": "constant", "restarts": []}
    cfg.optim.lr_scaling = "cubic"
    with pytest.raises(ConfigError) as caught:
        optim.check(cfg)
    assert str(caught.value) == "unknown optim.lr_scaling 'cubic' (choose from: linear, none, sqrt)"
