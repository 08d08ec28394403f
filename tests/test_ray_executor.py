"""`--executor ray` on a real two-node Ray cluster on this machine (Ray's own multi-raylet test
cluster: a head node with no CPUs for tasks, so every group runs on the worker node).

The worker node gets a temporary folder of its own (TMPDIR), the driver runs in another folder
and names its sweep folder relative to it: a task's files can reach the sweep folder only by
being shipped (dlrun/sweep/shipping.py). The worker process is killed mid-group, and so is the
driver; each time the same sweep must end with every epoch of every trial written exactly once.
"""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from conftest import FLOAT32_RTOL
from ray.cluster_utils import Cluster  # the test extra installs Ray: never skipped
from test_loggers import tensorboard_steps

OBJECT_STORE = 80 * 2**20  # small: the tests ship kilobytes
# long enough epochs (batch 8 on the spirals) that a kill lands between the first and the last
SWEEP = ["sweep", "data=spirals", "model.hidden=[16]", "batch_size=8", "schedule=constant"]
EPOCHS = 40


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    worker_tmp = tmp_path_factory.mktemp("worker-node-tmp")
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 0, "object_store_memory": OBJECT_STORE, "include_dashboard": False},
    )
    cluster.add_node(num_cpus=1, object_store_memory=OBJECT_STORE, env_vars={"TMPDIR": str(worker_tmp)})
    yield cluster, worker_tmp
    cluster.shutdown()


def start_sweep(driver_dir, address, *overrides):
    command = [
        sys.executable,
        "-m",
        "dlrun",
        *SWEEP,
        *overrides,
        f"epochs={EPOCHS}",
        "--executor",
        "ray",
        "--address",
        address,
        "--out",
        "runs/s",
    ]
    return command, subprocess.Popen(
        command,
        cwd=driver_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "120"},
    )


def epochs_written(run_dir):
    try:
        return len(pd.read_csv(run_dir / "metrics.csv"))
    except (FileNotFoundError, pd.errors.EmptyDataError):
        return 0


def wait_for(condition, process, what, timeout=120):
    deadline = time.time() + timeout
    while not condition():
        assert process.poll() is None, f"the sweep ended before {what}: {process.stdout.read()}"
        assert time.time() < deadline, f"no {what} in {timeout} s"
        time.sleep(0.05)


def scratch_pid(worker_tmp):
    """The task's process: it writes its pid into its scratch folder on the worker node."""
    pids = list(worker_tmp.glob("dlrun-group-*/pid"))
    return int(pids[0].read_text()) if pids and pids[0].read_text() else None


def assert_every_epoch_once(sweep_dir, trials, epochs=EPOCHS):
    for trial in trials:
        metrics = pd.read_csv(sweep_dir / trial / "metrics.csv")
        assert list(metrics.epoch) == list(range(1, epochs + 1)), trial
        summary = json.loads((sweep_dir / trial / "summary.json").read_text())
        assert summary["status"] == "completed" and summary["epochs_run"] == epochs
        assert (sweep_dir / trial / "test_predictions.npz").exists()


def status(run_dir):
    try:
        return json.loads((run_dir / "summary.json").read_text())["status"]
    except (FileNotFoundError, ValueError, KeyError):
        return None


def second_group_started(sweep_dir, worker_tmp, groups):
    """(finished group, running group) once one group is done in the sweep folder and the
    other has 2 epochs in its scratch folder (no shipping lag: the kill must land mid-group)."""
    running = list(worker_tmp.glob("dlrun-group-*/trial-*"))
    for first, second in (groups, groups[::-1]):
        if (
            all(status(sweep_dir / t) == "completed" for t in first)
            and running
            and epochs_written(running[0]) >= 2
        ):
            return first, second
    return None


def resumed_from(sweep_dir, trial):
    summary = json.loads((sweep_dir / trial / "summary.json").read_text())
    return [resume["from_epoch"] for resume in summary.get("resumes", [])]


def test_a_killed_worker_is_retried_and_its_group_resumes_from_the_shipped_checkpoints(cluster, tmp_path):
    """Two groups run one after the other on the one-CPU worker node; the worker process of the
    second is killed mid-group: Ray retries it, it resumes, the first group is left alone."""
    ray_cluster, worker_tmp = cluster
    driver = tmp_path / "driver"
    driver.mkdir()
    sweep_dir = driver / "runs" / "s"
    _, process = start_sweep(driver, ray_cluster.address, "model.hidden=[8],[16]", "lr=0.03,0.01")
    groups = [("trial-000", "trial-001"), ("trial-002", "trial-003")]  # Ray picks the order
    wait_for(
        lambda: second_group_started(sweep_dir, worker_tmp, groups), process, "epoch of the second group"
    )
    first, second = second_group_started(sweep_dir, worker_tmp, groups)
    first_done = {t: (sweep_dir / t / "summary.json").read_bytes() for t in first}
    os.kill(scratch_pid(worker_tmp), signal.SIGKILL)
    # the task trained in its scratch folder on the worker node, outside the sweep folder
    assert epochs_written(next(worker_tmp.glob("dlrun-group-*/trial-*"))) < EPOCHS
    output, _ = process.communicate(timeout=180)

    assert process.returncode == 0, output
    assert "Traceback" not in output
    assert_every_epoch_once(sweep_dir, [f"trial-00{i}" for i in range(4)])
    for trial, summary in first_done.items():  # finished before the kill: never run again
        assert (sweep_dir / trial / "summary.json").read_bytes() == summary
    for trial in second:  # from the checkpoint the killed attempt shipped
        assert len(resumed_from(sweep_dir, trial)) == 1 and 1 <= resumed_from(sweep_dir, trial)[0] < EPOCHS
    assert list(worker_tmp.iterdir()) == []  # the scratch folders are gone from the worker node


def test_a_killed_driver_is_finished_by_the_same_command_again(cluster, tmp_path):
    ray_cluster, worker_tmp = cluster
    driver = tmp_path / "driver"
    driver.mkdir()
    sweep_dir = driver / "runs" / "s"
    command, process = start_sweep(driver, ray_cluster.address, "lr=0.03,0.01")
    wait_for(lambda: epochs_written(sweep_dir / "trial-000") >= 2, process, "epoch")
    process.kill()  # kill -9: no clean-up at all
    process.communicate(timeout=30)
    stopped_at = epochs_written(sweep_dir / "trial-000")
    assert stopped_at < EPOCHS

    again = subprocess.run(
        command, cwd=driver, capture_output=True, text=True, timeout=180, env={**os.environ, "COLUMNS": "120"}
    )
    assert again.returncode == 0, again.stdout + again.stderr
    assert_every_epoch_once(sweep_dir, ["trial-000", "trial-001"])
    assert 1 <= resumed_from(sweep_dir, "trial-000")[0] <= stopped_at
    assert list(pd.read_csv(sweep_dir / "trials.csv").status) == ["completed"] * 2


def test_an_adaptive_search_runs_its_rounds_as_ray_tasks_that_report_every_epoch(cluster, tmp_path):
    """--search tpe --executor ray: the round's group trains on the worker node, and its pruning
    callback reports each epoch's value to the study from there (here SQLite on the one disk;
    across machines --storage names a server)."""
    import optuna

    ray_cluster, _ = cluster
    command = [
        sys.executable,
        "-m",
        "dlrun",
        *SWEEP,
        "epochs=3",
        "lr=interval(1e-3,1e-1)",
        "--search",
        "tpe",
        "--trials",
        "3",
        "--batch",
        "3",
        "--executor",
        "ray",
        "--address",
        ray_cluster.address,
        "--out",
        "runs/s",
    ]
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    study = optuna.load_study(study_name="s", storage=f"sqlite:///{tmp_path / 'runs/s/study.db'}")
    finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(finished) == 3
    for trial in finished:
        assert sorted(trial.intermediate_values) == [1, 2, 3]
        run_dir = tmp_path / "runs/s" / trial.user_attrs["run_dir"].rpartition("/")[2]
        assert list(pd.read_csv(run_dir / "metrics.csv").epoch) == [1, 2, 3]


# The user's module writes, when it is imported, which process imported it from which file and
# whether the config folder sits beside it: the worker's line must name a copy of the driver's
# folder, which only Ray's working_dir makes (the worker node shares no cwd with the driver).
USER_NETS = """
import json
import math
import os
from pathlib import Path

from flax import nnx

with open({log!r}, "a") as log:
    here = Path(__file__).resolve().parent
    log.write(json.dumps({{"pid": os.getpid(), "file": str(Path(__file__).resolve()),
                          "conf": (here / "conf" / "model" / "tiny.yaml").is_file()}}) + "\\n")


class Tiny(nnx.Module):
    def __init__(self, width, outputs, input_shape, rngs):
        self.hidden = nnx.Linear(math.prod(input_shape), width, rngs=rngs)
        self.output = nnx.Linear(width, outputs, rngs=rngs)

    def __call__(self, x):
        return self.output(nnx.relu(self.hidden(x)))
"""


def test_a_sweep_of_the_users_module_imports_it_on_the_worker_from_the_shipped_folder(cluster, tmp_path):
    """--config-dir conf model=tiny, from the folder holding nets.py: the groups run on the
    worker node, which imports nets.py from Ray's copy of that folder (conf/ inside it)."""
    ray_cluster, _ = cluster
    driver, imports = tmp_path / "project", tmp_path / "imports.jsonl"
    (driver / "conf" / "model").mkdir(parents=True)
    (driver / "nets.py").write_text(USER_NETS.format(log=str(imports)))
    (driver / "conf" / "model" / "tiny.yaml").write_text("_target_: nets.Tiny\nwidth: 8\n")
    command = [
        sys.executable,
        "-m",
        "dlrun",
        "sweep",
        "--config-dir",
        "conf",
        "model=tiny",
        "model.width=8,16",  # program shape: two groups, two tasks
        "lr=0.03,0.01",
        "data=spirals",
        "data.n_samples=600",
        "data.val_size=100",
        "data.n_test=100",
        "epochs=3",
        "logger=tensorboard",  # the driver writes the event files, as it does the folders
        "--executor",
        "ray",
        "--address",
        ray_cluster.address,
        "--out",
        "runs/s",
    ]
    result = subprocess.run(command, cwd=driver, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    sweep_dir = driver / "runs" / "s"
    trials = [f"trial-00{i}" for i in range(4)]
    assert_every_epoch_once(sweep_dir, trials, epochs=3)
    assert list(pd.read_csv(sweep_dir / "trials.csv").status) == ["completed"] * 4
    for trial in trials:  # the worker recorded the driver's folder, for --resume from anywhere
        summary = json.loads((sweep_dir / trial / "summary.json").read_text())
        assert summary["config_dir"] == str(driver / "conf")
    for trial in trials:  # TensorBoard's own reader: each epoch once
        assert tensorboard_steps(sweep_dir / trial) == [1, 2, 3]
    lines = [json.loads(line) for line in imports.read_text().splitlines()]
    on_driver = [line for line in lines if line["file"] == str((driver / "nets.py").resolve())]
    elsewhere = [line for line in lines if line not in on_driver]
    assert len(on_driver) == 1  # the driver's check, before anything trains
    assert elsewhere and all(line["pid"] != on_driver[0]["pid"] for line in elsewhere)
    for line in elsewhere:  # Ray's copy of the project on the worker node, conf/ with it
        assert line["file"].endswith("/nets.py") and line["conf"]


@pytest.mark.slow  # starts a Ray instance of its own: ~25 s on an idle 2-core machine
def test_a_local_ray_stopped_by_ctrl_c_and_run_again_trains_what_this_process_would(tmp_path):
    """No --address: a local Ray instance, started and shut down by the command. Ctrl-C (to
    the whole process group, as a terminal sends it) stops the group after an epoch; the same
    command again finishes it, and the curves are those of the local executor (a constant lr,
    so that resuming changes no schedule)."""
    sweep = [
        sys.executable,
        "-m",
        "dlrun",
        "sweep",
        "data=xor",
        "lr=0.1,0.01",
        "batch_size=8",
        "schedule=constant",
        "epochs=12",
    ]
    ray_sweep = [*sweep, "--executor", "ray", "--out", "ray"]
    process = subprocess.Popen(
        ray_sweep,
        cwd=tmp_path,
        start_new_session=True,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    wait_for(lambda: epochs_written(tmp_path / "ray" / "trial-000") >= 1, process, "epoch")
    os.killpg(process.pid, signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130, output
    assert list(pd.read_csv(tmp_path / "ray" / "trials.csv").status) == ["interrupted"] * 2
    assert epochs_written(tmp_path / "ray" / "trial-000") < 12
    for command in (ray_sweep, [*sweep, "--out", "local"]):
        done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
    for trial in ("trial-000", "trial-001"):
        ray_curve, local_curve = (
            pd.read_csv(tmp_path / where / trial / "metrics.csv") for where in ("ray", "local")
        )
        columns = ["epoch", "train_loss", "val_loss", "val_accuracy"]
        pd.testing.assert_frame_equal(ray_curve[columns], local_curve[columns], rtol=FLOAT32_RTOL)


def test_groups_sharing_a_node_run_their_passes_side_by_side_on_their_share_of_cores():
    """--cpus-per-group below a node's cores: a group's one-trial passes run side by side on
    that many cores (and one core means single-threaded XLA); by default a group has the node."""
    from dlrun.sweep.ray_executor import RayExecutor

    shared = RayExecutor(cpus_per_group=3)
    shared.gpus = 0
    assert shared.task_options()["runtime_env"] == {"env_vars": {"DLRUN_SIDE_BY_SIDE": "3"}}
    single = RayExecutor(cpus_per_group=1)
    single.gpus = 0
    env = single.task_options()["runtime_env"]["env_vars"]
    assert env["DLRUN_SIDE_BY_SIDE"] == "1" and "--xla_cpu_multi_thread_eigen=false" in env["XLA_FLAGS"]
    whole = RayExecutor()
    whole.gpus, whole.cpus = 0, 2  # what the cluster's smallest node gives it
    assert "runtime_env" not in whole.task_options()
