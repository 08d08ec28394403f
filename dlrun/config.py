"""Config schema, composition from `dlrun/conf/` with Hydra, and complete validation.

Every key a user can set is declared here, typed, so Hydra/OmegaConf refuse an unknown key or a
value of the wrong type while composing; `validate` then checks names against the registries and
ranges, all before any data is loaded or anything compiles.
"""

from __future__ import annotations

import copy
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional

from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf


class ConfigError(Exception):
    """A user-facing, one-line problem with the configuration (the CLI exits 2)."""


@dataclass
class ModelConfig:
    name: str = "mlp"
    hidden: List[int] = field(default_factory=lambda: [512, 256])  # MLP widths; [] = linear model
    dropout: float = 0.0  # drop probability after each hidden activation (MLP) / dense layer (LeNet)
    batch_norm: bool = False  # BatchNorm before each hidden activation
    pooling: str = "max"  # LeNet: max | avg
    conv_lowering: str = "auto"  # LeNet: auto picks the fastest convolution for the backend


@dataclass
class DataConfig:
    name: str = "mnist"
    subset: Optional[int] = None  # cap on training examples, taken after the validation split
    val_size: int = 5000  # carved from the training pool for curves and early stopping
    n_samples: int = 2000  # generated sets: training pool (train + validation)
    n_test: int = 1000  # generated sets: independently drawn test set
    noise: float = 0.1  # generated sets: noise std on coordinates or targets
    classes: int = 3  # blobs: number of clusters
    scaling: str = "standardize"  # inputs: standardize | unit | none
    target_scaling: str = "standardize"  # regression targets: standardize | none
    seed: int = 0  # separate from the run seed so that a sweep over seeds sees the same data


@dataclass
class OptimConfig:
    name: str = "adam"
    momentum: float = 0.9  # momentum, nesterov, rmsprop
    b1: float = 0.9  # adam, adamw
    b2: float = 0.999  # adam, adamw
    eps: float = 1e-8  # adam, adamw, rmsprop, adagrad
    decay: float = 0.9  # rmsprop's moving-average coefficient
    weight_decay: float = 0.0  # decoupled weight decay (adamw); not the same thing as l2 below
    l2: float = 0.0  # L2 penalty lambda * sum(w^2) over weight matrices, added to the loss
    clip_norm: float = 0.0  # clip the global gradient norm to this value; 0 = off
    lr_scaling: str = "none"  # none | linear | sqrt: scale lr by batch_size / base_batch_size
    base_batch_size: int = 128  # the batch size at which `lr` is meant


@dataclass
class ScheduleConfig:
    name: str = "constant"
    warmup_epochs: float = 0.0  # warmup_cosine: linear ramp from 0
    decay_epochs: float = 1.0  # step: drop every this many epochs
    gamma: float = 0.1  # step / exponential: multiplier per drop / per epoch
    end_factor: float = 0.0  # cosine, warmup_cosine: final lr as a fraction of lr
    # Epochs at which the schedule starts again over the epochs that follow (a warm restart):
    # `--resume DIR epochs=N` adds one when it extends a run, so config.yaml says how it ran.
    restarts: List[int] = field(default_factory=list)


@dataclass
class EarlyStoppingConfig:
    patience: int = 0  # epochs without improvement before stopping; 0 = off
    metric: str = "val_loss"  # val_loss (lower is better) | val_accuracy (higher is better)
    min_delta: float = 0.0  # an improvement smaller than this does not count
    restore_best: bool = True  # evaluate the test set with the best epoch's parameters


@dataclass
class AugmentConfig:
    shift: int = 0  # images: random translation of up to this many pixels
    noise_std: float = 0.0  # gaussian noise added to the (scaled) inputs


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    lr: float = 1e-3
    batch_size: int = 128
    epochs: int = 10
    seed: int = 0
    init: str = "auto"  # weight init; auto = he_normal for relu-like, glorot_uniform otherwise
    init_scale: Optional[float] = None  # normal: std, uniform: half-width, constant: value, orthogonal: gain
    bias_init: str = "zeros"  # zeros | constant | normal | uniform
    bias_scale: float = 0.0  # like init_scale, for biases
    activation: str = "relu"
    activation_slope: float = 0.01  # leaky_relu's slope, prelu's initial slope
    maxout_pieces: int = 2  # maxout: linear pieces per unit
    loss: str = "auto"  # auto = softmax cross-entropy for classification, mse for regression
    huber_delta: float = 1.0
    eval_batch_size: int = 1000
    name: Optional[str] = None  # run name for the default output folder; None = <model>-<data>


GROUP_SCHEMAS = {
    "model": ModelConfig,
    "data": DataConfig,
    "optim": OptimConfig,
    "schedule": ScheduleConfig,
}


def _register_schemas() -> None:
    store = ConfigStore.instance()
    store.store(name="dlrun_schema", node=Config)
    for group, schema in GROUP_SCHEMAS.items():
        store.store(group=group, name=f"{group}_schema", node=schema)


def conf_dir() -> Path:
    """Return the folder of YAML config groups (`$DLRUN_CONF_DIR` or the package's `dlrun/conf/`)."""
    configured = os.environ.get("DLRUN_CONF_DIR")
    # Inside the package so that a wheel carries it; Hydra needs a real folder, which both a
    # wheel install and an editable one give.
    return Path(configured) if configured else Path(__file__).resolve().parent / "conf"


def group_options(group: str) -> list[str]:
    """Return the option names of one config group, as found in `conf/<group>/`."""
    return sorted(p.stem for p in (conf_dir() / group).glob("*.yaml"))


# Keys that only `dlrun sweep` reads (dlrun/experiments.py): elsewhere they are no config key.
SWEEP_ONLY_KEYS = ("experiment", "variant")
HOW_TO_WRITE = "write key=value, e.g. lr=0.01 or model.hidden=[64,32]"


def parse_overrides(overrides) -> list:
    """Parse overrides with Hydra's grammar and return them (hydra Override objects).

    Raises ConfigError saying how to write one that does not parse, has no key, or deletes a
    key (`~lr`): every key has a default, so deleting one would only leave a hole (None).
    """
    parser = OverridesParser.create()
    parsed = []
    for text in overrides:
        if "=" not in text and not text.startswith("~"):
            raise ConfigError(f"'{text}' has no '=': {HOW_TO_WRITE}")
        try:
            override = parser.parse_override(text)
        except Exception as error:  # Hydra's parser raises HydraException with ANTLR's wording
            reason = re.sub(r" expecting \{.*\}", "", str(error).splitlines()[0])
            raise ConfigError(f"cannot parse '{text}' ({reason}): {HOW_TO_WRITE}") from None
        if not override.key_or_group:
            raise ConfigError(f"'{text}' has no key before '=': {HOW_TO_WRITE}")
        if override.is_delete():
            raise ConfigError(f"'{text}' deletes a key, which dlrun does not support (every key "
                              f"has a default): set it instead, e.g. {_example(override.key_or_group)}")
        if override.is_add() and _is_known(override.key_or_group):
            raise ConfigError(f"'{text}' adds a key that exists already: set it with {text[1:]}")
        parsed.append(override)
    return parsed


def _is_known(key: str) -> bool:
    """Whether `key` is a config group or a key of the schema."""
    missing = object()
    return key in GROUP_SCHEMAS or OmegaConf.select(
        OmegaConf.structured(Config), key, default=missing) is not missing


def _group_default(group: str) -> str:
    """The option `conf/config.yaml` picks for a group when none is given."""
    for entry in OmegaConf.load(conf_dir() / "config.yaml").defaults:
        if OmegaConf.is_dict(entry) and group in entry:
            return entry[group]
    return group_options(group)[0]


def _example(key: str) -> str:
    """An override that sets `key` to its default (a group to its default option)."""
    if key in GROUP_SCHEMAS:
        return f"{key}={_group_default(key)} (choose from: {', '.join(group_options(key))})"
    default = OmegaConf.select(OmegaConf.structured(Config), key, default="?")
    if OmegaConf.is_config(default):
        return "lr=0.001"
    return f"{key}={'null' if default is None else default}"


def _check_single_run(overrides) -> None:
    """Refuse what only `dlrun sweep` understands: swept values and study keys."""
    for override in parse_overrides(overrides):
        if override.is_sweep_override():
            raise ConfigError(f"'{override.input_line}' is a sweep (several values): run it "
                              f"with `dlrun sweep {override.input_line}`")
        if override.key_or_group in SWEEP_ONLY_KEYS:
            raise ConfigError(f"'{override.input_line}' names a study: run it with "
                              f"`dlrun sweep {override.input_line}`")


def compose_config(overrides: list[str] | tuple[str, ...] = (), check: bool = True) -> DictConfig:
    """Compose `conf/config.yaml` with Hydra overrides and return it (validated unless `check`
    is False). Raises ConfigError with a one-line message for any problem.
    """
    _check_single_run(overrides)
    _register_schemas()
    GlobalHydra.instance().clear()
    try:
        with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
            cfg = compose(config_name="config", overrides=list(overrides))
    except Exception as error:  # Hydra and OmegaConf raise many types; all are input errors here
        raise ConfigError(explain_compose_error(error, overrides)) from None
    finally:
        GlobalHydra.instance().clear()
    if check:
        validate(cfg)
    return cfg


def with_values(cfg: DictConfig, values: dict) -> DictConfig:
    """Return a copy of `cfg` with `{dotted key: python value}` set, type-checked by the schema."""
    updated = copy.deepcopy(cfg)
    for key, value in values.items():
        try:
            OmegaConf.update(updated, key, value, merge=False)
        except Exception as error:
            raise ConfigError(explain_compose_error(error, [])) from None
    return updated


def _keys_of(path: str) -> list[str]:
    """Return the valid keys at a dotted path of the schema (the top level for "")."""
    node = OmegaConf.structured(Config)
    for part in filter(None, path.split(".")):
        node = node[part]
    return list(node.keys())


def explain_compose_error(error: Exception, overrides) -> str:
    """Turn Hydra's multi-line composition errors into one line naming the bad value."""
    text = f"{error}\n{error.__cause__ or ''}"
    missing = re.search(r"Could not find '(\w+)/([^']*)'", text)
    if missing:
        group, option = missing.groups()
        return f"unknown {group} '{option}' (choose from: {', '.join(group_options(group))})"
    unknown_key = re.search(r"Key '[^']+' (?:not in|is not in struct)[\s\S]*?full_key: ([\w.\[\]]+)", text)
    if unknown_key:
        full = unknown_key.group(1)
        parent = full.rpartition(".")[0]
        try:
            valid = ", ".join(_keys_of(parent))
        except Exception:
            valid = "see `dlrun config show`"
        return f"unknown config key '{full}' (valid keys{' in ' + parent if parent else ''}: {valid})"
    bad_value = re.search(r"Value '([^']*)' (?:of type '\w+' could not be converted to|"
                          r"is not a valid) (\w+)", text)
    if bad_value:
        key = re.search(r"full_key: ([\w.\[\]]+)", text)
        where = f"{key.group(1)}=" if key else ""
        return f"{where}{bad_value.group(1)} is not a valid {bad_value.group(2).lower()}"
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[0] if lines else type(error).__name__


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

    Raises ConfigError naming the first bad value. Imports the registries lazily so that
    `dlrun --help` stays quick.
    """
    from dlrun import activations, data, inits, losses, models, optim

    try:  # `+key=value` lets Hydra add keys the schema lacks: refuse them here
        OmegaConf.merge(OmegaConf.structured(Config), OmegaConf.to_container(cfg))
    except Exception as error:
        raise ConfigError(explain_compose_error(error, [])) from None
    _check_finite(cfg)
    _choose("model", cfg.model.name, models.MODELS)
    _choose("optimizer", cfg.optim.name, optim.OPTIMIZERS)
    _choose("schedule", cfg.schedule.name, optim.SCHEDULES)
    _choose("activation", cfg.activation, activations.ACTIVATIONS)
    _choose("init", cfg.init, [*inits.INITS, "auto"])
    _choose("bias_init", cfg.bias_init, inits.BIAS_INITS)
    _choose("loss", cfg.loss, [*losses.LOSSES, "auto"])
    _choose("pooling", cfg.model.pooling, ("max", "avg"))
    _choose("optim.lr_scaling", cfg.optim.lr_scaling, ("none", "linear", "sqrt"))
    _choose("early_stopping.metric", cfg.early_stopping.metric, ("val_loss", "val_accuracy"))
    for name in ("lr", "batch_size", "epochs", "eval_batch_size", "optim.base_batch_size",
                 "maxout_pieces", "schedule.decay_epochs", "data.val_size"):
        _positive(name, OmegaConf.select(cfg, name))
    for name in ("optim.weight_decay", "optim.l2", "optim.clip_norm", "optim.eps",
                 "early_stopping.patience", "early_stopping.min_delta", "augment.shift",
                 "augment.noise_std", "huber_delta", "schedule.warmup_epochs", "schedule.gamma"):
        _positive(name, OmegaConf.select(cfg, name), allow_zero=True)
    if not 0.0 <= cfg.model.dropout < 1.0:
        raise ConfigError(f"model.dropout must be in [0, 1), got {cfg.model.dropout}")
    if any(width <= 0 for width in cfg.model.hidden):
        raise ConfigError(f"model.hidden widths must be > 0, got {list(cfg.model.hidden)}")
    try:
        spec = data.describe(cfg.data)
    except data.DataError as error:
        raise ConfigError(str(error)) from None
    models.check_compatible(cfg, spec)
    losses.check_compatible(losses.resolve_loss(cfg.loss, spec), spec, cfg.data.target_scaling)
    if cfg.batch_size > spec.n_train:
        raise ConfigError(f"batch_size {cfg.batch_size} exceeds the {spec.n_train} training examples")
    optim.check_schedule(cfg)


def to_yaml(cfg: DictConfig) -> str:
    """Return the fully resolved config as YAML (what `config.yaml` in a run folder holds)."""
    return OmegaConf.to_yaml(cfg, resolve=True)


def load_run_config(run_dir: Path) -> DictConfig:
    """Re-read a run folder's `config.yaml` into the typed schema and validate it.

    Raises what `results.read_config` raises for a missing or unreadable file, and ConfigError
    for settings the schema refuses.
    """
    from dlrun import results  # it brings pandas, which only resuming needs, not every command

    schema = OmegaConf.structured(Config)
    loaded = OmegaConf.create(results.read_config(run_dir))
    try:
        cfg = OmegaConf.merge(schema, loaded)
    except Exception as error:
        raise ConfigError(f"{Path(run_dir) / results.CONFIG_FILE}: "
                          f"{explain_compose_error(error, [])}") from None
    validate(cfg)
    return cfg
