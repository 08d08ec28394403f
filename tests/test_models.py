"""Tests of dlrun/models: the registry (check, build_model, parameter counts) and the two
families, mlp.py and lenet.py (tests named test_mlp_* / test_lenet_*), with the shared layers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import FLOAT32_RTOL, float32_atol
from omegaconf import OmegaConf

from dlrun import models
from dlrun.config.load import compose_config
from dlrun.config.schema import fields_of
from dlrun.data import describe
from dlrun.errors import ConfigError
from dlrun.models import alexnet, cnn, lenet, mlp, vgg


def build(*overrides):
    cfg = compose_config(list(overrides))
    spec = describe(cfg.data)
    model = models.build_model(cfg, spec)
    x = jnp.zeros((2, *spec.input_shape))
    variables = model.init({"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)}, x)
    return model, variables, x


def dense(n_in, n_out):
    return n_in * n_out + n_out


def conv(k, c_in, c_out):
    return k * k * c_in * c_out + c_out


def test_lenet5_parameter_count():
    _, variables, _ = build("model=lenet")
    expected = conv(5, 1, 6) + conv(5, 6, 16) + dense(16 * 5 * 5, 120) + dense(120, 84) + dense(84, 10)
    assert expected == 61706
    assert models.count_params(variables["params"]) == expected


def test_lenet5_layer_shapes():
    model, variables, x = build("model=lenet")
    params = variables["params"]
    assert params["conv1"]["kernel"].shape == (5, 5, 1, 6)
    assert params["conv2"]["kernel"].shape == (5, 5, 6, 16)
    assert params["fc1"]["kernel"].shape == (400, 120)
    assert model.apply(variables, x).shape == (2, 10)


def test_mlp_parameter_counts():
    _, variables, _ = build("model=mlp")
    assert models.count_params(variables["params"]) == dense(784, 512) + dense(512, 256) + dense(256, 10)
    _, variables, _ = build("model=mlp", "model.hidden=[]")  # logistic regression
    assert models.count_params(variables["params"]) == dense(784, 10)


def test_maxout_and_prelu_add_their_parameters():
    _, variables, _ = build("data=xor", "model.hidden=[4]", "activation=maxout", "maxout_pieces=3")
    assert models.count_params(variables["params"]) == dense(2, 12) + dense(4, 2)
    _, variables, _ = build("data=xor", "model.hidden=[4,4]", "activation=prelu")
    assert models.count_params(variables["params"]) == dense(2, 4) + dense(4, 4) + dense(4, 2) + 2


def test_binary_loss_gets_one_output_unit():
    model, variables, x = build("data=xor", "loss=binary_cross_entropy_with_logits", "model.hidden=[8]")
    assert model.apply(variables, x).shape == (2, 1)


def test_dropout_is_active_in_training_only_and_keeps_the_mean():
    model, variables, _ = build(
        "data=xor",
        "model.hidden=[2000]",
        "model.dropout=0.5",
        "activation=identity",
        "init=constant",
        "init_scale=0.01",
    )
    x = jnp.ones((1, 2))
    rngs = {"dropout": jax.random.PRNGKey(3)}
    evaluated = model.apply(variables, x, train=False, mutable=["stats"])[0]
    trained = model.apply(variables, x, train=True, dropout_rate=0.5, rngs=rngs, mutable=["stats"])[0]
    assert not np.allclose(evaluated, trained)
    np.testing.assert_allclose(trained, evaluated, rtol=0.1)  # inverted dropout preserves the mean


def test_batch_norm_tracks_statistics():
    model, variables, _ = build("data=xor", "model.hidden=[8]", "model.batch_norm=true")
    assert "hidden1_bn" in variables["batch_stats"]
    x = jax.random.normal(jax.random.PRNGKey(0), (64, 2)) * 3 + 1
    _, updates = model.apply(variables, x, train=True, mutable=["batch_stats", "stats"])
    mean = updates["batch_stats"]["hidden1_bn"]["mean"]
    assert not np.allclose(mean, variables["batch_stats"]["hidden1_bn"]["mean"])


def test_model_gradient_matches_finite_differences():
    with jax.enable_x64(True):
        model, variables, _ = build("data=xor", "model.hidden=[5,4]", "activation=tanh")
        params = jax.tree_util.tree_map(lambda p: p.astype(jnp.float64), variables["params"])
        x = jax.random.normal(jax.random.PRNGKey(0), (8, 2), jnp.float64)

        def loss(p):
            out = model.apply({"params": p}, x, mutable=["stats"])[0]
            return jnp.sum(out**2)

        grad = jax.grad(loss)(params)["hidden1"]["kernel"][1, 2]
        eps = 1e-6
        bump = lambda d: jax.tree_util.tree_map_with_path(
            lambda path, v: v.at[1, 2].add(d) if "hidden1" in str(path) and "kernel" in str(path) else v,
            params,
        )
        numeric = (loss(bump(eps)) - loss(bump(-eps))) / (2 * eps)
        assert float(grad) == pytest.approx(float(numeric), rel=1e-6)


def test_lenet_refuses_vectors():
    with pytest.raises(ConfigError, match="lenet"):
        compose_config(["model=lenet", "data=moons"])


@pytest.mark.parametrize(
    "extra", [[], ["model.batch_norm=true"], ["activation=maxout"], ["model.pooling=avg", "activation=tanh"]]
)
def test_lenet_lowerings_agree_in_outputs_and_gradients(extra):
    """The batch-last CPU layout is an implementation detail: same parameters, same function."""
    x = jax.random.normal(jax.random.PRNGKey(5), (4, 28, 28, 1))
    results = {}
    for lowering in ("xla", "batch_last"):
        model, variables, _ = build("model=lenet", f"model.conv_lowering={lowering}", *extra)

        def loss(params):
            out, _ = model.apply(
                {**variables, "params": params}, x, train=True, mutable=["stats", "batch_stats"]
            )
            return jnp.sum(out**2)

        results[lowering] = (loss(variables["params"]), jax.grad(loss)(variables["params"]))
    # The two lowerings sum in different orders. Terms on the longest path: the forward pass (conv
    # 5x5x1 and 5x5x6, dense 400, 120, 84), and for the gradients conv1's kernel, a sum over every
    # pixel of the batch (as are batch norm's statistics).
    forward = 25 + 150 + 400 + 120 + 84
    loss = results["xla"][0]
    np.testing.assert_allclose(loss, results["batch_last"][0], atol=float32_atol(loss, forward))
    reference = jax.tree_util.tree_leaves(results["xla"][1])
    scale = max(float(np.abs(leaf).max()) for leaf in reference)  # e.g. BN makes conv biases' ~0
    for a, b in zip(reference, jax.tree_util.tree_leaves(results["batch_last"][1])):
        np.testing.assert_allclose(a, b, rtol=FLOAT32_RTOL, atol=float32_atol(scale, forward + x.size))


# A config typed by each family's own schema holds only that family's fields.
OWN_FIELDS = {
    "mlp": {"name": "mlp", "hidden": [8], "dropout": 0.0, "batch_norm": False},
    "lenet": {"name": "lenet", "pooling": "avg", "conv_lowering": "auto", "dropout": 0.0},
}


def with_own_fields(name, data="mnist", **fields):
    cfg = OmegaConf.create(OmegaConf.to_container(compose_config([f"data={data}"])))
    cfg.model = {**OWN_FIELDS[name], **fields}
    return cfg


@pytest.mark.parametrize("name", sorted(OWN_FIELDS))
def test_a_family_checks_and_builds_from_its_own_fields_alone(name):
    cfg = with_own_fields(name)
    spec = describe(cfg.data)
    models.check(cfg, spec)
    expected = {"mlp": dense(784, 8) + dense(8, 10), "lenet": 61706}[name]
    assert models.param_count(cfg, spec) == expected


@pytest.mark.parametrize(
    "name, fields, message",
    [
        ("mlp", dict(hidden=[8, 0]), "model.hidden widths must be > 0, got [8, 0]"),
        ("mlp", dict(dropout=1.0), "model.dropout must be in [0, 1), got 1.0"),
        ("lenet", dict(pooling="min"), "unknown pooling 'min' (choose from: avg, max)"),
        (
            "lenet",
            dict(conv_lowering="fft"),
            "unknown model.conv_lowering 'fft' (choose from: auto, xla, im2col, batch_last)",
        ),
        ("lenet", dict(dropout=-0.1), "model.dropout must be in [0, 1), got -0.1"),
    ],
)
def test_a_family_refuses_its_own_bad_options(name, fields, message):
    cfg = with_own_fields(name, **fields)
    with pytest.raises(ConfigError) as caught:
        models.check(cfg, describe(cfg.data))
    assert str(caught.value) == message


def test_a_model_refuses_another_familys_option_by_name():
    with pytest.raises(
        ConfigError, match="model mlp has no field 'pooling'; its fields: name, trainable, hidden"
    ):
        compose_config(["data=xor", "model=mlp", "model.pooling=min"])


def test_lenet_fits_images_with_sides_divisible_by_four_only():
    cfg = with_own_fields("lenet", data="xor")
    with pytest.raises(ConfigError, match="model 'lenet' needs images .* shape \\(2,\\)"):
        models.check(cfg, describe(cfg.data))
    mlp.check_fits(cfg.model, describe(cfg.data))  # an MLP flattens any input


def test_every_model_option_has_a_check_in_its_family():
    for module in (mlp, lenet):
        assert set(module.OPTIONS) <= set(OWN_FIELDS[module.__name__.rsplit(".", 1)[1]])
    for module in (alexnet, cnn, vgg):  # every field but the name has a check
        name = module.__name__.rsplit(".", 1)[1]
        # typed by the schema alone; trainable is checked against the model's layers (transfer.py)
        unchecked = {"name", "batch_norm", "pool", "global_pool", "trainable"}
        assert set(module.OPTIONS) == set(fields_of("model", name)) - unchecked
    assert models.MODELS.names == (
        "alexnet",
        "autoencoder",
        "cnn",
        "lenet",
        "mlp",
        "resnet",
        "vgg",
    )  # resnet: tests/test_resnet.py, autoencoder: tests/test_autoencoder.py
