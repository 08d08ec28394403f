"""Composition of `conf/` with Hydra's override grammar, and errors as one line.

No validation here (dlrun/config/validate.py): composing and checking are separate steps, so the
sweep planner can compose once and update values cheaply before validating each trial.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path

import yaml
from hydra import compose, initialize_config_dir
from hydra.core.config_store import ConfigStore
from hydra.core.global_hydra import GlobalHydra
from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import DictConfig, OmegaConf, open_dict

from dlrun.config.options import GROUPS, OPTION_SCHEMAS, USER_MODEL, USER_OPTIONS
from dlrun.config.schema import Config, fields_of, names_of, open_node, option_schema, register_schemas
from dlrun.errors import ConfigError
from dlrun.layout import conf_dir, option_file, option_files, user_config_dir
from dlrun.plugins import EntryOption, entry_options
from dlrun.plugins import check as check_entry_option
from dlrun.targets import TARGET, names_code, shown
from dlrun.text import NAME_MAX_BYTES, QUOTED_CHARS, clip, name_bytes


def group_options(group: str) -> list[str]:
    """Return the option names of one config group: `conf/<group>/`, the user's folder, and
    those that installed packages add by entry points (dlrun/plugins.py)."""
    return sorted(set(option_files(group)) | set(entry_options(group)))


def entry_option(group: str, option: str) -> EntryOption | None:
    """The installed package's option that `group=option` chooses; None for an option of
    `conf/` or the user's config folder, which wins over an entry point of the same name."""
    if str(option) in option_files(group):
        return None
    return entry_options(group).get(str(option))


def needs_a_value(group: str, option: str) -> bool:
    """Whether the option leaves a field for the user to give (`???`, e.g. a data file's path)."""
    path = option_file(group, option)
    if not path.exists():  # an installed package's option: its entry point gives `_target_`
        return False
    fields = yaml.safe_load(path.read_text(encoding="utf-8"))
    return isinstance(fields, dict) and "???" in fields.values()


# Keys that only `dlrun sweep` reads (dlrun/experiments.py): elsewhere they are no config key.
SWEEP_ONLY_KEYS = ("experiment", "variant")
HOW_TO_WRITE = "write key=value, e.g. lr=0.01 or model.hidden=[64,32]"


def parse_overrides(overrides) -> list:
    """Parse overrides with Hydra's grammar and return them (hydra Override objects).

    Raises ConfigError saying how to write one that does not parse, has no key, deletes a key
    (`~lr`: every key has a default, so deleting one would only leave a hole, None), sets
    Hydra's own runtime (`hydra.run.dir`) or holds an interpolation (`${...}`).
    """
    parser = OverridesParser.create()
    parsed = []
    for text in overrides:
        if "=" not in text and not text.startswith("~"):
            raise ConfigError(f"'{clip(text)}' has no '=': {HOW_TO_WRITE}")
        try:
            override = parser.parse_override(text)
        except Exception as error:  # Hydra's parser raises HydraException with ANTLR's wording
            reason = re.sub(r" expecting \{.*\}", "", str(error).splitlines()[0])
            raise ConfigError(f"cannot parse '{clip(text)}' ({clip(reason)}): {HOW_TO_WRITE}") from None
        key = override.key_or_group
        if not key:
            raise ConfigError(f"'{clip(text)}' has no key before '=': {HOW_TO_WRITE}")
        if override.is_delete():
            raise ConfigError(
                f"'{clip(text)}' deletes a key, which dlrun does not support (every "
                f"key has a default): set it instead, e.g. {_example(key)}"
            )
        if key == "hydra" or key.startswith(("hydra.", "hydra/")):
            raise ConfigError(
                f"'{clip(text)}' sets Hydra's runtime, which dlrun does not use: "
                f"choose the run folder with --out DIR (or name=NAME for runs/NAME/)"
            )
        check_no_interpolation(text)
        if override.is_add() and _is_known(key, overrides):
            raise ConfigError(f"'{clip(text)}' adds a key that exists already: set it with {clip(text[1:])}")
        parsed.append(override)
    return parsed


def check_no_interpolation(text: str) -> None:
    """Refuse `key=${...}`: an override is a value. Resolved later, an interpolation or resolver
    (`${oc.env:HOME}`) would fail deep in composition or put the environment into a config."""
    key, _, value = text.partition("=")
    if "${" in value:
        key = key.lstrip("+")
        raise ConfigError(
            f"'{clip(text)}' holds an interpolation (${{...}}), which dlrun does not "
            f"support in overrides: give the value itself, e.g. "
            f"{_example(key) if _is_known(key) else 'lr=0.001'}"
        )


def _default_of(key: str, missing=None):
    """The schema's default for `key`; for a key inside a group, from the first option that has
    it (`missing` when none does)."""
    group, _, rest = key.partition(".")
    if group in GROUPS and rest:
        for schema in OPTION_SCHEMAS[group].values():
            value = OmegaConf.select(OmegaConf.structured(schema), rest, default=missing)
            if value is not missing:
                return value
        return missing
    return OmegaConf.select(OmegaConf.structured(Config), key, default=missing)


def _is_known(key: str, overrides=None) -> bool:
    """Whether `key` is a config group or a key that some option of the schema has; given the
    `overrides`, a key inside a group must be a field of the option they choose (a user's
    module takes `+model.width` though VGG has a width)."""
    missing = object()
    group, _, field = key.partition(".")
    if overrides is not None and group in GROUPS and field:
        return field.partition(".")[0] in fields_of(group, _chosen(group, overrides, None))
    return key in GROUPS or _default_of(key, missing) is not missing


def _group_default(group: str) -> str:
    """The option `conf/config.yaml` picks for a group when none is given."""
    for entry in OmegaConf.load(conf_dir() / "config.yaml").defaults:
        if OmegaConf.is_dict(entry) and group in entry:
            return entry[group]
    return group_options(group)[0]


def _example(key: str) -> str:
    """An override that sets `key` to its default (a group to its default option)."""
    if key in GROUPS:
        return f"{key}={_group_default(key)} (choose from: {', '.join(group_options(key))})"
    default = _default_of(key, "?")
    if OmegaConf.is_config(default):
        return "lr=0.001"
    return f"{key}={'null' if default is None else default}"


def _check_single_run(parsed: list) -> None:
    """Refuse what only `dlrun sweep` understands: swept values and study keys."""
    for override in parsed:
        if override.is_sweep_override():
            raise ConfigError(
                f"'{clip(override.input_line)}' is a sweep (several values): run "
                f"it with `dlrun sweep {clip(override.input_line)}`"
            )
        if override.key_or_group in SWEEP_ONLY_KEYS:
            raise ConfigError(
                f"'{clip(override.input_line)}' names a study: run it with "
                f"`dlrun sweep {clip(override.input_line)}`"
            )


def _too_long(name: str) -> bool:
    return name_bytes(name) > NAME_MAX_BYTES


def _check_lookup_names(parsed: list, overrides) -> None:
    """Refuse a key or group option too long to be a file name: Hydra looks both up as paths
    in its config folders, and the lookup fails as an OSError, not as an unknown name."""
    for override in parsed:
        key, value = override.key_or_group, override.value()
        if _too_long(key):
            raise ConfigError(_unknown_key(key.lstrip("+"), overrides, None))
        if key in GROUPS and isinstance(value, str) and _too_long(value):
            raise ConfigError(f"unknown {key} '{clip(value)}' (choose from: {', '.join(group_options(key))})")


def compose_overrides(overrides: list[str] | tuple[str, ...] = ()) -> DictConfig:
    """Compose `conf/config.yaml` with Hydra overrides and return it, not yet validated.

    Raises ConfigError with a one-line message for any problem.
    """
    parsed = parse_overrides(overrides)
    _check_single_run(parsed)
    _check_lookup_names(parsed, overrides)
    _check_entry_options(parsed)
    register_schemas()
    _register_entry_options()
    GlobalHydra.instance().clear()
    primary, config_name, searched = _search_path()
    try:
        with initialize_config_dir(config_dir=str(primary), version_base="1.3"):
            cfg = compose(config_name=config_name, overrides=[*overrides, *searched])
    except Exception as error:  # Hydra and OmegaConf raise many types; all are input errors here
        raise ConfigError(explain_compose_error(error, overrides)) from None
    finally:
        GlobalHydra.instance().clear()
    _check_named(cfg, overrides)
    return _absolute_data_path(_with_user_defaults(cfg))


def _check_named(cfg: DictConfig, overrides) -> None:
    """Refuse a user's option that is neither their code nor a built-in option's values: with no
    `name` nothing says which schema reads it (a file of the user's that only sets fields)."""
    for group in GROUPS:
        node = cfg.get(group)
        if node is None or names_code(node) or "name" in node:
            continue
        option = _chosen(group, overrides, None)
        built_in = sorted(OPTION_SCHEMAS[group])
        # the same name as a built-in hides it, so it extends the built-in's schema instead
        extends = (
            f"`defaults: [{option}_schema]` and `name: {option}`"
            if option in built_in
            else f"`defaults: [{built_in[0]}]`"
        )
        raise ConfigError(
            f"{shown(option_file(group, option))}: {group} option '{clip(option)}' says neither "
            f"which built-in it extends nor which code it runs: add {extends} "
            f"(built-ins: {', '.join(built_in)})"
            + (f" or `{TARGET}: module.Class`" if group == "model" else "")
        )


def _search_path() -> tuple[Path, str, list[str]]:
    """(the folder Hydra starts from, the primary config's name, the overrides adding the other
    folders). With the user's folder, Hydra starts from it and reaches the shipped `conf/` by
    `hydra.searchpath`, which Hydra searches after its first folder: so a user's option wins
    over a shipped one of its name. Hydra reads the primary config before it adds the
    searchpath (and caches the miss), so the shipped `config.yaml` goes in by Hydra's
    ConfigStore, which is searched from the start."""
    user = user_config_dir()
    if user is None:
        return conf_dir(), "config", []
    store = ConfigStore.instance()
    store.store(name=USER_PRIMARY, node=yaml.safe_load((conf_dir() / "config.yaml").read_text()))
    shipped = "file://" + str(conf_dir()).replace("\\", "\\\\").replace("'", "\\'")
    return user, USER_PRIMARY, [f"hydra.searchpath=['{shipped}']"]


USER_PRIMARY = "dlrun_config"


def _check_entry_options(parsed: list) -> None:
    """Refuse a chosen entry-point option that is broken or does not import, naming its
    distribution, before Hydra would say no more than that it failed."""
    for override in parsed:
        key, value = override.key_or_group, override.value()
        if key in GROUPS and isinstance(value, str):
            option = entry_option(key, value)
            if option is not None:
                check_entry_option(option)


def _register_entry_options() -> None:
    """Each usable entry-point option as a node of its group in Hydra's ConfigStore: the
    group's user option (model=user, data=loader) with its name and `_target_` set."""
    store = ConfigStore.instance()
    for group, user_option in USER_OPTIONS.items():
        schema = option_schema(group, user_option)
        for name, option in entry_options(group).items():
            if not option.problem and entry_option(group, name) is not None:
                store.store(
                    group=group, name=name, node=open_node(schema, name=name, **{TARGET: option.target})
                )


def _absolute_data_path(cfg: DictConfig) -> DictConfig:
    """A relative `data.path` means the working directory's, as a shell user means it: kept
    absolute, so a resume or a worker started elsewhere reads the same file."""
    data = cfg.get("data")
    if isinstance(data, DictConfig) and "path" in data and not OmegaConf.is_missing(data, "path"):
        if isinstance(data.path, str) and data.path:
            data.path = str(Path(data.path).expanduser().absolute())
    return cfg


def _with_user_defaults(cfg: DictConfig) -> DictConfig:
    """A user's model or loader option written without the user schema in its defaults (only
    `_target_` and its arguments) gets the schema's other fields, so it reads like any other."""
    for group, option in USER_OPTIONS.items():
        if names_code(cfg[group]):
            with open_dict(cfg):
                for key, value in open_node(option_schema(group, option)).items():
                    cfg[group].setdefault(key, value)
    return cfg


def with_values(cfg: DictConfig, values: dict) -> DictConfig:
    """Return a copy of `cfg` with `{dotted key: python value}` set, type-checked by the schema."""
    updated = copy.deepcopy(cfg)
    for key, value in values.items():
        try:
            OmegaConf.update(updated, key, value, merge=False)
        except Exception as error:
            raise ConfigError(explain_compose_error(error, [], names_of(cfg))) from None
    return _absolute_data_path(updated)


def _keys_of(path: str) -> list[str]:
    """Return the valid keys at a dotted path of the schema (the top level for "")."""
    node = OmegaConf.structured(Config)
    for part in filter(None, path.split(".")):
        node = node[part]
    return list(node.keys())


def _chosen(group: str, overrides, chosen: dict | None) -> str:
    """The option of `group` a failed composition was using: given, on the command line, or
    the default."""
    if chosen and group in chosen:
        return str(chosen[group])
    for text in overrides:
        key, _, value = text.partition("=")
        if key.lstrip("+") == group:
            return value
    return _group_default(group)


def _unknown_key(full: str, overrides, chosen: dict | None) -> str:
    group, _, field = full.partition(".")
    if group in GROUPS and field and "." not in field:
        option = _chosen(group, overrides, chosen)
        # `model._target_=...` on a built-in model: say how to name a module of one's own
        hint = (
            f" (a module of your own: model={USER_MODEL} model.{TARGET}=FILE.CLASS)"
            if field == TARGET
            else ""
        )
        return (
            f"{group} {clip(option)} has no field '{clip(field)}'; its fields: "
            f"{', '.join(fields_of(group, option))}{hint}"
        )
    parent = full.rpartition(".")[0]
    try:
        valid = ", ".join(_keys_of(parent))
    except Exception:
        valid = "see `dlrun config show`"
    return f"unknown config key '{clip(full)}' (valid keys{' in ' + parent if parent else ''}: {valid})"


def explain_compose_error(error: Exception, overrides, chosen: dict | None = None) -> str:
    """Turn Hydra's multi-line composition errors into one line naming the bad value."""
    text = f"{error}\n{error.__cause__ or ''}"
    missing = re.search(r"Could not find '(\w+)/([^']*)'", text)
    if missing:
        group, option = missing.groups()
        return f"unknown {group} '{clip(option)}' (choose from: {', '.join(group_options(group))})"
    unknown_key = re.search(r"Key '[^']+' (?:not in|is not in struct)[\s\S]*?full_key: ([\w.\[\]]+)", text)
    if unknown_key:
        return _unknown_key(unknown_key.group(1), overrides, chosen)
    too_large = re.search(r"int too large to convert to float[\s\S]*?full_key: ([\w.\[\]]+)", text)
    if too_large:  # OmegaConf's message names no value, and no range
        key = too_large.group(1)
        given = [o.partition("=")[2] for o in overrides if o.partition("=")[0].lstrip("+~") == key]
        value = clip(given[-1] if given else "…")
        return f"{key}={value} is out of range: {key} takes a float from -1.8e308 to 1.8e308"
    choice = re.search(
        r"Invalid value '([^']*)', expected one of \[([^\]]*)\][\s\S]*?full_key: ([\w.]+)", text
    )
    if choice:
        value, choices, key = choice.groups()
        return f"{key}={clip(value)} is not one of: {choices}"
    bad_value = re.search(
        r"Value '([^']*)' (?:of type '\w+' could not be converted to|"
        r"is not a valid) (\w+)",
        text,
    )
    if bad_value:
        key = re.search(r"full_key: ([\w.\[\]]+)", text)
        where = f"{key.group(1)}=" if key else ""
        return f"{where}{clip(bad_value.group(1))} is not a valid {bad_value.group(2).lower()}"
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return clip(lines[0], 4 * QUOTED_CHARS) if lines else type(error).__name__


def to_yaml(cfg: DictConfig) -> str:
    """Return the fully resolved config as YAML (what `config.yaml` in a run folder holds)."""
    return OmegaConf.to_yaml(cfg, resolve=True)
