"""The run folders are the truth: faults a user meets (kill -9, a deleted or foreign study.db, a
copied folder, a second process on the same folder) never pair a folder with values it did not
train, never train a configuration twice, and the same command again finishes the work."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pandas as pd
import pytest
import yaml

from dlrun.sweep import study_store as store
from dlrun.sweep.folder import same_value, trained_value
from dlrun.sweep.search import default_batch

SPACE = ["data=spirals", "model.hidden=[16]", "batch_size=32", "optim=momentum", "lr=interval(1e-3,1)"]
TPE = ["--search", "tpe", "--search-seed", "5"]
# an epoch of these takes ~30 ms on 2 cores: 100 of them let a kill land while trials train
EPOCHS = 100
SLOW = ["data.n_samples=20000", f"epochs={EPOCHS}"]


def dlrun(*args) -> list:
    return [sys.executable, "-m", "dlrun", *args]


def search(out: Path, *extra) -> list:
    return dlrun("sweep", *SPACE, *TPE, "--trials", "4", "--batch", "2", *extra, "--out", str(out))


def finish(args: list, cwd=None) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, cwd=cwd)
    assert done.returncode == 0, done.stdout + done.stderr
    return done


def statuses(out: Path) -> dict:
    found = {}
    for path in out.glob("trial-*/summary.json"):
        try:
            found[path.parent.name] = json.loads(path.read_text())["status"]
        except (ValueError, OSError):
            pass
    return found


def epochs_written(out: Path) -> int:
    return sum(max(0, len(path.read_text().splitlines()) - 1) for path in out.glob("trial-*/metrics.csv"))


def kill_when(process: subprocess.Popen, ready, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline and not ready() and process.poll() is None:
        time.sleep(0.05)
    assert process.poll() is None, "the sweep ended before the fault could land"
    process.send_signal(signal.SIGKILL)
    process.wait()


def assert_index_is_the_folders(out: Path, keys=("lr",)) -> pd.DataFrame:
    """Every row of trials.csv holds what its folder trained and how it ended."""
    index = pd.read_csv(out / "trials.csv")
    for row in index.to_dict("records"):
        run = out / row["folder"]
        config = yaml.safe_load((run / "config.yaml").read_text())
        for key in keys:
            assert same_value(trained_value(config, key), str(row[key])), (run, key, row[key])
        assert row["status"] == json.loads((run / "summary.json").read_text())["status"]
    return index


def assert_trained_once(out: Path, trials: int, epochs: int) -> None:
    """`trials` folders, each trained through every epoch exactly once."""
    runs = sorted(out.glob("trial-*"))
    assert len(runs) == trials, runs
    for run in runs:
        assert list(pd.read_csv(run / "metrics.csv").epoch) == list(range(1, epochs + 1)), run
    lrs = [yaml.safe_load((run / "config.yaml").read_text())["lr"] for run in runs]
    assert len(set(lrs)) == len(lrs), lrs


def assert_study_mirrors(out: Path, trials: int) -> None:
    study = optuna.load_study(
        study_name=yaml.safe_load((out / "sweep.yaml").read_text())["study"],
        storage=f"sqlite:///{out / 'study.db'}",
    )
    counted = [t for t in study.trials if "dlrun:surplus" not in t.system_attrs]
    assert len(counted) == trials and all(t.state.is_finished() for t in counted)
    for trial in counted:
        config = yaml.safe_load((out / trial.user_attrs["run_dir"] / "config.yaml").read_text())
        assert config["lr"] == trial.params["lr"]
        curve = pd.read_csv(out / trial.user_attrs["run_dir"] / "metrics.csv")
        assert trial.intermediate_values == dict(zip(curve.epoch, curve.val_accuracy))


def no_process_left(out: Path) -> list:
    """Processes whose command line names the folder (a sweep or a worker of it)."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit() and int(proc.name) != os.getpid():
            try:
                line = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if str(out) in line:
                found.append(line)
    return found


def test_a_deleted_study_is_rebuilt_from_the_folders_and_nothing_retrains(tmp_path):
    out = tmp_path / "s"
    finish(search(out, "epochs=2"))
    before = pd.read_csv(out / "trials.csv")
    mtimes = {path: path.stat().st_mtime_ns for path in out.glob("trial-*/*") if path.is_file()}
    (out / "study.db").unlink()
    again = finish(search(out, "epochs=2"))
    assert "rebuilt" in again.stderr and "4 of 4 trials already finished" in again.stderr
    assert {path: path.stat().st_mtime_ns for path in mtimes} == mtimes
    index = assert_index_is_the_folders(out)
    assert index.equals(before)
    assert_study_mirrors(out, 4)


def test_a_study_of_another_sweep_is_refused_in_one_line(tmp_path):
    finish(search(tmp_path / "a", "epochs=1"))
    other = dlrun(
        "sweep",
        *SPACE,
        "--search",
        "tpe",
        "--search-seed",
        "9",
        "--trials",
        "4",
        "--batch",
        "2",
        "epochs=1",
        "--study",
        "a",
        "--out",
        str(tmp_path / "b"),
    )
    finish(other)
    shutil.copy(tmp_path / "b" / "study.db", tmp_path / "a" / "study.db")
    index = (tmp_path / "a" / "trials.csv").read_bytes()
    refused = subprocess.run(search(tmp_path / "a", "epochs=1"), capture_output=True, text=True)
    assert refused.returncode == 2, refused.stderr
    lines = refused.stderr.strip().splitlines()
    assert "does not match" in lines[-1] and "Traceback" not in refused.stderr
    assert (tmp_path / "a" / "trials.csv").read_bytes() == index


def test_the_default_batch_lets_a_model_based_sampler_learn():
    assert default_batch("tpe", 16, fits=64) == 4  # four rounds, the last three learn
    assert default_batch("cmaes", 32, fits=64) == 8
    assert default_batch("tpe", 256, fits=16) == 16  # never past one group's memory
    assert default_batch("qmc", 16, fits=64) == 16  # a fixed sequence learns nothing
    assert default_batch("tpe", 2, fits=64) == 1
    assert default_batch("nsga2", 2, fits=64) == 2  # a generation breeds from two parents at least
    assert default_batch("nsga2", 32, fits=4) == 4  # a generation asked over two rounds


def test_a_second_train_into_a_folder_in_use_is_refused_and_says_by_whom(tmp_path):
    out = tmp_path / "run"
    args = dlrun("train", *SPACE[:4], "lr=0.05", "data.n_samples=20000", "epochs=400", "--out", str(out))
    first = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (out / "metrics.csv").exists() and time.time() < deadline:
        time.sleep(0.05)
    second = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert first.poll() is None, "the first run ended before the second one started"
    assert second.returncode == 2, second.stderr
    assert f"pid {first.pid}" in second.stderr and "in use" in second.stderr
    assert len(second.stderr.strip().splitlines()) == 1
    first.send_signal(signal.SIGTERM)  # honoured: it stops after its epoch, resumable
    assert first.wait(timeout=60) == 130
    assert not (out / ".dlrun.lock").exists()  # the note goes with the claim
    again = finish(args)
    assert "continuing" in again.stderr
    assert list(pd.read_csv(out / "metrics.csv").epoch) == list(range(1, 401))


def fault_kill_early(out, args):
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kill_when(process, lambda: epochs_written(out) >= 1)
    return out


def fault_kill_between_rounds(out, args):
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    kill_when(
        process,
        lambda: (
            list(statuses(out).values()).count("completed") >= 2 and epochs_written(out) > 2 * EPOCHS + 10
        ),
    )
    return out


def fault_study_deleted_after_kill(out, args):
    fault_kill_between_rounds(out, args)
    (out / "study.db").unlink()
    return out


def fault_copied_after_kill(out, args):
    fault_kill_between_rounds(out, args)
    copy = out.parent / "copy"
    subprocess.run(["cp", "-a", str(out), str(copy)], check=True)
    shutil.rmtree(out)  # a move: nothing of the old path is left to lean on
    return copy


def fault_second_process(out, args):
    """A second process on the folder shares the search; the first is killed while both run,
    and the second takes its trials over once its claims are gone."""
    first, second = (
        subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for _ in "12"
    )
    kill_when(first, lambda: epochs_written(out) >= 2)
    assert second.wait(timeout=600) == 0
    return out


def fault_orphaned_workers(out, args):
    process = subprocess.Popen(
        [*args, "--jobs", "2", "--max-group", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    kill_when(process, lambda: epochs_written(out) >= 2)
    return out


FAULTS = [
    fault_kill_early,
    fault_kill_between_rounds,
    fault_study_deleted_after_kill,
    fault_copied_after_kill,
    fault_second_process,
    fault_orphaned_workers,
]


@pytest.mark.slow
@pytest.mark.parametrize("fault", FAULTS, ids=lambda fault: fault.__name__.removeprefix("fault_"))
def test_after_each_fault_the_same_command_finishes_the_search_exactly_once(tmp_path, fault):
    out = tmp_path / "s"
    where = fault(out, search(out, *SLOW))
    deadline = time.time() + 20  # a killed sweep's workers see their parent die in seconds
    while no_process_left(out) and time.time() < deadline:
        time.sleep(0.2)
    assert not no_process_left(out)
    finish(search(where, *SLOW))
    assert_index_is_the_folders(where)
    assert_trained_once(where, trials=4, epochs=EPOCHS)
    assert_study_mirrors(where, trials=4)
    assert not no_process_left(where)


def test_a_trial_asked_by_a_process_killed_before_it_named_a_folder_frees_its_place(tmp_path):
    """A kill between `study.ask` and naming the trial's folder leaves a RUNNING trial with no
    folder; the next run gives its place in the budget back instead of counting it forever."""
    out = tmp_path / "s"
    finish(dlrun("sweep", *SPACE, *TPE, "--trials", "2", "--batch", "2", "epochs=1", "--out", str(out)))
    record = yaml.safe_load((out / "sweep.yaml").read_text())
    study = optuna.load_study(study_name=record["study"], storage=f"sqlite:///{out / 'study.db'}")
    lost = study.ask()
    study._storage.set_trial_system_attr(lost._trial_id, store.OWNER, f"{socket.gethostname()}:999999999")
    for key, value in (("sweep_id", record["id"]), ("sweep_folder", str(out.resolve()))):
        study._storage.set_trial_user_attr(lost._trial_id, key, value)
    finish(search(out, "epochs=1"))
    assert_trained_once(out, trials=4, epochs=1)
    assert_study_mirrors(out, trials=4)
    given_back = study.trials[lost.number]  # read from the storage again
    assert given_back.system_attrs[store.SURPLUS].startswith("asked by a process that died")
