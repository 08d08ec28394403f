"""An adaptive sweep: ask an Optuna sampler for a batch of trials, train them as vectorised
groups, tell the study how each ended, and ask again until --trials are spent.

1. The space (dlrun/sweep/search.py) and a probe trial are composed and checked, and an
   external storage is opened, before anything is written.
2. The study is held to the folders (dlrun/sweep/rebuild.py): a lost study is rebuilt from
   them, one that disagrees with them is refused. The sweep is known by the id in its
   sweep.yaml, not by its path, so a copied or moved folder continues where it stopped.
3. Each round first takes over this folder's trials that a dead sweep left RUNNING (they
   resume from their checkpoints, dlrun/sweep/executor.py's jobs_for), then asks for new ones.
4. The round's trials are composed and validated as the planner does, grouped by program shape
   (dlrun/sweep/plan.py) and run through the executor; each group job carries a StudyLink, so
   that every epoch its trials report to the study and the pruner may stop them.
5. Each trial's folder, read back when its group returns, is what the study is told, and
   trials.csv is written again, so a running search can be read.
"""

from __future__ import annotations

import uuid
import warnings
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pandas as pd
import yaml
from rich.console import Console

from dlrun import results
from dlrun.errors import ConfigError
from dlrun.interrupt import STOP
from dlrun.sweep import study_store as store
from dlrun.sweep.folder import (
    SWEEP_FILE,
    check_data,
    check_writable,
    read_sweep_record,
    settle_trials,
    sweep_identity,
    trial_status,
    write_index,
)
from dlrun.sweep.plan import Plan, PlannedTrial, _plan_trial, _study_space, group_trials
from dlrun.sweep.pruners import make_pruner
from dlrun.sweep.pruning import StudyLink
from dlrun.sweep.rebuild import reconcile
from dlrun.sweep.search import (
    SearchOptions,
    default_batch,
    default_metric,
    direction,
    distributions,
    make_sampler,
    value_text,
)

# An asked trial whose config is refused (say, a sampled width the model cannot take) is told
# FAIL so the sampler learns, and costs no budget; this many of them in a row mean the space
# itself is wrong.
MAX_REFUSED = 20


@dataclass
class Search:
    """The composed space of an adaptive sweep and what it optimises."""

    options: SearchOptions
    fixed: list
    variants: dict
    space: dict  # key -> Optuna distribution
    space_text: dict  # key -> its override text
    metric: str
    probe: PlannedTrial  # the space's low corner, composed and validated
    composed: dict  # Hydra compositions by config-group choice (see plan._compose_trial)

    def compose(self, number: int, params: dict) -> PlannedTrial:
        values = {key: value_text(params[key]) for key in self.space}
        return _plan_trial(number, values, self.fixed, self.variants, self.composed)

    def batch(self, size_limit=None) -> int:
        """Trials asked at a time: --batch, else what lets the sampler learn (search.py)."""
        fits = max(1, size_limit(self.probe.cfg)) if size_limit else self.options.trials
        return self.options.batch or default_batch(self.options.search, self.options.trials, fits)

    def describe(self, size_limit=None) -> str:
        options = self.options
        space = ", ".join(f"{key}={text}" for key, text in self.space_text.items())
        return (
            f"{options.search} search, {options.trials} trials asked "
            f"{self.batch(size_limit)} at a time, {self.metric}, {options.pruner} pruner: {space}"
        )

    def record(self) -> dict:
        return {
            "mode": self.options.search,
            "seed": self.options.seed,
            "base": self.fixed,
            "space": self.space_text,
            "metric": self.metric,
            "trials": [],
        }


def _corner(dist):
    return dist.choices[0] if hasattr(dist, "choices") else dist.low


def prepare(overrides: list[str], options: SearchOptions) -> Search:
    """Parse and check the space; compose its low corner. Raises ConfigError."""
    from dlrun import data

    options.check()
    fixed, swept, variants = _study_space(overrides)
    space = distributions(swept)
    space_text = {key: override.input_line.partition("=")[2] for key, override in swept.items()}
    composed: dict = {}
    probe = _plan_trial(
        0, {key: value_text(_corner(d)) for key, d in space.items()}, fixed, variants, composed
    )
    metric = options.metric or default_metric(data.describe(probe.cfg.data).task)
    make_pruner(options.pruner, options.min_epochs, int(probe.cfg.epochs))  # bad bounds: refused now
    return Search(options, fixed, variants, space, space_text, metric, probe, composed)


def study_name(out: Path, options: SearchOptions) -> str:
    """--study, else the name the sweep recorded when it began (a copied folder keeps it),
    else the folder's name."""
    recorded = read_sweep_record(out) if (Path(out) / SWEEP_FILE).exists() else None
    return options.study or (recorded or {}).get("study") or Path(out).resolve().name


def write_record(out: Path, search: Search, command: str, study: str) -> None:
    """Write sweep.yaml, or check that the adaptive sweep already in `out` is this one."""
    check_writable(out)
    check_data(Plan(search.fixed, search.space_text, "probe", [search.probe], []))
    previous = read_sweep_record(out)
    described = search.record()
    if previous is not None:
        before = {key: previous["plan"].get(key) for key in ("mode", "base", "space", "metric")}
        if before != {key: described[key] for key in before}:
            raise ConfigError(
                f"--out {out} holds a different sweep ({previous.get('command')}); use another folder"
            )
        return
    # `search` and `metric` at the top, where the report's search progress reads them
    record = {
        "id": uuid.uuid4().hex,
        "study": study,
        "command": command,
        "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "search": search.options.search,
        "metric": search.metric,
        "plan": described,
    }
    results.atomic_write_text(Path(out) / SWEEP_FILE, yaml.safe_dump(record, sort_keys=False))


class Driver:
    """One adaptive sweep into `out`: the study, the heartbeat, and the rounds of asks."""

    def __init__(
        self,
        search: Search,
        study,
        url: str,
        out: Path,
        beat,
        size_limit,
        runner=None,
        sweep_id: str = "",
        own_storage: bool = True,
    ):
        self.search, self.study, self.url, self.out, self.beat = search, study, url, Path(out), beat
        self.size_limit = size_limit
        self.runner = runner  # an executor that replaces the local ones (e.g. Ray's)
        self.refused = 0
        self.sweep_id, self.own_storage = sweep_id, own_storage
        self.failed: dict = {}  # job id -> error, of the groups that failed in this run

    def belongs(self, trial) -> bool:
        """Whether a study trial is this sweep folder's (a shared storage holds others')."""
        recorded = trial.user_attrs.get("sweep_id")
        if recorded is not None:
            return recorded == self.sweep_id
        # a trial from before sweeps had ids: the folder's own study.db holds only its trials
        return self.own_storage or trial.user_attrs.get("sweep_folder") == str(self.out.resolve())

    @property
    def identity(self) -> dict:
        """The user attrs that name a trial's sweep: the id decides, the path only informs."""
        return {"sweep_id": self.sweep_id, "sweep_folder": str(self.out.resolve())}

    def hold_to_folders(self, console) -> None:
        """Rebuild what the study lost from the folders; refuse a study that disagrees."""
        added = reconcile(
            self.study, self.out, self.search.space, self.search.metric, self.belongs, self.identity
        )
        if added:
            console.print(
                f"study '{self.study.study_name}' lacked {added} trial folders of "
                f"{self.out}: rebuilt them from their configs and curves",
                highlight=False,
                soft_wrap=True,
            )

    @property
    def budget(self) -> int:
        return self.search.options.trials

    def take_over(self) -> list[PlannedTrial]:
        """Claim this folder's orphaned RUNNING trials; tell the finished ones from their folders
        and return the others, to resume."""
        resumed = []
        for frozen in store.orphans(self.study, self.belongs):
            if not store.claim(self.study, frozen._trial_id):
                continue
            self.beat.trial_ids.add(frozen._trial_id)
            run_dir = self.out / frozen.user_attrs["run_dir"]
            store.sync_intermediates(self.study, frozen, run_dir, self.search.metric)
            if trial_status(run_dir) in ("completed", "diverged", "pruned", "failed"):
                self._tell(frozen.number, frozen._trial_id, run_dir)
            else:
                resumed.append(self.search.compose(frozen.number, frozen.params))
        return resumed

    def ask(self, count: int) -> list[PlannedTrial]:
        """Ask for up to `count` new trials; a trial beyond --trials (two sweeps asking at
        once) is marked surplus and failed, so exactly --trials count."""
        asked = []
        while len(asked) < count:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "heartbeat is meant for optimize()": we beat
                trial = self.study.ask(self.search.space)
            storage, trial_id = self.study._storage, trial._trial_id
            # numbers count every trial before this one, so a number under the budget is within
            # it; only past it are the surplus (not counted) looked up
            if (
                trial.number >= self.budget
                and len([t for t in store.in_budget(self.study) if t.number < trial.number]) >= self.budget
            ):
                self._discard(trial, "beyond --trials")
                break
            storage.set_trial_system_attr(trial_id, store.OWNER, store.me())
            storage.record_heartbeat(trial_id)
            # named before composing: a kill from here on leaves an orphan the next run finds
            run_dir = f"trial-{trial.number:03d}"
            storage.set_trial_user_attr(trial_id, "run_dir", run_dir)
            for key, value in self.identity.items():
                storage.set_trial_user_attr(trial_id, key, value)
            if (self.out / run_dir / results.CONFIG_FILE).exists():
                # a folder the study did not know (another storage's numbering): never pair
                # new values with what it trained
                self._discard(trial, f"{run_dir} exists")
                continue
            try:
                planned = self.search.compose(trial.number, trial.params)
            except ConfigError as error:
                self._refuse(trial, error)
                continue
            self.beat.trial_ids.add(trial_id)
            asked.append(planned)
        return asked

    def _discard(self, trial, why: str) -> None:
        from optuna.trial import TrialState

        self.study._storage.set_trial_system_attr(trial._trial_id, store.SURPLUS, why)
        self.study.tell(trial, state=TrialState.FAIL)

    def _refuse(self, trial, error: ConfigError) -> None:
        self._discard(trial, f"refused: {error}")
        self.refused += 1
        if self.refused >= MAX_REFUSED:
            raise ConfigError(f"{MAX_REFUSED} sampled trials in a row were refused, the last: {error}")

    def run_round(self, planned: list[PlannedTrial], jobs: int, progress, console) -> bool:
        """Train the round's trials; tell the study each one's end. False when stopped."""
        from dlrun.sweep.executor import _report, executor_for, jobs_for

        plan = Plan(
            self.search.fixed,
            self.search.space_text,
            self.search.options.search,
            planned,
            group_trials(planned, self.size_limit),
            self.search.options.seed,
        )
        ids = {t.number: t._trial_id for t in self.study.get_trials(deepcopy=False)}
        link = StudyLink(
            self.url,
            self.study.study_name,
            self.search.metric,
            self.search.options.pruner,
            self.search.options.min_epochs,
            int(self.search.probe.cfg.epochs),
            {t.id: ids[_number(t.id)] for t in planned},
        )
        work = jobs_for(plan, self.out)
        for job in work:
            job.link = link
        stopped = False
        runner = self.runner or executor_for(jobs, len(work), progress)
        with progress.watching(work, runner, keep=False):
            for job, summaries, error in runner.run(work):
                _report(job, summaries, error, progress, console, self.failed)
                for run_dir in map(Path, job.run_dirs):
                    stopped |= not self._tell(_number(run_dir.name), link.trials[run_dir.name], run_dir)
                self.write_index()
        return not (stopped or STOP.requested)

    def write_index(self) -> pd.DataFrame:
        return write_index(self.out, index_plan(self.search, self.study, self.belongs))

    def _tell(self, number: int, trial_id: int, run_dir: Path) -> bool:
        """Tell the study the folder's end; False for a trial interrupted (left RUNNING)."""
        status = trial_status(run_dir)
        summary = results.read_summary(run_dir) if status not in ("pending", "corrupt") else {}
        if status in ("pending", "corrupt", "interrupted", "running"):
            return False
        store.tell(self.study, number, summary, self.search.metric)
        self.beat.trial_ids.discard(trial_id)
        self.refused = 0
        return True

    def loop(self, batch: int, jobs: int, progress, console) -> None:
        while not STOP.requested:
            planned = self.take_over()
            left = self.budget - len(store.in_budget(self.study))
            planned += self.ask(min(batch, left)) if left > 0 else []
            if not planned:
                return
            if not self.run_round(planned, jobs, progress, console):
                return


def _number(run_id: str) -> int:
    return int(run_id.rpartition("-")[2])


def index_plan(search: Search, study, belongs) -> Plan:
    """The trials of this sweep folder, in the order the study numbered them."""
    trials = [
        PlannedTrial(t.user_attrs["run_dir"], [], {k: value_text(v) for k, v in t.params.items()})
        for t in sorted(store.in_budget(study), key=lambda t: t.number)
        if "run_dir" in t.user_attrs and belongs(t)
    ]
    return Plan(search.fixed, search.space_text, search.options.search, trials, [], search.options.seed)


def run_search(
    search: Search,
    out: Path,
    command: str,
    *,
    jobs: int = 1,
    size_limit=None,
    console: Console | None = None,
    executor=None,
) -> tuple[pd.DataFrame, Plan]:
    """Run (or continue) the adaptive sweep into `out`; return its index and the trials' plan.

    `executor` replaces the local ones (`jobs` is theirs), e.g. dlrun/sweep/ray_executor.py: a
    round's groups are then in flight together across the cluster.
    """
    import optuna

    from dlrun.sweep.executor import with_failures
    from dlrun.training.progress import SweepProgress

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the sweep's own lines say it all
    console = console or Console(stderr=True)
    options = search.options
    url = store.storage_url(options.storage, out)
    name = study_name(out, options)
    storage = store.open_storage(url) if options.storage else None
    if storage is not None:  # refused before the folder is written
        store.check_study(storage, name, search.space, search.metric)
    write_record(out, search, command, name)
    sweep_id, _ = sweep_identity(out, name)
    storage = storage or store.open_storage(url)
    max_epochs = int(search.probe.cfg.epochs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's experimental-feature warnings
        study = store.open_study(
            storage,
            name,
            search.space,
            search.metric,
            direction(search.metric),
            make_sampler(options.search, options.seed),
            make_pruner(options.pruner, options.min_epochs, max_epochs),
        )
    console.print(search.describe(size_limit), highlight=False)
    driver = Driver(
        search, study, url, out, None, size_limit, executor, sweep_id, own_storage=not options.storage
    )
    settle_trials(out, lambda line: console.print(line, highlight=False, markup=False))
    driver.hold_to_folders(console)  # before counting: a rebuilt study's trials count
    before = len(study.get_trials(deepcopy=False))
    if before:  # a continued study: fresh draws, not the first run's again
        study.sampler = make_sampler(options.search, options.seed, before)
    done = sum(t.state.is_finished() for t in store.in_budget(study))
    if done:
        console.print(f"{done} of {options.trials} trials already finished in study '{name}'")
    with store.Heartbeat(storage) as beat, SweepProgress(console, options.trials, done) as progress:
        driver.beat = beat
        driver.loop(search.batch(size_limit), jobs, progress, console)
    index = with_failures(driver.write_index(), driver.failed)
    return index, index_plan(search, study, driver.belongs)
