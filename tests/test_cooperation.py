"""Several `dlrun sweep` processes on one --out cooperate as Optuna's workers on one storage:
--trials is a budget they share, each trial is trained by one of them, exactly once, a
kill -9 of one leaves its trials to the others, and a search never trains a configuration the
study already holds."""

import subprocess

import pandas as pd
import pytest
import yaml
from test_integrity import (
    EPOCHS,
    SLOW,
    SPACE,
    TPE,
    assert_index_is_the_folders,
    assert_study_mirrors,
    assert_trained_once,
    dlrun,
    epochs_written,
    finish,
    kill_when,
)

GRID = ["data=spirals", "model.hidden=[16]", "batch_size=32", "lr=0.01,0.02,0.03,0.04", "seed=0,1"]


def started(args: list, logs, count: int = 2) -> list:
    """`count` processes of one command, started together; their output goes to files, which
    (unlike a pipe nobody reads while the test waits) never block them."""
    processes = []
    for number in range(count):
        with open(logs / f"sweep-{number}.log", "w") as log:
            process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT)
        process.log = logs / f"sweep-{number}.log"
        processes.append(process)
    return processes


def ended(process: subprocess.Popen) -> str:
    process.wait(timeout=600)
    output = process.log.read_text()
    assert process.returncode == 0, output
    return output


def assert_grid_trained_once(out, epochs: int) -> None:
    """Eight trials, each a distinct (lr, seed), every epoch trained once; trials.csv says so."""
    runs = sorted(out.glob("trial-*"))
    assert len(runs) == 8, runs
    points = set()
    for run in runs:
        assert list(pd.read_csv(run / "metrics.csv").epoch) == list(range(1, epochs + 1)), run
        config = yaml.safe_load((run / "config.yaml").read_text())
        points.add((config["lr"], config["seed"]))
    assert len(points) == 8, points
    index = assert_index_is_the_folders(out, keys=("lr", "seed"))
    assert list(index.status) == ["completed"] * 8


def search(out, *extra) -> list:
    return dlrun("sweep", *SPACE, *TPE, "--trials", "8", "--batch", "2", *extra, "--out", str(out))


@pytest.mark.slow
def test_two_searches_on_one_folder_share_the_budget_and_train_each_trial_once(tmp_path):
    out = tmp_path / "s"
    for process in started(search(out, "epochs=3"), tmp_path):
        ended(process)
    assert_trained_once(out, trials=8, epochs=3)  # distinct values: not one seeded stream twice
    assert_study_mirrors(out, trials=8)
    assert len(pd.read_csv(out / "trials.csv")) == 8


@pytest.mark.slow
def test_two_grid_sweeps_on_one_folder_take_the_groups_nobody_holds(tmp_path):
    out = tmp_path / "g"
    args = dlrun("sweep", *GRID, "epochs=3", "--max-group", "2", "--out", str(out))
    for process in started(args, tmp_path):
        ended(process)
    assert_grid_trained_once(out, epochs=3)


@pytest.mark.slow
def test_kill_9_of_one_grid_sweep_leaves_its_trials_to_the_other(tmp_path):
    out = tmp_path / "g"
    args = dlrun("sweep", *GRID, *SLOW, "--max-group", "2", "--out", str(out))
    first, second = started(args, tmp_path)
    kill_when(first, lambda: epochs_written(out) >= 2 * EPOCHS + 10)
    ended(second)  # it waits for the killed one's claims to go, then resumes its trials
    again = finish(args)
    assert "8 of 8 trials already finished" in again.stderr
    assert_grid_trained_once(out, epochs=EPOCHS)


def test_a_space_smaller_than_the_budget_is_said_and_trained_once_each(tmp_path):
    out = tmp_path / "f"
    args = dlrun("sweep", *SPACE[:4], "lr=0.05", "epochs=1", "activation=choice(relu,tanh)", *TPE)
    done = finish([*args, "--trials", "4", "--out", str(out)])
    assert "the space has 2 points, fewer than --trials 4: the search trains 2" in done.stderr
    runs = sorted(out.glob("trial-*"))
    activations = sorted(yaml.safe_load((run / "config.yaml").read_text())["activation"] for run in runs)
    assert activations == ["relu", "tanh"]
    assert sorted(pd.read_csv(out / "trials.csv").activation) == ["relu", "tanh"]
    again = finish([*args, "--trials", "4", "--out", str(out)])  # nothing left: no trial asked
    assert "2 of 2 trials already finished" in again.stderr
    assert sorted(out.glob("trial-*")) == runs
