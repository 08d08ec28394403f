"""Models keyed by config name, as Flax linen modules: one module per family.

Adding a family is one module (its linen module, `build`, `OPTIONS` and `check_fits`; see
mlp.py) and one line in MODELS. The shared layers are in layers.py; the losses (losses.py)
and which layers train (trainable.py) live here too, since they are read off the model's head
and its layer names.
"""

from __future__ import annotations

from typing import Callable, Mapping, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlrun.models import alexnet, cnn, lenet, losses, mlp, resnet, vgg
from dlrun.models.inits import make_bias_init, make_kernel_init
from dlrun.models.layers import ActivationSpec
from dlrun.registry import Check, Registry, check_options


class Family(NamedTuple):
    build: Callable  # (cfg.model, output units, shared layer arguments) -> nn.Module
    options: Mapping[str, Check]  # checks of the family's config fields, by field name
    check_fits: Callable  # (cfg.model, DataSpec) -> None; raises ConfigError when the data cannot go in
    # (cfg.model, DataSpec) -> values per example a step builds beyond the layers' outputs
    # (a lowering's im2col patches); the memory estimate that sizes groups adds them
    workspace: Callable = lambda model, spec: 0


MODELS = Registry(
    "model",
    {
        "mlp": Family(mlp.build, mlp.OPTIONS, mlp.check_fits),
        "lenet": Family(lenet.build, lenet.OPTIONS, lenet.check_fits, lenet.workspace),
        "cnn": Family(cnn.build, cnn.OPTIONS, cnn.check_fits, cnn.workspace),
        "alexnet": Family(alexnet.build, alexnet.OPTIONS, alexnet.check_fits, alexnet.workspace),
        "vgg": Family(vgg.build, vgg.OPTIONS, vgg.check_fits, vgg.workspace),
        "resnet": Family(resnet.build, resnet.OPTIONS, resnet.check_fits, resnet.workspace),
    },
)


def check(cfg, spec) -> None:
    """Raise ConfigError for an unknown model, a bad model option, or data the model cannot take.

    Each family checks its own fields (its schema has no others: dlrun/config/schema.py).
    """
    family = MODELS.get(cfg.model.name)
    check_options(cfg.model, "model", family.options)
    family.check_fits(cfg.model, spec)


def workspace(cfg, spec) -> int:
    """Values per example the model's step builds beyond its layers' outputs (for memory)."""
    return MODELS.get(cfg.model.name).workspace(cfg.model, spec)


def build_model(cfg, spec) -> nn.Module:
    """Return the Flax module for `cfg.model` with an output layer sized for the loss and data."""
    outputs = losses.output_units(losses.resolve_loss(cfg.loss, spec), spec)
    common = dict(
        act=ActivationSpec(cfg.activation, float(cfg.activation_slope), int(cfg.maxout_pieces)),
        kernel_init=make_kernel_init(cfg),
        bias_init=make_bias_init(cfg),
    )
    return MODELS.get(cfg.model.name).build(cfg.model, outputs, common)


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
