"""Models keyed by config name: an MLP and LeNet-5, as Flax linen modules.

Each layer records two statistics in the `stats` collection for the per-epoch metrics: which
units were ever active (pre-activation > 0; a ReLU unit never active is dead) and the share of
saturated outputs for sigmoid/tanh. The dropout rate is an argument, not an attribute, so that
a sweep can vmap over it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlrun.models import conv
from dlrun.training import losses
from dlrun.models.activations import SATURATION_BOUNDS, PReLU, make_activation, width_factor
from dlrun.errors import ConfigError
from dlrun.models.inits import make_bias_init, make_kernel_init


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


class MLP(nn.Module):
    hidden: Sequence[int]
    outputs: int
    act: ActivationSpec
    kernel_init: Callable
    bias_init: Callable
    batch_norm: bool = False
    use_dropout: bool = False

    @nn.compact
    def __call__(self, x, train: bool = False, dropout_rate=0.0):
        x = x.reshape(x.shape[0], -1)
        for index, width in enumerate(self.hidden, start=1):
            name = f"hidden{index}"
            units = width * width_factor(self.act)
            x = nn.Dense(units, kernel_init=self.kernel_init, bias_init=self.bias_init, name=name)(x)
            if self.batch_norm:
                x = nn.BatchNorm(use_running_average=not train, name=f"{name}_bn")(x)
            x = activate(self, x, self.act, name)
            if self.use_dropout:
                x = dropout(self, x, dropout_rate, train)
        return nn.Dense(self.outputs, kernel_init=self.kernel_init, bias_init=self.bias_init,
                        name="output")(x)


class Conv(nn.Module):
    """A stride-1 2-D convolution whose lowering is chosen per backend (see dlrun/conv.py).

    With the `batch_last` lowering the input and output are [C, H, W, B], else NHWC; the
    kernel is HWIO either way, so parameters do not depend on the lowering.
    """

    features: int
    kernel_size: int
    padding: int
    lowering: str
    kernel_init: Callable
    bias_init: Callable

    @nn.compact
    def __call__(self, x):
        batch_last = self.lowering == "batch_last"
        channels = x.shape[0] if batch_last else x.shape[-1]
        shape = (self.kernel_size, self.kernel_size, channels, self.features)
        kernel = self.param("kernel", self.kernel_init, shape)
        bias = self.param("bias", self.bias_init, (self.features,))
        # explicit bias shapes: tests forbid implicit rank promotion
        if batch_last:
            return conv.conv2d_batch_last(x, kernel, padding=self.padding) + bias.reshape(-1, 1, 1, 1)
        y = conv.conv2d(x, kernel, padding=self.padding, lowering=self.lowering)
        return y + bias.reshape(1, 1, 1, -1)


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
        pool = conv.max_pool if self.pooling == "max" else conv.avg_pool
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
                x = nn.BatchNorm(use_running_average=not train, axis=channel_axis,
                                 name=f"{name}_bn")(x)
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


def _mlp(cfg, spec, outputs, common):
    return MLP(hidden=tuple(cfg.model.hidden), outputs=outputs, batch_norm=cfg.model.batch_norm,
               **common)


def _lenet(cfg, spec, outputs, common):
    lowering = conv.resolve_lowering(str(cfg.model.conv_lowering), jax.default_backend())
    return LeNet5(outputs=outputs, pooling=str(cfg.model.pooling), lowering=lowering,
                  batch_norm=cfg.model.batch_norm, **common)


MODELS = {"mlp": _mlp, "lenet": _lenet}


def check_compatible(cfg, spec) -> None:
    """Raise ConfigError when the model cannot take the data set's inputs."""
    if cfg.model.name == "lenet":
        shape = tuple(spec.input_shape)
        # conv(pad 2) -> pool 2 -> conv(5, valid) -> pool 2 needs H, W divisible by 4 and >= 12
        if len(shape) != 3 or any(side % 4 or side < 12 for side in shape[:2]):
            raise ConfigError(
                f"model 'lenet' needs images (H, W, C) with sides divisible by 4, "
                f"but data '{spec.name}' has inputs of shape {shape} (use model=mlp)"
            )


def build_model(cfg, spec) -> nn.Module:
    """Return the Flax module for `cfg.model` with an output layer sized for the loss and data."""
    outputs = losses.output_units(losses.resolve_loss(cfg.loss, spec), spec)
    common = dict(
        act=ActivationSpec(cfg.activation, float(cfg.activation_slope), int(cfg.maxout_pieces)),
        kernel_init=make_kernel_init(cfg),
        bias_init=make_bias_init(cfg),
        use_dropout=cfg.model.dropout > 0,
    )
    return MODELS[cfg.model.name](cfg, spec, outputs, common)


def param_count(cfg, spec) -> int:
    """Return the model's number of parameters without initialising or compiling anything."""
    dummy = jax.ShapeDtypeStruct((1, *spec.input_shape), jnp.float32)
    key = jax.random.PRNGKey(0)
    shapes = jax.eval_shape(lambda x: build_model(cfg, spec).init({"params": key}, x), dummy)
    return count_params(shapes["params"])


def count_params(params) -> int:
    """Return the number of scalar parameters in a pytree."""
    return sum(leaf.size for leaf in jax.tree_util.tree_leaves(params))


def layer_of(param_path: str) -> str:
    """Return the layer a top-level parameter module belongs to (`hidden1_bn` -> `hidden1`)."""
    return param_path.split("_")[0]
