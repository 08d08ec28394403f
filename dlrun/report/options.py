"""The `dlrun report` options turned into what the report library takes, refused in one line."""

from __future__ import annotations

from pathlib import Path

from dlrun.errors import ConfigError
from dlrun.paths import check_writable


def check_options(top: int | None, fmt: str) -> None:
    from dlrun.report.render import FORMATS

    if top is not None and top < 1:
        raise ConfigError(f"--top must be >= 1, got {top}")
    if fmt not in FORMATS:
        raise ConfigError(f"unknown --format '{fmt}' (choose from: {', '.join(FORMATS)})")


def check_outputs(output: Path | None, plot_folder: Path | None) -> None:
    """Refuse an output file or plot folder that cannot be written: before reading 2,000 runs,
    not after."""
    if output:
        check_writable(output, folder=False)
    if plot_folder:
        check_writable(plot_folder, folder=True)


def parse_thresholds(pairs: list[str]):
    """The diagnosis thresholds with `name=value` overrides applied."""
    from dlrun.report.thresholds import DEFAULT_THRESHOLDS, Thresholds

    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--threshold '{pair}' must look like name=value")
        values[key] = value
    try:
        return Thresholds.from_dict(values) if values else DEFAULT_THRESHOLDS
    except ValueError as error:
        raise ConfigError(str(error)) from None


def latest_runs_folder() -> Path:
    """The most recent sweep folder under runs/sweeps/, else runs/ itself."""
    sweeps = sorted(Path("runs/sweeps").glob("*/*"), key=lambda p: p.stat().st_mtime)
    return sweeps[-1] if sweeps else Path("runs")
