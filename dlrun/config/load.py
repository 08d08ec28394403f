"""The config a command runs with: composed from overrides, or read back from a run folder,
and validated either way.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from dlrun.config.compose import compose_overrides, explain_compose_error
from dlrun.config.schema import Config
from dlrun.config.validate import validate
from dlrun.errors import ConfigError


def compose_config(overrides: list[str] | tuple[str, ...] = (), check: bool = True) -> DictConfig:
    """Compose `conf/config.yaml` with Hydra overrides; validated unless `check` is False.

    Raises ConfigError with a one-line message for any problem.
    """
    cfg = compose_overrides(overrides)
    if check:
        validate(cfg)
    return cfg


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
