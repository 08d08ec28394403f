"""The rounds of an adaptive search (dlrun/sweep/adaptive.py's Search): take over, ask, train
as vectorised groups, tell the study how each ended, until --trials are spent.

1. The folder is set up holding its claim (sweep.yaml, the study, the study held to the folders
   by dlrun/sweep/rebuild.py: a lost study is rebuilt from them, one that disagrees with them
   is refused). The sweep is known by the id in its sweep.yaml, not by its path, so a copied
   or moved folder continues where it stopped.
2. Each round, holding the folder's claim again, takes over this folder's trials that a dead
   process left RUNNING (they resume from their checkpoints, dlrun/sweep/executor.py's
   jobs_for) and asks for new ones. --trials counts the study's trials, whichever process
   asked them, so several processes on one folder (or one storage) share the budget, as
   Optuna's workers do; a trial whose values the study already holds is never trained.
3. The round's trials are composed and validated as the planner does, grouped by program shape
   (dlrun/sweep/plan.py) and run through the executor; each group job carries a StudyLink, so
   that every epoch its trials report to the study and the pruner may stop them.
4. Each trial's folder, read back when its group returns, is what the study is told, and
   trials.csv is written again, so a running search can be read. With the budget spent, a
   process waits for the trials the others still train (dlrun/sweep/workers.py).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pandas as pd
from rich.console import Console

from dlrun import results
from dlrun.claims import claimed, is_claimed
from dlrun.errors import ConfigError
from dlrun.interrupt import STOP
from dlrun.sweep import study_store as store
from dlrun.sweep.adaptive import Search, study_name, write_record
from dlrun.sweep.executor import _report, executor_for, jobs_for, with_failures
from dlrun.sweep.folder import sweep_identity, trial_status, write_index
from dlrun.sweep.plan import Plan, PlannedTrial, group_trials
from dlrun.sweep.progress import SweepProgress
from dlrun.sweep.pruners import make_pruner
from dlrun.sweep.pruning import StudyLink
from dlrun.sweep.rebuild import reconcile
from dlrun.sweep.search import directions, sampler_for, space_points, value_text
from dlrun.sweep.workers import SETUP_WAIT_S, Deferred, Waiting

# An asked trial whose config is refused (say, a sampled width the model cannot take) is told
# FAIL so the sampler learns, and costs no budget; this many of them in a row mean the space
# itself is wrong.
MAX_REFUSED = 20
# A sampler that proposes only configurations the study holds (a small discrete space nearly
# covered) is given this many tries in a row; then the search ends with what it has.
MAX_DUPLICATES = 100


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
        self.seen = 0  # the study's trials when this process last asked (see reseed)
        self.exhausted = False  # MAX_DUPLICATES proposals in a row were held already

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
    def points(self) -> int | None:
        return space_points(self.search.space)

    @property
    def budget(self) -> int:
        """--trials, shared by every process on the study; no more than the space holds."""
        points = self.points
        return self.search.options.trials if points is None else min(points, self.search.options.trials)

    def take_over(self) -> list[PlannedTrial]:
        """Claim this folder's orphaned RUNNING trials; tell the finished ones from their folders
        and return the others, to resume."""
        resumed = []
        for lost in store.lost_asks(self.study, self.belongs):
            # asked by a process killed before it named a folder: nothing trained it, and left
            # RUNNING it would hold a place in the budget that no process ever trains
            self._discard(lost, "asked by a process that died before naming its folder")
        for frozen in store.orphans(self.study, self.belongs):
            # a folder still held is trained by a live process (or a killed one's worker, for
            # the seconds it takes to notice): not an orphan, yet
            if is_claimed(self.out / frozen.user_attrs["run_dir"]):
                continue
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
        once) is marked surplus and failed, so exactly --trials count; so is one whose values
        the study already holds, so that no configuration is trained twice."""
        self._reseed()
        asked, duplicates = [], 0
        while len(asked) < count and not self.exhausted:
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
            held = self._duplicate_of(trial)
            if held is not None:
                self._discard(trial, f"duplicate of trial {held}")
                duplicates += 1
                self.exhausted = duplicates >= MAX_DUPLICATES
                continue
            duplicates = 0
            # whose it is first: a kill before the folder is named leaves a trial that the
            # next take_over can tell is this sweep's lost ask (see lost_asks)
            storage.set_trial_system_attr(trial_id, store.OWNER, store.me())
            for key, value in self.identity.items():
                storage.set_trial_user_attr(trial_id, key, value)
            storage.record_heartbeat(trial_id)
            # named before composing: a kill from here on leaves an orphan the next run finds
            run_dir = f"trial-{trial.number:03d}"
            storage.set_trial_user_attr(trial_id, "run_dir", run_dir)
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
        self.seen = len(self.study.get_trials(deepcopy=False))
        return asked

    def _reseed(self) -> None:
        """When other processes asked since this one last did, draw from a stream of the
        study's count: processes seeded alike would otherwise propose the same points in turn.
        A lone process never reseeds, so its search stays the one its seed gives."""
        count = len(self.study.get_trials(deepcopy=False))
        if count != self.seen:
            self.study.sampler = sampler_for(self.search.options, count)
            self.seen = count

    def _duplicate_of(self, trial) -> int | None:
        """The number of an earlier study trial that holds the same values, trained or
        training. Only an earlier one: of two processes asking the same point at once (on
        other hosts, where no folder claim orders them), the later trial gives way, never both."""
        from optuna.trial import TrialState

        held = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
        for other in self.study.get_trials(deepcopy=False, states=held):
            if other.number < trial.number and other.params == trial.params:
                return other.number
        return None

    def _discard(self, trial, why: str) -> None:
        from optuna.trial import TrialState

        self.study._storage.set_trial_system_attr(trial._trial_id, store.SURPLUS, why)
        self.study.tell(trial.number, state=TrialState.FAIL)

    def _refuse(self, trial, error: ConfigError) -> None:
        self._discard(trial, f"refused: {error}")
        self.refused += 1
        if self.refused >= MAX_REFUSED:
            raise ConfigError(f"{MAX_REFUSED} sampled trials in a row were refused, the last: {error}")

    def run_round(self, planned: list[PlannedTrial], jobs: int, progress, console) -> bool:
        """Train the round's trials; tell the study each one's end. False when stopped."""
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
        stopped, ran = False, set()
        runner = self.runner or executor_for(jobs, len(work), progress)
        with progress.watching(work, runner, keep=False):
            for job, summaries, error in runner.run(work):
                if isinstance(error, Deferred):
                    continue
                _report(job, summaries, error, progress, console, self.failed)
                for run_dir in map(Path, job.run_dirs):
                    ran.add(run_dir.name)
                    stopped |= not self._tell(_number(run_dir.name), link.trials[run_dir.name], run_dir)
                self.write_index()
        if not STOP.requested:
            self._let_go([t for t in planned if t.id not in ran], link)
        return not (stopped or STOP.requested)

    def _let_go(self, trials: list, link) -> None:
        """The round's trials that another process held or changed meanwhile: told if their
        folder is finished, else no longer this process's, for a later take_over to resume."""
        for trial in trials:
            trial_id, run_dir = link.trials[trial.id], self.out / trial.id
            if not self._tell(_number(trial.id), trial_id, run_dir):
                self.study._storage.set_trial_system_attr(trial_id, store.OWNER, "")
                self.beat.trial_ids.discard(trial_id)

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
        """Rounds until the budget is spent and every trial of this folder has ended, whichever
        process trains it. Each round takes over and asks holding the folder's claim, so that
        processes on one folder count the budget and see each other's trials one at a time."""
        say = lambda line: console.print(line, highlight=False, soft_wrap=True)  # noqa: E731
        waiting = Waiting(say)
        while not STOP.requested:
            with claimed(self.out, SETUP_WAIT_S):
                planned = self.take_over()
                left = self.budget - len(store.in_budget(self.study))
                planned += self.ask(min(batch, left)) if left > 0 else []
            if planned:
                if not self.run_round(planned, jobs, progress, console):
                    return
                continue
            others = self.others()
            if not others:
                break
            waiting.wait(len(others))
        if self.exhausted:
            say(
                f"the sampler proposed {MAX_DUPLICATES} configurations in a row that the study "
                f"already holds: the search ends with {len(store.in_budget(self.study))} trials"
            )

    def others(self) -> list:
        """RUNNING trials of this folder that another process asked or trains."""
        from optuna.trial import TrialState

        return [
            t
            for t in self.study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            if "run_dir" in t.user_attrs and self.belongs(t) and t._trial_id not in self.beat.trial_ids
        ]


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

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the sweep's own lines say it all
    console = console or Console(stderr=True)
    options = search.options
    url = store.storage_url(options.storage, out)
    storage = store.open_storage(url) if options.storage else None
    if storage is not None:  # refused before the folder is written
        store.check_study(storage, study_name(out, options), search.space, search.metric)
    # set up holding the folder's claim: other processes on this folder wait, then cooperate
    with claimed(out, SETUP_WAIT_S):
        driver = _open(search, out, command, storage or store.open_storage(url), url, executor)
        driver.size_limit = size_limit
        driver.hold_to_folders(console)  # before counting: a rebuilt study's trials count
        driver.seen = before = len(driver.study.get_trials(deepcopy=False))
    if before:  # a continued study: fresh draws, not the first run's again
        driver.study.sampler = sampler_for(options, before)
    console.print(search.describe(size_limit), highlight=False)
    if driver.budget < options.trials:
        console.print(
            f"the space has {driver.points} points, fewer than --trials {options.trials}: "
            f"the search trains {driver.budget}",
            highlight=False,
        )
    done = sum(t.state.is_finished() for t in store.in_budget(driver.study))
    if done:
        console.print(
            f"{done} of {driver.budget} trials already finished in study '{driver.study.study_name}'"
        )
    with (
        store.Heartbeat(driver.study._storage) as beat,
        SweepProgress(console, driver.budget, done) as progress,
    ):
        driver.beat = beat
        driver.loop(search.batch(size_limit), jobs, progress, console)
    index = with_failures(driver.write_index(), driver.failed)
    return index, index_plan(search, driver.study, driver.belongs)


def _open(search: Search, out: Path, command: str, storage, url: str, executor) -> Driver:
    """Write (or check) sweep.yaml and open the study: the driver of this folder's search."""
    options = search.options
    name = study_name(out, options)
    write_record(out, search, command, name)
    sweep_id, _ = sweep_identity(out, name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's experimental-feature warnings
        study = store.open_study(
            storage,
            name,
            search.space,
            search.metric,
            directions(search.metric),
            sampler_for(options),
            make_pruner(options.pruner, options.min_epochs, int(search.probe.cfg.epochs)),
        )
    return Driver(search, study, url, out, None, None, executor, sweep_id, own_storage=not options.storage)
