"""Models keyed by config name, as Flax linen modules: one module per family.

Adding a family is one module (its linen module, `build`, `OPTIONS` and `check_fits`; see
mlp.py) and one line in MODELS. A model option with `_target_` names the user's own module
instead (user.py, which states the contract such a module keeps). The shared layers are in
layers.py; the losses (losses.py) and which layers train (trainable.py) live here too, since
they are read off the model's head and its layer names.
"""

from __future__ import annotations

from typing import Callable, Mapping, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from dlrun.models import alexnet, autoencoder, cnn, lenet, losses, mlp, resnet, tasks, user, vgg
from dlrun.models.inits import make_bias_init, make_kernel_init
from dlrun.models.layers import ActivationSpec
from dlrun.registry import Check, Registry, check_options
from dlrun.targets import names_code


class Family(NamedTuple):
    build: Callable  # (cfg.model, output units, shared layer arguments) -> nn.Module
    options: Mapping[str, Check]  # checks of the family's config fields, by field name
    check_fits: Callable  # (cfg.model, DataSpec) -> None; raises ConfigError when the data cannot go in
    # (cfg.model, DataSpec) -> values per example a step builds beyond the layers' outputs
    # (a lowering's im2col patches); the memory estimate that sizes groups adds them
    workspace: Callable = lambda model, spec: 0
    # whether `build` also takes the DataSpec (a decoder sized to give back the input's shape)
    shaped: bool = False


MODELS = Registry(
    "model",
    {
        "mlp": Family(mlp.build, mlp.OPTIONS, mlp.check_fits),
        "lenet": Family(lenet.build, lenet.OPTIONS, lenet.check_fits, lenet.workspace),
        "cnn": Family(cnn.build, cnn.OPTIONS, cnn.check_fits, cnn.workspace),
        "alexnet": Family(alexnet.build, alexnet.OPTIONS, alexnet.check_fits, alexnet.workspace),
        "vgg": Family(vgg.build, vgg.OPTIONS, vgg.check_fits, vgg.workspace),
        "resnet": Family(resnet.build, resnet.OPTIONS, resnet.check_fits, resnet.workspace),
        "autoencoder": Family(autoencoder.build, autoencoder.OPTIONS, autoencoder.check_fits, shaped=True),
    },
)


def check(cfg, spec) -> None:
    """Raise ConfigError for an unknown model, a bad model option, or data the model cannot take.

    Each family checks its own fields (its schema has no others: dlrun/config/options.py); a
    user's module is imported and traced on the data's shape.
    """
    if names_code(cfg.model):
        return user.check(cfg, spec, output_units(cfg, spec))
    family = MODELS.get(cfg.model.name)
    check_options(cfg.model, "model", family.options)
    family.check_fits(cfg.model, spec)


def workspace(cfg, spec) -> int:
    """Values per example the model's step builds beyond its layers' outputs (for memory)."""
    if names_code(cfg.model):  # what a user's module builds is in its traced intermediates
        return 0
    return MODELS.get(cfg.model.name).workspace(cfg.model, spec)


def build_model(cfg, spec) -> nn.Module:
    """Return the Flax module for `cfg.model` with an output layer sized for the loss and data."""
    outputs = output_units(cfg, spec)
    if names_code(cfg.model):
        return user.build(cfg, spec, outputs)
    common = dict(
        act=ActivationSpec(cfg.activation, float(cfg.activation_slope), int(cfg.maxout_pieces)),
        kernel_init=make_kernel_init(cfg),
        bias_init=make_bias_init(cfg),
    )
    family = MODELS.get(cfg.model.name)
    return family.build(cfg.model, outputs, common, *([spec] if family.shaped else []))


def output_units(cfg, spec) -> int:
    """The units of the model's output layer: as many as the loss and the data ask for."""
    return losses.output_units(losses.resolve_loss(cfg.loss, spec, tasks.resolve_task(cfg, spec)), spec)


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
