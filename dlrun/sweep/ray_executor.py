"""`--executor ray`: each group is one Ray task, on a local Ray instance or on a cluster.

A task asks for the resources one group needs (one GPU per group where the cluster has GPUs,
else a share of a node's CPUs), so Ray keeps as many groups in flight as the cluster has room
for. The task trains in a scratch folder of its node and ships its trials' files to the driver
(dlrun/sweep/shipping.py), so the nodes need to share no filesystem; Ray retries a task whose
worker or node died, and the retry resumes from the checkpoints the last attempt shipped.
Same protocol as dlrun/sweep/executor.py: `run(jobs)` (callable again, for adaptive search
loops) yields each job's outcome as it finishes; `request_stop()`; `close()` at the end.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import tempfile
import warnings
from pathlib import Path
from typing import Iterator

from dlrun import results
from dlrun.errors import ConfigError
from dlrun.interrupt import STOP
from dlrun.layout import USER_CONFIG_ENV, user_config_dir
from dlrun.sweep.executor import GroupJob, Outcome, run_group_job
from dlrun.sweep.folder import FINAL_STATUSES, resumable_epoch, trial_status
from dlrun.sweep.shipping import Shipper, TrialMirror, apply
from dlrun.targets import TARGET, import_root, names_code

EXECUTORS = ("local", "ray")
INSTALL_RAY = "--executor ray needs Ray; install it with: pip install 'dlrun[ray]'"
MAX_RETRIES = 3  # a node lost three times over is a cluster problem, not a group's
DRAIN_EVERY_S = 0.5  # how often the driver writes what the tasks shipped
REACH_TIMEOUT_S = 5.0
SCRATCH_PREFIX = "dlrun-group-"


def import_ray():
    try:
        import ray
    except ImportError:
        raise ConfigError(INSTALL_RAY) from None
    return ray


def check_options(executor: str, jobs, address) -> None:
    """The refusals that need no cluster: an unknown executor, options of the other one."""
    if executor not in EXECUTORS:
        raise ConfigError(f"unknown --executor '{executor}'; choices: {', '.join(EXECUTORS)}")
    if executor == "ray" and jobs is not None:
        raise ConfigError(
            "--jobs is for --executor local (worker processes on this host); with "
            "--executor ray the cluster's free resources decide how many groups run"
        )
    if executor == "local" and address is not None:
        raise ConfigError(f"--address {address} needs --executor ray")
    if address is not None:
        host_and_port(address)


def host_and_port(address: str) -> tuple:
    """(host, port) of host:port or ray://host:port; (None, None) for auto."""
    if address == "auto":
        return None, None
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--address {address}: give auto, host:port or ray://host:port")
    return host, int(port)


def check_reachable(address: str) -> None:
    """Refuse a host:port (or ray://host:port) that accepts no connection, in seconds, before
    Ray's own client retries it for a minute."""
    host, port = host_and_port(address)
    if host is None:
        return
    try:
        socket.create_connection((host, port), timeout=REACH_TIMEOUT_S).close()
    except OSError as error:
        raise ConfigError(
            f"--address {address}: cannot reach {host}:{port} ({error.strerror or error}); "
            "start a cluster with `ray start --head` or give its address"
        ) from None


def _node_line(nodes: list) -> str:
    return "; ".join(
        f"{n['NodeManagerAddress']}: {n['Resources'].get('CPU', 0):g} CPUs, "
        f"{n['Resources'].get('GPU', 0):g} GPUs"
        for n in nodes
    )


class RayExecutor:
    """Groups as Ray tasks; connects (or starts a local Ray) once, on the first need."""

    def __init__(
        self,
        address: str | None = None,
        gpus_per_group: float | None = None,
        cpus_per_group: float | None = None,
        max_retries: int = MAX_RETRIES,
        code: str | None = None,
    ):
        self.address = address
        self.code = code  # the folder the user's `_target_` modules come from (code_root)
        self.gpus = gpus_per_group
        self.cpus = cpus_per_group
        self.shared_node = cpus_per_group is not None  # groups may share a node's cores
        self.max_retries = max_retries
        self._started = False  # whether this executor called ray.init (and so shuts it down)
        self._mirror = None
        self._running: dict = {}

    def connect(self) -> None:
        """Start or join Ray and check that some node can run a group; ConfigError if not."""
        ray = import_ray()
        if ray.is_initialized():
            return self._check_resources(ray)
        if self.address is not None:
            check_reachable(self.address)
        try:
            with warnings.catch_warnings():  # Ray forks only to exec its own servers
                warnings.filterwarnings("ignore", "os.fork", RuntimeWarning)
                # "local": a new instance even where `ray start` runs one (that takes --address
                # auto); Ray's notices would break the sweep's output, its errors still show
                ray.init(
                    address=self.address or "local",
                    include_dashboard=False,
                    log_to_driver=False,
                    logging_level=logging.ERROR,
                    runtime_env=self.job_runtime_env(),
                )
        except (ConnectionError, RuntimeError, ValueError) as error:
            where = f"--address {self.address}" if self.address else "a local Ray instance"
            raise ConfigError(f"{where}: {str(error).splitlines()[0]}") from None
        self._started = True
        try:
            self._check_resources(ray)
        except ConfigError:
            self.close()
            raise

    def _check_resources(self, ray) -> None:
        nodes = [node for node in ray.nodes() if node.get("Alive")]
        if self.gpus is None:  # one GPU per group wherever the cluster has GPUs
            self.gpus = 1 if any(node["Resources"].get("GPU", 0) for node in nodes) else 0
        if self.cpus is None:  # on CPUs a vectorised group fills the smallest node's cores
            cores = [node["Resources"].get("CPU", 0) for node in nodes]
            self.cpus = 1 if self.gpus else min([c for c in cores if c > 0], default=1)
        fits = [
            node
            for node in nodes
            if node["Resources"].get("GPU", 0) >= self.gpus and node["Resources"].get("CPU", 0) >= self.cpus
        ]
        if not fits:
            asked = f"--gpus-per-group {self.gpus:g} --cpus-per-group {self.cpus:g}"
            raise ConfigError(
                f"{asked}: no node of the Ray cluster has that much (nodes: {_node_line(nodes) or 'none'})"
            )

    def close(self) -> None:
        """Shut down the Ray this executor started (a cluster it joined goes on)."""
        if self._started:
            import ray

            ray.shutdown()
            self._started = False
            self._mirror = None

    def request_stop(self) -> None:
        """Running groups stop after their current epoch; queued ones start nothing."""
        if self._mirror is not None:
            self._mirror.request_stop.remote()

    def run(self, jobs: list[GroupJob]) -> Iterator[Outcome]:
        ray = import_ray()
        self.connect()
        mirror = self._mirror_actor(ray)
        task = self._task(ray)
        for job in jobs:
            for run_dir in job.run_dirs:
                snapshot = results.snapshot(run_dir) if Path(run_dir).is_dir() else {}
                mirror.seed.remote(run_dir, {str(rel): data for rel, data in snapshot.items()})
        self._running = {task.remote(job, mirror): job for job in jobs}
        try:
            yield from self._as_finished(ray, mirror)
        except (KeyboardInterrupt, GeneratorExit):  # a second Ctrl-C: stop the tasks at once
            for ref in self._running:
                ray.cancel(ref, force=True)
            raise

    def _mirror_actor(self, ray):
        """One mirror per connection, on the driver's node (the node a ray:// client is on)."""
        if self._mirror is None:
            from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

            here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
            self._mirror = (
                ray.remote(TrialMirror)
                .options(num_cpus=0, scheduling_strategy=here, max_concurrency=1)
                .remote()
            )
        return self._mirror

    def _task(self, ray):
        return ray.remote(train_group_remotely).options(**self.task_options())

    def job_runtime_env(self) -> dict | None:
        """The runtime_env of the Ray job this executor starts: the folder of the user's code
        goes to every worker as its working directory (uploaded once, the task's cwd). Ray
        uploads a local folder only for a whole job, at `ray.init`, not for one task; a Ray
        the caller started keeps the runtime_env the caller gave it."""
        return {"working_dir": self.code, "excludes": CODE_EXCLUDES} if self.code else None

    def task_options(self) -> dict:
        """A group task's Ray options (once the cluster's resources set gpus and cpus)."""
        from dlrun.training.placement import SIDE_BY_SIDE_ENV  # JAX: not in the mirror's process

        options = {"num_cpus": self.cpus, "num_gpus": self.gpus, "max_retries": self.max_retries}
        env = {}
        if user_config_dir() is not None:  # what the trials' summary.json records for --resume
            env[USER_CONFIG_ENV] = str(user_config_dir())
        if not self.gpus and self.shared_node:
            # a group's one-trial passes run side by side on its share of the cores, not on all
            env[SIDE_BY_SIDE_ENV] = str(max(1, int(self.cpus)))
        if not self.gpus and self.cpus < 2:  # JAX on a CPU takes every core unless told one
            env["XLA_FLAGS"] = f"{os.environ.get('XLA_FLAGS', '')} --xla_cpu_multi_thread_eigen=false".strip()
        if env:
            options["runtime_env"] = {"env_vars": env}
        return options

    def _as_finished(self, ray, mirror) -> Iterator[Outcome]:
        told = False
        while self._running:
            done, _ = ray.wait(list(self._running), num_returns=1, timeout=DRAIN_EVERY_S)
            apply(ray.get(mirror.drain.remote()))
            for ref in done:
                job = self._running.pop(ref)
                try:
                    summaries, error = ray.get(ref)
                except ray.exceptions.RayError as failure:
                    summaries, error = None, f"{type(failure).__name__}: {str(failure).splitlines()[0]}"
                apply(ray.get(mirror.drain.remote()))  # what it shipped before it returned
                mirror.forget.remote(job.run_dirs)
                yield job, summaries, error
            if STOP.requested and not told:
                self.request_stop()
                told = True


def _parts(job: GroupJob, local: dict) -> list:
    """The job's unfinished trials by the epoch they continue from, latest first: a retried
    task finds its trials as the last attempt left them (possibly an epoch apart)."""
    by_epoch: dict[int, list] = {}
    for index, run_dir in enumerate(job.run_dirs):
        if trial_status(local[run_dir]) not in FINAL_STATUSES:
            by_epoch.setdefault(resumable_epoch(local[run_dir]), []).append(index)
    return sorted(by_epoch.items(), reverse=True)


# what a working directory holds that no worker imports: run folders, environments, history
CODE_EXCLUDES = ["runs/", ".venv/", "venv/", ".git/", "__pycache__/", "*.ckpt"]


def code_root(cfgs) -> str | None:
    """The folder the configs' user modules (`model._target_`, `data._target_`) are imported
    from, None when every trial runs dlrun's own code (or an installed package's)."""
    for cfg in cfgs:
        for group in ("model", "data"):
            node = cfg.get(group)
            if names_code(node) and node[TARGET] and import_root(str(node[TARGET])):
                return import_root(str(node[TARGET]))
    return None


def train_group_remotely(job: GroupJob, mirror) -> tuple:
    """The Ray task: train the group in a scratch folder, shipping its files to the driver.

    Returns (summaries in the job's order, error or None), as run_group_job does.
    """
    _remove_orphaned_scratch()
    scratch = Path(tempfile.mkdtemp(prefix=SCRATCH_PREFIX))
    try:
        (scratch / "pid").write_text(str(os.getpid()))  # which process holds this scratch
        # the trial folders' own names: an adaptive search's callback finds its trials by them
        local = {run_dir: scratch / Path(run_dir).name for run_dir in job.run_dirs}
        shipper = Shipper(mirror, local)
        shipper.pull()
        summaries, error = {}, None
        for epoch, indices in _parts(job, local):
            if shipper.stop_requested:
                break
            if not epoch:
                for index in indices:
                    shipper.reset(job.run_dirs[index])
            part = GroupJob(
                f"{job.id}@{epoch}",
                [job.containers[i] for i in indices],
                [str(local[job.run_dirs[i]]) for i in indices],
                epoch > 0,
                link=job.link,
            )
            done, failure = run_group_job(part, [shipper])
            error = error or _as_the_driver_names_it(failure, local)
            shipper.ship()  # the summaries, test predictions (or error.txt) written at the end
            summaries.update(zip(indices, done or []))
        return [summaries.get(i) or _summary_of(local[d]) for i, d in enumerate(job.run_dirs)], error
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _as_the_driver_names_it(error: str | None, local: dict) -> str | None:
    """The error with the driver's trial folders for the scratch ones, gone once it is read
    (its traceback is shipped to the driver's error.txt)."""
    for run_dir, scratch_dir in local.items():
        error = error and error.replace(str(scratch_dir), run_dir)
    return error


def _remove_orphaned_scratch() -> None:
    """Scratch folders of this node's tasks that were killed (kill -9 leaves them behind)."""
    for pid_file in Path(tempfile.gettempdir()).glob(f"{SCRATCH_PREFIX}*/pid"):
        try:
            os.kill(int(pid_file.read_text()), 0)
        except ProcessLookupError:
            shutil.rmtree(pid_file.parent, ignore_errors=True)
        except (ValueError, OSError):
            continue  # being written, or a process of another user: not ours to judge


def _summary_of(run_dir: Path) -> dict:
    try:
        return results.read_summary(run_dir)
    except (OSError, ValueError):
        return {"status": "interrupted", "epochs_run": 0}
