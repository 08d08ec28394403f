"""Options that installed packages add by entry points (dlrun/plugins.py): two tiny
distributions installed for real (a package and its `.dist-info` with `entry_points.txt`, which
importlib.metadata reads as pip leaves them) on a folder of PYTHONPATH, and the real CLI
(`python -m dlrun`) choosing, listing and refusing their options.
"""

import json
import os
import subprocess
import sys

import pytest
import yaml
from conftest import SHARED_DATA

NETS = """
import math

from flax import nnx


class WideMLP(nnx.Module):
    def __init__(self, outputs, input_shape, rngs, width=8):
        self.hidden = nnx.Linear(math.prod(input_shape), width, rngs=rngs)
        self.output = nnx.Linear(width, outputs, rngs=rngs)

    def __call__(self, x):
        return self.output(nnx.relu(self.hidden(x.reshape(x.shape[0], -1))))
"""
DATA = """
import numpy as np


def load(n=300, k=3):
    rng = np.random.default_rng(0)
    y = np.arange(n) % k
    x = rng.normal(size=(n, 4)) + 4.0 * np.eye(k, 4)[y]
    return x.astype(np.float32), y
"""
GOOD = "tiny-dlrun-plugin 0.1"
ODD = "odd-plugin 2.0"
DISTRIBUTIONS = {
    ("tiny_dlrun_plugin", "tiny-dlrun-plugin", "0.1"): """
[dlrun.models]
wide = tiny_plugin.nets:WideMLP
twice = tiny_plugin.nets:WideMLP

[dlrun.data]
digits = tiny_plugin.data:load
""",
    ("odd_plugin", "odd-plugin", "2.0"): """
[dlrun.models]
mlp = tiny_plugin.nets:WideMLP
twice = tiny_plugin.nets:WideMLP
nomod = no_such_pkg.nets:Net
absent = tiny_plugin.nets:Absent
bare = tiny_plugin.nets
raises = tiny_plugin.bad:Net

[dlrun.data]
nodata = tiny_plugin.data:absent
""",
}
TINY = ["data.val_size=100", "data.test_size=100", "epochs=1", "batch_size=16", "lr=0.03"]


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A folder as `pip install --target` leaves it: the package and each distribution's metadata."""
    root = tmp_path_factory.mktemp("site")
    package = root / "tiny_plugin"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "nets.py").write_text(NETS)
    (package / "data.py").write_text(DATA)
    (package / "bad.py").write_text('raise RuntimeError("needs a GPU\\nsecond line")\n')
    for (stem, name, version), entry_points in DISTRIBUTIONS.items():
        info = root / f"{stem}-{version}.dist-info"
        info.mkdir()
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(entry_points)
    return root


def dlrun(site, folder, *args):
    path = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "PYTHONPATH": path, "COLUMNS": "400", "DLRUN_DATA_DIR": str(SHARED_DATA)}
    return subprocess.run(
        [sys.executable, "-m", "dlrun", *args],
        cwd=folder,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_a_packages_model_and_data_train_by_their_names(site, tmp_path):
    result = dlrun(site, tmp_path, "train", "model=wide", "data=digits", "+data.n=500", *TINY, "--out", "run")
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert (summary["model"], summary["n_train"]) == ("wide", 300)  # +data.n=500 reached load()
    assert summary["params"] == 4 * 8 + 8 + 8 * 3 + 3  # the class's default width
    assert summary["data_source"]["target"] == "tiny_plugin.data.load"
    config = yaml.safe_load((tmp_path / "run" / "config.yaml").read_text())
    assert config["model"]["_target_"] == "tiny_plugin.nets.WideMLP"
    wider = dlrun(
        site, tmp_path, "train", "model=wide", "+model.width=16", "data=digits", *TINY, "--out", "w16"
    )
    assert wider.returncode == 0, wider.stderr
    assert json.loads((tmp_path / "w16" / "summary.json").read_text())["params"] == 4 * 16 + 16 + 16 * 3 + 3


def test_dlrun_list_marks_each_option_with_its_distribution(site, tmp_path):
    result = dlrun(site, tmp_path, "list")
    assert result.returncode == 0, result.stderr
    for label in (
        f"wide (from {GOOD})",
        f"digits (from {GOOD})",
        f"bare (from {ODD}; broken)",
        f"(mlp from {ODD} is hidden: the built-in mlp wins)",
    ):
        assert label in result.stdout
    unknown = dlrun(site, tmp_path, "train", "model=nope")
    assert unknown.returncode == 2 and "wide" in unknown.stderr.split("choose from:")[1]


BROKEN = [
    ("no-module", "model=nomod", "importing no_such_pkg.nets raised ModuleNotFoundError"),
    ("no-attribute", "model=absent", "tiny_plugin.nets has no 'Absent'"),
    ("no-colon", "model=bare", "bare = tiny_plugin.nets (dlrun.models) of odd-plugin 2.0: give module:name"),
    ("raises", "model=raises", "importing tiny_plugin.bad raised RuntimeError: needs a GPU"),
    (
        "data",
        "data=nodata",
        "nodata = tiny_plugin.data:absent (dlrun.data) of odd-plugin 2.0: tiny_plugin.data",
    ),
    ("two-distributions", "model=twice", "gives model=twice too; uninstall one of them"),
]


@pytest.mark.parametrize("choice, message", [c[1:] for c in BROKEN], ids=[c[0] for c in BROKEN])
def test_a_broken_entry_point_is_one_line_naming_its_distribution(site, tmp_path, choice, message):
    result = dlrun(site, tmp_path, "train", choice, "--out", "run")
    lines = [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]
    assert result.returncode == 2 and len(lines) == 1 and "Traceback" not in lines[0], result.stderr
    assert message in lines[0] and ("odd-plugin 2.0" in lines[0] or GOOD in lines[0])
    assert list(tmp_path.iterdir()) == []
