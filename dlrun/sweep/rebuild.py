"""Hold an adaptive sweep's study to its folders: the folders are the truth, the study a mirror.

Before a sweep asks anything, every trial folder that holds a config is matched with the study
trial of its number:
1. A study trial that exists must be this sweep's and hold exactly the values its folder
   trained; anything else is refused in one line (the study is another sweep's).
2. A folder the study lacks (study.db deleted, or a storage that lost trials) is added back:
   its config's values, its curve as intermediate values, its end as the state (COMPLETE with
   its value, PRUNED, FAIL, or RUNNING with no owner, which the driver resumes once no
   live process holds its folder).
3. Trial numbers name folders, so numbers with no folder in between (trials refused before
   training, asks beyond --trials) come back as surplus failures: the next ask gets the number
   after the last folder, never one a folder already holds.
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path

from dlrun import results
from dlrun.errors import ConfigError
from dlrun.sweep import study_store as store
from dlrun.sweep.folder import FINAL_STATUSES, same_value, trained_value, trial_status
from dlrun.sweep.search import epoch_value, summary_values, value_text

TRIAL_FOLDER = re.compile(r"trial-(\d{3,})")


def trial_folders(out: Path) -> dict[int, Path]:
    """{number: folder} of the trial folders in `out` that hold a config (they trained)."""
    found = {}
    for path in Path(out).iterdir() if Path(out).is_dir() else ():
        match = TRIAL_FOLDER.fullmatch(path.name)
        if match and (path / results.CONFIG_FILE).exists():
            found[int(match.group(1))] = path
    return found


def folder_params(run_dir: Path, space: dict) -> dict:
    """The space's values as the folder trained them, as Optuna params. ConfigError when a
    value is missing or outside the space (the folder is not a trial of this search)."""
    try:
        config = results.read_config(run_dir)
    except (ValueError, OSError) as error:
        raise ConfigError(f"{run_dir}: cannot rebuild the study from it ({error})") from None
    params = {}
    for key, dist in space.items():
        try:
            value = trained_value(config, key)
        except KeyError:
            raise ConfigError(
                f"{run_dir}/{results.CONFIG_FILE} has no {key}: it is no trial of "
                "this search; give another --out"
            ) from None
        params[key] = _as_param(value, dist)
        if params[key] is None:
            raise ConfigError(
                f"{run_dir} trained {key}={value}, outside this search's space; give another --out"
            )
    return params


def _as_param(value, dist):
    if hasattr(dist, "choices"):
        return next((choice for choice in dist.choices if same_value(value, str(choice))), None)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = int(value) if type(dist).__name__ == "IntDistribution" else float(value)
    return number if dist.low <= number <= dist.high else None


def _mismatch(trial, run_dir: Path, space: dict) -> str | None:
    """The first value the study trial holds that its folder did not train, as text."""
    config = results.read_config(run_dir)
    for key in space:
        try:
            trained = trained_value(config, key)
        except KeyError:
            return f"{key} (not in its config)"
        if key not in trial.params or not same_value(trained, value_text(trial.params[key])):
            return f"{key}={value_text(trial.params.get(key))}, its folder trained {trained}"
    return None


def reconcile(study, out: Path, space: dict, metric: str, belongs, identity: dict) -> int:
    """Check the study against the folders and add back the trials it lost; return how many
    were added. `belongs(trial)` tells whether a study trial is this sweep folder's;
    `identity` holds the user attrs that make an added trial this folder's."""
    folders = trial_folders(out)
    trials = {t.number: t for t in study.get_trials(deepcopy=False)}
    for number, run_dir in sorted(folders.items()):
        trial = trials.get(number)
        if trial is None:
            continue
        problem = None if belongs(trial) else "another sweep's trial"
        problem = problem or _mismatch(trial, run_dir, space)
        if problem:
            raise ConfigError(
                f"study '{study.study_name}' does not match {out}: its trial "
                f"{number} holds {problem}; give this folder its own --study"
            )
    missing = sorted(number for number in folders if number not in trials)
    if missing and missing[0] < len(trials):
        raise ConfigError(
            f"study '{study.study_name}' lacks trial {missing[0]} of {out} but has "
            "later ones; give this folder its own --study or remove the study"
        )
    for number in range(len(trials), max(missing, default=-1) + 1):
        _add(study, number, folders.get(number), space, metric, identity)
    return len(missing)


def _add(study, number: int, run_dir: Path | None, space: dict, metric: str, identity: dict) -> None:
    import optuna
    from optuna.trial import TrialState

    if run_dir is None:
        frozen = optuna.trial.create_trial(
            state=TrialState.FAIL, system_attrs={store.SURPLUS: "no folder (rebuilt)"}
        )
    else:
        frozen = _from_folder(run_dir, space, metric, identity)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # add_trial is marked experimental in older Optuna
        study.add_trial(frozen)


def _from_folder(run_dir: Path, space: dict, metric: str, identity: dict):
    """The folder as an Optuna trial: its values, its curve, and how it ended."""
    import optuna
    from optuna.trial import TrialState

    status = trial_status(run_dir)
    summary = results.read_summary(run_dir) if status not in ("pending", "corrupt") else {}
    curve = {}
    if (run_dir / results.METRICS_FILE).exists():
        for row in results.read_metrics(run_dir).to_dict("records"):
            value = epoch_value(metric, row)
            if value is not None and math.isfinite(value):
                curve[int(row["epoch"])] = value
    values = summary_values(metric, summary)
    state, told = TrialState.RUNNING, None  # unfinished: no owner, so the driver resumes it
    if status == "pruned":
        state = TrialState.PRUNED
    elif status in FINAL_STATUSES:
        state, told = (TrialState.COMPLETE, values) if values else (TrialState.FAIL, None)
    elif status == "failed":
        state = TrialState.FAIL
    attrs = {
        "run_dir": run_dir.name,
        **identity,
        **{
            key: summary[key]
            for key in ("status", "epochs_run", "pruned_epoch", "test_accuracy")
            if summary.get(key) is not None
        },
    }
    return optuna.trial.create_trial(
        state=state,
        values=told,
        params=folder_params(run_dir, space),
        distributions=space,
        user_attrs=attrs,
        intermediate_values=curve,
    )
