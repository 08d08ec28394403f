"""A plain convolutional network from a list of layer specs, and its geometry at config time.

The `cnn` family (a stack described in the config), `alexnet` and `vgg` are each a list of
`ConvLayer`s and a dense head; this module builds that network and computes, before any data
loads, the map size every layer gets: out = floor((W + 2p - d(k-1) - 1) / s) + 1 for a
convolution (conv.conv_output_size) and floor(W / size) for a pooling. A stack that leaves a
layer nothing to work on is refused with one line naming that layer and its sizes.

Layers are named conv1, conv2, ... then fc1, fc2, ... and `output`, batch norms `<layer>_bn`
(as in lenet.py): `models.layer_of` and the freezing of layers by name rely on it.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import flax.linen as nn

from dlrun.errors import ConfigError
from dlrun.models import conv
from dlrun.models.activations import width_factor
from dlrun.models.layers import ActivationSpec, Conv, activate, dropout

POOLS = {"max": conv.max_pool, "avg": conv.avg_pool}


class ConvLayer(NamedTuple):
    features: int
    kernel: int = 3
    padding: int = 0
    stride: int = 1
    dilation: int = 1
    pool: str = "none"  # max | avg | none, after the activation
    pool_size: int = 2


class LayerGeometry(NamedTuple):
    channels_in: int
    conv_out: tuple  # (H, W) after the convolution
    out: tuple  # (H, W) after the pooling, if any


def geometry(model_name: str, layers: Sequence[ConvLayer], spec) -> list[LayerGeometry]:
    """The sizes of every layer's maps for the data set's inputs; ConfigError naming the
    first layer whose input is smaller than its kernel or pooling window."""
    shape = tuple(spec.input_shape)
    if len(shape) != 3:
        raise ConfigError(
            f"model {model_name} needs images (H, W, C), but data '{spec.name}' "
            f"has inputs of shape {shape} (use model=mlp)"
        )
    (height, width), channels, sizes = shape[:2], shape[2], []
    for index, layer in enumerate(layers, start=1):
        span = layer.dilation * (layer.kernel - 1) + 1  # the receptive field of one output
        need = max(span - 2 * layer.padding, 1)
        if min(height, width) < need:
            raise ConfigError(
                f"model {model_name}: conv{index} gets a {height}x{width} map but its kernel "
                f"{layer.kernel} (padding {layer.padding}, dilation {layer.dilation}) needs at "
                f"least {need}x{need}"
            )
        conv_out = tuple(
            conv.conv_output_size(side, layer.kernel, layer.padding, layer.stride, layer.dilation)
            for side in (height, width)
        )
        height, width = conv_out
        if layer.pool != "none":
            if min(height, width) < layer.pool_size:
                raise ConfigError(
                    f"model {model_name}: the {layer.pool} pooling after conv{index} gets a "
                    f"{height}x{width} map but its window is {layer.pool_size}x{layer.pool_size}"
                )
            height, width = height // layer.pool_size, width // layer.pool_size
        sizes.append(LayerGeometry(channels, conv_out, (height, width)))
        channels = layer.features
    return sizes


def workspace(model_name: str, layers: Sequence[ConvLayer], spec, lowering: str) -> int:
    """Values per example of the im2col patches the CPU lowerings build (k*k*C_in per output
    pixel); XLA's own convolution, which also takes every strided or dilated layer, builds none."""
    if lowering == "xla":
        return 0
    return sum(
        layer.kernel**2 * size.channels_in * size.conv_out[0] * size.conv_out[1]
        for layer, size in zip(layers, geometry(model_name, layers, spec))
        if (layer.stride, layer.dilation) == (1, 1)
    )


def pool(x, kind: str, size: int):
    """Non-overlapping pooling over axes 1 and 2 that drops the rows and columns a window
    cannot cover (floor(W / size), PyTorch's default)."""
    height, width = x.shape[1] // size * size, x.shape[2] // size * size
    return POOLS[kind](x[:, :height, :width], size)


def widths(base: Sequence[int], multiplier: float) -> tuple:
    """Base widths scaled by a width multiplier, at least one unit each."""
    return tuple(max(1, round(b * multiplier)) for b in base)


class ConvNet(nn.Module):
    layers: Sequence[ConvLayer]
    dense: Sequence[int]
    outputs: int
    act: ActivationSpec
    kernel_init: Callable
    bias_init: Callable
    lowering: str = "xla"
    batch_norm: bool = False
    use_dropout: bool = False  # on the input of every dense layer, as in AlexNet
    global_pool: bool = False  # average each channel over the map instead of flattening

    @nn.compact
    def __call__(self, x, train: bool = False, dropout_rate=0.0):
        inits = dict(kernel_init=self.kernel_init, bias_init=self.bias_init)
        pieces = width_factor(self.act)
        # On CPU the conv stack stays in [C, H, W, B], as in lenet.py (batch in the vector lanes)
        batch_last = self.lowering == "batch_last"
        channel_axis = 0 if batch_last else -1
        if batch_last:
            x = conv.to_batch_last(x)
        for index, layer in enumerate(self.layers, start=1):
            name = f"conv{index}"
            x = Conv(
                layer.features * pieces,
                layer.kernel,
                layer.padding,
                self.lowering,
                stride=layer.stride,
                dilation=layer.dilation,
                name=name,
                **inits,
            )(x)
            x = self._norm(x, train, name, channel_axis)
            x = activate(self, x, self.act, name, channel_axis)
            if layer.pool != "none":
                x = pool(x, layer.pool, layer.pool_size)
        if self.global_pool:
            x = x.mean(axis=(1, 2))
            x = x.T if batch_last else x
        else:
            if batch_last:
                x = conv.from_batch_last(x)  # flatten in NHWC order: the same weights either way
            x = x.reshape(x.shape[0], -1)
        for index, features in enumerate(self.dense, start=1):
            name = f"fc{index}"
            x = dropout(self, x, dropout_rate, train) if self.use_dropout else x
            x = self._norm(nn.Dense(features * pieces, name=name, **inits)(x), train, name, -1)
            x = activate(self, x, self.act, name)
        x = dropout(self, x, dropout_rate, train) if self.use_dropout else x
        return nn.Dense(self.outputs, name="output", **inits)(x)

    def _norm(self, x, train: bool, name: str, axis: int):
        if not self.batch_norm:
            return x
        return nn.BatchNorm(use_running_average=not train, axis=axis, name=f"{name}_bn")(x)
