"""Where the YAML lives: the shipped config groups (`conf/`) and studies (`experiments/`), and
the user's own config folder (`--config-dir DIR`) searched before them.

In a checkout (and so an editable install) the shipped folders sit at the top level beside
`dlrun/`, where a Hydra user looks for them; a built wheel carries them inside the package as
`dlrun/conf/` and `dlrun/experiments/` (setup.py maps them there). `$DLRUN_CONF_DIR` and
`$DLRUN_EXPERIMENTS_DIR` win over both. Hydra needs a real folder, which every one of these is.

The user's folder is kept in `$DLRUN_CONFIG_DIR`, not in a module global: a sweep's worker
processes and a Ray task's environment inherit it, so every process composes the same options.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from dlrun.errors import ConfigError

PACKAGE = Path(__file__).resolve().parent
USER_CONFIG_ENV = "DLRUN_CONFIG_DIR"
# what a user's folder may add to; a study is a file of `experiments/` inside it
USER_GROUPS = ("model", "data", "optim", "schedule")
STUDIES = "experiments"


def _shipped(name: str) -> Path:
    inside = PACKAGE / name  # a wheel's copy
    return inside if inside.is_dir() else PACKAGE.parent / name


def conf_dir() -> Path:
    """The folder of shipped YAML config groups."""
    configured = os.environ.get("DLRUN_CONF_DIR")
    return Path(configured) if configured else _shipped("conf")


def experiments_dir() -> Path:
    """The folder of shipped study files."""
    configured = os.environ.get("DLRUN_EXPERIMENTS_DIR")
    return Path(configured) if configured else _shipped("experiments")


def user_config_dir() -> Path | None:
    """The user's config folder (`--config-dir`), None when none was given."""
    configured = os.environ.get(USER_CONFIG_ENV)
    return Path(configured) if configured else None


def checked_config_dir(path) -> Path:
    """The absolute folder `--config-dir path` names; ConfigError in one line when it is not a
    folder, or holds a `config.yaml` (it would replace dlrun's own top-level config, which
    every option's defaults are read against) or none of the folders an option goes in."""
    folder = Path(path).expanduser().absolute()
    if not folder.is_dir():
        raise ConfigError(f"--config-dir {path}: no such folder")
    if (folder / "config.yaml").exists():
        raise ConfigError(
            f"--config-dir {path}: holds config.yaml, which would replace dlrun's own; put "
            f"options in {', '.join(f'{g}/' for g in USER_GROUPS)} and studies in {STUDIES}/"
        )
    if not any((folder / name).is_dir() for name in (*USER_GROUPS, STUDIES)):
        raise ConfigError(
            f"--config-dir {path}: has none of the folders dlrun reads "
            f"({', '.join(f'{g}/' for g in (*USER_GROUPS, STUDIES))})"
        )
    return folder


@contextlib.contextmanager
def using_config_dir(path):
    """Search the user's config folder `path` (None: none) for the duration, then restore."""
    previous = os.environ.get(USER_CONFIG_ENV)
    if path is None:
        os.environ.pop(USER_CONFIG_ENV, None)
    else:
        os.environ[USER_CONFIG_ENV] = str(checked_config_dir(path))
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop(USER_CONFIG_ENV, None)
        else:
            os.environ[USER_CONFIG_ENV] = previous


def _search(*shipped_and_user: tuple[Path, str]) -> list[tuple[Path, str]]:
    return [(folder, source) for folder, source in shipped_and_user if folder.is_dir()]


def option_files(group: str) -> dict[str, tuple[Path, str]]:
    """{option: (its YAML file, where it comes from: 'dlrun' or the user's folder)} of a group;
    the user's option wins over a shipped one of the same name, as Hydra's search path has it."""
    found: dict[str, tuple[Path, str]] = {}
    user = user_config_dir()
    folders = [(conf_dir() / group, "dlrun")]
    if user is not None:
        folders.append((user / group, str(user)))
    for folder, source in _search(*folders):
        found.update({path.stem: (path, source) for path in folder.glob("*.yaml")})
    return found


def option_file(group: str, option: str) -> Path:
    """The YAML file of one option (the user's when both have it; it may not exist)."""
    found = option_files(group).get(str(option))
    return found[0] if found else conf_dir() / group / f"{option}.yaml"


def study_files() -> dict[str, tuple[Path, str]]:
    """{study: (its file, where it comes from)}: shipped, then the user's `experiments/`.

    Only a folder's top level: a subfolder of the shipped studies is no study but a worked
    example of a user's project (experiments/own_code/), whose study needs its --config-dir."""
    user = user_config_dir()
    folders = [(experiments_dir(), "dlrun")]
    if user is not None:
        folders.append((user / STUDIES, str(user)))
    found: dict[str, tuple[Path, str]] = {}
    for folder, source in _search(*folders):
        found.update({path.stem: (path, source) for path in folder.glob("*.yaml")})
    return found


def import_roots() -> list[str]:
    """Where the user's `_target_` modules are imported from, first first: the working
    directory, then the config folder's parent (a project's `conf/` sits beside its code)."""
    roots = [os.getcwd()]
    user = user_config_dir()
    if user is not None and str(user.parent) not in roots:
        roots.append(str(user.parent))
    return roots
