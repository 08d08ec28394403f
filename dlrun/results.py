"""The run folder: the contract that `train` writes and `sweep` and `report` read.

    <run>/config.yaml        the fully resolved config
    <run>/metrics.csv        one row per epoch
    <run>/summary.json       status, best epoch, test metrics, sizes, times
    <run>/checkpoints/best.msgpack   parameters of the best epoch
    <run>/checkpoints/last.msgpack   the whole training state after the last finished epoch
    <run>/test_predictions.npz       classification: test-set class probabilities and labels

Every file is written to a temporary sibling and renamed over the target, so a reader (or a
crash) never sees half a file. This module is also the only reader of these files: each
`read_*` returns what its file holds or raises FileNotFoundError (absent), OSError (unreadable)
or ValueError whose message says what is wrong with it (empty, corrupt, foreign).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
import zipfile
import zlib
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from dlrun.claims import LOCK_FILE
from dlrun.errors import ConfigError
from dlrun.text import NAME_MAX_BYTES, clip, name_bytes

try:  # libyaml's loader is ~10x faster; 2,000 config.yaml files must load in well under a second
    from yaml import CSafeLoader as _YamlLoader
except ImportError:  # pragma: no cover - depends on how PyYAML was built
    from yaml import SafeLoader as _YamlLoader

STATUSES = ("running", "completed", "diverged", "pruned", "failed", "interrupted")
CONFIG_FILE, METRICS_FILE, SUMMARY_FILE = "config.yaml", "metrics.csv", "summary.json"
# A sweep folder: its record (the command, the space, the plan) and its index of trials
SWEEP_FILE, INDEX_FILE = "sweep.yaml", "trials.csv"
PREDICTIONS_FILE = "test_predictions.npz"  # classification: test-set probabilities and labels
# What `dlrun inspect` writes in a run folder; the HTML report links the page from the run's row
INSPECT_DIR, INSPECT_PAGE = "inspect", "index.html"
BEST_CHECKPOINT = Path("checkpoints") / "best.msgpack"
LAST_CHECKPOINT = Path("checkpoints") / "last.msgpack"
# Population-based training: a member's exploits (epoch, copied from, values before and after),
# and the population's own checkpoint in the sweep folder (dlrun/training/population.py)
LINEAGE_FILE = "lineage.csv"
POPULATION_CHECKPOINT = "population.msgpack"
# How a summary that is not an object is described: "it holds a list, not an object".
_JSON_TYPES = {
    list: "a list",
    str: "a string",
    int: "a number",
    float: "a number",
    bool: "true or false",
    type(None): "null",
}


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


def write_lineage(run_dir: Path, rows: list[dict]) -> None:
    """A PBT member's lineage.csv, whole (no rows: none is kept)."""
    path = Path(run_dir) / LINEAGE_FILE
    if rows:
        atomic_write_text(path, pd.DataFrame(rows).to_csv(index=False))
    else:
        path.unlink(missing_ok=True)


def read_lineage(run_dir: Path) -> list[dict]:
    """A PBT member's lineage rows, values as text (the space types them); [] when it has none."""
    path = Path(run_dir) / LINEAGE_FILE
    if not path.exists():
        return []
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    return [{**row, "epoch": int(row["epoch"])} for row in frame.to_dict("records")]


def read_summary(run_dir: Path) -> dict:
    """Return the run's summary.json.

    Raises FileNotFoundError when there is none, OSError when it cannot be read, and ValueError
    saying what is wrong when it is empty, not JSON, not an object or its status not a word.
    """
    data = (Path(run_dir) / SUMMARY_FILE).read_bytes()
    if not data.strip():
        raise ValueError(f"{SUMMARY_FILE} is empty")
    try:
        summary = json.loads(data)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError both are
        raise ValueError(f"{SUMMARY_FILE} is corrupt (not JSON)") from None
    if not isinstance(summary, dict):
        held = _JSON_TYPES.get(type(summary), "a value")
        raise ValueError(f"{SUMMARY_FILE} is corrupt: it holds {held}, not an object")
    if not isinstance(summary.get("status", ""), str):
        raise ValueError(f"{SUMMARY_FILE} is corrupt: its status is {summary['status']!r}, not a word")
    return summary


def read_config(run_dir: Path) -> dict:
    """Return the run's config.yaml as nested dicts.

    Raises FileNotFoundError when there is none, OSError when it cannot be read, and ValueError
    saying what is wrong when it is not YAML, empty or not a mapping of settings.
    """
    try:
        tree = yaml.load((Path(run_dir) / CONFIG_FILE).read_text(encoding="utf-8"), Loader=_YamlLoader)
    except (yaml.YAMLError, UnicodeDecodeError):
        raise ValueError(f"{CONFIG_FILE} is not readable YAML") from None
    if tree is None:
        raise ValueError(f"{CONFIG_FILE} is empty")
    if not isinstance(tree, dict):
        raise ValueError(f"{CONFIG_FILE} is not a mapping of settings")
    return tree


def read_metrics(run_dir: Path) -> pd.DataFrame:
    """Return the run's metrics.csv, one row per epoch.

    Read with the csv module: for these small files pandas' parser costs ~2 ms of setup, so a
    report over 2,000 runs would take 4 s longer. A column of integers (the epoch) stays
    integer, as pandas would read it, so a resumed run writes its earlier rows back unchanged;
    any other cell that is not a number becomes NaN. Raises FileNotFoundError when there is
    none, OSError when it cannot be read, and ValueError saying what is wrong when it is empty,
    not text or ragged.
    """
    try:
        with open(Path(run_dir) / METRICS_FILE, newline="", encoding="utf-8") as stream:
            rows = list(csv.reader(stream))
    except UnicodeDecodeError:  # before ValueError, of which it is one
        raise ValueError(f"{METRICS_FILE} is not text (binary data)") from None
    except csv.Error as error:  # e.g. a NUL byte
        raise ValueError(f"{METRICS_FILE} is corrupt ({error})") from None
    header, body = (rows[0], rows[1:]) if rows else ([], [])
    if any(len(row) != len(header) for row in body):
        raise ValueError(f"{METRICS_FILE} is corrupt (rows of unequal length)")
    if not header:
        raise ValueError(f"{METRICS_FILE} is empty")
    columns = list(zip(*body)) if body else [()] * len(header)
    return pd.DataFrame({name: _numbers(cells) for name, cells in zip(header, columns)})


def _numbers(cells: tuple) -> np.ndarray:
    """A metrics.csv column: int64 when every cell is an integer, else float64 (NaN for text)."""
    if cells:
        try:
            return np.array(cells, dtype=np.int64)
        except (ValueError, OverflowError):
            pass
    return np.array([_number(text) for text in cells], dtype=float)


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return math.nan


@dataclass(frozen=True)
class MetricsTail:
    """What `read_metrics_tail` has read of a metrics.csv: its header, the rows of its complete
    lines (floats, NaN for text), how many bytes those lines take and the last of them."""

    header: tuple = ()
    rows: tuple = ()
    offset: int = 0
    last_line: bytes = b""

    def columns(self) -> dict[str, np.ndarray]:
        """The curves as float arrays by column name (what the diagnosis reads)."""
        table = np.array(self.rows, dtype=float).reshape(len(self.rows), len(self.header))
        return dict(zip(self.header, table.T))


def read_metrics_tail(run_dir: Path, known: MetricsTail | None = None) -> MetricsTail:
    """Return the run's metrics.csv as a MetricsTail, reading only the bytes after those `known`
    covers while the file still holds its last line there (rows are only ever added at the end;
    a file that changed before that point is read whole). A last line without its newline is
    still being written: it is left for the next call. Raises FileNotFoundError, OSError, or
    ValueError saying what is wrong (not text, corrupt, ragged), as read_metrics does."""
    with open(Path(run_dir) / METRICS_FILE, "rb") as stream:
        if known is not None and known.offset:
            stream.seek(known.offset - len(known.last_line))
            if stream.read(len(known.last_line)) == known.last_line:
                return _tail_of(known, stream.read())
            stream.seek(0)
        return _tail_of(MetricsTail(), stream.read())


def _tail_of(known: MetricsTail, data: bytes) -> MetricsTail:
    """`known` with the complete lines of `data` (the bytes after it) added."""
    complete = data[: data.rfind(b"\n") + 1]
    if not complete:
        return known
    try:
        lines = list(csv.reader(io.StringIO(complete.decode("utf-8"), newline="")))
    except UnicodeDecodeError:
        raise ValueError(f"{METRICS_FILE} is not text (binary data)") from None
    except csv.Error as error:
        raise ValueError(f"{METRICS_FILE} is corrupt ({error})") from None
    header = known.header or tuple(lines.pop(0))
    if not header:
        raise ValueError(f"{METRICS_FILE} is empty")
    if any(len(line) != len(header) for line in lines):
        raise ValueError(f"{METRICS_FILE} is corrupt (rows of unequal length)")
    rows = known.rows + tuple(tuple(_number(cell) for cell in line) for line in lines)
    last = complete.splitlines(keepends=True)[-1]
    return MetricsTail(header, rows, known.offset + len(complete), last)


def read_predictions(run_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """Return the run's test-set (probabilities [examples, classes], labels [examples]).

    Raises OSError when the file is missing or unreadable and ValueError when it is damaged.
    """
    try:
        with np.load(Path(run_dir) / PREDICTIONS_FILE) as saved:
            return saved["probabilities"], saved["labels"]
    except (KeyError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise ValueError(f"{PREDICTIONS_FILE} is damaged ({type(error).__name__})") from None


def snapshot(run_dir: Path) -> dict[Path, bytes]:
    """Every file of a run folder and its bytes, to put back if a resume fails."""
    run_dir = Path(run_dir)
    # the claim's lock file is held open: putting back a copy would swap the file under it
    return {
        path.relative_to(run_dir): path.read_bytes()
        for path in run_dir.rglob("*")
        if path.is_file() and path.name != LOCK_FILE
    }


def restore(run_dir: Path, files: dict[Path, bytes]) -> None:
    """Put a run folder back exactly as `snapshot` found it (files added since are removed)."""
    run_dir = Path(run_dir)
    for path in run_dir.rglob("*"):
        if path.is_file() and path.relative_to(run_dir) not in files and path.name != LOCK_FILE:
            path.unlink()
    for relative, data in files.items():
        atomic_write_bytes(run_dir / relative, data)


def folder_name_problem(name: str) -> str | None:
    """What keeps `name` from being one folder's name inside the runs folder; None when nothing.

    A path separator or `..` could put the run elsewhere (`../../x`, `/tmp/x`), and a name over
    NAME_MAX_BYTES would fail only once the run is about to be written."""
    if name in (".", ".."):
        return "'.' and '..' name the folders that are there already, not a new one"
    if "/" in name or os.sep in name:
        return "it holds a path separator, so it is a path (../x leads outside), not one folder's name"
    if "\0" in name:
        return "no folder name may hold a NUL character"
    size = name_bytes(name)
    if size > NAME_MAX_BYTES:
        return f"it is {size} bytes long, over the {NAME_MAX_BYTES} a folder name may have"
    return None


def default_run_dir(name: str, root: Path = Path("runs"), option: str = "name=") -> Path:
    """Return `runs/<name>/<timestamp>/`, unique even for runs started in the same second.

    Raises ConfigError, naming `option` and the name, when `name` cannot be one folder there.
    """
    problem = folder_name_problem(name)
    if problem:
        raise ConfigError(
            f"{option}{clip(name)} cannot name the run's folder under {root}/: "
            f"{problem}; give a plain name such as lr-test (or --out DIR)"
        )
    stamp = datetime.now().strftime("%Y-%m-%d_%H-%M-%S")
    candidate = root / name / stamp
    suffix = 1
    while candidate.exists():
        suffix += 1
        candidate = root / name / f"{stamp}_{suffix}"
    return candidate


def read_sweep_record(out: Path) -> dict | None:
    """Return the sweep.yaml in `out` (None when there is none). Raises ConfigError if it is
    not a sweep record: overwriting it could destroy a sweep's only description."""
    path = Path(out) / SWEEP_FILE
    if not path.exists():
        return None
    try:
        record = yaml.safe_load(path.read_text())
    except (yaml.YAMLError, OSError, UnicodeDecodeError) as error:
        record = error
    if not isinstance(record, dict) or not isinstance(record.get("plan"), dict):
        raise ConfigError(f"{path} is empty or not a sweep record; remove it or give another --out")
    return record
