"""The run folder: the contract that `train` writes and `sweep` and `report` read.

    <run>/config.yaml        the fully resolved config
    <run>/metrics.csv        one row per epoch
    <run>/summary.json       status, best epoch, test metrics, sizes, times
    <run>/checkpoints/best.msgpack   parameters of the best epoch
    <run>/checkpoints/last.msgpack   the whole training state after the last finished epoch
    <run>/test_predictions.npz       classification: test-set class probabilities and labels

Every file is written to a temporary sibling and renamed over the target, so a reader (or a
crash) never sees half a file.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from datetime import datetime
from pathlib import Path

import pandas as pd

STATUSES = ("running", "completed", "diverged", "failed", "interrupted")
CONFIG_FILE, METRICS_FILE, SUMMARY_FILE = "config.yaml", "metrics.csv", "summary.json"
PREDICTIONS_FILE = "test_predictions.npz"  # classification: test-set probabilities and labels
BEST_CHECKPOINT = Path("checkpoints") / "best.msgpack"
LAST_CHECKPOINT = Path("checkpoints") / "last.msgpack"


def _umask() -> int:
    """The process's umask. Linux shows it in /proc without changing it; elsewhere it can only
    be read by setting it, briefly, which another thread creating a file could observe."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write `data` to `path` through a temporary file in the same folder and an atomic rename.

    The file gets the mode a plain open() would give (0666 less the umask), not mkstemp's 0600,
    so that the people the user shares results with can read them."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(handle, 0o666 & ~_umask())
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _json_safe(value):
    """NaN and inf are not JSON: write them as null so any JSON reader can load the summary."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value


def write_summary(run_dir: Path, summary: dict) -> None:
    atomic_write_text(Path(run_dir) / SUMMARY_FILE, json.dumps(_json_safe(summary), indent=2) + "\n")


def write_metrics(run_dir: Path, rows: list[dict]) -> None:
    atomic_write_text(Path(run_dir) / METRICS_FILE, pd.DataFrame(rows).to_csv(index=False))


def read_summary(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / SUMMARY_FILE).read_text())


def read_metrics(run_dir: Path) -> pd.DataFrame:
    return pd.read_csv(Path(run_dir) / METRICS_FILE)


def finished_epoch(run_dir: Path) -> int:
    """Return the epoch that the last-epoch checkpoint ends, 0 when there is none.

    Raises ValueError when the checkpoint cannot be read (truncated, foreign).
    """
    path = Path(run_dir) / LAST_CHECKPOINT
    if not path.exists():
        return 0
    import flax.serialization  # only resuming needs it; the report never imports flax

    try:
        payload = flax.serialization.msgpack_restore(path.read_bytes())
        return int(payload["epoch"])
    except Exception as error:
        raise ValueError(f"{path} cannot be read ({type(error).__name__})") from None


def snapshot(run_dir: Path) -> dict[Path, bytes]:
    """Every file of a run folder and its bytes, to put back if a resume fails."""
    run_dir = Path(run_dir)
    return {path.relative_to(run_dir): path.read_bytes() for path in run_dir.rglob("*")
            if path.is_file()}


def restore(run_dir: Path, files: dict[Path, bytes]) -> None:
    """Put a run folder back exactly as `snapshot` found it (files added since are removed)."""
    run_dir = Path(run_dir)
    for path in run_dir.rglob("*"):
        if path.is_file() and path.relative_to(run_dir) not in files:
            path.unlink()
    for relative, data in files.items():
        atomic_write_bytes(run_dir / relative, data)


def default_run_dir(name: str, root: Path = Path("runs")) -> Path:
    """Return `runs/<name>/<timestamp>/`, unique even for runs started in the same second."""
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    candidate = root / name / stamp
    suffix = 1
    while candidate.exists():
        suffix += 1
        candidate = root / name / f"{stamp}_{suffix}"
    return candidate
