"""LeNet-5 (LeCun et al. 1998) for images whose sides are divisible by 4, e.g. 28x28 MNIST.

conv 5x5x6 (pad 2) -> pool 2 -> conv 5x5x16 -> pool 2 -> 120 -> 84 -> outputs.
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax

from dlrun.errors import ConfigError
from dlrun.models import conv
from dlrun.models.activations import width_factor
from dlrun.models.layers import ActivationSpec, Conv, activate, check_dropout, dropout
from dlrun.registry import Registry

POOLINGS = Registry("pooling", {"max": conv.max_pool, "avg": conv.avg_pool})


class LeNet5(nn.Module):
    outputs: int
    act: ActivationSpec
    kernel_init: Callable
    bias_init: Callable
    pooling: str = "max"
    lowering: str = "auto"
    batch_norm: bool = False
    use_dropout: bool = False

    @nn.compact
    def __call__(self, x, train: bool = False, dropout_rate=0.0):
        pool = POOLINGS[self.pooling]
        inits = dict(kernel_init=self.kernel_init, bias_init=self.bias_init)
        pieces = width_factor(self.act)
        # On CPU the whole conv stack stays in [C, H, W, B] (batch in the vector lanes): 0.8x
        # PyTorch's step time, against 1.4x when every conv converts from and back to NHWC.
        batch_last = self.lowering == "batch_last"
        channel_axis = 0 if batch_last else -1
        if batch_last:
            x = conv.to_batch_last(x)
        for name, features, padding in (("conv1", 6, 2), ("conv2", 16, 0)):
            x = Conv(features * pieces, 5, padding, self.lowering, name=name, **inits)(x)
            if self.batch_norm:
                x = nn.BatchNorm(use_running_average=not train, axis=channel_axis, name=f"{name}_bn")(x)
            x = pool(activate(self, x, self.act, name, channel_axis), 2)
        if batch_last:
            x = conv.from_batch_last(x)  # flatten in NHWC order: the same weights either way
        x = x.reshape(x.shape[0], -1)
        for name, features in (("fc1", 120), ("fc2", 84)):
            x = nn.Dense(features * pieces, name=name, **inits)(x)
            x = activate(self, x, self.act, name)
            if self.use_dropout:
                x = dropout(self, x, dropout_rate, train)
        return nn.Dense(self.outputs, name="output", **inits)(x)


def build(model, outputs: int, common: dict) -> LeNet5:
    """Return LeNet-5 for the config node `model` (cfg.model) with `outputs` output units."""
    lowering = conv.resolve_lowering(model.conv_lowering, jax.default_backend())
    # LeNet's own option file (conf/model/lenet.yaml) sets no batch_norm; the flat schema does
    batch_norm = bool(model.get("batch_norm", False))
    return LeNet5(
        outputs=outputs,
        pooling=model.pooling,
        lowering=lowering,
        batch_norm=batch_norm,
        use_dropout=model.dropout > 0,
        **common,
    )


def check_lowering(key: str, lowering: str) -> None:
    if lowering not in (*conv.LOWERINGS, "auto"):
        raise ConfigError(f"unknown {key} '{lowering}' (choose from: auto, {', '.join(conv.LOWERINGS)})")


OPTIONS = {
    "pooling": lambda key, name: POOLINGS.check(name),
    "conv_lowering": check_lowering,
    "dropout": check_dropout,
}


def workspace(model, spec) -> int:
    """The patches the CPU lowerings build per example: 25 shifted copies of conv1's padded
    input and conv2's im2col matrix (XLA's own convolution, on a GPU, builds none)."""
    if conv.resolve_lowering(model.conv_lowering, jax.default_backend()) == "xla":
        return 0
    height, width, channels = spec.input_shape
    conv2_out = (height // 2 - 4) * (width // 2 - 4)
    return 25 * height * width * channels + 25 * 6 * conv2_out


def check_fits(model, spec) -> None:
    """Raise ConfigError unless the data set's inputs are images LeNet's pooling can halve twice."""
    shape = tuple(spec.input_shape)
    # conv(pad 2) -> pool 2 -> conv(5, valid) -> pool 2 needs H, W divisible by 4 and >= 12
    if len(shape) != 3 or any(side % 4 or side < 12 for side in shape[:2]):
        raise ConfigError(
            f"model 'lenet' needs images (H, W, C) with sides divisible by 4, "
            f"but data '{spec.name}' has inputs of shape {shape} (use model=mlp)"
        )
