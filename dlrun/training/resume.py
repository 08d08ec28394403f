"""What `dlrun train` does with a run folder that already exists: start, continue, or refuse.

Everything here is decided before any data loads or anything compiles, and a refusal writes
nothing. The rules:

- `--out DIR` (or the same command again): an unfinished run there with the same config is
  continued from its last finished epoch; a finished one is left alone; a folder where no epoch
  finished holds no results and is started afresh; a different run is refused.
- `--resume DIR [overrides]`: continues that run with its own config. Overrides may change only
  how long it trains (RESUMABLE_KEYS); anything else would change the model or the data, and a
  checkpoint of one program cannot continue another.
- A resume that extends `epochs` restarts the lr schedule at the epoch it resumes from, over the
  epochs that remain (a warm restart, as in SGDR): continuing the old schedule would train the
  added epochs at its final lr, 0 for the default cosine. `schedule.restarts` records it.
- A resume that fails puts the folder back exactly as it was (`kept_on_failure`).
"""

from __future__ import annotations

from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import flax.serialization
from omegaconf import DictConfig

from dlrun import results
from dlrun.config.compose import check_no_interpolation
from dlrun.config.load import load_run_config
from dlrun.config.schema import plain
from dlrun.config.validate import validate
from dlrun.errors import ConfigError, RunFailed
from dlrun.layout import user_config_dir, using_config_dir
from dlrun.text import clip
from dlrun.training.writes import cannot_write

RESUMABLE_KEYS = (
    "epochs",
    "early_stopping.patience",
    "early_stopping.min_delta",
    "early_stopping.restore_best",
)
FINISHED = ("completed", "diverged")


def finished_epoch(run_dir: Path) -> int:
    """Return the epoch that the last-epoch checkpoint ends, 0 when there is none.

    Raises ValueError when the checkpoint cannot be read (truncated, foreign). Here, not in
    dlrun/results.py: reading a checkpoint needs flax, and the report never imports it.
    """
    path = Path(run_dir) / results.LAST_CHECKPOINT
    if not path.exists():
        return 0
    try:
        payload = flax.serialization.msgpack_restore(path.read_bytes())
        return int(payload["epoch"])
    except Exception as error:
        raise ValueError(f"{path} cannot be read ({type(error).__name__})") from None


@dataclass
class Start:
    cfg: DictConfig
    run_dir: Path
    mode: str  # new | continue | done
    note: str = ""


def holds_run(run_dir: Path) -> bool:
    return any(
        (Path(run_dir) / name).exists()
        for name in (results.SUMMARY_FILE, results.CONFIG_FILE, results.METRICS_FILE, results.LAST_CHECKPOINT)
    )


def in_recorded_config_dir(run_dir: Path):
    """Search the config folder the run was started with (its summary.json records one given
    by `--config-dir`) where this command gave none: the run's code is imported beside it."""
    if user_config_dir() is not None:
        return nullcontext()
    try:
        recorded = results.read_summary(run_dir).get("config_dir")
    except (OSError, ValueError, AttributeError):
        recorded = None
    return using_config_dir(recorded) if recorded and Path(recorded).is_dir() else nullcontext()


def _stored_config(run_dir: Path, option: str) -> DictConfig:
    path = Path(run_dir) / results.CONFIG_FILE
    if not path.exists():
        raise ConfigError(
            f"{option} {run_dir}: it has no {results.CONFIG_FILE}, so it cannot be "
            "continued; start a new run with another --out"
        )
    try:
        return load_run_config(run_dir)
    except ConfigError as error:
        raise ConfigError(
            f"{option} {run_dir}: its {results.CONFIG_FILE} cannot be used ({error}); "
            "start a new run with another --out"
        ) from None
    except (OSError, ValueError) as error:  # YAML syntax, binary junk, empty: the reader says which
        problem = error if isinstance(error, ValueError) else f"its {results.CONFIG_FILE} cannot be read"
        raise ConfigError(f"{option} {run_dir}: {problem}; start a new run with another --out") from None


def _status(run_dir: Path) -> str:
    try:
        summary = results.read_summary(run_dir)
    except (OSError, ValueError):
        return "unknown"
    status = summary.get("status") if isinstance(summary, dict) else None
    return status if isinstance(status, str) else "unknown"


def _finished_epoch(run_dir: Path, option: str) -> int:
    try:
        return finished_epoch(run_dir)
    except ValueError as error:
        raise ConfigError(
            f"{option} {run_dir}: {error}; its results are left as they are, "
            "start a new run with another --out"
        ) from None


def changes(before: DictConfig, after: DictConfig) -> dict:
    """{dotted key: (before, after)} for every value that differs between two configs."""
    return changed_values(plain(before), plain(after))


def changed_values(before: dict, after: dict) -> dict:
    """`changes` over plain nested dicts (a summary's stored config)."""
    old, new = _flatten(before), _flatten(after)
    return {
        key: (old.get(key), new.get(key))
        for key in sorted(old.keys() | new.keys())
        if old.get(key) != new.get(key)
    }


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def for_out(run_dir: Path, cfg: DictConfig) -> Start:
    """Decide what `dlrun train OVERRIDES --out DIR` does with DIR."""
    if not holds_run(run_dir):
        return Start(cfg, run_dir, "new")
    epoch = _finished_epoch(run_dir, "--out")
    if epoch == 0 and _status(run_dir) not in FINISHED:
        return Start(cfg, run_dir, "new", f"{run_dir}: no epoch had finished there; starting afresh")
    differ = changes(_stored_config(run_dir, "--out"), cfg)
    if differ:
        key, (old, new) = next(iter(differ.items()))
        raise ConfigError(
            f"--out {run_dir} already holds another run ({key}: {clip(old)} there, "
            f"{clip(new)} here); use another --out, or --resume {run_dir} to continue "
            "that one"
        )
    status = _status(run_dir)
    if status in FINISHED:
        return Start(
            cfg,
            run_dir,
            "done",
            f"{run_dir} already holds this run, {status}: nothing "
            f"to do (--resume {run_dir} epochs=N trains it further)",
        )
    return Start(cfg, run_dir, "continue", f"continuing the {status} run in {run_dir} from epoch {epoch + 1}")


def for_resume(run_dir: Path, overrides: list[str]) -> Start:
    """Decide what `dlrun train --resume DIR OVERRIDES` does; raise ConfigError to refuse."""
    if not Path(run_dir).is_dir():
        raise ConfigError(f"--resume {run_dir}: no such run folder")
    stored = _stored_config(run_dir, "--resume")
    cfg = _with_overrides(stored, overrides)
    refused = [key for key in changes(stored, cfg) if key not in RESUMABLE_KEYS]
    if refused:
        old, new = changes(stored, cfg)[refused[0]]
        raise ConfigError(
            f"--resume cannot change {refused[0]} ({clip(old)} -> {clip(new)}): the "
            f"checkpoint is of the run as it was; a resume may change only "
            f"{', '.join(RESUMABLE_KEYS)} (start a new run with --out to change it)"
        )
    epoch, status = _finished_epoch(run_dir, "--resume"), _status(run_dir)
    if epoch == 0:
        return Start(cfg, run_dir, "new", f"{run_dir}: no epoch had finished there; starting afresh")
    if cfg.epochs < epoch:
        raise ConfigError(f"epochs={cfg.epochs} is below the {epoch} epochs {run_dir} already ran")
    if status == "diverged":
        raise ConfigError(
            f"--resume {run_dir}: that run diverged; resuming would repeat it (start "
            "a new run, e.g. with a lower lr)"
        )
    if cfg.epochs > stored.epochs:
        return _extended(stored, cfg, run_dir, epoch)
    if status == "completed":
        return Start(
            cfg,
            run_dir,
            "done",
            f"{run_dir} already completed its {stored.epochs} epochs: "
            f"nothing to do (add epochs=N to train further)",
        )
    return Start(cfg, run_dir, "continue", f"continuing the {status} run in {run_dir} from epoch {epoch + 1}")


def _with_overrides(stored: DictConfig, overrides: list[str]) -> DictConfig:
    for text in overrides:  # OmegaConf would resolve it later, deep in training's first write
        check_no_interpolation(text)
    cfg = stored.copy()
    try:
        cfg.merge_with_dotlist(list(overrides))
    except Exception as error:
        raise ConfigError(
            f"bad override for --resume: {clip(str(error).splitlines()[0])} (write key=value, e.g. epochs=20)"
        ) from None
    validate(cfg)
    return cfg


def _extended(stored: DictConfig, cfg: DictConfig, run_dir: Path, epoch: int) -> Start:
    """Train to more epochs: the schedule restarts at `epoch` over the epochs that remain."""
    if cfg.schedule.name != "constant":
        cfg.schedule.restarts = [*cfg.schedule.restarts, epoch]
        validate(cfg)
        how = (
            f"the {cfg.schedule.name} lr schedule restarts at epoch {epoch + 1} over the "
            f"{cfg.epochs - epoch} epochs that remain"
        )
    else:
        how = "the lr stays constant"
    return Start(
        cfg,
        run_dir,
        "continue",
        f"extending {run_dir} from {stored.epochs} to {cfg.epochs} epochs, from epoch {epoch + 1}: {how}",
    )


@contextmanager
def kept_on_failure(run_dir: Path):
    """Put the folder back as it was if the block raises (an interrupt is not a failure).

    A failed run (RunFailed) is raised again saying whether the folder could be put back: the
    failure may be the disk's own (full), and then so is putting it back.
    """
    files = results.snapshot(run_dir)
    try:
        yield
    except Exception as error:
        try:
            results.restore(run_dir, files)
        except OSError as failure:
            why = cannot_write(failure, run_dir)
            raise RunFailed(
                f"{error}; putting {run_dir} back failed too ({why}): each file there "
                "is whole, some of them from this attempt"
            ) from None
        if isinstance(error, RunFailed):
            raise RunFailed(f"{error}; {run_dir} is left as it was") from None
        raise
