"""Run a sweep plan: one folder per trial under the sweep folder, groups run one by one (or in
parallel worker processes on a CPU), finished trials skipped when the same sweep runs again.

    <sweep>/sweep.yaml     the command, the space and the plan (which trials share a program)
    <sweep>/trials.csv     the index: one row per trial with its status and headline numbers
    <sweep>/trial-NNN/     a run folder exactly as `dlrun train` writes it (dlrun/results.py)
"""

from __future__ import annotations

import os
import shutil
import signal
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from datetime import datetime, timezone
from multiprocessing import get_context
from pathlib import Path

import pandas as pd
import yaml
from omegaconf import OmegaConf
from rich.console import Console
from rich.table import Table

from dlrun import results
from dlrun.training.progress import SweepProgress
from dlrun.config.schema import plain
from dlrun.errors import ConfigError
from dlrun.interrupt import STOP
from dlrun.sweep.plan import Plan, group_trials

SWEEP_FILE, INDEX_FILE = "sweep.yaml", "trials.csv"
FINAL_STATUSES = ("completed", "diverged")  # a re-run would only repeat these
# Share of device (or host) memory a group may plan to use; the rest is XLA's working space.
MEMORY_SHARE = 0.5


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


def _nearest_existing(path: Path) -> Path:
    """The path itself or its closest ancestor that exists (what a mkdir -p would write into)."""
    for part in (path, *path.parents):
        try:
            part.stat()
            return part
        except (FileNotFoundError, NotADirectoryError):
            continue
        except OSError as error:
            raise ConfigError(f"--out {path}: cannot read {part} ({error.strerror})") from None
    return Path(".")


def check_writable(out: Path) -> None:
    """Refuse an output folder that could not be created or written, before any data loads:
    otherwise the run would fail only after loading and compiling."""
    out = Path(out)
    existing = _nearest_existing(out)
    if not existing.is_dir():
        raise ConfigError(f"--out {out}: {existing} is a file, not a folder; give a folder path")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: {existing} is not writable; give a folder you can write to")


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
        raise ConfigError(f"--out {out} holds a training run ({results.SUMMARY_FILE}), not a "
                          "sweep; give a new folder for the sweep")
    read_sweep_record(out)


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
            raise ConfigError(f"--out {out} holds a different sweep ({previous.get('command')}); "
                              "use another folder")
        return
    record = {"command": command, "created_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
              "plan": described}
    results.atomic_write_text(existing, yaml.safe_dump(record, sort_keys=False))


def write_index(out: Path, plan: Plan) -> pd.DataFrame:
    """Rebuild trials.csv from the trial folders (their summaries are the truth) and return it."""
    group_of = {trial.id: group.id for group in plan.groups for trial in group.trials}
    rows = []
    for trial in plan.trials:
        run_dir = trial_dir(out, trial)
        row = {"trial": trial.id, "group": group_of.get(trial.id, ""), **trial.params,
               "status": trial_status(run_dir)}
        if row["status"] not in ("pending", "corrupt"):
            summary = results.read_summary(run_dir)
            for key in ("epochs_run", "best_epoch", "best_val_loss", "best_val_accuracy",
                        "test_loss", "test_accuracy", "train_time_s"):
                row[key] = summary.get(key)
        row["folder"] = trial.id
        rows.append(row)
    frame = pd.DataFrame(rows)
    results.atomic_write_text(Path(out) / INDEX_FILE, frame.to_csv(index=False))
    return frame


def auto_max_group(cfg) -> int:
    """Return how many trials of this config fit in MEMORY_SHARE of the device's memory."""
    import jax

    from dlrun import data, models

    spec = data.describe(cfg.data)
    params = models.param_count(cfg, spec)
    inputs = 1
    for side in spec.input_shape:
        inputs *= side
    # parameters, gradients, two optimizer moments, update, best copy; activations and patches
    per_trial = 4 * (6 * params + 3 * cfg.batch_size * inputs * (30 if cfg.model.name == "lenet" else 4))
    device = jax.devices()[0]
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and "bytes_limit" in stats:
        budget = stats["bytes_limit"]
    else:
        budget = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return max(1, int(MEMORY_SHARE * budget // per_trial))


def resumable_epoch(run_dir: Path) -> int:
    """The epoch an unfinished trial can continue from (0: it starts afresh).

    Any unfinished status counts: `running` is what kill -9 leaves behind.
    """
    if trial_status(run_dir) in ("pending", "corrupt", *FINAL_STATUSES):
        return 0
    if not (run_dir / results.CONFIG_FILE).exists():
        return 0
    try:
        return results.finished_epoch(run_dir)
    except ValueError:
        return 0


def run_group_job(containers: list[dict], run_dirs: list[str], resume: bool, callbacks=()):
    """Run one group from plain data (picklable, so a worker process or another machine can run
    it); return (summaries, None) or (None, error message)."""
    from dlrun.config.load import typed_config
    from dlrun.training.group import RunFailed, run_group

    cfgs = [typed_config(container) for container in containers]
    try:
        return run_group(cfgs, run_dirs, resume=resume, callbacks=callbacks), None
    except RunFailed as error:
        return None, str(error)


def _worker_setup(threads: int) -> None:
    """Give each worker its share of the cores before it imports JAX.

    A worker stops only when the parent says so (SIGTERM): Ctrl-C reaches the whole process
    group, and a worker taking it as well would count the parent's word as a second signal.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    STOP.install(signals=(signal.SIGTERM,))
    flags = os.environ.get("XLA_FLAGS", "")
    if threads == 1:
        flags += " --xla_cpu_multi_thread_eigen=false"
    os.environ["XLA_FLAGS"] = f"{flags} intra_op_parallelism_threads={threads}".strip()


def _jobs_for(plan: Plan, out: Path, max_group: int | None) -> list:
    """Regroup the trials still to run; return (group, run dirs, resume?) per group.

    Unfinished trials that stopped at the same epoch continue together from their checkpoints
    (a kill can land between two trials' writes, leaving them an epoch apart).
    """
    by_epoch: dict[int, list] = {}
    for trial in plan.trials:
        if trial_status(trial_dir(out, trial)) not in FINAL_STATUSES:
            by_epoch.setdefault(resumable_epoch(trial_dir(out, trial)), []).append(trial)
    jobs = []
    for epoch, trials in sorted(by_epoch.items(), reverse=True):
        for group in group_trials(trials, max_group):
            run_dirs = [trial_dir(out, trial) for trial in group.trials]
            if not epoch:
                for run_dir in run_dirs:  # an unfinished trial that cannot continue starts afresh
                    shutil.rmtree(run_dir, ignore_errors=True)
            group.id = f"g{len(jobs):03d}"
            jobs.append((group, run_dirs, epoch > 0))
    return jobs


def _containers(group) -> list[dict]:
    return [plain(trial.cfg) for trial in group.trials]


def run_plan(plan: Plan, out: Path, *, jobs: int = 1, max_group: int | None = None,
             console: Console | None = None) -> pd.DataFrame:
    """Train every unfinished trial of the plan into `out`; return the refreshed index.

    One failing group does not stop the others; a signal stops after the current epoch and
    leaves the unfinished trials `interrupted` (the same command then continues them).
    """
    console = console or Console(stderr=True)
    work = _jobs_for(plan, Path(out), max_group)
    done = len(plan.trials) - sum(len(group.trials) for group, _, _ in work)
    if done:
        console.print(f"{done} of {len(plan.trials)} trials already finished in {out}: skipped")
    with SweepProgress(console, len(plan.trials), done) as progress:
        if jobs > 1 and len(work) > 1:
            _run_parallel(work, jobs, progress, console)
        else:
            _run_sequential(work, progress, console)
    return write_index(out, plan)


def _report(group, summaries, error, progress, console) -> bool:
    """Advance the bars; return True when the group was interrupted."""
    if error:
        console.print(f"[red]group {group.id} failed:[/] {error}", highlight=False)
    statuses = [summary["status"] for summary in summaries or []]
    progress.trials_done(len(group.trials), f"{group.id}: " + ", ".join(
        f"{statuses.count(s)} {s}" for s in sorted(set(statuses))) if statuses else "failed")
    return "interrupted" in statuses


def _run_sequential(work, progress, console) -> None:
    for group, run_dirs, resume in work:
        if STOP.requested:
            break
        summaries, error = run_group_job(_containers(group), [str(d) for d in run_dirs], resume,
                                         [progress.group(group.id, group.size)])
        if _report(group, summaries, error, progress, console):
            break


def _run_parallel(work, jobs: int, progress, console) -> None:
    threads = max(1, (os.cpu_count() or 1) // jobs)
    context = get_context("spawn")  # a fresh interpreter: JAX must not be forked after init
    with ProcessPoolExecutor(jobs, mp_context=context, initializer=_worker_setup,
                             initargs=(threads,)) as pool:
        futures = {pool.submit(run_group_job, _containers(group), [str(d) for d in dirs], resume):
                   group for group, dirs, resume in work}
        waiting, told = set(futures), 0
        try:
            while waiting:
                done, waiting = wait(waiting, timeout=0.2, return_when=FIRST_COMPLETED)
                for future in done:
                    if not future.cancelled():
                        summaries, error = future.result()
                        _report(futures[future], summaries, error, progress, console)
                if STOP.requested and not told:
                    told = _tell_workers_to_stop(pool, futures)
        except KeyboardInterrupt:  # a second Ctrl-C: the workers stop at once too
            _tell_workers_to_stop(pool, futures)
            raise


def _tell_workers_to_stop(pool, futures) -> int:
    """Cancel the groups not started; ask the running ones to stop after their epoch."""
    for future in futures:
        future.cancel()
    # ProcessPoolExecutor has no public way to signal its workers; its process table is stable
    for process in list(getattr(pool, "_processes", {}).values()):
        if process.is_alive():
            os.kill(process.pid, signal.SIGTERM)
    return 1


def best_table(index: pd.DataFrame, plan: Plan, top: int = 10) -> Table:
    """Return the best trials by validation accuracy (or loss for regression) as a rich table."""
    finished = index[index.status.isin(FINAL_STATUSES + ("interrupted",))].copy()
    classification = "best_val_accuracy" in finished and finished.best_val_accuracy.notna().any()
    key = "best_val_accuracy" if classification else "best_val_loss"
    finished = finished.sort_values(key, ascending=not classification).head(top)
    table = Table(title=f"best {min(top, len(finished))} of {len(index)} trials (by {key})")
    columns = ["trial", *plan.space, "status", "epochs_run", "best_val_loss", "best_val_accuracy",
               "test_accuracy"]
    columns = [c for c in columns if c in finished]
    short = {"epochs_run": "epochs", "best_val_loss": "val loss", "best_val_accuracy": "val acc",
             "test_accuracy": "test acc"}
    for column in columns:
        table.add_column(short.get(column, column), no_wrap=column in ("trial", "status"),
                         justify="left" if column in ("trial", "status") else "right")
    for _, row in finished.iterrows():
        cells = []
        for column in columns:
            value = row[column]
            if isinstance(value, float):
                value = "" if pd.isna(value) else (f"{value:.2%}" if "accuracy" in column else f"{value:.4g}")
            cells.append(str(value))
        table.add_row(*cells)
    return table
