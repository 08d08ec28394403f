"""CIFAR-style ResNet (He et al. 2016, section 4.2): depth 6n + 2.

3x3 stem conv (16 channels) -> three stages of n basic blocks with 16, 32, 64 channels (times
`width`) -> global average pooling -> (dropout, off by default) -> dense output. A basic block
is conv3x3-BN-act-conv3x3-BN, plus its input, then act. Stages 2 and 3 open with a stride-2
block whose skip is a projection (1x1 conv, stride 2, + BN: the paper's option B;
`shortcut=identity` is its option A, which subsamples and pads with zero channels); every other
skip is the identity. With `skip=false`
the additions are left out and nothing else changes (the paper's "plain" net: the same
parameters as the option-A ResNet, the option-B one less its projections).

Parameter modules are top-level and named `<layer>_<part>`: `layer00` is the stem conv (with
`layer00_bn`), `layerKK` block KK (`layer03_conv1`, `layer03_bn1`, ..., `layer03_proj`), then
`output`. So `models.layer_of` groups each block's convs and batch norms into one layer, the
names sort in network order (jit returns parameter dicts with sorted keys), and the unit
statistics are sown at the top level, where the step collects them.
Convolutions have no bias: the batch norm after each one has its own shift.
"""

from __future__ import annotations

from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlrun.errors import ConfigError
from dlrun.models import conv
from dlrun.models.layers import ActivationSpec, activate, check_dropout, dropout
from dlrun.models.lenet import check_lowering  # one message for every conv family

# The paper's CIFAR depths (section 4.2, table 6) besides the two small ones the lessons use.
DEPTHS = (8, 14, 20, 32, 44, 56, 110)
STAGE_CHANNELS = (16, 32, 64)
# Where a block changes the shape: the paper's option B (1x1 conv + BN) or option A (subsample,
# zero channels; no parameters, so a ResNet and its plain net have exactly the same weights).
SHORTCUTS = ("projection", "identity")
# PyTorch's default (momentum 0.1 there): short runs need running statistics that catch up fast
# (flax's default 0.99 leaves the evaluation statistics near their initial values for ~100 steps).
BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5


class Conv(nn.Module):
    """A bias-free square convolution with padding kernel_size // 2 ("same" at stride 1), in
    the layout its lowering keeps ([C, H, W, B] for batch_last, else NHWC); HWIO kernel."""

    features: int
    kernel_size: int
    stride: int
    lowering: str
    kernel_init: Callable

    @nn.compact
    def __call__(self, x):
        batch_last = self.lowering == "batch_last"
        channels = x.shape[0] if batch_last else x.shape[-1]
        kernel = self.param(
            "kernel", self.kernel_init, (self.kernel_size, self.kernel_size, channels, self.features)
        )
        padding = self.kernel_size // 2
        if batch_last:
            return conv.conv2d_batch_last(x, kernel, padding=padding, stride=self.stride)
        return conv.conv2d(x, kernel, padding=padding, lowering=self.lowering, stride=self.stride)


class ResNet(nn.Module):
    outputs: int
    act: ActivationSpec
    kernel_init: Callable
    bias_init: Callable
    depth: int = 20
    width: int = 1
    skip: bool = True
    shortcut: str = "projection"
    lowering: str = "auto"
    use_dropout: bool = False

    def _conv(self, x, features, kernel_size, stride, name):
        return Conv(features, kernel_size, stride, self.lowering, self.kernel_init, name=name)(x)

    def _bn(self, x, train, name):
        axis = 0 if self.lowering == "batch_last" else -1
        return nn.BatchNorm(
            use_running_average=not train, axis=axis, momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name
        )(x)

    def _block(self, x, features, stride, train, name):
        unit_axis = 0 if self.lowering == "batch_last" else -1
        y = self._bn(self._conv(x, features, 3, stride, f"{name}_conv1"), train, f"{name}_bn1")
        y = activate(self, y, self.act, f"{name}_conv1", unit_axis)
        y = self._bn(self._conv(y, features, 3, 1, f"{name}_conv2"), train, f"{name}_bn2")
        if self.skip:
            if stride != 1 or x.shape[unit_axis] != features:
                x = self._shortcut(x, features, stride, train, name)
            y = y + x
        return activate(self, y, self.act, f"{name}_conv2", unit_axis)

    def _shortcut(self, x, features, stride, train, name):
        if self.shortcut == "projection":  # option B: 1x1 conv, stride 2, + BN
            return self._bn(self._conv(x, features, 1, stride, f"{name}_proj"), train, f"{name}_projbn")
        # option A: every other pixel, the new channels zero; no parameters
        x = x[:, ::stride, ::stride, :]
        axis = 0 if self.lowering == "batch_last" else 3
        pad = [(0, 0)] * 4
        pad[axis] = (0, features - x.shape[axis])
        return jnp.pad(x, pad)

    @nn.compact
    def __call__(self, x, train: bool = False, dropout_rate=0.0):
        batch_last = self.lowering == "batch_last"
        unit_axis = 0 if batch_last else -1
        if batch_last:
            x = conv.to_batch_last(x)
        x = self._bn(self._conv(x, STAGE_CHANNELS[0] * self.width, 3, 1, "layer00"), train, "layer00_bn")
        x = activate(self, x, self.act, "layer00", unit_axis)
        blocks_per_stage = (self.depth - 2) // 6
        index = 0
        for stage, channels in enumerate(STAGE_CHANNELS):
            for block in range(blocks_per_stage):
                index += 1
                stride = 2 if stage > 0 and block == 0 else 1
                x = self._block(x, channels * self.width, stride, train, f"layer{index:02d}")
        # global average pooling over H and W (axes 1, 2 in both layouts)
        x = x.mean(axis=(1, 2))
        if batch_last:
            x = x.T
        if self.use_dropout:
            x = dropout(self, x, dropout_rate, train)
        return nn.Dense(self.outputs, kernel_init=self.kernel_init, bias_init=self.bias_init, name="output")(
            x
        )


def build(model, outputs: int, common: dict) -> ResNet:
    """Return the ResNet for the config node `model` (cfg.model) with `outputs` output units."""
    lowering = conv.resolve_lowering(model.conv_lowering, jax.default_backend())
    return ResNet(
        outputs=outputs,
        depth=int(model.depth),
        width=int(model.width),
        skip=bool(model.skip),
        shortcut=str(model.shortcut),
        lowering=lowering,
        use_dropout=model.dropout > 0,
        **common,
    )


def check_depth(key: str, depth) -> None:
    if depth not in DEPTHS:
        raise ConfigError(f"{key} must be 6n+2, one of {', '.join(map(str, DEPTHS))}; got {depth}")


def check_width(key: str, width) -> None:
    if width < 1:
        raise ConfigError(f"{key} (the channel multiplier) must be >= 1, got {width}")


def check_shortcut(key: str, shortcut) -> None:
    if str(shortcut) not in SHORTCUTS:
        raise ConfigError(f"unknown {key} '{shortcut}' (choose from: {', '.join(SHORTCUTS)})")


OPTIONS = {
    "depth": check_depth,
    "shortcut": check_shortcut,
    "width": check_width,
    "conv_lowering": check_lowering,
    "dropout": check_dropout,
}


def workspace(model, spec) -> int:
    """Values per example the CPU lowerings build beyond the layers' outputs: every conv's
    im2col patches (k*k*cin per output pixel), all alive at once for the backward pass."""
    if conv.resolve_lowering(model.conv_lowering, jax.default_backend()) == "xla":
        return 0
    height, width, channels = spec.input_shape
    total = 9 * channels * height * width  # the stem
    n = (int(model.depth) - 2) // 6
    for stage, base in enumerate(STAGE_CHANNELS):
        cin = base * int(model.width)
        if stage:
            height, width = -(-height // 2), -(-width // 2)
        pixels = height * width
        projection = cin // 2 * pixels if stage and model.shortcut == "projection" else 0
        total += 2 * n * 9 * cin * pixels + projection
    return total


def check_fits(model, spec) -> None:
    """Raise ConfigError unless the data set's inputs are images (H, W, C)."""
    shape = tuple(spec.input_shape)
    if len(shape) != 3:
        raise ConfigError(
            f"model 'resnet' needs images (H, W, C), but data '{spec.name}' has "
            f"inputs of shape {shape} (use model=mlp)"
        )
