"""One `dlrun sweep`, as a library call: check the settings, plan (or prepare the search), set
the folder up, train every group, and return what happened.

1. Everything that can be refused is refused first, in one line, before anything is written:
   the options, the executor, a bad --out, every trial's config, an --init-from source.
2. A Ray runner is connected once, for either kind of sweep, and closed at the end.
3. A grid or random sweep trains its plan (dlrun/sweep/executor.py); an adaptive one asks an
   Optuna sampler round by round (dlrun/sweep/driver.py). Both write the same sweep folder,
   and several processes running the same command into it share its work (sweep/workers.py).
4. The outcome carries the index and how the sweep ended; the CLI turns it into an exit status.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
from rich.console import Console
from rich.markup import escape

from dlrun import results
from dlrun.claims import claimed
from dlrun.config.loggers import Loggers
from dlrun.config.schema import plain
from dlrun.config.validate import check_flag_range
from dlrun.errors import ConfigError
from dlrun.export import live
from dlrun.interrupt import STOP
from dlrun.sweep import adaptive, driver, executor, folder, memory, population, pretrain, ray_executor
from dlrun.sweep.plan import Plan, make_plan
from dlrun.sweep.search import SearchOptions
from dlrun.sweep.tables import plan_table
from dlrun.sweep.workers import SETUP_WAIT_S

SWEEPS_ROOT = Path("runs") / "sweeps"


@dataclass
class SweepSettings:
    """What a sweep is asked for beyond its overrides (the options of `dlrun sweep`)."""

    search: SearchOptions
    out: Path | None = None  # None: runs/sweeps/<name>/<timestamp>/
    name: str = "sweep"
    jobs: int | None = None  # worker processes (the local executor)
    max_group: int | None = None
    executor: str = "local"  # or "ray"
    address: str | None = None
    gpus_per_group: float | None = None
    cpus_per_group: float | None = None
    init_from: Path | None = None
    dry_run: bool = False
    loggers: Loggers = field(default_factory=Loggers)  # logger=: besides the run folders

    def check(self) -> None:
        """Refuse bad settings in one line (ConfigError), before anything is composed."""
        from dlrun.training.placement import check_forced

        for flag, value in (("--max-group", self.max_group), ("--jobs", self.jobs)):
            if value is not None and value < 1:
                raise ConfigError(f"{flag} must be >= 1, got {value}")
            check_flag_range(flag, value)
        self.search.check()
        ray_executor.check_options(self.executor, self.jobs, self.address)
        check_forced()
        if self.out is not None:  # before composing every trial: the cheaper refusal
            folder.check_sweep_folder(self.out)
        live.check(self.loggers)


@dataclass
class SweepOutcome:
    """How a sweep ended: its index (None for a dry run), the plan it indexes, its folder."""

    index: pd.DataFrame | None
    plan: Plan | None
    out: Path | None

    @property
    def failure(self) -> str | None:
        """One line naming the groups that failed, or None."""
        return None if self.index is None else executor.failure_line(self.index)

    @property
    def interrupted(self) -> bool:
        """Stopped before every trial ended: the same command continues it."""
        if STOP.requested:
            return True
        return (
            self.index is not None
            and not self.index.empty
            and bool(self.index.status.isin(("interrupted", "pending")).any())
        )


def run_sweep(
    overrides: list[str],
    settings: SweepSettings,
    command: str,
    console: Console | None = None,
    stdout: Console | None = None,
) -> SweepOutcome:
    """Run (or continue, or with `dry_run` only show) a sweep; `command` is recorded in its
    sweep.yaml. Progress and notes go to `console`, the plan and the tables to `stdout`."""
    console = console or Console(stderr=True)
    stdout = stdout or Console()
    settings.check()
    if settings.init_from is not None:
        from dlrun.training.transfer import init_override

        overrides = [*overrides, init_override(settings.init_from)]
    if settings.search.search == "pbt":
        return _population(overrides, settings, command, console, stdout)
    if settings.search.adaptive:
        searched = adaptive.prepare(overrides, settings.search)
        with _runner(settings, [searched.probe.cfg]) as runner:
            return _adaptive(searched, settings, command, runner, console, stdout)
    # planned once: these groups, split to what fits the device's memory, are the ones that run
    plan = make_plan(
        overrides,
        trials=settings.search.trials,
        seed=settings.search.seed,
        max_group=settings.max_group,
        size_limit=memory.trials_that_fit,
    )
    for note in plan.notes:
        console.print(f"[yellow]warning:[/] {escape(note)}", highlight=False, soft_wrap=True)
    pretrain.check_sources(plan, console)  # a bad --init-from is refused before anything is written
    STOP.check()  # stopped while composing: nothing written yet
    if settings.dry_run:
        stdout.print(plan_table(plan))
        return SweepOutcome(None, plan, None)
    # an unreachable or too small cluster: refused here
    with _runner(settings, [t.cfg for t in plan.trials]) as runner:
        out = _folder(settings)
        # held to set the folder up only: other processes running this same command into it
        # take the trials nobody holds (dlrun/sweep/workers.py); another sweep is refused
        with claimed(out, SETUP_WAIT_S):
            # a bad folder or data file is refused before showing a plan that will not run
            folder.prepare_folder(out, plan, command)
            pretrain.run_stage(plan, overrides, out, console)
        stdout.print(plan_table(plan))
        planned = {folder.trial_dir(out, trial): plain(trial.cfg) for trial in plan.trials}
        with live.following(out, settings.loggers, console, planned):
            index = executor.run_plan(plan, out, jobs=settings.jobs or 1, console=console, executor=runner)
    return SweepOutcome(index, plan, out)


def _adaptive(searched, settings: SweepSettings, command: str, runner, console, stdout):
    """An Optuna search (dlrun/sweep/adaptive.py): asked a batch at a time, trained in groups."""
    limit = (lambda cfg: settings.max_group) if settings.max_group else memory.trials_that_fit
    if settings.dry_run:
        stdout.print(searched.describe(limit), highlight=False, markup=False)
        return SweepOutcome(None, None, None)
    out = _folder(settings)
    # the search claims the folder itself, only while it sets up and while it asks
    with live.following(out, settings.loggers, console):
        index, plan = driver.run_search(
            searched,
            out,
            command,
            jobs=settings.jobs or 1,
            size_limit=limit,
            console=console,
            executor=runner,
        )
    return SweepOutcome(index, plan, out)


def _population(overrides: list[str], settings: SweepSettings, command: str, console, stdout):
    """Population-based training (dlrun/sweep/population.py): one group, on this host."""
    if settings.executor != "local" or (settings.jobs or 1) > 1:
        flag = "--executor ray" if settings.executor != "local" else f"--jobs {settings.jobs}"
        raise ConfigError(f"{flag}: a --search pbt population is one group trained on this host; drop it")
    members = population.Population(overrides, settings.search)
    members.check_fits(settings.max_group)
    STOP.check()
    if settings.dry_run:
        stdout.print(plan_table(members.plan))
        return SweepOutcome(None, members.plan, None)
    out = _folder(settings)
    stdout.print(plan_table(members.plan))
    population.run_population(members, out, command, console)
    return SweepOutcome(population.index(members, out), members.plan, out)


def _folder(settings: SweepSettings) -> Path:
    out = settings.out or results.default_run_dir(settings.name, SWEEPS_ROOT, option="--name ")
    folder.check_writable(out)
    return Path(out)


@contextmanager
def _runner(settings: SweepSettings, cfgs: list):
    """The Ray executor, connected (None for the local executors and for a dry run), shipping
    the folder of the code that `cfgs` name to its workers."""
    if settings.executor != "ray" or settings.dry_run:
        yield None
        return
    runner = ray_executor.RayExecutor(
        settings.address,
        settings.gpus_per_group,
        settings.cpus_per_group,
        code=ray_executor.code_root(cfgs),
    )
    runner.connect()
    try:
        yield runner
    finally:
        runner.close()
