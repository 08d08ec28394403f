"""The Optuna study behind an adaptive sweep: its storage, its space, who owns which trial.

The run folders are the truth (dlrun/sweep/folder.py); the study mirrors them (and is rebuilt
from them, dlrun/sweep/rebuild.py), so `optuna.load_study` and optuna-dashboard show the sweep.
Each Optuna trial names its folder in its user attrs (`run_dir` relative to the sweep, and
`sweep_id`, the id in the sweep's sweep.yaml; `sweep_folder` only informs), and the process
that trains it in a system attr (`dlrun:owner`, host:pid). A RUNNING trial whose owner is dead
is taken over by the next `dlrun sweep` into that folder and resumed from its checkpoints: on
this host the owner's pid tells at once, elsewhere Optuna's heartbeat (no beat for GRACE_S).
"""

from __future__ import annotations

import math
import os
import socket
import threading
import time
import warnings
from pathlib import Path

from dlrun import results
from dlrun.errors import ConfigError
from dlrun.sweep.search import epoch_value, summary_values

DB_FILE = "study.db"
# A live sweep beats every HEARTBEAT_S; a trial unheard of for GRACE_S belongs to a dead one.
HEARTBEAT_S, GRACE_S = 5, 30
OPEN_ATTEMPTS = 3
OWNER, SURPLUS, SPACE, METRIC = "dlrun:owner", "dlrun:surplus", "dlrun:space", "dlrun:metric"


def storage_url(storage: str | None, out: Path) -> str:
    return storage or f"sqlite:///{(Path(out) / DB_FILE).resolve()}"


# storages opened by this process, by URL: each group's pruning callback and the driver share
# one engine instead of connecting (and checking the schema) again, ~0.1 s each
_OPENED: dict = {}


def open_storage(url: str):
    """An Optuna RDB storage with heartbeats. Raises ConfigError when it cannot be reached."""
    identity = _identity(url)
    opened = _OPENED.get(url)
    if opened is None or opened[0] != identity or identity is None:
        storage = _connect(url)
        _OPENED[url] = (_identity(url), storage)
    return _OPENED[url][1]


def _identity(url: str):
    """Which database a URL names now: a forked child, or a SQLite file deleted and made again
    (a pooled connection would write to the deleted file), must connect anew."""
    if not url.startswith("sqlite:///"):
        return (os.getpid(),)
    try:
        found = os.stat(url[len("sqlite:///") :])
    except OSError:
        return None
    return os.getpid(), found.st_dev, found.st_ino


def _connect(url: str):
    import optuna

    # several processes (a sweep and its workers) write one SQLite file: wait for the lock
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {}
    for attempt in range(OPEN_ATTEMPTS):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return optuna.storages.RDBStorage(
                    url, engine_kwargs=engine, grace_period=GRACE_S, heartbeat_interval=HEARTBEAT_S
                )
        except Exception as error:  # sqlalchemy's errors (bad URL, refused, no driver) vary
            failure = error
            # two sweeps creating a new database's tables at once: one of them loses the race
            time.sleep(0.5 * (attempt + 1))
    reason = str(failure).strip().splitlines()[0][:200] if str(failure).strip() else type(failure).__name__
    raise ConfigError(
        f"cannot open --storage {url}: {reason} (give an Optuna RDB URL such as "
        "sqlite:///study.db or postgresql://user@host/db)"
    )


def space_record(space: dict) -> dict:
    from optuna.distributions import distribution_to_json

    return {key: distribution_to_json(dist) for key, dist in space.items()}


def open_study(storage, name: str, space: dict, metric: str, directions: list, sampler, pruner):
    """Load the study `name` or create it (one direction per metric of `metric`, "a,b" for
    several); refuse one made for another space or metric."""
    import optuna

    study = optuna.create_study(
        storage=storage,
        study_name=name,
        directions=directions,
        sampler=sampler,
        pruner=pruner,
        load_if_exists=True,
    )
    attrs = study.user_attrs
    if SPACE not in attrs:
        study.set_user_attr(SPACE, space_record(space))
        study.set_user_attr(METRIC, metric)
        return study
    if attrs[SPACE] != space_record(space) or attrs.get(METRIC) != metric:
        raise ConfigError(
            f"study '{name}' exists with another space or metric "
            f"({', '.join(attrs[SPACE])}; {attrs.get(METRIC)}); give another --study "
            "or the same sweep"
        )
    return study


def check_study(storage, name: str, space: dict, metric: str) -> None:
    """Refuse, before anything is written, a study `name` that exists with another space."""
    import optuna

    try:
        study = optuna.load_study(study_name=name, storage=storage)
    except KeyError:
        return
    attrs = study.user_attrs
    if attrs.get(SPACE) not in (None, space_record(space)) or attrs.get(METRIC) not in (None, metric):
        raise ConfigError(
            f"study '{name}' exists with another space or metric "
            f"({', '.join(attrs.get(SPACE) or {})}; {attrs.get(METRIC)}); give "
            "another --study or the same sweep"
        )


def me() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_dead(owner: str | None) -> bool:
    """Whether the process named `owner` is known to be gone (only this host's can be told)."""
    if not owner:
        return True
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or int(pid) == os.getpid():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass
    return False


def in_budget(study) -> list:
    """The trials that count towards --trials: every one but the surplus of a race."""
    return [t for t in study.get_trials(deepcopy=False) if not t.system_attrs.get(SURPLUS)]


def claim(study, trial_id: int) -> bool:
    """Make this process the trial's owner; False when another process took it meanwhile."""
    storage = study._storage
    storage.set_trial_system_attr(trial_id, OWNER, me())
    time.sleep(0.2)  # a rival writing at the same moment: the last write wins, both read it
    storage.record_heartbeat(trial_id)
    return storage.get_trial(trial_id).system_attrs.get(OWNER) == me()


def orphans(study, belongs) -> list:
    """RUNNING trials of this sweep folder (`belongs`) whose owner is dead or silent: to take
    over. A trial rebuilt from its folder has no owner."""
    return [t for t in _abandoned(study, belongs) if "run_dir" in t.user_attrs]


def lost_asks(study, belongs) -> list:
    """Abandoned RUNNING trials of this sweep folder that no folder was named for: a kill
    between `study.ask` and naming the folder. Called holding the folder's claim, under which
    every ask of this folder happens, so none of them is being asked now."""
    return [t for t in _abandoned(study, belongs) if "run_dir" not in t.user_attrs]


def _abandoned(study, belongs) -> list:
    """RUNNING trials of this sweep folder whose owner is dead or whose heartbeat went stale."""
    from optuna.trial import TrialState

    stale = set(study._storage._get_stale_trial_ids(study._study_id))
    return [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
        if belongs(t) and (owner_dead(t.system_attrs.get(OWNER)) or t._trial_id in stale)
    ]


def sync_intermediates(study, trial, run_dir: Path, metric: str) -> None:
    """Report the epochs the folder holds but the study missed (a kill between the two)."""
    if not (run_dir / results.METRICS_FILE).exists():
        return
    for row in results.read_metrics(run_dir).to_dict("records"):
        value = epoch_value(metric, row)
        epoch = int(row["epoch"])
        if epoch not in trial.intermediate_values and value is not None and math.isfinite(value):
            study._storage.set_trial_intermediate_value(trial._trial_id, epoch, value)


def tell(study, number: int, summary: dict, metric: str) -> None:
    """Tell the study how a trial's folder ended (an `interrupted` one stays RUNNING)."""
    from optuna.trial import TrialState

    status = summary.get("status")
    if status in (None, "interrupted", "running"):
        return
    trial_id = study._storage.get_trial_id_from_study_id_trial_number(study._study_id, number)
    if study._storage.get_trial(trial_id).state.is_finished():  # pruned: told as it happened
        return
    for key in ("status", "epochs_run", "pruned_epoch", "test_accuracy"):
        if summary.get(key) is not None:
            study._storage.set_trial_user_attr(trial_id, key, summary[key])
    values = summary_values(metric, summary)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if status == "pruned":
            study.tell(number, state=TrialState.PRUNED)
        elif status in ("completed", "diverged") and values is not None:
            study.tell(number, values)
        else:
            study.tell(number, state=TrialState.FAIL)


class Heartbeat:
    """Beat for the trials this process trains, so that other sweeps leave them alone."""

    def __init__(self, storage):
        self.storage, self.trial_ids = storage, set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            for trial_id in list(self.trial_ids):
                try:
                    self.storage.record_heartbeat(trial_id)
                except Exception:  # a lost connection: the next beat tries again
                    pass
