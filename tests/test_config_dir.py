"""`--config-dir DIR` (Hydra's flag): the user's model/ data/ optim/ schedule/ options and
experiments/ studies join the shipped ones, a user's option of a shipped name wins, `dlrun list`
marks what is theirs, and the run folder records the folder for `--resume` and Ray.

The user's project is a folder with `conf/` and `nets.py` beside it; the commands run from
another folder, so the module is found beside the config folder, not in the working directory.
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import yaml

NETS = """
import math

from flax import nnx


class WideMLP(nnx.Module):
    def __init__(self, width, outputs, input_shape, rngs):
        self.hidden = nnx.Linear(math.prod(input_shape), width, rngs=rngs)
        self.output = nnx.Linear(width, outputs, rngs=rngs)

    def __call__(self, x):
        return self.output(nnx.relu(self.hidden(x.reshape(x.shape[0], -1))))
"""

OPTIONS = {
    "model/wide.yaml": "_target_: nets.WideMLP\nwidth: 16\n",
    # a shipped name: the user's wins (and must say which schema reads it)
    "model/mlp.yaml": "defaults: [mlp_schema]\nname: mlp\nhidden: [12]\n",
    "data/blobs_small.yaml": "defaults: [blobs]\nn_samples: 400\nval_size: 100\n",
    "experiments/wide_lr.yaml": (
        "# dlrun sweep --config-dir conf experiment=wide_lr\n# Shows: two step sizes.\n"
        "overrides: [model=wide, data=blobs_small, epochs=1]\nsweep:\n  lr: 0.1,0.01\n"
    ),
}


def make_project(root):
    (root / "nets.py").write_text(NETS)
    for name, text in OPTIONS.items():
        path = root / "conf" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    return elsewhere


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("project")
    return root, make_project(root)


def dlrun(cwd, *args):
    return subprocess.run(
        [sys.executable, "-m", "dlrun", *args],
        cwd=cwd,
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=300,
    )


def shown(cwd, *args) -> dict:
    result = dlrun(cwd, "config", "show", *args)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


def test_the_users_options_join_the_shipped_ones_and_win_on_a_shared_name(project):
    root, cwd = project
    conf = str(root / "conf")
    assert shown(cwd)["model"]["hidden"] == [512, 256]  # without the flag: dlrun's own mlp
    assert shown(cwd, "--config-dir", conf)["model"]["hidden"] == [12]
    wide = shown(cwd, "--config-dir", conf, "model=wide", "data=blobs_small", "model.width=32")
    assert wide["model"]["_target_"] == "nets.WideMLP" and wide["model"]["width"] == 32
    assert wide["data"]["name"] == "blobs" and wide["data"]["n_samples"] == 400
    assert shown(cwd, "--config-dir", conf, "model=lenet", "data=mnist")["model"]["name"] == "lenet"


def test_dlrun_list_marks_the_users_options_and_studies(project):
    root, cwd = project
    result = dlrun(cwd, "list", "--config-dir", str(root / "conf"))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    for mine in ("wide (yours)", "mlp (yours)", "blobs_small (yours)", "wide_lr (yours)"):
        assert mine in out
    assert "lenet (yours)" not in out and "lenet" in out
    assert f"(yours): from --config-dir {root / 'conf'}" in " ".join(out.split())
    plain = dlrun(cwd, "list").stdout
    assert "wide" not in plain and "(yours)" not in plain


@pytest.mark.parametrize(
    "setup, expected",
    [
        (lambda d: None, "no such folder"),
        (lambda d: (d.mkdir(), (d / "config.yaml").write_text("lr: 1\n")), "holds config.yaml"),
        (lambda d: (d.mkdir(), (d / "stuff").mkdir()), "has none of the folders dlrun reads (model/"),
        (
            lambda d: ((d / "model").mkdir(parents=True), (d / "model" / "mlp.yaml").write_text("a: 4\n")),
            "model/mlp.yaml: model option 'mlp' says neither which built-in it extends",
        ),
    ],
    ids=["missing", "config-yaml", "no-groups", "unnamed-option"],
)
def test_a_bad_config_folder_is_one_line_exit_2(tmp_path, setup, expected):
    folder = tmp_path / "conf"
    setup(folder)
    result = dlrun(tmp_path, "train", "--config-dir", str(folder), "epochs=1")
    assert result.returncode == 2, result.stderr
    assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr


def test_an_unknown_option_lists_the_users_choices_too(project):
    root, cwd = project
    result = dlrun(cwd, "train", "--config-dir", str(root / "conf"), "model=wider")
    assert result.returncode == 2
    assert "choose from: alexnet, autoencoder, cnn, lenet, mlp, resnet, user, vgg, wide" in result.stderr


@pytest.mark.slow
def test_a_run_records_the_folder_and_resume_from_elsewhere_finds_its_code(project, tmp_path):
    root, cwd = project
    run = tmp_path / "run"
    args = ["--config-dir", str(root / "conf"), "model=wide", "data=blobs_small", "schedule=constant"]
    first = dlrun(cwd, "train", *args, "epochs=1", "--out", str(run))
    assert first.returncode == 0, first.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["config_dir"] == str(root / "conf") and summary["params"] == 2 * 16 + 16 + 16 * 3 + 3
    # from a folder that has neither the config folder nor nets.py, and no --config-dir
    again = dlrun(tmp_path, "train", "--resume", str(run), "epochs=2")
    assert again.returncode == 0, again.stderr
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_run"] == 2


@pytest.mark.slow
def test_a_study_in_the_users_folder_sweeps_their_module(project, tmp_path):
    root, cwd = project
    out = tmp_path / "sweep"
    result = dlrun(cwd, "sweep", "--config-dir", str(root / "conf"), "experiment=wide_lr", "--out", str(out))
    assert result.returncode == 0, result.stderr
    record = yaml.safe_load((out / "sweep.yaml").read_text())
    assert record["config_dir"] == str(root / "conf")
    assert len(record["plan"]["groups"]) == 1  # lr x the user's module: one vectorised group
    summaries = [json.loads(p.read_text()) for p in sorted(out.glob("*/summary.json"))]
    assert sorted(s["config"]["lr"] for s in summaries) == [0.01, 0.1]
    assert all(s["status"] == "completed" and s["config"]["model"]["width"] == 16 for s in summaries)
    assert np.isfinite([s["best_val_loss"] for s in summaries]).all()
