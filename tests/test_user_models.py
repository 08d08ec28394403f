"""A model of the user's own (dlrun/models/user.py): an NNX or Linen module in a file of the
working directory, named by `model=user model._target_=FILE.CLASS`, trained, swept and resumed
by the real CLI (`python -m dlrun`, cwd = the user's folder) on a little of MNIST.
"""

import csv
import json
import os
import subprocess
import sys
import textwrap

import flax.serialization
import numpy as np
import pytest
import yaml
from conftest import SHARED_DATA

NETS = """
import math

import flax.linen as nn
from flax import nnx


class WideMLP(nnx.Module):
    def __init__(self, width, depth, outputs, input_shape, rngs):
        sizes = [math.prod(input_shape)] + [width] * depth
        self.hidden = nnx.List([nnx.Linear(a, b, rngs=rngs) for a, b in zip(sizes, sizes[1:])])
        self.output = nnx.Linear(sizes[-1], outputs, rngs=rngs)

    def __call__(self, x):
        x = x.reshape(x.shape[0], -1)
        for layer in self.hidden:
            x = nnx.relu(layer(x))
        return self.output(x)


class Regularised(nnx.Module):
    def __init__(self, width, rate, outputs, input_shape, rngs):
        self.hidden = nnx.Linear(math.prod(input_shape), width, rngs=rngs)
        self.hidden_bn = nnx.BatchNorm(width, rngs=rngs)
        self.dropout = nnx.Dropout(rate, rngs=rngs)
        self.output = nnx.Linear(width, outputs, rngs=rngs)

    def __call__(self, x, train=False):
        x = self.hidden_bn(self.hidden(x.reshape(x.shape[0], -1)), use_running_average=not train)
        return self.output(self.dropout(nnx.relu(x), deterministic=not train))


class LinenMLP(nn.Module):
    width: int
    outputs: int

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Dense(self.width, name="hidden")(x.reshape(x.shape[0], -1)))
        return nn.Dense(self.outputs, name="output")(x)


class WrongShape(nnx.Module):
    def __init__(self, outputs, input_shape, rngs):
        self.output = nnx.Linear(math.prod(input_shape), outputs + 1, rngs=rngs)

    def __call__(self, x):
        return self.output(x.reshape(x.shape[0], -1))


class NotFlax:
    pass
"""

USER = ["model=user", "data=mnist", "data.subset=2000", "data.val_size=1000"]
WIDE = [*USER, "model._target_=nets.WideMLP", "+model.width=64", "+model.depth=1"]


@pytest.fixture
def folder(tmp_path):
    (tmp_path / "nets.py").write_text(NETS)
    (tmp_path / "broken.py").write_text("def f(:\n")
    return tmp_path


def dlrun(folder, *args):
    env = {**os.environ, "COLUMNS": "200", "DLRUN_DATA_DIR": str(SHARED_DATA)}
    return subprocess.run(
        [sys.executable, "-m", "dlrun", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def trained(folder, *args):
    result = dlrun(folder, "train", *args, "--out", "run")
    assert result.returncode == 0, result.stdout + result.stderr
    with open(folder / "run" / "metrics.csv") as file:
        rows = list(csv.DictReader(file))
    return json.loads((folder / "run" / "summary.json").read_text()), rows


@pytest.mark.slow
def test_an_nnx_module_trains_and_the_same_command_again_finds_it_done(folder):
    summary, rows = trained(folder, *WIDE, "epochs=2", "lr=3e-3")
    assert summary["status"] == "completed"
    assert float(rows[1]["train_loss"]) < float(rows[0]["train_loss"])
    assert summary["test_accuracy"] > 0.6  # chance is 0.1
    assert summary["params"] == 784 * 64 + 64 + 64 * 10 + 10
    config = yaml.safe_load((folder / "run" / "config.yaml").read_text())["model"]
    assert (config["_target_"], config["width"], config["depth"]) == ("nets.WideMLP", 64, 1)
    again = dlrun(folder, "train", *WIDE, "epochs=2", "lr=3e-3", "--out", "run")
    assert again.returncode == 0 and "nothing to do" in again.stdout + again.stderr, again.stderr


@pytest.mark.slow
def test_a_linen_module_trains(folder):
    summary, rows = trained(
        folder, *USER, "model._target_=nets.LinenMLP", "+model.width=32", "epochs=2", "lr=3e-3"
    )
    assert float(rows[1]["train_loss"]) < float(rows[0]["train_loss"])
    assert summary["test_accuracy"] > 0.6
    assert {"grad_norm_hidden", "grad_norm_output"} <= set(rows[0])  # layers by their names


@pytest.mark.slow
def test_an_nnx_module_with_dropout_and_batch_norm_trains_its_batch_statistics(folder):
    args = [*USER, "model._target_=nets.Regularised", "+model.width=32", "+model.rate=0.2"]
    summary, rows = trained(folder, *args, "epochs=2", "lr=3e-3", "model.trainable=hidden+output")
    assert summary["test_accuracy"] > 0.6
    stats = flax.serialization.msgpack_restore((folder / "run" / "checkpoints" / "last.msgpack").read_bytes())
    found = next(value for key, value in _items(stats) if key.endswith("batch_stats"))
    # nnx.BatchStat starts at mean 0, var 1: the training steps moved both
    assert np.abs(found["hidden_bn"]["mean"]).max() > 0 and np.abs(found["hidden_bn"]["var"] - 1).max() > 0


def _items(tree, prefix=""):
    for key, value in tree.items():
        yield f"{prefix}{key}", value
        if isinstance(value, dict) and not key.endswith("batch_stats"):
            yield from _items(value, f"{prefix}{key}/")


@pytest.mark.slow
def test_an_lr_by_seed_sweep_of_a_user_module_is_one_compiled_group(folder):
    result = dlrun(folder, "sweep", *WIDE, "lr=0.01,0.003", "seed=0,1", "epochs=1", "--out", "sw")
    assert result.returncode == 0, result.stdout + result.stderr
    plan = yaml.safe_load((folder / "sw" / "sweep.yaml").read_text())["plan"]
    assert [len(group["trials"]) for group in plan["groups"]] == [4]
    with open(folder / "sw" / "trials.csv") as file:
        assert [row["status"] for row in csv.DictReader(file)] == ["completed"] * 4


def test_a_swept_field_of_a_user_module_splits_the_groups(folder):
    result = dlrun(
        folder, "sweep", *WIDE[:-2], "+model.width=16,32", "+model.depth=1", "lr=0.1,0.01", "--dry-run"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 trials (grid) in 2 groups" in " ".join(result.stdout.split())


@pytest.mark.slow
def test_a_tpe_search_of_a_user_module_prunes_and_its_runs_are_diagnosed_and_exported(folder):
    """The issue's adaptive command on a user module: a field of the module and lr sampled by
    TPE, pruned inside groups; `dlrun report` diagnoses each trial, `dlrun export` writes them."""
    search = [
        "model=user",
        "model._target_=nets.WideMLP",
        "+model.width=choice(8,32)",
        "+model.depth=1",
        "lr=interval(1e-3,1)",
        "data=spirals",
        "epochs=4",
        "--search",
        "tpe",
        "--search-seed",
        "0",
        "--trials",
        "8",
        "--batch",
        "4",
        "--pruner",
        "sha",
        "--min-epochs",
        "1",
    ]
    result = dlrun(folder, "sweep", *search, "--out", "s")
    assert result.returncode == 0, result.stdout + result.stderr
    with open(folder / "s" / "trials.csv") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 8 and "pruned" in {row["status"] for row in rows}
    assert {row["+model.width"] for row in rows} == {"8", "32"}  # the key as swept
    report = dlrun(folder, "report", "s", "--format", "csv")
    assert report.returncode == 0, report.stderr
    table = list(csv.DictReader(report.stdout.splitlines()))
    assert len(table) == 8 and all(row["diagnosis"] for row in table)
    exported = dlrun(folder, "export", "s", "tb", "--to", "tensorboard")
    assert exported.returncode == 0, exported.stderr
    assert len(list((folder / "tb").rglob("events.out.tfevents.*"))) >= 8


BAD = [
    ("no-target", [], "model=user needs model._target_=module.name"),
    ("missing-file", ["model._target_=gone.Net"], "no gone.py (nor package gone/) in the working directory"),
    ("syntax-error", ["model._target_=broken.Net"], "broken.py line 1: invalid syntax"),
    (
        "missing-class",
        ["model._target_=nets.Wide"],
        "nets.py has no 'Wide' (model._target_=nets.Wide; it defines: WideMLP",
    ),
    ("not-flax", ["model._target_=nets.NotFlax"], "nets.py: NotFlax is not a Flax module"),
    (
        "missing-argument",
        ["model._target_=nets.WideMLP", "+model.width=8"],
        "nets.py: WideMLP needs argument 'depth'",
    ),
    (
        "unknown-argument",
        ["model._target_=nets.LinenMLP", "+model.width=8", "+model.depth=2"],
        "nets.py: LinenMLP takes no argument 'depth' (set by model.depth; it takes: width, outputs)",
    ),
    (
        "wrong-shape",
        ["model._target_=nets.WrongShape"],
        "nets.py: WrongShape(outputs=10, input_shape=(28, 28, 1)) returns shape (2, 11)",
    ),
    (
        "built-in-knob",
        ["model._target_=nets.LinenMLP", "+model.width=8", "activation=tanh"],
        "activation=tanh is for the built-in models: nets.py: LinenMLP takes no 'activation' argument",
    ),
    (
        "target-on-a-built-in",
        ["model=mlp", "model._target_=nets.WideMLP"],
        "(a module of your own: model=user",
    ),
]


@pytest.mark.parametrize("args, message", [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_a_bad_user_module_is_one_line_exit_2_and_nothing_written(folder, args, message):
    before = sorted(folder.rglob("*"))
    chosen = [] if any(arg.startswith("model=") for arg in args) else ["model=user"]
    result = dlrun(folder, "train", *chosen, *USER[1:], *args, "epochs=1", "--out", "run")
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in lines[0], lines
    assert message in lines[0]
    assert sorted(p for p in folder.rglob("*") if "__pycache__" not in p.parts) == [
        p for p in before if "__pycache__" not in p.parts
    ]


def test_a_user_config_round_trips_through_the_run_folder_format(folder, monkeypatch):
    """config.yaml as a run folder holds it loads back with the module's own fields (resume
    reads it with drop_foreign), and a plain option of only `_target_` and its arguments, as a
    user's own YAML gives it, reads as the user option."""
    from dlrun.config.load import typed_config
    from dlrun.config.schema import names_of

    monkeypatch.chdir(folder)
    composed = textwrap.dedent(
        """
        model: {name: user, trainable: all, _target_: nets.WideMLP, width: 64, depth: 1}
        data: {name: mnist}
        optim: {name: adam}
        schedule: {name: cosine}
        """
    )
    cfg = typed_config(yaml.safe_load(composed), drop_foreign=True)
    assert (cfg.model.width, cfg.model.depth, cfg.model._target_) == (64, 1, "nets.WideMLP")
    plain = {"model": {"_target_": "nets.WideMLP", "width": 8}, "data": {"name": "mnist"}}
    assert names_of(plain) == {"model": "user", "data": "mnist"}
