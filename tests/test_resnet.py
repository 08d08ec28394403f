"""Tests of dlrun/models/resnet.py: the CIFAR ResNet's weights in closed form, its shapes on
MNIST- and CIFAR-shaped images, the plain net, batch norm's statistics, its lowerings and its
refusals."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import FLOAT32_RTOL, float32_atol
from omegaconf import OmegaConf

from dlrun import models
from dlrun.config.load import compose_config
from dlrun.data import describe
from dlrun.errors import ConfigError
from dlrun.models import resnet


def closed_form_params(depth, in_channels, outputs, width=1, projections=True):
    """He et al. 2016, 4.2: a 3x3 stem, 3 stages of (depth-2)/6 blocks of two 3x3 convs, each
    conv with a BN (scale + shift per channel) and no bias, 1x1 projections + BN where the
    channels change, and a dense output on the 64 pooled channels."""
    conv_bn = lambda k, cin, cout: k * k * cin * cout + 2 * cout
    n = (depth - 2) // 6
    total, cin = conv_bn(3, in_channels, 16 * width), 16 * width
    for base in (16, 32, 64):
        cout = base * width
        for _ in range(n):
            total += conv_bn(3, cin, cout) + conv_bn(3, cout, cout)
            if projections and cin != cout:
                total += conv_bn(1, cin, cout)
            cin = cout
    return total + cin * outputs + outputs


def config(*overrides, input_shape=(28, 28, 1)):
    cfg = compose_config(["model=resnet", *overrides])
    spec = dataclasses.replace(describe(cfg.data), input_shape=tuple(input_shape))
    return cfg, spec


def init(cfg, spec, batch=2):
    model = models.build_model(cfg, spec)
    x = jax.random.normal(jax.random.PRNGKey(1), (batch, *spec.input_shape))
    return model, jax.jit(model.init)({"params": jax.random.PRNGKey(0)}, x), x


def evaluate(model, variables, x):
    return jax.jit(lambda v, x: model.apply(v, x, mutable=["stats"])[0])(variables, x)


def test_resnet20_has_the_papers_0_27m_weights():
    assert closed_form_params(20, 3, 10) == 272_474  # "0.27M" (table 6)
    cfg, spec = config(input_shape=(32, 32, 3))
    assert models.param_count(cfg, spec) == 272_474


@pytest.mark.parametrize(
    "depth,width,shortcut,channels",
    [(8, 1, "projection", 1), (14, 2, "projection", 3), (32, 1, "identity", 3)],
)
def test_parameter_count_matches_the_closed_form(depth, width, shortcut, channels):
    cfg, spec = config(
        f"model.depth={depth}",
        f"model.width={width}",
        f"model.shortcut={shortcut}",
        input_shape=(32, 32, channels),
    )
    expected = closed_form_params(depth, channels, 10, width, shortcut == "projection")
    assert models.param_count(cfg, spec) == expected


def test_the_plain_net_has_the_same_layers_without_the_additions():
    plain, _ = config("model.skip=false", input_shape=(32, 32, 3))
    option_a, spec = config("model.shortcut=identity", input_shape=(32, 32, 3))
    assert models.param_count(plain, spec) == models.param_count(option_a, spec)
    assert models.param_count(plain, spec) == closed_form_params(20, 3, 10, projections=False)
    # the same weights fit both; only the additions differ
    plain, spec = config("model.skip=false", "model.depth=8", input_shape=(12, 12, 3))
    option_a, _ = config("model.shortcut=identity", "model.depth=8", input_shape=(12, 12, 3))
    _, variables, x = init(plain, spec)
    ours = evaluate(models.build_model(plain, spec), variables, x)
    theirs = evaluate(models.build_model(option_a, spec), variables, x)
    assert not np.allclose(ours, theirs)


@pytest.mark.parametrize("shape,lowering", [((28, 28, 1), "batch_last"), ((32, 32, 3), "xla")])
def test_output_shape_on_mnist_and_cifar_images(shape, lowering):
    cfg, spec = config("model.depth=8", f"model.conv_lowering={lowering}", input_shape=shape)
    model, variables, x = init(cfg, spec, batch=3)
    assert evaluate(model, variables, x).shape == (3, 10)
    # jit hands parameter dicts back with sorted keys: the names sort in network order
    names = list(variables["params"])
    assert names[:3] == ["layer00", "layer00_bn", "layer01_bn1"] and names[-1] == "output"
    layers = list(dict.fromkeys(models.layer_of(name) for name in names))
    assert layers == ["layer00", "layer01", "layer02", "layer03", "output"]


def test_batch_norm_running_statistics_update_in_training_and_serve_evaluation():
    cfg, spec = config("model.depth=8", input_shape=(12, 12, 1))
    model, variables, _ = init(cfg, spec)
    x = jax.random.normal(jax.random.PRNGKey(2), (8, *spec.input_shape)) * 3 + 2
    train = jax.jit(lambda v, x: model.apply(v, x, train=True, mutable=["batch_stats", "stats"]))
    in_training, updates = train(variables, x)
    before, after = variables["batch_stats"]["layer00_bn"], updates["batch_stats"]["layer00_bn"]
    stem = jax.lax.conv_general_dilated(
        x,
        variables["params"]["layer00"]["kernel"],
        (1, 1),
        [(1, 1)] * 2,
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )
    # momentum 0.9: the running statistics move a tenth of the way to the batch's (biased) ones
    momentum = resnet.BN_MOMENTUM
    np.testing.assert_allclose(
        after["mean"],
        momentum * before["mean"] + (1 - momentum) * stem.mean(axis=(0, 1, 2)),
        rtol=1e-4,
        atol=1e-5,
    )
    np.testing.assert_allclose(
        after["var"],
        momentum * before["var"] + (1 - momentum) * stem.var(axis=(0, 1, 2)),
        rtol=1e-4,
        atol=1e-5,
    )
    # evaluation normalises with the running statistics, not the batch's: one example's output
    # does not depend on the others in its batch
    trained = {**variables, "batch_stats": updates["batch_stats"]}
    alone = evaluate(model, trained, x[:1])
    together = evaluate(model, trained, x)[:1]
    np.testing.assert_allclose(alone, together, rtol=1e-5, atol=1e-5)
    assert not np.allclose(in_training[:1], together, atol=1e-3)


def test_lowerings_agree_in_outputs_and_gradients():
    """The CPU layout is an implementation detail: same parameters, same function."""
    x = jax.random.normal(jax.random.PRNGKey(5), (4, 8, 8, 3))
    results = {}
    for lowering in ("xla", "batch_last"):  # im2col's strided convs: tests/test_conv.py
        cfg, spec = config("model.depth=8", f"model.conv_lowering={lowering}", input_shape=(8, 8, 3))
        model, variables, _ = init(cfg, spec)

        @jax.jit
        def loss(params):
            out, _ = model.apply(
                {**variables, "params": params}, x, train=True, mutable=["stats", "batch_stats"]
            )
            return jnp.sum(out**2)

        results[lowering] = (loss(variables["params"]), jax.jit(jax.grad(loss))(variables["params"]))
    # the longest sum: 7 convs of up to 9 x 64 terms, and a kernel gradient over every pixel
    forward = 7 * 9 * 64
    reference = results["xla"]
    for lowering in ("batch_last",):
        np.testing.assert_allclose(
            results[lowering][0], reference[0], atol=float32_atol(reference[0], forward)
        )
        leaves = jax.tree_util.tree_leaves(reference[1])
        scale = max(float(np.abs(leaf).max()) for leaf in leaves)
        for a, b in zip(leaves, jax.tree_util.tree_leaves(results[lowering][1])):
            np.testing.assert_allclose(b, a, rtol=FLOAT32_RTOL, atol=float32_atol(scale, forward + x.size))


def own(**fields):
    cfg = OmegaConf.create(OmegaConf.to_container(compose_config(["model=resnet"])))
    cfg.model = {**OmegaConf.to_container(cfg.model), **fields}
    return cfg


@pytest.mark.parametrize(
    "fields, message",
    [
        (dict(depth=21), "model.depth must be 6n+2, one of 8, 14, 20, 32, 44, 56, 110; got 21"),
        (dict(width=0), "model.width (the channel multiplier) must be >= 1, got 0"),
        (dict(shortcut="conv"), "unknown model.shortcut 'conv' (choose from: projection, identity)"),
    ],
)
def test_bad_options_are_refused_in_one_line(fields, message):
    cfg = own(**fields)
    with pytest.raises(ConfigError) as caught:
        models.check(cfg, describe(cfg.data))
    assert str(caught.value) == message


def test_resnet_refuses_vectors():
    with pytest.raises(ConfigError, match="model 'resnet' needs images"):
        compose_config(["model=resnet", "data=moons"])


def test_every_option_has_a_check():
    assert set(resnet.OPTIONS) <= set(OmegaConf.to_container(own().model))
