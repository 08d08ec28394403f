"""The sweep records (sweep.yaml) beside the folders a report reads: the command, when it ran,
its plan (mode, space, trials) and, for a search, what it optimised."""

from __future__ import annotations

from pathlib import Path

import yaml

from dlrun.results import SWEEP_FILE


def read_sweeps(paths: list[Path]) -> list[dict]:
    """The sweep.yaml of each given folder that has one (command, created_at, plan); a file that
    cannot be read as a mapping is left out: the report shows the runs either way."""
    records = []
    for path in paths:
        try:
            record = yaml.safe_load((Path(path) / SWEEP_FILE).read_text())
        except (OSError, yaml.YAMLError, UnicodeDecodeError):
            continue
        if isinstance(record, dict):
            records.append(record)
    return records
