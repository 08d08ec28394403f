"""Validation: every name against its registry and every number against its range, before any
data is loaded or anything compiles. Raises ConfigError naming the first bad value.
"""

from __future__ import annotations

import math

from omegaconf import DictConfig, OmegaConf

from dlrun.config.compose import _example, explain_compose_error
from dlrun.config.schema import names_of, structured
from dlrun.errors import ConfigError, DataError


def _choose(what: str, value: str, choices) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {what} '{value}' (choose from: {', '.join(sorted(choices))})")


def _positive(name: str, value, allow_zero: bool = False) -> None:
    if value < 0 or (value == 0 and not allow_zero):
        bound = ">= 0" if allow_zero else "> 0"
        raise ConfigError(f"{name} must be {bound}, got {value}")


def _leaves(node, prefix: str = ""):
    """Yield (dotted key, value) for every plain value of a config container."""
    for key, value in node.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", value


def _check_finite(cfg: DictConfig) -> None:
    """OmegaConf reads `nan` and `inf` as floats; no key means anything by them."""
    for key, value in _leaves(OmegaConf.to_container(cfg)):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{key}={value} is not a finite number: give a finite value, "
                              f"e.g. {_example(key)}")


def validate(cfg: DictConfig) -> None:
    """Check every name against its registry and every number against its range.

    Raises ConfigError naming the first bad value. Each registry checks its own options; this
    adds the checks of the top-level keys. Imports the registries lazily so that `dlrun --help`
    stays quick.
    """
    from dlrun import data, models
    from dlrun.models import activations, inits
    from dlrun.training import losses, optim, transfer

    names = names_of(cfg)
    try:  # `+key=value` lets Hydra add keys the schema lacks: refuse them here
        OmegaConf.merge(structured(names), OmegaConf.to_container(cfg))
    except Exception as error:
        raise ConfigError(explain_compose_error(error, [], names)) from None
    _check_finite(cfg)
    activations.check(cfg)
    inits.check(cfg)
    _choose("early_stopping.metric", cfg.early_stopping.metric, ("val_loss", "val_accuracy"))
    for name in ("lr", "batch_size", "epochs", "eval_batch_size", "maxout_pieces", "data.val_size"):
        _positive(name, OmegaConf.select(cfg, name))
    for name in ("early_stopping.patience", "early_stopping.min_delta", "augment.shift",
                 "augment.noise_std", "huber_delta"):
        _positive(name, OmegaConf.select(cfg, name), allow_zero=True)
    optim.check(cfg)
    try:
        spec = data.describe(cfg.data)
    except DataError as error:
        raise ConfigError(str(error)) from None
    models.check(cfg, spec)
    transfer.check_trainable(cfg, spec)
    losses.check(cfg, spec)
    if cfg.batch_size > spec.n_train:
        raise ConfigError(f"batch_size {cfg.batch_size} exceeds the {spec.n_train} training examples")
