"""VGG (Simonyan & Zisserman 2014), scaled to 28x28 (MNIST) and 32x32 (CIFAR) inputs.

Five blocks of 3x3 convolutions (padding 1, so only the poolings shrink the map) with 64, 128,
256, 512, 512 channels; `model.depth` counts the weight layers as in the paper: 11 (A) has
1, 1, 2, 2, 2 convs per block, 13 (B) 2, 2, 2, 2, 2, 16 (D) 2, 2, 3, 3, 3; then two dense
hidden layers and the output layer (8, 10 or 13 convs + 3 dense).

Why so: VGG pools 2x2 after each of its five blocks (224 -> 7). 28 pixels halve only four
times (28 -> 14 -> 7 -> 3 -> 1), so the pooling after the fifth block is dropped: its 3x3 convs
work on 1x1 (MNIST) or 2x2 (CIFAR) maps. The original 4096-wide head was sized for 7x7x512 =
25,088 features; here the head gets 512 or 2,048, so its hidden layers are 512 wide (as the
usual CIFAR adaptations). Every width is times `model.width`: the default 0.25 (16..128
channels, 128 dense) trains on a 2-core CPU; 1.0 is VGG's size.
"""

from __future__ import annotations

import jax

from dlrun.errors import ConfigError
from dlrun.models import conv, convnet
from dlrun.models.alexnet import check_width
from dlrun.models.layers import check_dropout
from dlrun.models.lenet import check_lowering

NAME = "vgg"
BLOCKS = {11: (1, 1, 2, 2, 2), 13: (2, 2, 2, 2, 2), 16: (2, 2, 3, 3, 3)}  # convs per block
CHANNELS = (64, 128, 256, 512, 512)  # per block, at width 1
DENSE = (512, 512)
POOLED_BLOCKS = 4  # 28x28 inputs halve four times only


def layers(model) -> list[convnet.ConvLayer]:
    """The conv layers of VGG-`model.depth` at the config's width, pooling after blocks 1-4."""
    stack = []
    for block, (convs, channels) in enumerate(
        zip(BLOCKS[int(model.depth)], convnet.widths(CHANNELS, float(model.width)))
    ):
        pool = "max" if block < POOLED_BLOCKS else "none"
        stack += [
            convnet.ConvLayer(channels, 3, 1, pool=pool if i == convs - 1 else "none") for i in range(convs)
        ]
    return stack


def build(model, outputs: int, common: dict) -> convnet.ConvNet:
    """Return VGG for the config node `model` (cfg.model) with `outputs` output units."""
    return convnet.ConvNet(
        layers=tuple(layers(model)),
        dense=convnet.widths(DENSE, float(model.width)),
        outputs=outputs,
        batch_norm=bool(model.batch_norm),
        use_dropout=model.dropout > 0,
        lowering=conv.resolve_lowering(str(model.conv_lowering), jax.default_backend()),
        **common,
    )


def check_depth(key: str, depth) -> None:
    if depth not in BLOCKS:
        raise ConfigError(f"unknown {key} {depth} (choose from: {', '.join(map(str, BLOCKS))})")


OPTIONS = {
    "depth": check_depth,
    "width": check_width,
    "dropout": check_dropout,
    "conv_lowering": check_lowering,
}


def check_fits(model, spec) -> None:
    """Raise ConfigError unless the inputs are images large enough for its four poolings."""
    convnet.geometry(NAME, layers(model), spec)


def workspace(model, spec) -> int:
    lowering = conv.resolve_lowering(str(model.conv_lowering), jax.default_backend())
    return convnet.workspace(NAME, layers(model), spec, lowering)
