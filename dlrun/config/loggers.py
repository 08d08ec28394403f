"""`logger=`: where a run's epochs go while it trains, besides its run folder.

    logger=tensorboard                       one logger (conf/logger/tensorboard.yaml)
    logger=[tensorboard,mlflow]              several at once
    logger.mlflow.tracking_uri=http://...    a field of a chosen logger

A logger is not a hyperparameter: these overrides are taken out before the config is composed,
so they never reach a trial's config, its identity, its folder's name or resume's comparison.
`csv` is the run folder itself, written always; choosing it adds nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import yaml
from hydra.core.override_parser.overrides_parser import OverridesParser

from dlrun.errors import ConfigError
from dlrun.layout import option_files
from dlrun.text import clip

GROUP = "logger"
RUN_FOLDER = "csv"  # always on: the contract every other logger is a copy of


@dataclass
class TensorBoardLogger:
    name: str = "tensorboard"


@dataclass
class MlflowLogger:
    name: str = "mlflow"
    tracking_uri: str | None = None  # None: a file store in ./mlruns, as `dlrun export --to mlflow`
    experiment: str = "dlrun"


@dataclass
class CsvLogger:
    name: str = RUN_FOLDER


SCHEMAS = {"csv": CsvLogger, "tensorboard": TensorBoardLogger, "mlflow": MlflowLogger}


@dataclass
class Loggers:
    """The loggers a run writes to besides its folder (csv is left out: it always is)."""

    chosen: list = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [logger.name for logger in self.chosen]

    def __bool__(self) -> bool:
        return bool(self.chosen)


def choices() -> list[str]:
    """The logger options: conf/logger/ and the user's config folder (each needs a schema)."""
    return sorted(name for name in option_files(GROUP) if name in SCHEMAS)


def split_loggers(overrides: list[str]) -> tuple[list[str], Loggers]:
    """(the overrides without `logger=` and `logger.*=`, the loggers they choose). Raises
    ConfigError in one line for an unknown logger or field, or a swept `logger=a,b`."""
    rest, names, settings = [], [], []
    for text in overrides:
        key, _, value = text.partition("=")
        if key == GROUP:
            names = _names(text)
        elif key.startswith(f"{GROUP}."):
            settings.append((text, key.split(".", 2)[1:], value))
        else:
            rest.append(text)
    chosen = {name: _option(name) for name in names}
    for text, path, value in settings:
        _set(chosen, text, path, value)
    return rest, Loggers([logger for name, logger in chosen.items() if name != RUN_FOLDER])


def _names(text: str) -> list[str]:
    try:
        override = OverridesParser.create().parse_override(text)
    except Exception:  # Hydra's parser raises HydraException with ANTLR's wording
        raise ConfigError(_bad(text, "cannot parse it")) from None
    if override.is_sweep_override():
        raise ConfigError(_bad(text, "a logger is not swept; several at once is a list"))
    value = override.value()
    names = [value] if isinstance(value, str) else value if isinstance(value, list) else None
    if not names or not all(isinstance(name, str) for name in names):
        raise ConfigError(_bad(text, "give logger names"))
    unknown = [name for name in names if name not in choices()]
    if unknown:
        raise ConfigError(_bad(text, f"unknown logger '{clip(unknown[0])}'"))
    return list(dict.fromkeys(names))


def _bad(text: str, why: str) -> str:
    return (
        f"'{clip(text)}': {why} (choose from: {', '.join(choices())}; "
        f"e.g. logger=tensorboard or logger=[tensorboard,mlflow])"
    )


def _option(name: str):
    """The option's YAML over its schema's defaults."""
    path, _ = option_files(GROUP)[name]
    written = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    schema = SCHEMAS[name]
    known = {f.name for f in fields(schema)}
    unknown = sorted(set(written) - known)
    if unknown:
        raise ConfigError(f"{path}: unknown key {unknown[0]} (valid: {', '.join(sorted(known))})")
    return schema(**written)


def _set(chosen: dict, text: str, path: list[str], value: str) -> None:
    """Apply `logger.NAME.FIELD=VALUE` to a chosen logger."""
    name, attribute = (path + [""])[:2]
    if name not in chosen:
        add = f"add it, e.g. logger=[{','.join([*chosen, name])}]" if name in choices() else "no such logger"
        raise ConfigError(
            f"'{clip(text)}' sets logger '{clip(name)}', which is not chosen ({add}; choose "
            f"from: {', '.join(choices())})"
        )
    known = [f.name for f in fields(chosen[name]) if f.name != "name"]
    if attribute not in known:
        raise ConfigError(
            f"'{clip(text)}': logger {name} has no field '{clip(attribute)}' "
            f"(fields: {', '.join(known) or 'none'})"
        )
    setattr(chosen[name], attribute, None if value in ("null", "") else value)
