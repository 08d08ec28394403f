"""The autoencoder: an encoder that shrinks the image to a small map (the code) and a decoder
that grows it back to the input's size (`model=autoencoder`, dlrun/models/tasks.py's tasks).

`dlrun train model=autoencoder data.scaling=unit`: the conv encoder is one 3x3 conv of stride
`model.stride` per `model.channels` entry (28x28 -> 14x14 -> 7x7 for [16, 32]); `encoder=mlp`
flattens the image into dense layers whose last is reshaped to the map the conv stack would
give. The decoder mirrors the stack with one upsampling layer per entry (dlrun/models/
upsample.py: transposed, nearest, bilinear), the last giving the image's channels, linear
(the loss reads them as pixels, or logits for the binary cross-entropies). Every decoder map
must be exactly the size of its encoder twin; `decoder_geometry` checks that at config time
and says the formula's numbers when it is not.

Layers are named enc1.., code (mlp), dec1.. (`models.layer_of` groups their statistics).
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import flax.linen as nn

from dlrun.errors import ConfigError
from dlrun.models import convnet, upsample
from dlrun.models.activations import width_factor
from dlrun.models.layers import ActivationSpec, Conv, activate, check_dropout, dropout

NAME = "autoencoder"
ENCODER_KERNEL, ENCODER_PADDING = 3, 1  # a 3x3 conv that only its stride shrinks


class DecoderLayer(NamedTuple):
    features: int
    output_padding: int  # of a transposed conv; 0 for a resize
    out: tuple  # (H, W) it gives


def encoder_layers(model) -> list[convnet.ConvLayer]:
    return [
        convnet.ConvLayer(int(c), ENCODER_KERNEL, ENCODER_PADDING, int(model.stride)) for c in model.channels
    ]


def decoder_geometry(model, spec) -> tuple[tuple, list[DecoderLayer]]:
    """(the code's map size, each decoder layer): ConfigError naming the first decoder layer
    whose map is not its encoder twin's size, with the formula's numbers."""
    sizes = convnet.geometry(NAME, encoder_layers(model), spec)
    ins = [tuple(spec.input_shape[:2])] + [size.conv_out for size in sizes[:-1]]
    widths = [int(spec.input_shape[2])] + [int(c) for c in model.channels[:-1]]
    side, layers = sizes[-1].conv_out, []
    for index, (target, features) in enumerate(zip(reversed(ins), reversed(widths)), start=1):
        pads = {_output_padding(model, index, have, want) for have, want in zip(side, target)}
        if len(pads) > 1:  # a non-square map whose sides want different output paddings
            raise ConfigError(
                f"model {NAME}: dec{index} needs output_padding {sorted(pads)} on its two sides"
            )
        layers.append(DecoderLayer(features, pads.pop(), target))
        side = target
    return sizes[-1].conv_out, layers


def _output_padding(model, index: int, have: int, want: int) -> int:
    kind, k, s, p = str(model.upsample), int(model.kernel), int(model.stride), int(model.padding)
    if kind != "transposed":
        if have * s != want:
            raise ConfigError(
                f"model {NAME}: dec{index} ({kind} x{s}) makes a side of {have} into {have * s}, but its "
                f"encoder twin's is {want} (each encoder map must be exactly {s} times the next: "
                "fewer channels entries, or upsample=transposed)"
            )
        return 0
    given = model.get("output_padding")
    bare = upsample.transposed_output_size(have, k, s, p)
    pad = want - bare if given is None else int(given)
    if bare + pad != want or not 0 <= pad < max(s, 1):
        formula = f"({have} - 1) * {s} - 2 * {p} + {k} = {bare}"
        allowed = f"output_padding 0..{s - 1}" if given is None else f"output_padding {pad}"
        raise ConfigError(
            f"model {NAME}: dec{index} (transposed, kernel {k}, stride {s}, padding {p}) gives "
            f"{formula} (+ {allowed}), but its encoder twin's side is {want}: "
            "out = (in - 1) * stride - 2 * padding + kernel + output_padding"
        )
    return pad


class Autoencoder(nn.Module):
    encoder: str  # conv | mlp
    channels: Sequence[int]
    hidden: Sequence[int]
    stride: int
    code_shape: tuple  # (H, W) of the code's map
    decoder: Sequence[DecoderLayer]
    upsample: str
    kernel: int
    padding: int
    act: ActivationSpec
    kernel_init: Callable
    bias_init: Callable
    use_dropout: bool = False

    @nn.compact
    def __call__(self, x, train: bool = False, dropout_rate=0.0):
        inits = dict(kernel_init=self.kernel_init, bias_init=self.bias_init)
        pieces = width_factor(self.act)
        x = self._mlp(x, pieces, inits) if self.encoder == "mlp" else self._convs(x, pieces, inits)
        x = dropout(self, x, dropout_rate, train) if self.use_dropout else x
        for index, layer in enumerate(self.decoder, start=1):
            name, last = f"dec{index}", index == len(self.decoder)
            features = layer.features if last else layer.features * pieces
            x = upsample.upsampling_layer(
                self.upsample,
                features,
                self.kernel,
                self.stride,
                self.padding,
                layer.output_padding,
                name=name,
                **inits,
            )(x)
            x = x if last else activate(self, x, self.act, name)
        return x

    def _convs(self, x, pieces: int, inits: dict):
        for index, features in enumerate(self.channels, start=1):
            name = f"enc{index}"
            conv = Conv(
                features * pieces,
                ENCODER_KERNEL,
                ENCODER_PADDING,
                "xla",
                stride=self.stride,
                name=name,
                **inits,
            )
            x = activate(self, conv(x), self.act, name)
        return x

    def _mlp(self, x, pieces: int, inits: dict):
        x = x.reshape(x.shape[0], -1)
        for index, width in enumerate(self.hidden, start=1):
            name = f"enc{index}"
            x = activate(self, nn.Dense(width * pieces, name=name, **inits)(x), self.act, name)
        height, width = self.code_shape
        units = height * width * self.channels[-1]
        x = activate(self, nn.Dense(units * pieces, name="code", **inits)(x), self.act, "code")
        return x.reshape(x.shape[0], height, width, self.channels[-1] * pieces)


def build(model, outputs: int, common: dict, spec) -> Autoencoder:
    """The autoencoder for the config node `model` on the data `spec` (its output is the
    image: `outputs`, the loss's unit count, is not read)."""
    code_shape, decoder = decoder_geometry(model, spec)
    return Autoencoder(
        encoder=str(model.encoder),
        channels=tuple(int(c) for c in model.channels),
        hidden=tuple(int(w) for w in model.hidden),
        stride=int(model.stride),
        code_shape=tuple(code_shape),
        decoder=tuple(decoder),
        upsample=str(model.upsample),
        kernel=int(model.kernel),
        padding=int(model.padding),
        use_dropout=model.dropout > 0,
        **common,
    )


def _at_least(minimum: int):
    def check(key: str, value) -> None:
        if value is not None and int(value) < minimum:
            raise ConfigError(f"{key} must be >= {minimum}, got {value}")

    return check


def _widths(key: str, widths) -> None:
    if any(int(width) <= 0 for width in widths):
        raise ConfigError(f"{key} widths must be > 0, got {list(widths)}")


def _channels(key: str, widths) -> None:
    if not widths:
        raise ConfigError(f"{key} needs at least one width (one encoder and one decoder layer), got []")
    _widths(key, widths)


OPTIONS = {
    "channels": _channels,
    "hidden": _widths,
    "kernel": _at_least(1),
    "stride": _at_least(1),
    "padding": _at_least(0),
    "output_padding": _at_least(0),
    "dropout": check_dropout,
}


def check_fits(model, spec) -> None:
    """Raise ConfigError unless the encoder fits the image and every decoder map its twin."""
    decoder_geometry(model, spec)
