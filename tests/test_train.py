import functools

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest
from conftest import FLOAT32_RTOL, needs_mnist

from dlrun import data, results
from dlrun.config.load import compose_config
from dlrun.training import group, hparams, step


def session(*overrides):
    cfg = compose_config(list(overrides))
    dataset = data.load(cfg.data)
    program = group.build_program([cfg], dataset)
    state = step.create_state(program, jax.random.PRNGKey(cfg.seed), hparams.state_hparams(cfg))
    return cfg, dataset, program, state


def fit(*overrides, epochs=1):
    cfg, dataset, program, state = session(*overrides)
    epoch = jax.jit(functools.partial(step.train_epoch, program))
    x, y = jax.device_put((dataset.x_train, dataset.y_train))
    history = []
    for index in range(epochs):
        state, metrics = epoch(state, x, y, jax.random.PRNGKey(index))
        history.append(jax.device_get(metrics))
    return state, history, epoch


def test_training_loss_falls():
    _, history, _ = fit("data=moons", "model.hidden=[16]", "lr=0.01", epochs=5)
    losses = [float(m["loss"]) for m in history]
    assert losses[-1] < 0.6 * losses[0]


def test_an_epoch_compiles_once():
    _, _, epoch = fit("data=moons", "model.hidden=[8]", epochs=3)
    assert epoch._cache_size() == 1


def test_linear_model_fails_xor_while_an_mlp_solves_it():
    common = ["data=xor", "data.noise=0", "epochs=40", "lr=0.01", "batch_size=32"]
    linear, _, _ = fit(*common, "model.hidden=[]", epochs=40)
    mlp, _, _ = fit(*common, "model.hidden=[16,16]", epochs=40)

    def accuracy(state, overrides):
        cfg, dataset, program, _ = session(*common, *overrides)
        batches = group.eval_batches(dataset.x_test, dataset.y_test, 1000)
        return float(step.evaluate(program, state.params, state.batch_stats, *batches)["accuracy"])

    assert accuracy(linear, ["model.hidden=[]"]) < 0.7  # a line splits the quadrants at best 3:1
    assert accuracy(mlp, ["model.hidden=[16,16]"]) > 0.95


def test_l2_penalty_gradient_is_two_lambda_w():
    w = {"layer": {"kernel": jnp.array([[1.0, -2.0]]), "bias": jnp.array([5.0])}}
    grads = jax.grad(lambda p: 0.1 * step.l2_penalty(p))(w)
    np.testing.assert_allclose(grads["layer"]["kernel"], [[0.2, -0.4]], rtol=FLOAT32_RTOL)
    np.testing.assert_allclose(grads["layer"]["bias"], [0.0])  # biases are not penalised


def test_dead_relu_units_are_counted():
    _, history, _ = fit("data=moons", "model.hidden=[16]", "bias_init=constant", "bias_scale=-100")
    assert float(history[0]["dead_fraction"]) == 1.0
    _, history, _ = fit("data=moons", "model.hidden=[16]")
    assert float(history[0]["dead_fraction"]) < 0.5


def test_saturation_is_measured_for_sigmoid():
    _, history, _ = fit(
        "data=moons", "model.hidden=[16]", "activation=sigmoid", "init=normal", "init_scale=20"
    )
    assert float(history[0]["saturated_fraction"]) > 0.5


def test_layer_gradient_norms_are_per_layer_in_order():
    _, history, _ = fit("data=moons", "model.hidden=[8,8]")
    assert list(history[0]["layer_grad_norms"]) == ["hidden1", "hidden2", "output"]


@needs_mnist
def test_augmentation_shifts_keep_shape_and_move_pixels():
    cfg, dataset, program, state = session("data.subset=256", "augment.shift=2", "augment.noise_std=0.1")
    x = step.prepare_inputs(program, jnp.asarray(dataset.x_train[:8]))
    moved = step.augment(program, x, jax.random.PRNGKey(0), 0.0)
    assert moved.shape == x.shape and not np.allclose(moved, x)
    noisy = step.augment(
        program.__class__(**{**program.__dict__, "augment_shift": 0}), x, jax.random.PRNGKey(0), 0.1
    )
    assert float(jnp.std(noisy - x)) == pytest.approx(0.1, rel=0.1)


def test_regression_on_poly1d_fits_the_cubic(tmp_path):
    cfg = compose_config(
        [
            "data=poly1d",
            "model.hidden=[32,32]",
            "activation=tanh",
            "epochs=30",
            "lr=0.01",
            "batch_size=32",
            "data.target_scaling=none",
        ]
    )
    summary = group.train_and_evaluate(cfg, tmp_path / "run")
    # the targets carry noise of std 0.1: the best possible mse is about 0.01
    assert summary["status"] == "completed" and summary["test_loss"] < 0.03
    assert summary["test_accuracy"] is None


def test_huge_lr_is_diverged_not_a_crash(tmp_path):
    cfg = compose_config(["data=moons", "model.hidden=[16]", "optim=sgd", "lr=1e6", "epochs=5", "loss=mse"])
    summary = group.train_and_evaluate(cfg, tmp_path / "run")
    assert summary["status"] == "diverged"
    assert summary["epochs_run"] < 5
    assert results.read_summary(tmp_path / "run")["status"] == "diverged"


def test_same_seed_same_numbers_and_resume_repeats_them(tmp_path):
    # constant lr: a cosine schedule over 2 epochs differs from one over 4 by design
    common = ["data=moons", "model.hidden=[16]", "model.dropout=0.2", "lr=0.01", "schedule=constant"]
    group.train_and_evaluate(compose_config([*common, "epochs=4"]), tmp_path / "a")
    group.train_and_evaluate(compose_config([*common, "epochs=4"]), tmp_path / "b")
    group.train_and_evaluate(compose_config([*common, "epochs=2"]), tmp_path / "c")
    resumed = compose_config([*common, "epochs=4"])
    group.train_and_evaluate(resumed, tmp_path / "c", resume=True)
    columns = ["train_loss", "val_loss", "val_accuracy"]
    a, b, c = (pd.read_csv(tmp_path / name / "metrics.csv")[columns] for name in "abc")
    pd.testing.assert_frame_equal(a, b)
    pd.testing.assert_frame_equal(a, c)


def test_early_stopping_stops_and_restores_best(tmp_path):
    # 200 examples and a wide net: validation loss turns up within a few epochs
    cfg = compose_config(
        [
            "data=spirals",
            "data.n_samples=300",
            "data.val_size=100",
            "data.noise=0.3",
            "model.hidden=[256,256]",
            "lr=0.01",
            "batch_size=16",
            "epochs=60",
            "early_stopping.patience=3",
        ]
    )
    summary = group.train_and_evaluate(cfg, tmp_path / "run")
    assert summary["early_stopped"] and summary["epochs_run"] == summary["best_epoch"] + 3
    assert summary["test_params"] == "best"
    assert (tmp_path / "run" / results.BEST_CHECKPOINT).exists()
