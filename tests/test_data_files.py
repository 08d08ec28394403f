"""Data from the user's own files (dlrun/data/files.py): `data=npz` and `data=csv`, trained
through the real CLI on small separable problems generated here, and each bad file refused in
one line naming it, exit 2, nothing written.

In-process (typer's CliRunner, as tests/test_cli.py): the JAX import is paid once.
"""

import csv
import hashlib
import json

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from dlrun.cli import app
from dlrun.config.load import compose_config
from dlrun.data import describe, files

runner = CliRunner()
# Small and quick: 600 examples, batches of 16 so 3 epochs are enough steps to learn.
TRAIN = ["model=mlp", "model.hidden=[16]", "epochs=3", "lr=0.03", "batch_size=16"]
SIZES = ["data.val_size=100", "data.test_size=100"]


def separable(n=600, k=3, features=4, seed=0):
    """k classes, each a gaussian cloud shifted by 4 along its own axis: a line separates them."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    x = rng.normal(size=(n, features)) + 4.0 * np.eye(k, features)[y]
    return x.astype(np.float32), y


@pytest.fixture
def folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # relative data.path resolves from here, as from a shell
    return tmp_path


def dlrun(*args):
    return runner.invoke(app, [str(arg) for arg in args])


def trained(*args):
    result = dlrun("train", *args, *TRAIN, "--out", "run")
    assert result.exit_code == 0, result.output
    with open("run/metrics.csv") as file:
        rows = list(csv.DictReader(file))
    with open("run/summary.json") as file:
        return json.load(file), rows


def test_an_npz_of_x_and_y_trains_with_carved_stratified_splits(folder):
    x, y = separable()
    np.savez("three.npz", x=x, y=y)
    summary, _ = trained("data=npz", "data.path=three.npz", *SIZES)
    assert (summary["task"], summary["class_names"]) == ("classification", ["0", "1", "2"])
    assert (summary["n_train"], summary["n_val"], summary["n_test"]) == (400, 100, 100)
    assert summary["test_accuracy"] > 0.9  # chance is 1/3
    source = summary["data_source"]
    assert source["path"] == str(folder / "three.npz")
    assert source["sha256"] == hashlib.sha256((folder / "three.npz").read_bytes()).hexdigest()


def test_an_npz_with_its_own_splits_is_used_as_given(folder):
    x, y = separable(n=900, k=2)
    np.savez("given.npz", x_train=x[:500], y_train=y[:500], x_val=x[500:650], y_val=y[500:650],
             x_test=x[650:], y_test=y[650:])  # fmt: skip
    summary, _ = trained("data=npz", "data.path=given.npz")
    assert (summary["n_train"], summary["n_val"], summary["n_test"]) == (500, 150, 250)
    assert summary["test_accuracy"] > 0.9


def test_npz_images_get_a_channel_axis_and_per_class_caps_the_training_set(folder):
    x, y = separable(n=600, k=2, features=36)
    np.savez("images.npz", x=x.reshape(600, 6, 6), y=y)
    summary, _ = trained("data=npz", "data.path=images.npz", *SIZES, "data.per_class=50")
    assert summary["n_train"] == 100
    assert summary["params"] == 36 * 16 + 16 + 16 * 2 + 2
    assert describe(compose_config(["data=npz", "data.path=images.npz"]).data).input_shape == (6, 6, 1)


def test_a_file_changed_between_runs_is_read_again(folder):
    x, y = separable()
    np.savez("three.npz", x=x, y=y)
    cfg = compose_config(["data=npz", "data.path=three.npz"]).data
    first = describe(cfg)
    assert files.prepare(cfg, files.read_npz) is files.prepare(cfg, files.read_npz)  # read once
    np.savez("three.npz", x=x[:500], y=y[:500])
    again = describe(cfg)
    assert again.source != first.source and again.n_train == first.n_train - 100


def test_a_relative_data_path_is_kept_absolute_so_a_resume_from_elsewhere_reads_it(folder, monkeypatch):
    x, y = separable()
    (folder / "proj").mkdir()
    np.savez(folder / "proj" / "three.npz", x=x, y=y)
    monkeypatch.chdir(folder / "proj")
    summary, _ = trained("data=npz", "data.path=three.npz", *SIZES)
    config = yaml.safe_load((folder / "proj" / "run" / "config.yaml").read_text())
    assert config["data"]["path"] == str(folder / "proj" / "three.npz")
    monkeypatch.chdir(folder)  # where ./three.npz is no file
    resumed = dlrun("train", "--resume", "proj/run", "epochs=4")
    assert resumed.exit_code == 0, resumed.output
    again = json.loads((folder / "proj" / "run" / "summary.json").read_text())
    assert again["epochs_run"] == 4 and again["data_source"] == summary["data_source"]


def test_a_csv_with_a_word_target_is_classification_over_the_chosen_classes(folder):
    x, y = separable()
    frame = pd.DataFrame(x, columns=["a", "b", "c", "d"])
    frame["kind"] = np.array(["cat", "dog", "emu"])[y]
    frame.to_csv("animals.csv", index=False)
    summary, _ = trained(
        "data=csv", "data.path=animals.csv", "data.target=kind", *SIZES, "data.classes=[2,0]"
    )
    assert summary["class_names"] == ["emu", "cat"]  # in the order data.classes gives
    assert summary["n_train"] == 400 - 200 and summary["test_accuracy"] > 0.9


def test_a_csv_with_a_real_valued_target_is_regression_and_its_loss_falls(folder):
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(600, 3))
    frame = pd.DataFrame(x, columns=["u", "v", "w"]).assign(price=x @ [3.0, -2.0, 1.0] + 0.5)
    frame.to_csv("prices.csv", index=False)
    summary, rows = trained("data=csv", "data.path=prices.csv", "data.target=price", *SIZES)
    assert summary["task"] == "regression" and "class_names" not in summary
    assert float(rows[-1]["train_loss"]) < 0.5 * float(rows[0]["train_loss"])


def test_a_sweep_over_lr_on_an_npz_is_one_group(folder):
    x, y = separable()
    np.savez("three.npz", x=x, y=y)
    result = dlrun(
        "sweep", "data=npz", "data.path=three.npz", *SIZES, *TRAIN[:3], "lr=0.1,0.01", "--out", "sw"
    )
    assert result.exit_code == 0, result.output
    plan = yaml.safe_load((folder / "sw" / "sweep.yaml").read_text())["plan"]
    assert [len(group["trials"]) for group in plan["groups"]] == [2]


def _npz(**arrays):
    def write():
        np.savez("bad.npz", **arrays)

    return write


def _csv(frame):
    return lambda: pd.DataFrame(frame).to_csv("bad.csv", index=False)


def _bytes(name, data):
    return lambda: open(name, "wb").write(data)


X, Y = separable(n=60)
NAN = X.copy()
NAN[7, 2] = np.nan
NPZ = ["data=npz", "data.path=bad.npz"]
CSV = ["data=csv", "data.path=bad.csv", "data.target=y"]
BAD = [
    ("missing-file", lambda: None, ["data=npz", "data.path=gone.npz"], "gone.npz: cannot read it"),
    ("no-path", lambda: None, ["data=npz"], "data=npz needs data.path=FILE"),
    ("not-an-npz", _bytes("bad.npz", b"x,y\n1,2\n"), NPZ, "bad.npz: is not an .npz file"),
    ("not-a-csv", _bytes("bad.csv", bytes(range(256)) * 8), CSV, "bad.csv: is not a CSV text file"),
    ("missing-arrays", _npz(a=X, b=Y), NPZ, "bad.npz: has no arrays x and y (nor x_train and y_train)"),
    ("length-mismatch", _npz(x=X, y=Y[:-1]), NPZ, "bad.npz: x has 60 examples but y has 59"),
    ("nan", _npz(x=NAN, y=Y), NPZ, "bad.npz: x (train split) holds NaN or inf"),
    ("no-target", _csv({"a": X[:, 0], "b": Y}), CSV[:2], "bad.csv: data=csv needs data.target=COLUMN"),
    ("missing-target", _csv({"a": X[:, 0], "b": Y}), CSV, "bad.csv: has no column 'y' (data.target)"),
    ("empty-cell", _csv({"a": NAN[:, 2], "y": Y}), CSV, "bad.csv: column 'a' is empty at example 7"),
    ("word-feature", _csv({"a": ["p", "q"] * 30, "y": Y}), CSV, "bad.csv: column 'a' is not numeric"),
    ("too-few", _npz(x=X, y=Y), [*NPZ, "data.test_size=10"], "bad.npz: the 50 examples left after the test"),
    (
        "class-out-of-range",
        _npz(x=X, y=Y),
        [*NPZ, "data.val_size=10", "data.test_size=10", "data.classes=[0,5]"],
        "bad.npz: data.classes: 5 is not a class of npz; choices: 0..2",
    ),
    ("missing-label", _npz(x=X, y=Y + 1), NPZ, "bad.npz: no training example of class 0"),
]


@pytest.mark.parametrize("make, args, message", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_a_bad_file_is_one_line_naming_it_exit_2_and_nothing_written(folder, make, args, message):
    make()
    before = sorted(folder.rglob("*"))
    result = dlrun("train", *args, *TRAIN, "--out", "run")
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and "Traceback" not in lines[0], result.output
    assert message in lines[0]
    assert sorted(folder.rglob("*")) == before
