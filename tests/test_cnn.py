"""The `cnn` family (a conv stack from the config) and the geometry every conv family shares
(dlrun/models/convnet.py): sizes predicted at config time, refused in one line, equal to the
built network's; the same function through every conv lowering, strided and dilated too."""

import dataclasses
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import FLOAT32_RTOL, float32_atol

from dlrun import models
from dlrun.config.load import compose_config
from dlrun.data import describe
from dlrun.errors import ConfigError
from dlrun.models import cnn, convnet


def spec_of(cfg, shape=None):
    spec = describe(cfg.data)
    return spec if shape is None else dataclasses.replace(spec, input_shape=shape)


# (kernel, padding, stride, dilation, pool, input side) -> the sides after each of 2 layers,
# worked by hand with out = floor((W + 2p - d(k-1) - 1)/s) + 1 and pooling floor(W/2)
HAND_CASES = [
    ((3, 1, 1, 1, "max", 28), [(28, 14), (14, 7)]),
    ((5, 0, 1, 1, "max", 28), [(24, 12), (8, 4)]),  # LeNet-like: (28-4-1)/1+1 = 24
    ((3, 0, 2, 1, "none", 28), [(13, 13), (6, 6)]),  # (28-2-1)//2+1 = 13, (13-3)//2+1 = 6
    ((3, 2, 1, 2, "avg", 32), [(32, 16), (16, 8)]),  # dilation 2 spans 5: (32+4-4-1)+1 = 32
    ((4, 1, 3, 1, "max", 32), [(11, 5), (2, 1)]),  # (32+2-3-1)//3+1 = 11; (5+2-3-1)//3+1 = 2
]


@pytest.mark.parametrize("geometry, sides", HAND_CASES)
def test_geometry_follows_the_course_formula(geometry, sides):
    kernel, padding, stride, dilation, pool, side = geometry
    cfg = compose_config(["model=cnn", "model.channels=[4,8]"])
    # set after composing, which checks the stack against MNIST's 28x28 (not every case fits it)
    cfg.model.update(kernel=kernel, padding=padding, stride=stride, dilation=dilation, pool=pool)
    got = convnet.geometry("cnn", cnn.layers(cfg.model), spec_of(cfg, (side, side, 1)))
    assert [(g.conv_out[0], g.out[0]) for g in got] == sides


@pytest.mark.parametrize(
    "overrides, message",
    [
        (
            ["model.channels=[8,8,8]", "model.kernel=5", "model.padding=0"],
            "model cnn: conv3 gets a 4x4 map but its kernel 5 (padding 0, dilation 1) needs at least 5x5",
        ),
        (
            ["model.channels=[8]", "model.kernel=3", "model.padding=0", "model.dilation=15"],
            "model cnn: conv1 gets a 28x28 map but its kernel 3 (padding 0, dilation 15) needs at least "
            "31x31",
        ),
        (
            ["model.channels=[8,8,8,8,8]", "model.pool_size=2"],
            "model cnn: the max pooling after conv5 gets a 1x1 map but its window is 2x2",
        ),
        (["model.stride=0"], "model.stride must be >= 1, got 0"),
        (["model.pool=min"], "model.pool"),
    ],
)
def test_an_impossible_stack_is_one_line_before_any_data_loads(overrides, message, tmp_path):
    # an empty data folder and no network: had anything tried to load MNIST, it would fail on that
    env = {
        **os.environ,
        "DLRUN_DATA_DIR": str(tmp_path / "no-data"),
        "DLRUN_CACHE_DIR": str(tmp_path / "cache"),
        "DLRUN_MNIST_MIRRORS": "http://127.0.0.1:9/",
    }
    out = tmp_path / "never"
    done = subprocess.run(
        [sys.executable, "-m", "dlrun", "train", "model=cnn", *overrides, "--out", str(out)],
        capture_output=True,
        text=True,
        env=env,
    )
    output = (done.stdout + done.stderr).strip()
    assert done.returncode == 2, output
    assert message in output and "Traceback" not in output
    assert len(output.splitlines()) == 1
    assert not out.exists() and not (tmp_path / "no-data").exists()


def build(overrides, shape=None):
    cfg = compose_config(["model=cnn", *overrides])
    spec = spec_of(cfg, shape)
    models.check(cfg, spec)
    model = models.build_model(cfg, spec)
    # shapes only (jax.eval_shape): nothing is initialised or computed
    x = jax.ShapeDtypeStruct((2, *spec.input_shape), jnp.float32)
    variables = jax.eval_shape(lambda x: model.init({"params": jax.random.PRNGKey(0)}, x), x)
    return cfg, spec, model, variables, x


@pytest.mark.parametrize(
    "overrides, shape",
    [
        (["model.channels=[6,12]", "model.kernel=5", "model.padding=0"], None),
        (["model.channels=[4,8,8]", "model.stride=2", "model.pool=none", "model.dense=[16,8]"], (32, 32, 3)),
        (["model.channels=[4,8]", "model.dilation=2", "model.pool=avg", "model.pool_size=3"], (32, 32, 3)),
    ],
)
def test_the_built_network_has_the_predicted_sizes(overrides, shape):
    cfg, spec, model, variables, x = build([*overrides, "model.conv_lowering=xla"], shape)
    predicted = convnet.geometry("cnn", cnn.layers(cfg.model), spec)
    out, state = jax.eval_shape(
        lambda v, x: model.apply(v, x, capture_intermediates=True, mutable=["intermediates"]), variables, x
    )
    maps = state["intermediates"]
    channels = list(cfg.model.channels)
    for index, (size, features) in enumerate(zip(predicted, channels), start=1):
        assert maps[f"conv{index}"]["__call__"][0].shape == (2, *size.conv_out, features)
    height, width = predicted[-1].out
    assert variables["params"]["fc1"]["kernel"].shape[0] == height * width * channels[-1]
    assert out.shape == (2, 10)


def test_parameter_count_and_layer_names():
    cfg, spec, model, variables, x = build(
        ["model.channels=[32,64]", "model.dense=[128]", "model.batch_norm=true"]
    )
    conv = lambda k, cin, cout: k * k * cin * cout + cout
    dense = lambda n, m: n * m + m
    bn = lambda c: 2 * c  # scale and bias; the running averages are batch_stats
    expected = (
        conv(3, 1, 32) + bn(32) + conv(3, 32, 64) + bn(64) + dense(7 * 7 * 64, 128) + bn(128) + dense(128, 10)
    )
    assert models.count_params(variables["params"]) == expected == models.param_count(cfg, spec)
    assert list(variables["params"]) == ["conv1", "conv1_bn", "conv2", "conv2_bn", "fc1", "fc1_bn", "output"]


def test_global_pool_feeds_the_channels_alone_to_the_head():
    _, _, model, variables, x = build(["model.channels=[8,16]", "model.global_pool=true", "model.dense=[]"])
    assert variables["params"]["output"]["kernel"].shape == (16, 10)


# cnn variants through both lowerings: on CPU `auto` is the batch_last layout, whose custom
# kernels do stride 1 only; strided and dilated layers go to lax.conv in the CHWN layout
LOWERING_CASES = [
    ["model.channels=[4,6]", "model.batch_norm=true", "model.stride=2", "model.pool=none", "model.padding=0"],
    [
        "model.channels=[4,6]",
        "model.dilation=2",
        "model.padding=2",
        "model.pool=avg",
        "model.pool_size=3",
        "model.global_pool=true",
        "activation=tanh",
        "model.dropout=0.2",
    ],
]


BATCH = 2


def assert_lowerings_agree(family, overrides, shape, forward_terms):
    """Output and gradients of `xla` and `auto` agree up to float32 summation order."""
    results = {}
    for lowering in ("xla", "auto"):
        cfg = compose_config([f"model={family}", *overrides, f"model.conv_lowering={lowering}"])
        spec = spec_of(cfg, shape)
        model = models.build_model(cfg, spec)
        x = jax.random.normal(jax.random.PRNGKey(5), (BATCH, *spec.input_shape))
        keys = {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)}
        variables = model.init(keys, x)

        def loss(params):
            out, _ = model.apply(
                {**variables, "params": params},
                x,
                train=True,
                dropout_rate=0.2,
                rngs={"dropout": jax.random.PRNGKey(2)},
                mutable=["stats", "batch_stats"],
            )
            return jnp.sum(out**2)

        results[lowering] = jax.jit(jax.value_and_grad(loss))(variables["params"])
    value = results["xla"][0]
    np.testing.assert_allclose(
        value, results["auto"][0], rtol=FLOAT32_RTOL, atol=float32_atol(value, forward_terms)
    )
    reference = jax.tree_util.tree_leaves(results["xla"][1])
    scale = max(float(np.abs(leaf).max()) for leaf in reference)
    # a kernel's gradient also sums over every pixel of the batch
    terms = forward_terms + BATCH * int(np.prod(shape or (28, 28, 1)))
    for a, b in zip(reference, jax.tree_util.tree_leaves(results["auto"][1])):
        np.testing.assert_allclose(a, b, rtol=FLOAT32_RTOL, atol=float32_atol(scale, terms))


@pytest.mark.parametrize("overrides", LOWERING_CASES)
def test_cnn_lowerings_agree_in_outputs_and_gradients(overrides):
    # longest sums: conv 5x5x(3..6), the flattened maps (<= 14*14*6) into the dense head
    assert_lowerings_agree("cnn", overrides, None, 25 * 6 + 14 * 14 * 6 + 128)


def test_a_bad_cnn_option_names_the_field():
    cfg = compose_config(["model=cnn"])
    cfg.model.channels = [8, 0]
    with pytest.raises(ConfigError, match=r"model.channels widths must be > 0, got \[8, 0\]"):
        models.check(cfg, spec_of(cfg))
