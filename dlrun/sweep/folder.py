"""The sweep folder: its record, its index and the state of each trial's folder.

    <sweep>/sweep.yaml     the command, the space and the plan (which trials share a program)
    <sweep>/trials.csv     the index: one row per trial with its status and headline numbers
    <sweep>/trial-NNN/     a run folder exactly as `dlrun train` writes it (dlrun/results.py)

The summaries in the trial folders are the truth and trials.csv is rebuilt from them, so a
sweep run again into its folder sees what is finished, whatever stopped it.
"""

from __future__ import annotations

import math
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import yaml

from dlrun import paths, results
from dlrun.config.schema import plain
from dlrun.errors import ConfigError
from dlrun.layout import user_config_dir
from dlrun.results import INDEX_FILE, SWEEP_FILE, read_sweep_record
from dlrun.sweep.plan import Plan
from dlrun.training.resume import finished_epoch

# A re-run would only repeat these: a pruned trial was stopped by the search, which has its value.
FINAL_STATUSES = ("completed", "diverged", "pruned")


def trial_dir(out: Path, trial) -> Path:
    return Path(out) / trial.id


def trial_status(run_dir: Path) -> str:
    """Return a trial folder's status, `pending` when it never started, `corrupt` if unreadable."""
    if not (run_dir / results.SUMMARY_FILE).exists():
        return "pending"
    try:
        return results.read_summary(run_dir).get("status", "corrupt")
    except (ValueError, OSError):
        return "corrupt"


def check_writable(out: Path) -> None:
    """Refuse a `--out` folder that could not be created or written, before any data loads."""
    paths.check_writable(out, option="--out")


def check_run_folder(out: Path) -> None:
    """Refuse a `dlrun train --out` that cannot be written or holds a sweep (a run already
    there is for dlrun/resume.py to judge: the same command again continues it)."""
    check_writable(out)
    if (Path(out) / SWEEP_FILE).exists():
        raise ConfigError(f"--out {out} holds a sweep ({SWEEP_FILE}); give a new folder for a run")


def check_sweep_folder(out: Path) -> None:
    """Refuse a `dlrun sweep --out` that holds a training run or an unreadable sweep record."""
    check_writable(out)
    if (Path(out) / results.SUMMARY_FILE).exists() and not (Path(out) / SWEEP_FILE).exists():
        raise ConfigError(
            f"--out {out} holds a training run ({results.SUMMARY_FILE}), not a "
            "sweep; give a new folder for the sweep"
        )
    read_sweep_record(out)


def check_data(plan: Plan) -> None:
    """Load each data set of the plan once: a missing or corrupt file is refused here, before
    the sweep folder is written (MNIST's arrays stay cached, so the groups reuse them)."""
    from dlrun import data

    seen = set()
    for trial in plan.trials:
        key = yaml.safe_dump(plain(trial.cfg.data))
        if key not in seen:
            seen.add(key)
            data.load(trial.cfg.data)


def prepare_folder(out: Path, plan: Plan, command: str) -> None:
    """Write sweep.yaml, or check that the sweep already in `out` is this same plan.

    Checks first that `out` is writable and that the plan's data loads, so that a sweep
    refused here leaves no folder behind.
    """
    check_writable(out)
    check_data(plan)
    described = plan.to_dict()
    existing = Path(out) / SWEEP_FILE
    previous = read_sweep_record(out)
    if previous is not None:
        if previous["plan"].get("trials") != described["trials"]:
            raise ConfigError(
                f"--out {out} holds a different sweep ({previous.get('command')}); use another folder"
            )
        return
    record = {
        "command": command,
        **({"config_dir": str(user_config_dir())} if user_config_dir() else {}),
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "plan": described,
    }
    results.atomic_write_text(existing, yaml.safe_dump(record, sort_keys=False))


def sweep_identity(out: Path, study: str) -> tuple[str, str]:
    """(id, study name) of the adaptive sweep in `out`, recorded in sweep.yaml on first use.

    Both travel with the folder: a sweep copied or moved elsewhere is still the same sweep,
    so its study trials are found by this id, not by the folder's absolute path.
    """
    path = Path(out) / SWEEP_FILE
    record = read_sweep_record(out)
    if record is None:
        raise ConfigError(f"{path} is missing: the sweep record is written first")
    if "id" in record and "study" in record:
        return record["id"], record["study"]
    record = {"id": record.get("id") or uuid.uuid4().hex, "study": record.get("study") or study, **record}
    results.atomic_write_text(path, yaml.safe_dump(record, sort_keys=False))
    return record["id"], record["study"]


def trained_value(config: dict, key: str):
    """What a run's config.yaml holds at an override's key: a config group's chosen option is
    its `name` (`optim=adam` trains optim.name adam). KeyError when the key is not there."""
    node = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise KeyError(key)
        node = node[part]
    return node.get("name") if isinstance(node, dict) else node


def same_value(trained, text: str) -> bool:
    """Whether an override's value text (`0.01`, `[32,32]`, `adam`) is what was trained."""
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        parsed = text
    return _equal(trained, parsed)


def _equal(trained, parsed) -> bool:
    if isinstance(trained, list) and isinstance(parsed, list):
        return len(trained) == len(parsed) and all(map(_equal, trained, parsed))
    if isinstance(parsed, str) and not isinstance(trained, str):
        try:  # YAML reads 1e-3 (no dot) as text, Hydra as a number
            parsed = float(parsed)
        except ValueError:
            return False
    numbers = (int, float)
    if isinstance(trained, numbers) and isinstance(parsed, numbers) and not isinstance(trained, bool):
        return math.isclose(float(trained), float(parsed), rel_tol=1e-12, abs_tol=0.0)
    return trained == parsed


def trained_params(run_dir: Path, params: dict) -> dict | None:
    """`params` as the folder trained them: each value replaced by the folder's own where they
    differ (the folder is the truth). None when the folder holds no readable config."""
    try:
        config = results.read_config(run_dir)
    except (ValueError, OSError):
        return None
    trained = {}
    for key, text in params.items():
        try:
            value = trained_value(config, key)
        except KeyError:
            trained[key] = text
            continue
        trained[key] = text if same_value(value, text) else _as_text(value)
    return trained


def _as_text(value) -> str:
    if isinstance(value, list):
        return yaml.safe_dump(value, default_flow_style=True).strip()
    return str(value) if isinstance(value, (bool, str, int)) else repr(float(value))


def write_index(out: Path, plan: Plan) -> pd.DataFrame:
    """Rebuild trials.csv from the trial folders (their summaries are the truth) and return it.

    A trial's settings come from its folder's config.yaml where it has one: whatever the plan
    or the study say, the index never pairs a folder with values it did not train.
    """
    group_of = {trial.id: group.id for group in plan.groups for trial in group.trials}
    rows = []
    for trial in plan.trials:
        run_dir = trial_dir(out, trial)
        params = trained_params(run_dir, trial.params) if trial.params else None
        row = {
            "trial": trial.id,
            "group": group_of.get(trial.id, ""),
            **(params or trial.params),
            "status": trial_status(run_dir),
        }
        if row["status"] not in ("pending", "corrupt"):
            summary = results.read_summary(run_dir)
            for key in (
                "epochs_run",
                "best_epoch",
                "best_val_loss",
                "best_val_accuracy",
                "test_loss",
                "test_accuracy",
                "train_time_s",
                "params",
                "pruned_epoch",
            ):
                row[key] = summary.get(key)
        row["folder"] = trial.id
        rows.append(row)
    frame = pd.DataFrame(rows)
    results.atomic_write_text(Path(out) / INDEX_FILE, frame.to_csv(index=False))
    return frame


def resumable_epoch(run_dir: Path, quiet: bool = False) -> int:
    """The epoch an unfinished trial can continue from (0: it starts afresh).

    Any unfinished status counts: `running` is what kill -9 leaves behind. An unreadable
    checkpoint is said (unless `quiet`: a second look at the same folder).
    """
    if trial_status(run_dir) in ("pending", "corrupt", *FINAL_STATUSES):
        return 0
    if not (run_dir / results.CONFIG_FILE).exists():
        return 0
    try:
        return finished_epoch(run_dir)
    except ValueError as error:  # said: the caller removes the folder, and its epochs are lost
        if not quiet:
            print(f"warning: {error}; {Path(run_dir).name} is trained again from scratch", file=sys.stderr)
        return 0
