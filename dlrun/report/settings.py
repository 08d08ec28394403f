"""Which shared settings are worth printing above a report: those that differ from the defaults
of the options the runs chose (model, data set, optimizer, schedule).

A default is what composing would give: the option's schema (dlrun/config/options.py) overlaid
with its YAML file in `conf/`, which may set its own values (moons: val_size 500). Read
with dataclasses and PyYAML, not Hydra or OmegaConf, so the report starts quickly.
"""

from __future__ import annotations

import dataclasses
import functools
from pathlib import Path

import pandas as pd
import yaml

from dlrun.config.options import GROUPS
from dlrun.config.schema import Config, option_schema
from dlrun.layout import conf_dir, option_file
from dlrun.report.build import flatten


def _dataclass_defaults(schema) -> dict:
    values = {}
    for field in dataclasses.fields(schema):
        if field.default is not dataclasses.MISSING:
            values[field.name] = field.default
        elif field.default_factory is not dataclasses.MISSING:
            made = field.default_factory()
            values[field.name] = _dataclass_defaults(type(made)) if dataclasses.is_dataclass(made) else made
    return values


def _yaml_values(path: Path) -> dict:
    """A config file's own values; {} when absent."""
    try:
        loaded = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _option_file(group: str, option: str) -> tuple[dict, dict]:
    """(the option's own values, the recipe it sets outside its group): an option file in Hydra's
    `_global_` package (model/lenet.yaml) nests its fields under the group and sets lr beside."""
    return _option_values(group, option_file(group, option))


@functools.lru_cache(maxsize=None)
def _option_values(group: str, path: Path) -> tuple[dict, dict]:
    values = _yaml_values(path)
    values.pop("defaults", None)
    try:
        is_global = "@package _global_" in path.read_text()
    except OSError:
        is_global = False
    if not is_global:
        return values, {}
    own = values.pop(group, None)
    return (own if isinstance(own, dict) else {}), values


@functools.lru_cache(maxsize=None)
def option_defaults(group: str, option: str) -> dict:
    """The fields of one option as composing gives them, flattened: {'model.hidden': '[512, 256]'}."""
    schema = option_schema(group, option)
    if schema is None:
        return {}
    values = {**_dataclass_defaults(schema), **_option_file(group, option)[0]}
    # the option itself is a choice like any other: moons is worth printing, mnist (the default) not
    values["name"] = top_defaults().get(f"{group}.name")
    return flatten({group: values})


@functools.lru_cache(maxsize=None)
def top_defaults() -> dict:
    """The settings outside the option groups (lr, epochs, early_stopping.*), flattened."""
    values = {key: value for key, value in _dataclass_defaults(Config).items() if key not in GROUPS}
    base = _yaml_values(conf_dir() / "config.yaml")
    values.update({k: v for k, v in base.items() if k not in GROUPS and k != "defaults"})
    for entry in base.get("defaults", []):  # `- model: mlp`: the option a run gets unless told
        if isinstance(entry, dict):
            values.update({f"{group}.name": option for group, option in entry.items() if group in GROUPS})
    return flatten(values)


def non_default(constant: dict, rows: pd.DataFrame | None = None) -> dict:
    """The shared settings worth reading: those that differ from the default of every option in
    use (the options of `constant`, and of `rows` where the option varies between runs). A
    field that none of those options has means nothing for these runs and is left out too."""
    used = {
        group: {str(constant[f"{group}.name"])}
        if f"{group}.name" in constant
        else set(map(str, rows[f"{group}.name"].dropna()))
        if rows is not None and f"{group}.name" in rows
        else set()
        for group in GROUPS
    }
    top = dict(top_defaults())
    for group, options in used.items():
        if len(options) == 1:  # LeNet's lr 2e-3 is its default, not a choice worth printing
            top.update(flatten(_option_file(group, next(iter(options)))[1]))
    shown = {}
    for key, value in constant.items():
        group = key.split(".", 1)[0]
        if group in GROUPS and used[group]:
            defaults = [option_defaults(group, option) for option in used[group]]
            if not any(key in d for d in defaults) or all(
                key in d and _same(d[key], value) for d in defaults
            ):
                continue
        elif key in top and _same(top[key], value):
            continue
        shown[key] = value
    return shown


def _same(default, value) -> bool:
    """Equal as a config file would read them: 1e-3 == 0.001, max == Pooling.max, [8] == '[8]'."""
    if isinstance(default, list):
        default = str(default)
    if isinstance(default, (int, float)) and not isinstance(default, bool):
        try:
            return float(default) == float(value)
        except (TypeError, ValueError):
            return False
    return str(default) == str(value)
