"""Where the shipped YAML lives: the config groups (`conf/`) and the studies (`experiments/`).

In a checkout (and so an editable install) they sit at the top level beside `dlrun/`, where a
Hydra user looks for them; a built wheel carries them inside the package as `dlrun/conf/` and
`dlrun/experiments/` (setup.py maps them there). `$DLRUN_CONF_DIR` and `$DLRUN_EXPERIMENTS_DIR`
win over both. Hydra needs a real folder, which every one of these is.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent


def _shipped(name: str) -> Path:
    inside = PACKAGE / name  # a wheel's copy
    return inside if inside.is_dir() else PACKAGE.parent / name


def conf_dir() -> Path:
    """The folder of YAML config groups."""
    configured = os.environ.get("DLRUN_CONF_DIR")
    return Path(configured) if configured else _shipped("conf")


def experiments_dir() -> Path:
    """The folder of study files."""
    configured = os.environ.get("DLRUN_EXPERIMENTS_DIR")
    return Path(configured) if configured else _shipped("experiments")
