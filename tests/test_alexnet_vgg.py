"""AlexNet and VGG scaled to 28x28 and 32x32 inputs (dlrun/models/alexnet.py, vgg.py): their
parameter counts against closed forms worked out here from the architectures, their output
shapes, the same function through every conv lowering, and a bad depth refused in one line."""

import dataclasses
import subprocess
import sys

import jax
import jax.numpy as jnp
import pytest
from test_cnn import assert_lowerings_agree

from dlrun import models
from dlrun.config.load import compose_config
from dlrun.data import describe

MNIST, CIFAR = (28, 28, 1), (32, 32, 3)


def conv3(cin, cout):
    return 9 * cin * cout + cout


def conv5(cin, cout):
    return 25 * cin * cout + cout


def dense(n, m):
    return n * m + m


def built(overrides, shape):
    cfg = compose_config(overrides)
    spec = dataclasses.replace(describe(cfg.data), input_shape=shape)
    models.check(cfg, spec)
    model = models.build_model(cfg, spec)
    # shapes only (jax.eval_shape): nothing is initialised or computed, as in `dlrun list`
    x = jax.ShapeDtypeStruct((2, *shape), jnp.float32)
    variables = jax.eval_shape(lambda x: model.init({"params": jax.random.PRNGKey(0)}, x), x)
    out = jax.eval_shape(model.apply, variables, x)
    assert models.count_params(variables["params"]) == models.param_count(cfg, spec)
    return models.count_params(variables["params"]), out.shape, variables


def alexnet_count(cin, side, w=0.25):
    c1, c2, c3, c4, c5 = (round(64 * w), round(192 * w), round(384 * w), round(256 * w), round(256 * w))
    hidden = round(4096 * w)
    after_pools = side // 2 // 2 // 2  # three 2x2 max poolings; the 5x5/3x3 convs keep the size
    return (
        conv5(cin, c1)
        + conv5(c1, c2)
        + conv3(c2, c3)
        + conv3(c3, c4)
        + conv3(c4, c5)
        + dense(after_pools**2 * c5, hidden)
        + dense(hidden, hidden)
        + dense(hidden, 10)
    )


@pytest.mark.parametrize("shape", [MNIST, CIFAR])
def test_alexnet_parameter_count_and_output(shape):
    count, out, variables = built(["model=alexnet"], shape)
    assert count == alexnet_count(shape[2], shape[0])
    assert out == (2, 10)
    assert set(variables["params"]) == {"conv1", "conv2", "conv3", "conv4", "conv5", "fc1", "fc2", "output"}


def test_alexnet_at_full_width_is_the_paper_layout():
    count, _, _ = built(["model=alexnet", "model.width=1.0"], CIFAR)
    # 64-192-384-256-256 convs, 4x4x256 into 4096-4096: 36 M parameters, most in the head
    assert count == alexnet_count(3, 32, 1.0) == 36_054_858


def vgg_count(depth, cin, side, w=0.25):
    blocks = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3)}[depth]
    channels = [round(c * w) for c in (64, 128, 256, 512, 512)]
    total, previous = 0, cin
    for convs, width in zip(blocks, channels):
        for _ in range(convs):
            total += conv3(previous, width)
            previous = width
    after_pools = side // 2 // 2 // 2 // 2  # pooled after blocks 1-4: 28 -> 1, 32 -> 2
    hidden = round(512 * w)
    return total + dense(after_pools**2 * previous, hidden) + dense(hidden, hidden) + dense(hidden, 10)


@pytest.mark.parametrize("depth", [11, 13, 16])
@pytest.mark.parametrize("shape", [MNIST, CIFAR])
def test_vgg_parameter_count_and_output(depth, shape):
    count, out, variables = built(["model=vgg", f"model.depth={depth}"], shape)
    assert count == vgg_count(depth, shape[2], shape[0])
    assert out == (2, 10)
    convs = depth - 3  # VGG's depth counts weight layers: the convs and 3 dense
    assert set(variables["params"]) == {*(f"conv{i}" for i in range(1, convs + 1)), "fc1", "fc2", "output"}


def test_vgg16_hand_count_on_mnist():
    # blocks of 16..128 channels: 2x16, 2x32, 3x64, 3x128, 3x128; 1x1x128 -> 128 -> 128 -> 10
    by_hand = (
        conv3(1, 16)
        + conv3(16, 16)
        + conv3(16, 32)
        + conv3(32, 32)
        + conv3(32, 64)
        + 2 * conv3(64, 64)
        + conv3(64, 128)
        + 5 * conv3(128, 128)
        + dense(128, 128)
        + dense(128, 128)
        + dense(128, 10)
    )
    assert built(["model=vgg", "model.depth=16"], MNIST)[0] == by_hand == vgg_count(16, 1, 28)


def test_a_bad_vgg_depth_is_one_line_with_the_choices(tmp_path):
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "dlrun",
            "train",
            "model=vgg",
            "model.depth=12",
            "--out",
            str(tmp_path / "never"),
        ],
        capture_output=True,
        text=True,
    )
    output = (done.stdout + done.stderr).strip()
    assert done.returncode == 2
    assert output == "error: unknown model.depth 12 (choose from: 11, 13, 16)" or output.endswith(
        "unknown model.depth 12 (choose from: 11, 13, 16)"
    ), output
    assert "Traceback" not in output and len(output.splitlines()) == 1
    assert not (tmp_path / "never").exists()


@pytest.mark.parametrize(
    "family, overrides, shape",
    [
        ("alexnet", ["model.width=0.125"], MNIST),
        ("vgg", ["model.width=0.125"], CIFAR),
    ],
)
def test_lowerings_agree_in_outputs_and_gradients(family, overrides, shape):
    # Without batch norm: through VGG-BN's eight normalisations of batch-2 maps (down to 2x2),
    # float32 rounding differences grow to ~0.5% of conv1's gradient, beyond any sum's bound;
    # test_cnn checks batch norm across lowerings on a shallower stack.
    # longest sums: conv 5x5x24 or 3x3x64, the dense head's 512 inputs
    assert_lowerings_agree(family, overrides, shape, 25 * 24 + 9 * 64 + 512)
