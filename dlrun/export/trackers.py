"""`dlrun export`: which tracker, whether its extra is installed, and the one call.

The trackers' modules import their heavy packages (TensorBoard, MLflow) at their top, so each
is imported only once it is chosen and known to be installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dlrun.errors import ConfigError
from dlrun.export.runs import collect

TARGETS = ("tensorboard", "mlflow")


@dataclass
class Exported:
    """What an export did, for the command's one line."""

    runs: int
    where: str
    warnings: list


def export(path: Path, to: str, target: str | None, experiment: str = "dlrun") -> Exported:
    """Export the runs under `path` to `to` (tensorboard: into the folder `target`; mlflow: to
    the tracking URI `target`, default a file store in ./mlruns). Raises ConfigError for bad
    input or a missing extra, before anything is written."""
    if to not in TARGETS:
        raise ConfigError(f"unknown --to '{to}' (choose from: {', '.join(TARGETS)})")
    if to == "tensorboard" and not target:
        raise ConfigError(
            "--to tensorboard needs a folder to write to: dlrun export RUNS --to tensorboard DIR"
        )
    require(to)
    collected = collect(path)
    if to == "tensorboard":
        from dlrun.export.tensorboard import export_tensorboard

        where = export_tensorboard(collected, Path(target))
    else:
        from dlrun.export.mlflow import export_mlflow

        where = export_mlflow(collected, target, experiment)
    return Exported(len(collected.folders), where, collected.report.warnings)


def require(to: str, asked: str | None = None) -> None:
    """Refuse, in one line saying how to install it, a tracker whose extra is not installed;
    `asked` is what chose it (default `--to TRACKER`)."""
    module = "tensorboard" if to == "tensorboard" else "mlflow"
    try:
        __import__(module)
    except ImportError:
        # escaped: the command prints errors as rich markup, where [mlflow] would be a style tag
        raise ConfigError(f"{asked or '--to ' + to} needs {module}: pip install 'dlrun\\[{to}]'") from None
