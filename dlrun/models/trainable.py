"""Which layers of a model train (`model.trainable`): a model's layers by name, with no compute.

A model's layers are its top-level parameter modules in network order, grouped by
`models.layer_of` (`conv1` and `conv1_bn` are layer `conv1`); the head is the layer `output`.
`model.trainable` is `all` (the default), `head`, `lastN` (the last N layers) or layer names
joined by `+` (`fc2+output`: `+`, not `,`, so that a sweep's comma list
`model.trainable=head,last2,all` keeps its meaning). Config checks read it as well as the
engine (dlrun/training/transfer.py freezes what it names), so it lives beside the models.
"""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp

from dlrun.errors import ConfigError
from dlrun.models import build_model, layer_of

HEAD = "output"
ALL = "all"


def model_modules(cfg, spec) -> dict:
    """{top-level parameter module: its tree of leaf shapes}, in network order (no compute)."""
    model = build_model(cfg, spec)
    order: list = []

    def init(x):
        variables = model.init(
            {"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(0)}, x, train=False
        )
        order.extend(variables["params"])  # still in creation order: no tree op has sorted it
        return variables["params"]

    shapes = jax.eval_shape(init, jax.ShapeDtypeStruct((1, *spec.input_shape), jnp.float32))
    return {
        module: jax.tree_util.tree_map(lambda leaf: tuple(leaf.shape), shapes[module]) for module in order
    }


def model_layers(modules) -> list[str]:
    """The layers of a model's modules, in network order."""
    return list(dict.fromkeys(layer_of(module) for module in modules))


def trainable_layers(text: str, layers: list[str], model: str) -> list[str]:
    """The layers `model.trainable=text` trains. Raises ConfigError naming the model's layers."""
    text = str(text)
    last = re.fullmatch(r"last(\d+)", text)
    if text == ALL:
        return list(layers)
    if text == "head":
        chosen = [HEAD]
    elif last:
        count = int(last.group(1))
        if not 1 <= count <= len(layers):
            raise ConfigError(
                f"model.trainable={text}: model {model} has {len(layers)} layers "
                f"({', '.join(layers)}); give last1 to last{len(layers)}"
            )
        return layers[-count:]
    else:
        chosen = [name for name in text.split("+")]
    unknown = [name for name in chosen if name not in layers]
    if unknown:
        raise ConfigError(
            f"model.trainable={text}: model {model} has no layer '{unknown[0]}'; its "
            f"layers: {', '.join(layers)} (give all, head, lastN or names joined "
            f"by +, e.g. {'+'.join(layers[-2:])})"
        )
    return [layer for layer in layers if layer in chosen]


def frozen_modules(cfg, spec) -> frozenset:
    """The top-level parameter modules `cfg.model.trainable` freezes (none for `all`)."""
    text = str(cfg.model.get("trainable", ALL))
    if text == ALL:
        return frozenset()
    modules = model_modules(cfg, spec)
    trained = set(trainable_layers(text, model_layers(modules), cfg.model.name))
    return frozenset(module for module in modules if layer_of(module) not in trained)


def check_trainable(cfg, spec) -> None:
    """Raise ConfigError when `model.trainable` names no layers of this model."""
    frozen_modules(cfg, spec)
