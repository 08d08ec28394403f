"""Run a plan's groups: which jobs are left, and who runs them (this process or worker processes).

The plan's groups are the unit of work. A group job carries its configs as plain containers,
its run folders and whether it resumes, so it pickles: a worker process (or, next, another
machine) runs it with `run_group_job` alone. Every executor has the same two methods, `run`
(yield each job's outcome as it finishes) and `request_stop`.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
import time
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from contextlib import ExitStack
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Callable, Iterator, Protocol

import pandas as pd
from rich.console import Console

from dlrun.claims import FolderInUse, claimed, is_claimed
from dlrun.config.schema import plain
from dlrun.interrupt import STOP
from dlrun.sweep.folder import (
    FINAL_STATUSES,
    resumable_epoch,
    trial_dir,
    trial_status,
    write_index,
)
from dlrun.sweep.plan import Group, Plan
from dlrun.sweep.progress import SweepProgress
from dlrun.sweep.workers import CLAIM_WAIT_S, Deferred, Waiting, busy_trials, stale


@dataclass
class GroupJob:
    """One group to train: plain data only, so that it pickles."""

    id: str
    containers: list  # each trial's config as plain dicts
    run_dirs: list  # each trial's folder, as text
    resume: bool  # continue every trial from its checkpoint (they all reached the same epoch)
    link: object = None  # an adaptive sweep's StudyLink (dlrun/sweep/pruning.py), else None
    epoch: int = 0  # the epoch its trials were planned to resume from (0: afresh, or not known)

    @property
    def size(self) -> int:
        return len(self.run_dirs)


Outcome = tuple  # (GroupJob, summaries or None, error message or None)


def run_group_job(job: GroupJob, callbacks=()) -> tuple:
    """Train one group job; return (summaries, None) or (None, error message), the message a
    `Deferred` when another process holds or changed its folders (nothing was trained)."""
    from dlrun.config.load import typed_config
    from dlrun.training.group import RunFailed, run_group

    cfgs = [typed_config(container) for container in job.containers]
    if job.link is not None:  # built here, so that a worker process reports to the study too
        from dlrun.sweep.pruning import StudyPruning

        callbacks = [*callbacks, StudyPruning(job.link)]
    try:
        with ExitStack() as claims:  # no other process trains these folders meanwhile
            for run_dir in job.run_dirs:
                claims.enter_context(claimed(run_dir, CLAIM_WAIT_S))
            changed = stale(job)  # planned from folders another process may have trained since
            if changed:
                return None, changed
            return run_group(cfgs, job.run_dirs, resume=job.resume, callbacks=callbacks), None
    except FolderInUse as error:
        return None, Deferred(error)
    except RunFailed as error:
        return None, str(error)


def _job(job_id: str, trials: list, out: Path, epoch: int) -> GroupJob:
    run_dirs = [str(trial_dir(out, t)) for t in trials]
    return GroupJob(job_id, [plain(t.cfg) for t in trials], run_dirs, epoch > 0, epoch=epoch)


def _split_by_epoch(group: Group, out: Path, skip) -> dict[int, list]:
    """{epoch each unfinished trial can resume from (0: afresh): its trials}, but for the
    trials in `skip` and those another live process trains (left to it)."""
    by_epoch: dict[int, list] = {}
    for trial in group.trials:
        run_dir = trial_dir(out, trial)
        if trial.id in skip or trial_status(run_dir) in FINAL_STATUSES or is_claimed(run_dir):
            continue
        by_epoch.setdefault(resumable_epoch(run_dir), []).append(trial)
    return by_epoch


def jobs_for(plan: Plan, out: Path, skip=frozenset()) -> list[GroupJob]:
    """The plan's groups still to run, resuming ones first; the trials named in `skip` and
    those another live process trains are left out.

    A group runs as planned; only when some of its trials are finished or ahead is it split:
    its unfinished trials that stopped at the same epoch continue together from their
    checkpoints (a kill can land between two trials' writes, leaving them an epoch apart), the
    ones that cannot continue start afresh in a job of their own (emptied once it holds their
    folders, dlrun/sweep/workers.py).
    """
    jobs = []
    for group in plan.groups:
        parts = sorted(_split_by_epoch(group, Path(out), skip).items(), reverse=True)
        for epoch, trials in parts:
            whole = len(parts) == 1
            jobs.append((epoch, _job(group.id if whole else f"{group.id}@{epoch}", trials, Path(out), epoch)))
    return [job for _, job in sorted(jobs, key=lambda pair: -pair[0])]


class Executor(Protocol):
    def run(self, jobs: list[GroupJob]) -> Iterator[Outcome]:
        """Run the jobs; yield (job, summaries, error) for each as it finishes."""

    def request_stop(self) -> None:
        """Start no more jobs; the running ones stop after their current epoch."""


class InProcessExecutor:
    """Groups one after another in this process; a stop ends the sweep between two groups (the
    running group sees the process's STOP itself and stops after its epoch)."""

    reports_epochs = True  # its groups' callbacks draw the epochs bar (SweepProgress.watching)

    def __init__(self, callbacks_for: Callable[[GroupJob], list] = lambda job: []):
        self.callbacks_for = callbacks_for
        self._stopping = False

    def request_stop(self) -> None:
        self._stopping = True

    def run(self, jobs: list[GroupJob]) -> Iterator[Outcome]:
        for job in jobs:
            if STOP.requested or self._stopping:
                return
            summaries, error = run_group_job(job, self.callbacks_for(job))
            yield job, summaries, error
            if any(summary["status"] == "interrupted" for summary in summaries or []):
                return


# The parent's word to its workers: not SIGTERM, which a scheduler (Slurm, systemd) sends to the
# whole process group, so a worker would count the parent's word as a second signal.
STOP_WORD = signal.SIGUSR1
PARENT_POLL_S = 0.5  # how often a worker checks that its sweep still runs
# An orphaned worker (its sweep was killed) has this long to end its epoch; then it exits
# wherever it is: a training step in XLA cannot be interrupted, and the folders, written
# atomically, keep their last finished epoch.
ORPHAN_GRACE_S = 5.0
EXIT_ORPHANED = 128 + signal.SIGTERM
PR_SET_PDEATHSIG = 1  # linux/prctl.h


class _Tether:
    """A worker process's tie to its sweep (the parent process).

    While the parent lives, SIGTERM and the parent's word each stop the running group after its
    epoch, a second one of the same kind at once; an idle worker waits for the pool to shut it
    down (a ProcessPoolExecutor whose worker vanishes fails every group in flight). Once the
    parent is gone, nothing will shut it down: an idle worker exits at once, a busy one when
    its group has stopped, at most ORPHAN_GRACE_S later.
    """

    def __init__(self, parent_pid: int):
        self.parent_pid = parent_pid
        self.idle = threading.Event()
        self.idle.set()
        self.received: set = set()

    def orphaned(self) -> bool:
        return os.getppid() != self.parent_pid

    def on_signal(self, signum, frame) -> None:
        if self.orphaned():
            STOP.request(signum)
            if self.idle.is_set():
                os._exit(EXIT_ORPHANED)
            return  # the watchdog gives the group its grace
        if signum in self.received or not STOP.requested:
            STOP.handle(signum, frame)
        self.received.add(signum)

    def watch(self) -> None:
        """The watchdog thread: portable, and it also ends a worker stuck outside Python."""
        while not self.orphaned():
            time.sleep(PARENT_POLL_S)
        STOP.request(signal.SIGTERM)
        self.idle.wait(ORPHAN_GRACE_S)
        os._exit(EXIT_ORPHANED)

    def run(self, job: GroupJob) -> tuple:
        self.idle.clear()
        try:
            return run_group_job(job)
        finally:
            self.idle.set()
            if self.orphaned():  # no one reads the outcome; take no further job
                os._exit(EXIT_ORPHANED)


_tether: _Tether | None = None  # in a worker process


def _work(job: GroupJob) -> tuple:
    """A worker process's job (what the pool calls)."""
    return _tether.run(job)


def _die_with_parent() -> None:
    """Linux: the kernel sends SIGTERM when the parent dies (when its thread that spawned this
    process does: the sweep's main thread). Else the watchdog alone notices, within a poll."""
    if not sys.platform.startswith("linux"):
        return
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


def _worker_setup(threads: int, parent_pid: int) -> None:
    """Tie the worker to its sweep; give it its share of the cores before it imports JAX.

    Ctrl-C reaches the whole process group: a worker ignores it and waits for the parent's word.
    """
    global _tether
    _tether = _Tether(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # counted as installed, so that the group runner's handling_signals keeps these handlers
    STOP.install(signals=(signal.SIGTERM, STOP_WORD))
    for signum in (signal.SIGTERM, STOP_WORD):
        signal.signal(signum, _tether.on_signal)
    _die_with_parent()  # a parent that died before this is the watchdog's first finding
    threading.Thread(target=_tether.watch, name="dlrun-parent-watch", daemon=True).start()
    # A one-core share runs XLA's CPU kernels on one thread. XLA has no flag for "N threads";
    # the former `intra_op_parallelism_threads=N` was no flag at all, and alone in XLA_FLAGS it
    # made XLA abort, so larger shares keep XLA's default pool.
    if threads == 1:
        flags = f"{os.environ.get('XLA_FLAGS', '')} --xla_cpu_multi_thread_eigen=false"
        os.environ["XLA_FLAGS"] = flags.strip()


class WorkerProcessExecutor:
    """Groups in `workers` spawned processes, the cores shared between them (for a CPU)."""

    def __init__(self, workers: int):
        self.workers = workers
        self._pool: ProcessPoolExecutor | None = None
        self._futures: dict = {}

    def request_stop(self) -> None:
        """Cancel the jobs not started; tell the workers to stop (STOP_WORD). Like Ctrl-C, a
        first call stops them after their epoch, a second one at once."""
        for future in self._futures:
            future.cancel()
        # ProcessPoolExecutor has no public way to signal its workers; its process table is stable
        processes = getattr(self._pool, "_processes", None) or {}
        for process in list(processes.values()):
            if process.is_alive():
                try:
                    os.kill(process.pid, STOP_WORD)
                except ProcessLookupError:  # it ended since is_alive()
                    pass

    def run(self, jobs: list[GroupJob]) -> Iterator[Outcome]:
        threads = max(1, (os.cpu_count() or 1) // self.workers)
        context = get_context("spawn")  # a fresh interpreter: JAX must not be forked after init
        with ProcessPoolExecutor(
            self.workers, mp_context=context, initializer=_worker_setup, initargs=(threads, os.getpid())
        ) as self._pool:
            self._futures = {self._pool.submit(_work, job): job for job in jobs}
            try:
                yield from self._as_finished()
            except (KeyboardInterrupt, GeneratorExit):  # a second Ctrl-C: the workers stop at once too
                self.request_stop()
                raise

    def _as_finished(self) -> Iterator[Outcome]:
        waiting, told = set(self._futures), False
        while waiting:
            done, waiting = wait(waiting, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in done:
                if not future.cancelled():
                    yield self._outcome(future)
            if STOP.requested and not told:
                self.request_stop()
                told = True

    def _outcome(self, future) -> Outcome:
        job = self._futures[future]
        try:
            return (job, *future.result())
        except BrokenProcessPool:  # killed, or out of memory: its folders keep their last epoch
            return job, None, "a worker process of the sweep died; the same command continues it"


def executor_for(workers: int, jobs: int, progress) -> Executor:
    """Worker processes when asked for and there is more than one job; else this process, with
    a progress bar per epoch (a worker's epochs are not seen from here)."""
    if workers > 1 and jobs > 1:
        return WorkerProcessExecutor(workers)
    return InProcessExecutor(lambda job: [progress.group(job.id, job.size)])


def run_plan(
    plan: Plan, out: Path, *, jobs: int = 1, console: Console | None = None, executor: Executor | None = None
) -> pd.DataFrame:
    """Train every unfinished trial of the plan into `out`; return the refreshed index, with
    the groups that failed in `index.attrs[FAILED_GROUPS]` ({job id: error}).

    One failing group does not stop the others; a signal stops after the current epoch and
    leaves the unfinished trials `interrupted` (the same command then continues them).
    Other processes may train the same plan into `out` meanwhile (dlrun/sweep/workers.py):
    each trial is trained by one of them, and each waits for the others before it returns.
    `executor` replaces the local ones (`jobs` is theirs), e.g. dlrun/sweep/ray_executor.py.
    """
    console = console or Console(stderr=True)
    out = Path(out)
    done = sum(trial_status(trial_dir(out, t)) in FINAL_STATUSES for t in plan.trials)
    if done:
        console.print(f"{done} of {len(plan.trials)} trials already finished in {out}: skipped")
    failed: dict = {}
    tried: set = set()  # trained (or tried) by this process: never again in this run
    waiting = Waiting(lambda line: console.print(line, highlight=False, soft_wrap=True))
    with SweepProgress(console, len(plan.trials), done) as progress:
        while not STOP.requested:
            work = jobs_for(plan, out, skip=tried)
            if work:
                runner = executor or executor_for(jobs, len(work), progress)
                _run_pass(work, runner, progress, console, failed, tried)
                continue
            busy = busy_trials(plan, out)
            if not busy:
                break
            waiting.wait(len(busy))
    return with_failures(write_index(out, plan), failed)


def _run_pass(work, runner, progress, console, failed: dict, tried: set) -> None:
    """Run the jobs planned from the folders as they are now; note which were trained here."""
    with progress.watching(work, runner):
        for job, summaries, error in runner.run(work):
            if isinstance(error, Deferred):  # planned again from what the other process left
                continue
            tried.update(Path(run_dir).name for run_dir in job.run_dirs)
            _report(job, summaries, error, progress, console, failed)


FAILED_GROUPS = "failed_groups"  # the key of a sweep index's attrs that lists its failures


def with_failures(index: pd.DataFrame, failed: dict) -> pd.DataFrame:
    """The index, marked with the groups ({job id: error}) that failed in this run."""
    index.attrs[FAILED_GROUPS] = dict(failed)
    return index


def failure_line(index: pd.DataFrame) -> str | None:
    """One line naming the groups that failed in the run that wrote `index`; None if none."""
    failed = index.attrs.get(FAILED_GROUPS) or {}
    if not failed:
        return None
    word = "group" if len(failed) == 1 else "groups"
    return (
        f"{len(failed)} {word} failed: {', '.join(failed)} (errors above); the other groups "
        "ran, and the same command runs the failed ones again"
    )


def _report(job: GroupJob, summaries, error, progress, console, failed: dict | None = None) -> None:
    """Show a job's outcome; a failure is also noted in `failed` ({job id: error})."""
    if error:
        console.print(f"[red]group {job.id} failed:[/] {error}", highlight=False)
        if failed is not None:
            failed[job.id] = error
    statuses = [summary["status"] for summary in summaries or []]
    progress.trials_done(
        job.size,
        f"{job.id}: " + ", ".join(f"{statuses.count(s)} {s}" for s in sorted(set(statuses)))
        if statuses
        else "failed",
    )
