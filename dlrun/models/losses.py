"""Losses keyed by config name, built on Optax, with the output size each one needs.

Every loss maps (model outputs, targets) to one value per example. For classification the
targets are int class ids: cross-entropy reads them directly, the binary losses need two
classes and one output unit, and the regression losses (mse, mae, huber) compare the outputs
with one-hot targets, as the lessons do when they fit classes by least squares. For the image
tasks (dlrun/models/tasks.py) outputs and targets are [n, pixels]: the binary cross-entropies
read each output as a pixel's logit and each target as its value in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp
import optax

from dlrun.errors import ConfigError
from dlrun.models.tasks import IMAGE_TASKS, resolve_task
from dlrun.registry import Registry

# Keeps log() finite when a probability reaches exactly 0 or 1 in float32.
PROBABILITY_EPS = 1e-7


@dataclass(frozen=True)
class Loss:
    fn: Callable  # (outputs [n, d], targets, hyper) -> [n]
    tasks: tuple  # the tasks it makes sense for
    binary_only: bool = False  # one output unit: needs exactly two classes


def _as_targets(outputs, targets):
    """Regression targets as they are; class ids as one-hot rows of the outputs' width."""
    if jnp.issubdtype(targets.dtype, jnp.integer):
        return jax.nn.one_hot(targets, outputs.shape[-1])
    return targets


def softmax_cross_entropy(outputs, targets, hyper):
    return optax.softmax_cross_entropy_with_integer_labels(outputs, targets)


def _per_unit(targets, outputs) -> bool:
    """Whether the targets hold a value per output unit (pixels), not a class id per example."""
    return targets.ndim == outputs.ndim


def binary_cross_entropy(outputs, targets, hyper):
    """BCE on probabilities p = sigmoid(z): the textbook formula, clipped, less stable than logits."""
    z = outputs if _per_unit(targets, outputs) else outputs[:, 0]
    p = jnp.clip(jax.nn.sigmoid(z), PROBABILITY_EPS, 1 - PROBABILITY_EPS)
    y = targets.astype(p.dtype)
    per_unit = -(y * jnp.log(p) + (1 - y) * jnp.log1p(-p))
    return jnp.mean(per_unit, axis=-1) if _per_unit(targets, outputs) else per_unit


def binary_cross_entropy_with_logits(outputs, targets, hyper):
    if _per_unit(targets, outputs):
        return jnp.mean(optax.sigmoid_binary_cross_entropy(outputs, targets), axis=-1)
    return optax.sigmoid_binary_cross_entropy(outputs[:, 0], targets.astype(outputs.dtype))


def mse(outputs, targets, hyper):
    return jnp.mean(optax.squared_error(outputs, _as_targets(outputs, targets)), axis=-1)


def mae(outputs, targets, hyper):
    return jnp.mean(jnp.abs(outputs - _as_targets(outputs, targets)), axis=-1)


def msle(outputs, targets, hyper):
    # As Keras: predictions below zero are clipped so log1p stays defined.
    log_pred = jnp.log1p(jnp.maximum(outputs, 0.0))
    return jnp.mean((log_pred - jnp.log1p(targets)) ** 2, axis=-1)


def huber(outputs, targets, hyper):
    errors = optax.huber_loss(outputs, _as_targets(outputs, targets), delta=hyper["huber_delta"])
    return jnp.mean(errors, axis=-1)


BOTH = ("classification", "regression")
# `auto` is resolved by the task (resolve_loss), so it is a name without an entry
LOSSES = Registry(
    "loss",
    {
        "softmax_cross_entropy": Loss(softmax_cross_entropy, ("classification",)),
        "binary_cross_entropy": Loss(
            binary_cross_entropy, ("classification", *IMAGE_TASKS), binary_only=True
        ),
        "binary_cross_entropy_with_logits": Loss(
            binary_cross_entropy_with_logits, ("classification", *IMAGE_TASKS), binary_only=True
        ),
        "mse": Loss(mse, (*BOTH, *IMAGE_TASKS)),
        "mae": Loss(mae, (*BOTH, *IMAGE_TASKS)),
        "msle": Loss(msle, ("regression",)),
        "huber": Loss(huber, (*BOTH, *IMAGE_TASKS)),
    },
    extra=("auto",),
)
DEFAULT_LOSS = {
    "classification": "softmax_cross_entropy",
    "regression": "mse",
    **{task: "mse" for task in IMAGE_TASKS},
}


def resolve_loss(name: str, spec, task: str | None = None) -> str:
    """Return the loss name, resolving `auto` to the default of the task (the data's, unless
    `task` says otherwise: dlrun/models/tasks.py)."""
    return DEFAULT_LOSS[task or spec.task] if name == "auto" else name


def check(cfg, spec) -> None:
    """Raise ConfigError for an unknown loss or one that cannot apply to the data set."""
    LOSSES.check(cfg.loss)
    task = resolve_task(cfg, spec)
    name = resolve_loss(cfg.loss, spec, task)
    # a data set without regression targets has no target_scaling in its own schema
    check_compatible(name, spec, cfg.data.get("target_scaling", "none"), task)
    scaling = str(cfg.data.get("scaling", "none"))
    if task in IMAGE_TASKS and LOSSES[name].binary_only and scaling != "unit":
        raise ConfigError(
            f"loss '{name}' on pixels needs targets in [0, 1]: set data.scaling=unit (got {scaling})"
        )


def check_compatible(name: str, spec, target_scaling: str = "none", task: str | None = None) -> None:
    """Raise ConfigError when the loss cannot apply to the data set (or to `task`)."""
    loss, task = LOSSES.get(name), task or spec.task
    if task not in loss.tasks:
        what = f"task={task}" if task in IMAGE_TASKS else f"{task} data '{spec.name}'"
        raise ConfigError(
            f"loss '{name}' does not fit {what} "
            f"(choose from: {', '.join(n for n, each in LOSSES.items() if task in each.tasks)})"
        )
    if task in IMAGE_TASKS:
        return
    if loss.binary_only and spec.num_classes != 2:
        raise ConfigError(
            f"loss '{name}' needs 2 classes but data '{spec.name}' has {spec.num_classes} "
            "(use softmax_cross_entropy)"
        )
    if name == "msle" and (not spec.targets_nonnegative or target_scaling != "none"):
        raise ConfigError(
            f"loss 'msle' needs non-negative targets: data '{spec.name}' has negative ones "
            "(for rosenbrock set data.target_scaling=none)"
        )


def output_units(name: str, spec) -> int:
    """Return the width of the model's last layer for this loss and data set."""
    if LOSSES[name].binary_only:
        return 1
    return spec.num_classes if spec.task == "classification" else 1


def reconstruction(name: str, outputs):
    """The pixels the outputs stand for: the binary cross-entropies read them as logits."""
    return jax.nn.sigmoid(outputs) if LOSSES[name].binary_only else outputs


def predict_classes(name: str, outputs):
    """Return predicted class ids from the outputs (one logit for the binary losses)."""
    if LOSSES[name].binary_only:
        return (outputs[:, 0] > 0).astype(jnp.int32)
    return jnp.argmax(outputs, axis=-1)
