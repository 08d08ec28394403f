"""AlexNet (Krizhevsky et al. 2012), scaled to 28x28 (MNIST) and 32x32 (CIFAR) inputs.

The original, for 224x224 images:
conv 11x11/4 96 -> pool -> conv 5x5 256 -> pool -> conv 3x3 384, 384, 256 -> pool -> 4096 -> 4096.
Here (`model.width` = 1):
conv 5x5 64 (pad 2) -> pool 2 -> conv 5x5 192 (pad 2) -> pool 2 -> conv 3x3 384, 256, 256
(pad 1) -> pool 2 -> 4096 -> 4096 -> outputs, ReLU (the activation= default), dropout on the
input of each dense layer (`model.dropout`, 0.5 as in the paper), max pooling.

Why so: an 11x11 stride-4 first layer is there to shrink 224 pixels quickly; on 28 pixels it
would leave a 5x5 map before the first pooling, so the first kernel is 5x5 at stride 1. The
three poolings are kept where AlexNet has them but non-overlapping 2x2 (not 3x3 stride 2), so
28 -> 14 -> 7 -> 3 and 32 -> 16 -> 8 -> 4: the head sees 3x3 or 4x4 maps. The widths are the
later, one-GPU layout (64-192-384-256-256, as torchvision's) times `model.width`: the default
0.25 (16-48-96-64-64 conv, 1024 dense) trains on a 2-core CPU; 1.0 is AlexNet's size.
"""

from __future__ import annotations

import jax

from dlrun.errors import ConfigError
from dlrun.models import conv, convnet
from dlrun.models.layers import check_dropout
from dlrun.models.lenet import check_lowering

NAME = "alexnet"
CONV = (64, 192, 384, 256, 256)  # channels at width 1
DENSE = (4096, 4096)


def layers(model) -> list[convnet.ConvLayer]:
    """AlexNet's five conv layers at the config's width."""
    c1, c2, c3, c4, c5 = convnet.widths(CONV, float(model.width))
    return [
        convnet.ConvLayer(c1, 5, 2, pool="max"),
        convnet.ConvLayer(c2, 5, 2, pool="max"),
        convnet.ConvLayer(c3, 3, 1),
        convnet.ConvLayer(c4, 3, 1),
        convnet.ConvLayer(c5, 3, 1, pool="max"),
    ]


def build(model, outputs: int, common: dict) -> convnet.ConvNet:
    """Return AlexNet for the config node `model` (cfg.model) with `outputs` output units."""
    return convnet.ConvNet(
        layers=tuple(layers(model)),
        dense=convnet.widths(DENSE, float(model.width)),
        outputs=outputs,
        batch_norm=bool(model.batch_norm),
        use_dropout=model.dropout > 0,
        lowering=conv.resolve_lowering(str(model.conv_lowering), jax.default_backend()),
        **common,
    )


def check_width(key: str, width) -> None:
    if not width > 0:
        raise ConfigError(f"{key} must be > 0, got {width}")


OPTIONS = {"width": check_width, "dropout": check_dropout, "conv_lowering": check_lowering}


def check_fits(model, spec) -> None:
    """Raise ConfigError unless the inputs are images large enough for its three poolings."""
    convnet.geometry(NAME, layers(model), spec)


def workspace(model, spec) -> int:
    lowering = conv.resolve_lowering(str(model.conv_lowering), jax.default_backend())
    return convnet.workspace(NAME, layers(model), spec, lowering)
