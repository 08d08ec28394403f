"""Validation: every name against its registry and every number against its range, before any
data is loaded or anything compiles. Raises ConfigError naming the first bad value.
"""

from __future__ import annotations

import functools
import math
import warnings

from omegaconf import DictConfig, OmegaConf

from dlrun.config.compose import _example, explain_compose_error
from dlrun.config.schema import names_of, structured
from dlrun.errors import ConfigError, DataError, InputWarning
from dlrun.text import clip


def _choose(what: str, value: str, choices) -> None:
    if value not in choices:
        raise ConfigError(f"unknown {what} '{clip(value)}' (choose from: {', '.join(sorted(choices))})")


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


def _check_finite(values: dict) -> None:
    """OmegaConf reads `nan` and `inf` as floats; no key means anything by them."""
    for key, value in _leaves(values):
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(
                f"{key}={value} is not a finite number: give a finite value, e.g. {_example(key)}"
            )


# numpy and JAX take a Python int as an int64: a wider one is an OverflowError deep in a trace.
INT_RANGE = (-(2**63), 2**63 - 1)
# jax.random.PRNGKey keeps a seed's low 32 bits (x64 is off): seed 2**32 would train exactly as
# seed 0, and -1 as 4294967295, so a seed is what a uint32 holds.
SEED_RANGE = (0, 2**32 - 1)
SEED_KEYS = ("seed", "data_seed")


def _integers(value):
    """The ints in a config value: itself, or the items of a list (widths, channels)."""
    items = value if isinstance(value, list) else [value]
    return [item for item in items if isinstance(item, int) and not isinstance(item, bool)]


def check_int_range(key: str, value) -> None:
    """Refuse an integer `key` (or an item of it) outside what the code that reads it takes."""
    seed = key in SEED_KEYS
    low, high = SEED_RANGE if seed else INT_RANGE
    for number in _integers(value):
        if not low <= number <= high:
            why = "the 32 bits of a seed that jax.random keeps" if seed else "a 64-bit integer"
            raise ConfigError(f"{key}={clip(value)} is out of range: {key} takes {low} to {high} ({why})")


def check_flag_range(flag: str, value, low: int = 1, high: int = INT_RANGE[1], why: str = "a 64-bit integer"):
    """Refuse a command-line integer outside [low, high] (None: the flag was not given)."""
    if value is not None and not low <= value <= high:
        raise ConfigError(f"{flag} {clip(value)} is out of range: {flag} takes {low} to {high} ({why})")


def _check_numbers(values: dict) -> None:
    _check_finite(values)
    for key, value in _leaves(values):
        check_int_range(key, value)


def _check_schema(cfg: DictConfig, names: dict, changed: dict | None) -> None:
    """The whole config against the schema, or only the `changed` keys of a config whose base
    (the same config before them) already passed: a sweep's trials differ in a few keys, and the
    whole merge cost a 32-trial sweep ~0.5 s."""
    if changed is None:
        try:  # `+key=value` lets Hydra add keys the schema lacks: refuse them here
            OmegaConf.merge(structured(names), OmegaConf.to_container(cfg))
        except Exception as error:
            raise ConfigError(explain_compose_error(error, [], names)) from None
        _check_numbers(OmegaConf.to_container(cfg))
        return
    scratch = _scratch_schema(tuple(sorted(names.items())))
    for key, value in changed.items():
        try:  # a typed node refuses a value of the wrong type as the merge would
            OmegaConf.update(scratch, key, value, merge=False)
        except Exception as error:
            raise ConfigError(explain_compose_error(error, [f"{key}={value}"], names)) from None
        _check_numbers({key: value})


@functools.lru_cache(maxsize=32)
def _scratch_schema(names: tuple) -> DictConfig:
    """A private copy of the typed schema that `changed` values are assigned into to be checked
    (a refused value leaves it as it was)."""
    return structured(dict(names))


def validate(cfg: DictConfig, changed: dict | None = None) -> None:
    """Check every name against its registry and every number against its range.

    Raises ConfigError naming the first bad value. Each registry checks its own options; this
    adds the checks of the top-level keys. Imports the registries lazily so that `dlrun --help`
    stays quick. `changed` ({dotted key: value}): only these keys differ from a config that
    passed, so only they are checked against the schema.
    """
    from dlrun import data, models, optim
    from dlrun.models import activations, inits, losses, tasks, trainable

    names = names_of(cfg)
    _check_schema(cfg, names, changed)
    activations.check(cfg)
    inits.check(cfg)
    _choose("early_stopping.metric", cfg.early_stopping.metric, ("val_loss", "val_accuracy"))
    for name in ("lr", "batch_size", "epochs", "eval_batch_size", "maxout_pieces", "data.val_size"):
        _positive(name, OmegaConf.select(cfg, name))
    for name in (
        "early_stopping.patience",
        "early_stopping.min_delta",
        "augment.shift",
        "augment.noise_std",
        "huber_delta",
    ):
        _positive(name, OmegaConf.select(cfg, name), allow_zero=True)
    optim.check(cfg)
    try:
        spec = data.describe(cfg.data)
    except DataError as error:
        raise ConfigError(str(error)) from None
    models.check(cfg, spec)
    tasks.check(cfg, spec)
    trainable.check_trainable(cfg, spec)
    losses.check(cfg, spec)
    fit_batch(cfg, spec.n_train)


def fit_batch(cfg: DictConfig, n_train: int) -> None:
    """Cut a batch larger than the training set to the set, saying so (InputWarning).

    As PyTorch's DataLoader and Keras do: each epoch is then one batch of every example, not no
    batch at all. The config itself is cut, so what the run folder records (config.yaml), the
    lr scaling, the memory estimate and the grouping of a sweep all see the batch that trains.
    """
    if cfg.batch_size > n_train:
        warnings.warn(
            f"batch_size {cfg.batch_size} exceeds the {n_train} training examples: "
            f"each epoch is one batch of {n_train}",
            InputWarning,
            stacklevel=2,
        )
        cfg.batch_size = n_train
