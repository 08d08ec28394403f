"""The config a command runs with: composed from overrides, or read back from a run folder,
and validated either way.
"""

from __future__ import annotations

from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from dlrun.config.compose import compose_overrides, explain_compose_error
from dlrun.config.options import GROUPS
from dlrun.config.schema import names_of, own_fields, structured
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


def typed_config(container: dict, *, drop_foreign: bool = False) -> DictConfig:
    """A plain config (a worker's, a run folder's) back in the typed schema of its options.

    `drop_foreign` leaves out the fields an option does not have: run folders written before
    each option had its own schema hold every field of every option (an MLP's `hidden` in a
    LeNet run), and they must still load. Raises ConfigError for what the schema refuses.
    """
    names = names_of(container)
    unset = [group for group in GROUPS if group not in names]
    if unset:
        raise ConfigError(
            f"it names no {' and no '.join(unset)} (a dlrun config names each of {', '.join(GROUPS)})"
        )
    if drop_foreign:
        container = own_fields(container)
    try:
        return OmegaConf.merge(structured(names), container)
    except Exception as error:
        raise ConfigError(explain_compose_error(error, [], names)) from None


def load_run_config(run_dir: Path) -> DictConfig:
    """Re-read a run folder's `config.yaml` into the typed schema and validate it.

    Raises what `results.read_config` raises for a missing or unreadable file, and ConfigError
    for settings the schema refuses.
    """
    from dlrun import results  # it brings pandas, which only resuming needs, not every command

    loaded = results.read_config(run_dir)
    try:
        cfg = typed_config(loaded, drop_foreign=True)
    except ConfigError as error:
        raise ConfigError(f"{Path(run_dir) / results.CONFIG_FILE}: {error}") from None
    validate(cfg)
    return cfg
