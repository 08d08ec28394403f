"""The config schema: the top-level keys, typed, with their defaults and why, over the options
of each group (dlrun/config/options.py); registered in Hydra's ConfigStore, so composing
refuses an unknown key or a value of the wrong type with the key's name. Also how a config's
groups, options and fields are read (names_of, fields_of, own_fields, plain).
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any, Optional

from dlrun.config.options import (
    GROUPS,
    MISSING,
    OPEN_SCHEMAS,
    OPTION_SCHEMAS,
    USER_OPTIONS,
    ImageDataConfig,
    OptimConfig,
    ScheduleConfig,
    StoppingMetric,
    Task,
)
from dlrun.plugins import entry_options
from dlrun.targets import names_code

if TYPE_CHECKING:
    from omegaconf import DictConfig


@dataclass
class EarlyStoppingConfig:
    patience: int = 0  # epochs without improvement before stopping; 0 = off
    metric: StoppingMetric = StoppingMetric.val_loss  # val_loss: lower is better; val_accuracy: higher
    min_delta: float = 0.0  # an improvement smaller than this does not count
    restore_best: bool = True  # evaluate the test set with the best epoch's parameters


@dataclass
class AugmentConfig:
    shift: int = 0  # images: random translation of up to this many pixels
    flip: bool = False  # images: mirror left-right with probability 1/2 (photos, not digits)
    noise_std: float = 0.0  # gaussian noise added to the (scaled) inputs


@dataclass
class Config:
    # Any, not ModelConfig or DataConfig: a typed slot refuses the free fields of a user's
    # option; each built-in option is still typed by its own schema (its YAML names it in its
    # defaults)
    model: Any = MISSING
    data: Any = MISSING
    optim: OptimConfig = MISSING
    schedule: ScheduleConfig = MISSING
    early_stopping: EarlyStoppingConfig = field(default_factory=EarlyStoppingConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    lr: float = 1e-3
    batch_size: int = 128
    epochs: int = 10
    seed: int = 0
    # the order of the training batches; None = `seed`. Trials of a group that agree on it
    # share every batch (one gather, one wide first-layer matmul), e.g. a sweep over init seeds
    data_seed: Optional[int] = None
    init: str = "auto"  # weight init; auto = he_normal for relu-like, glorot_uniform otherwise
    init_scale: Optional[float] = None  # normal: std, uniform: half-width, constant: value, orthogonal: gain
    bias_init: str = "zeros"  # zeros | constant | normal | uniform
    bias_scale: float = 0.0  # like init_scale, for biases
    activation: str = "relu"
    activation_slope: float = 0.01  # leaky_relu's slope, prelu's initial slope
    maxout_pieces: int = 2  # maxout: linear pieces per unit
    # what the outputs are trained to be: auto = the data's task (classification, regression);
    # reconstruct: the input image itself; denoise: the clean image from a noisy one (the noise
    # drawn on the device from augment.noise_std). The image tasks need model=autoencoder.
    task: Task = Task.auto
    loss: str = "auto"  # auto = softmax cross-entropy for classification, mse for regression
    huber_delta: float = 1.0
    eval_batch_size: int = 1000
    name: Optional[str] = None  # run name for the default output folder; None = <model>-<data>
    # a run folder whose best parameters start this run, layer by layer (--init-from)
    init_from: Optional[str] = None


def register_schemas() -> None:
    from hydra.core.config_store import ConfigStore  # only composing needs Hydra; the report not

    store = ConfigStore.instance()
    store.store(name="dlrun_schema", node=Config)
    for group, options in OPTION_SCHEMAS.items():
        for option, schema in options.items():
            # an open schema goes in as a plain dict: a node any other key may join
            node = open_node(schema) if schema in OPEN_SCHEMAS else schema
            store.store(group=group, name=f"{option}_schema", node=node)


def open_node(schema: type, **values) -> dict:
    """An open schema's fields as a plain dict (choices as their words), with `values` set."""
    fields = {
        key: str(value) if isinstance(value, Enum) else value
        for key, value in dataclasses.asdict(schema()).items()
    }
    return {**fields, **values}


def is_open(group: str, option) -> bool:
    """Whether an option's node takes fields its schema does not list (a user's module)."""
    return option_schema(group, option) in OPEN_SCHEMAS


def option_schema(group: str, option) -> type | None:
    """The schema of one option of a group, None for an unknown option; an installed
    package's option (dlrun/plugins.py) is its group's user option."""
    schema = OPTION_SCHEMAS[group].get(str(option))
    if schema is None and str(option) in entry_options(group):
        return OPTION_SCHEMAS[group][USER_OPTIONS[group]]
    return schema


def structured(names: dict) -> DictConfig:
    """The whole schema with each group's node typed by its chosen option ({group: option}).

    A fresh copy each call (callers merge into it); the copy costs a tenth of building it from
    the dataclasses, which was 2 s of a 32-trial sweep's planning."""
    return copy.deepcopy(_structured(tuple(sorted((str(g), str(o)) for g, o in names.items()))))


@functools.lru_cache(maxsize=None)
def _structured(names: tuple) -> DictConfig:
    from omegaconf import OmegaConf

    cfg = OmegaConf.structured(Config)
    for group, option in names:
        schema = option_schema(group, option)
        if schema in OPEN_SCHEMAS:
            cfg[group] = OmegaConf.create(open_node(schema))
        elif schema is not None:
            cfg[group] = OmegaConf.structured(schema(name=str(option)))
    return cfg


def names_of(cfg) -> dict:
    """{group: the option chosen} of a config (a DictConfig or a plain dict); a model or data
    node with `_target_` is the group's user option (model=user, data=loader), whatever its
    name (an entry point's: dlrun/plugins.py)."""
    nodes = {group: cfg[group] for group in GROUPS if group in cfg and cfg[group] is not None}
    names = {group: str(node["name"]) for group, node in nodes.items() if "name" in node}
    users = {group: option for group, option in USER_OPTIONS.items() if names_code(nodes.get(group))}
    return {**names, **users}


def fields_of(group: str, option) -> list[str]:
    """The keys an option of a group has, in the order its schema declares them."""
    schema = option_schema(group, option)
    return [f.name for f in dataclasses.fields(schema)] if schema else []


@functools.lru_cache(maxsize=None)
def _field_set(group: str, option: str) -> frozenset:
    # cached: dataclasses.fields() per run and group was a tenth of a 2,000-run report
    return frozenset(fields_of(group, option))


def own_fields(config: dict) -> dict:
    """A plain config without the fields its options do not have: folders written before each
    option had its own schema carry every option's fields (an MLP's `hidden` in a LeNet run)."""
    names = names_of(config)
    return {
        key: (
            {
                k: v
                for k, v in value.items()
                if k in _field_set(key, names[key]) and not _flat_blobs_count(key, names[key], k, v)
            }
            if key in names
            and isinstance(value, dict)
            and _field_set(key, names[key])
            and not is_open(key, names[key])  # a user module's own fields are its arguments
            else value
        )
        for key, value in config.items()
    }


def _flat_blobs_count(group: str, option: str, key: str, value) -> bool:
    # the flat schema gave every data set blobs' cluster count `classes: 3`; an image set's
    # `classes` is a list of the classes it keeps, so that old number means nothing for it
    schema = option_schema(group, option)
    return (
        key == "classes"
        and not isinstance(value, (list, type(None)))
        and isinstance(schema, type)
        and issubclass(schema, ImageDataConfig)
    )


def plain(cfg) -> dict:
    """The config as plain Python values (choices as their words): for JSON, YAML and workers."""
    from omegaconf import OmegaConf

    return OmegaConf.to_container(cfg, resolve=True, enum_to_str=True)
