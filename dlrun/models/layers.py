"""The pieces both model families are made of: the activation with its unit statistics,
dropout whose rate may be traced, and the convolution layer.

Each layer records two statistics in the `stats` collection for the per-epoch metrics: which
units were ever active (pre-activation > 0; a ReLU unit never active is dead) and the share of
saturated outputs for sigmoid/tanh. The dropout rate is an argument, not an attribute, so that
a sweep can vmap over it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax

from dlrun.errors import ConfigError
from dlrun.models import conv
from dlrun.models.activations import SATURATION_BOUNDS, PReLU, make_activation


@dataclass(frozen=True)
class ActivationSpec:
    """The hashable part of the config an activation needs (a module attribute must be static)."""

    activation: str
    activation_slope: float
    maxout_pieces: int


def dropout(module: nn.Module, x, rate, train: bool):
    """Inverted dropout whose rate may be a traced value (flax's nn.Dropout needs a Python float)."""
    if not train:
        return x
    keep = 1.0 - rate
    mask = jax.random.bernoulli(module.make_rng("dropout"), keep, x.shape)
    return jnp.where(mask, x / keep, 0.0)


def activate(module: nn.Module, x, spec: ActivationSpec, name: str, unit_axis: int = -1):
    """Apply the activation and sow the unit statistics under `name` (units along `unit_axis`)."""
    if spec.activation == "prelu":
        # named after its layer so that gradient statistics group it with that layer
        fn = PReLU(initial_slope=spec.activation_slope, name=f"{name}_prelu")
    else:
        fn = make_activation(spec)
    if spec.activation == "maxout" and unit_axis != -1:
        y = jnp.moveaxis(fn(jnp.moveaxis(x, unit_axis, -1)), -1, unit_axis)
    else:
        y = fn(x)
    unit_axes = tuple(axis for axis in range(y.ndim) if axis != unit_axis % y.ndim)
    # maxout units are its outputs; for every other activation a unit is "on" when its input is > 0
    active_source = y if spec.activation == "maxout" else x
    module.sow("stats", f"{name}_active", jnp.any(active_source > 0, axis=unit_axes))
    if spec.activation in SATURATION_BOUNDS:
        low, high = SATURATION_BOUNDS[spec.activation]
        module.sow("stats", f"{name}_saturated", jnp.mean((y < low) | (y > high)))
    return y


def check_dropout(key: str, rate) -> None:
    """Raise ConfigError unless the drop probability is in [0, 1) (1 would drop everything)."""
    if not 0.0 <= rate < 1.0:
        raise ConfigError(f"{key} must be in [0, 1), got {rate}")


class Conv(nn.Module):
    """A 2-D convolution whose lowering is chosen per backend (see dlrun/models/conv.py).

    With the `batch_last` lowering the input and output are [C, H, W, B], else NHWC; the
    kernel is HWIO either way, so parameters do not depend on the lowering. The custom CPU
    lowerings do stride 1 without dilation; any other geometry goes to lax.conv_general_dilated
    in the layer's own layout, so every lowering computes the same function.
    """

    features: int
    kernel_size: int
    padding: int
    lowering: str
    kernel_init: Callable
    bias_init: Callable
    stride: int = 1
    dilation: int = 1

    @nn.compact
    def __call__(self, x):
        batch_last = self.lowering == "batch_last"
        channels = x.shape[0] if batch_last else x.shape[-1]
        shape = (self.kernel_size, self.kernel_size, channels, self.features)
        kernel = self.param("kernel", self.kernel_init, shape)
        bias = self.param("bias", self.bias_init, (self.features,))
        # explicit bias shapes: tests forbid implicit rank promotion
        if (self.stride, self.dilation) != (1, 1):
            layout = "CHWN" if batch_last else "NHWC"
            y = lax.conv_general_dilated(
                x,
                kernel,
                (self.stride,) * 2,
                [(self.padding, self.padding)] * 2,
                rhs_dilation=(self.dilation,) * 2,
                dimension_numbers=(layout, "HWIO", layout),
            )
            return y + bias.reshape((-1, 1, 1, 1) if batch_last else (1, 1, 1, -1))
        if batch_last:
            return conv.conv2d_batch_last(x, kernel, padding=self.padding) + bias.reshape(-1, 1, 1, 1)
        y = conv.conv2d(x, kernel, padding=self.padding, lowering=self.lowering)
        return y + bias.reshape(1, 1, 1, -1)
