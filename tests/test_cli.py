"""End-to-end runs of the `dlrun` command on small real data (MNIST subsets, generated sets)."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest
from conftest import needs_mnist
from typer.testing import CliRunner

from dlrun.cli import app

runner = CliRunner()
SMALL_MNIST = ["data.subset=2000", "data.val_size=1000", "epochs=2"]


def dlrun(*args):
    """Run the CLI in-process (the JAX import is paid once per test session)."""
    return runner.invoke(app, list(args))


@needs_mnist
def test_train_mlp_on_an_mnist_subset_writes_the_run_folder(tmp_path):
    out = tmp_path / "run"
    result = dlrun("train", "model=mlp", *SMALL_MNIST, "--out", str(out))
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_run"] == 2
    assert summary["params"] == 535818 and summary["test_accuracy"] > 0.85
    metrics = pd.read_csv(out / "metrics.csv")
    for column in (
        "epoch",
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
        "lr",
        "epoch_time_s",
        "grad_norm",
        "grad_norm_hidden1",
        "dead_fraction",
    ):
        assert column in metrics.columns
    assert list(metrics.epoch) == [1, 2] and metrics.train_loss.iloc[1] < metrics.train_loss.iloc[0]
    assert "lr: 0.001" in (out / "config.yaml").read_text()
    assert (out / "checkpoints" / "best.msgpack").exists()


@needs_mnist
def test_train_lenet_on_an_mnist_subset(tmp_path):
    out = tmp_path / "lenet"
    result = dlrun("train", "model=lenet", *SMALL_MNIST, "epochs=4", "--out", str(out))
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["params"] == 61706 and summary["test_accuracy"] > 0.8


def test_train_generated_data_with_every_knob_from_the_issue(tmp_path):
    out = tmp_path / "moons"
    result = dlrun(
        "train",
        "data=moons",
        "model=mlp",
        "model.hidden=[32]",
        "lr=0.1",
        "batch_size=64",
        "init=he_normal",
        "activation=tanh",
        "optim=momentum",
        "epochs=20",
        "schedule=cosine",
        "--out",
        str(out),
    )
    assert result.exit_code == 0, result.output
    assert json.loads((out / "summary.json").read_text())["test_accuracy"] > 0.95


def test_default_out_folder_is_runs_name_timestamp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = dlrun("train", "data=blobs", "model.hidden=[8]", "epochs=1")
    assert result.exit_code == 0, result.output
    (run_dir,) = (tmp_path / "runs" / "mlp-blobs").iterdir()
    assert (run_dir / "summary.json").exists()


def test_config_show_and_list():
    shown = dlrun("config", "show", "model=lenet")
    assert shown.exit_code == 0 and "name: lenet" in shown.output
    listed = dlrun("list")
    assert listed.exit_code == 0
    for name in ("lenet", "spirals", "nesterov", "warmup_cosine", "he_uniform", "maxout", "huber"):
        assert name in listed.output


def test_list_gives_every_model_its_parameter_counts_at_80_columns():
    from dlrun import models

    done = subprocess.run(
        [sys.executable, "-m", "dlrun", "list"],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "80"},
    )
    assert done.returncode == 0, done.stderr
    assert max(len(line) for line in done.stdout.splitlines()) <= 80
    rows = {line.split("│")[1].strip(): line for line in done.stdout.splitlines() if line.count("│") >= 4}
    # LeNet-5's counts worked by hand: conv 5x5 1->6 (pad 2), 6->16, 400/576 -> 120 -> 84 -> 10
    lenet_mnist = (25 * 6 + 6) + (25 * 6 * 16 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + 850
    lenet_cifar = lenet_mnist + 25 * 6 * 2 + (576 - 400) * 120
    assert f"{lenet_mnist:,}" in rows["lenet"] and f"{lenet_cifar:,}" in rows["lenet"]
    assert set(models.MODELS.names) <= set(rows)
    for name in models.MODELS.names:  # every model has both counts
        assert len([cell for cell in rows[name].split("│") if cell.strip().replace(",", "").isdigit()]) == 2


@pytest.mark.parametrize(
    "override, fragment",
    [
        ("model=unet", "unknown model 'unet'"),
        ("data=imagenet", "unknown data 'imagenet'"),
        ("optim=lion", "unknown optim 'lion'"),
        ("init=magic", "unknown init 'magic'"),
        ("activation=swish2", "unknown activation 'swish2'"),
        ("colour=red", "unknown config key 'colour'"),
        ("lr=-1", "lr must be > 0"),
        ("batch_size=0", "batch_size must be > 0"),
        ("lr=abc", "lr=abc is not a valid float"),
    ],
)
def test_bad_input_exits_2_with_one_line(override, fragment, tmp_path):
    result = dlrun("train", override, "--out", str(tmp_path / "never"))
    assert result.exit_code == 2
    assert fragment in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1
    assert not (tmp_path / "never").exists()  # nothing is written before validation passes


def test_missing_data_and_no_network_is_a_clean_error(tmp_path, monkeypatch):
    monkeypatch.setenv("DLRUN_DATA_DIR", str(tmp_path / "empty"))
    monkeypatch.setenv("DLRUN_CACHE_DIR", str(tmp_path / "cache"))
    result = dlrun("train", "data.subset=1000", "--out", str(tmp_path / "run"))
    assert result.exit_code == 2 and "could not be downloaded" in result.output
    assert "Traceback" not in result.output


def test_out_refuses_to_overwrite_a_run(tmp_path):
    out = tmp_path / "run"
    assert dlrun("train", "data=blobs", "model.hidden=[4]", "epochs=1", "--out", str(out)).exit_code == 0
    before = (out / "summary.json").read_text()
    result = dlrun("train", "data=blobs", "epochs=1", "--out", str(out))
    assert result.exit_code == 2 and "--resume" in result.output
    assert (out / "summary.json").read_text() == before


def test_resume_continues_from_the_last_epoch(tmp_path):
    out = tmp_path / "run"
    assert dlrun("train", "data=circles", "model.hidden=[16]", "epochs=2", "--out", str(out)).exit_code == 0
    result = dlrun("train", "--resume", str(out), "epochs=4")
    assert result.exit_code == 0, result.output
    assert list(pd.read_csv(out / "metrics.csv").epoch) == [1, 2, 3, 4]
    assert json.loads((out / "summary.json").read_text())["epochs_run"] == 4


@needs_mnist
def test_sigint_leaves_a_readable_interrupted_run(tmp_path):
    """The real console script, interrupted like Ctrl-C after its first epoch."""
    out = tmp_path / "run"
    command = [
        sys.executable,
        "-m",
        "dlrun",
        "train",
        "data=mnist",
        "data.subset=20000",
        "epochs=50",
        "--out",
        str(out),
    ]
    process = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "COLUMNS": "120"},
    )
    deadline = time.time() + 120
    while not (out / "metrics.csv").exists() and time.time() < deadline:
        time.sleep(0.2)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=120)
    assert process.returncode == 130, output
    assert "Traceback" not in output
    summary = json.loads((out / "summary.json").read_text())
    metrics = pd.read_csv(out / "metrics.csv")
    assert summary["status"] == "interrupted" and 1 <= len(metrics) < 50
    assert summary["test_accuracy"] > 0.8  # the test set is still evaluated on the last epoch
    resumed = dlrun("train", "--resume", str(out), "epochs=" + str(len(metrics) + 1))
    assert resumed.exit_code == 0, resumed.output
    assert json.loads((out / "summary.json").read_text())["status"] == "completed"


def test_version_is_the_installed_distributions():
    from importlib.metadata import version

    done = subprocess.run(
        [sys.executable, "-m", "dlrun", "--version"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stdout.strip() == f"dlrun {version('dlrun')}"
