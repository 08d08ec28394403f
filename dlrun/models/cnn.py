"""A convolutional network described in the config: one conv layer per `model.channels` entry.

`dlrun train model=cnn model.channels=[32,64] model.kernel=3 model.padding=1 model.pool=max`:
every conv layer has the same kernel, padding, stride and dilation and is followed by batch
norm (`model.batch_norm`), the activation and the pooling (`model.pool`, `model.pool_size`);
then the maps are flattened (or averaged per channel: `model.global_pool`) into the dense
head (`model.dense` hidden widths, then the output layer). The map size of every layer is
computed from the config before any data loads (convnet.geometry), so a stack that shrinks
the image to nothing is one line naming the layer, not a shape error deep inside JAX.
"""

from __future__ import annotations

import jax

from dlrun.errors import ConfigError
from dlrun.models import conv, convnet
from dlrun.models.layers import check_dropout
from dlrun.models.lenet import check_lowering

NAME = "cnn"


def layers(model) -> list[convnet.ConvLayer]:
    """The conv layers the config node `model` (cfg.model) describes."""
    return [
        convnet.ConvLayer(
            int(features),
            int(model.kernel),
            int(model.padding),
            int(model.stride),
            int(model.dilation),
            str(model.pool),
            int(model.pool_size),
        )
        for features in model.channels
    ]


def build(model, outputs: int, common: dict) -> convnet.ConvNet:
    """Return the network for the config node `model` with `outputs` output units."""
    return convnet.ConvNet(
        layers=tuple(layers(model)),
        dense=tuple(int(w) for w in model.dense),
        outputs=outputs,
        lowering=conv.resolve_lowering(str(model.conv_lowering), jax.default_backend()),
        batch_norm=bool(model.batch_norm),
        use_dropout=model.dropout > 0,
        global_pool=bool(model.global_pool),
        **common,
    )


def _at_least(minimum: int):
    def check(key: str, value) -> None:
        if int(value) < minimum:
            raise ConfigError(f"{key} must be >= {minimum}, got {value}")

    return check


def _widths(key: str, widths) -> None:
    if any(int(width) <= 0 for width in widths):
        raise ConfigError(f"{key} widths must be > 0, got {list(widths)}")


OPTIONS = {
    "channels": _widths,
    "dense": _widths,
    "kernel": _at_least(1),
    "padding": _at_least(0),
    "stride": _at_least(1),
    "dilation": _at_least(1),
    "pool_size": _at_least(1),
    "dropout": check_dropout,
    "conv_lowering": check_lowering,
}


def check_fits(model, spec) -> None:
    """Raise ConfigError unless every layer of the stack gets a map at least its kernel's size."""
    convnet.geometry(NAME, layers(model), spec)


def workspace(model, spec) -> int:
    """The im2col patches the CPU lowering builds per example (none on XLA's convolution)."""
    lowering = conv.resolve_lowering(str(model.conv_lowering), jax.default_backend())
    return convnet.workspace(NAME, layers(model), spec, lowering)
