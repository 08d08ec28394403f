"""Data from the user's own function (dlrun/data/loader.py): `data=loader data._target_=F.FUNC`,
trained through the real CLI on small separable problems the function draws, its arrays checked
and carved as an .npz's are, and each bad loader refused in one line naming its file, exit 2.

In-process (typer's CliRunner, as tests/test_data_files.py): the JAX import is paid once. The
loaders' module has a name no other test imports: Python keeps a module once imported.
"""

import csv
import hashlib
import json
import sys

import pytest
import yaml
from typer.testing import CliRunner

from dlrun.cli import app
from dlrun.config.schema import fields_of
from dlrun.data import loader

runner = CliRunner()
TRAIN = ["model=mlp", "model.hidden=[16]", "epochs=2", "lr=0.03", "batch_size=16"]
SIZES = ["data.val_size=100", "data.test_size=100"]
MODULE = "test_loaders_of_dlrun"

LOADERS = '''
import numpy as np

CALLS = 0
NUMBER = 3


def separable(n=600, k=3, features=4):
    """k classes, each a gaussian cloud shifted by 4 along its own axis: a line separates them."""
    global CALLS
    CALLS += 1
    rng = np.random.default_rng(0)
    y = np.arange(n) % k
    x = rng.normal(size=(n, features)) + 4.0 * np.eye(k, features)[y]
    return x.astype(np.float32), y


def splits(n=900):
    x, y = separable(n, k=2)
    return {"x_train": x[:500], "y_train": y[:500], "x_val": x[500:650], "y_val": y[500:650],
            "x_test": x[650:], "y_test": y[650:]}


def needs_n(n):
    return separable(n)


def raising():
    raise ValueError("no data here\\nsecond line")


def nothing():
    pass


def triple():
    return 1, 2, 3


def unnamed():
    x, y = separable(60)
    return {"a": x, "b": y}


def short_y():
    x, y = separable(60)
    return x, y[:-1]


def ragged():
    return [[1.0, 2.0], [3.0]], [0, 1]
'''


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = tmp_path_factory.mktemp("loaders")
    (path / f"{MODULE}.py").write_text(LOADERS)
    (path / "broken_loader.py").write_text("def f(:\n")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(path)  # the loader is imported from the working directory, as from a shell
        yield path
    sys.modules.pop(MODULE, None)


def dlrun(*args):
    return runner.invoke(app, [str(arg) for arg in args])


def trained(out, *args):
    result = dlrun("train", *args, *TRAIN, "--out", out)
    assert result.exit_code == 0, result.output
    with open(f"{out}/metrics.csv") as file:
        rows = list(csv.DictReader(file))
    with open(f"{out}/summary.json") as file:
        return json.load(file), rows


def recipe(arrays: dict) -> str:
    """loader.checksum's recipe, as the contract states it: name, dtype, shape, bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        digest.update(f"{name} {arrays[name].dtype.str} {arrays[name].shape}\n".encode())
        digest.update(arrays[name].tobytes())
    return digest.hexdigest()


def test_a_pair_trains_with_its_arguments_and_the_run_records_the_loader(folder):
    summary, rows = trained("pair", "data=loader", f"data._target_={MODULE}.separable", "+data.n=500", *SIZES)
    assert (summary["n_train"], summary["n_val"], summary["n_test"]) == (300, 100, 100)  # n=500 arrived
    assert summary["class_names"] == ["0", "1", "2"] and summary["test_accuracy"] > 0.9  # chance 1/3
    assert float(rows[-1]["train_loss"]) < float(rows[0]["train_loss"])
    x, y = sys.modules[MODULE].separable(500)
    assert summary["data_source"] == {
        "target": f"{MODULE}.separable",
        "file": str((folder / f"{MODULE}.py").resolve()),
        "sha256": recipe({"x": x, "y": y}),
    }
    config = yaml.safe_load((folder / "pair" / "config.yaml").read_text())["data"]
    assert (config["name"], config["_target_"], config["n"]) == ("loader", f"{MODULE}.separable", 500)


def test_a_dict_of_splits_is_used_as_given_and_classes_and_per_class_apply(folder):
    summary, _ = trained("given", "data=loader", f"data._target_={MODULE}.splits")
    assert (summary["n_train"], summary["n_val"], summary["n_test"]) == (500, 150, 250)
    summary, _ = trained(
        "picked", "data=loader", f"data._target_={MODULE}.separable", *SIZES, "data.classes=[2,0]",
        "data.per_class=40",
    )  # fmt: skip
    assert summary["class_names"] == ["2", "0"] and summary["n_train"] == 80
    summary, _ = trained(
        "capped", "data=loader", f"data._target_={MODULE}.separable", *SIZES, "data.subset=50"
    )
    assert summary["n_train"] == 50


def test_a_sweep_calls_the_loader_once_and_is_one_group(folder):
    module = sys.modules.get(MODULE)
    before = module.CALLS if module else 0
    args = [
        "data=loader",
        f"data._target_={MODULE}.separable",
        "+data.n=300",
        *SIZES[:1],
        "data.test_size=50",
    ]
    result = dlrun("sweep", *args, *TRAIN[:3], "lr=0.1,0.01", "--out", "sw")
    assert result.exit_code == 0, result.output
    assert sys.modules[MODULE].CALLS == before + 1
    plan = yaml.safe_load((folder / "sw" / "sweep.yaml").read_text())["plan"]
    assert [len(group["trials"]) for group in plan["groups"]] == [2]


def test_the_loaders_own_keys_are_the_schemas_fields():
    assert sorted(loader.OWN_KEYS) == sorted(fields_of("data", "loader"))


LOADER = ["data=loader"]
BAD = [
    ("no-target", LOADER, "data=loader needs data._target_=module.function"),
    ("no-module", [*LOADER, "data._target_=nowhere.load"], "no nowhere.py (nor package nowhere/)"),
    ("syntax-error", [*LOADER, "data._target_=broken_loader.f"], "broken_loader.py line 1"),
    ("no-such-name", [*LOADER, f"data._target_={MODULE}.absent"], f"{MODULE}.py has no 'absent'"),
    ("not-a-function", [*LOADER, f"data._target_={MODULE}.NUMBER"], "NUMBER is a int, not a function"),
    (
        "unknown-argument",
        [*LOADER, f"data._target_={MODULE}.separable", "+data.m=3"],
        f"{MODULE}.py: {MODULE}.separable takes no argument 'm' (set by data.m; it takes: n, k, features)",
    ),
    (
        "missing-argument",
        [*LOADER, f"data._target_={MODULE}.needs_n"],
        "needs argument 'n': give it with +data.n=VALUE",
    ),
    (
        "raises",
        [*LOADER, f"data._target_={MODULE}.raising"],
        f"{MODULE}.py: {MODULE}.raising raised ValueError: no data here",
    ),
    ("returns-none", [*LOADER, f"data._target_={MODULE}.nothing"], "nothing returned None; expected (x, y)"),
    ("returns-three", [*LOADER, f"data._target_={MODULE}.triple"], "triple returned a tuple of 3 items"),
    (
        "unnamed-arrays",
        [*LOADER, f"data._target_={MODULE}.unnamed"],
        "unnamed: has no arrays x and y (nor x_train and y_train); it holds: a, b",
    ),
    (
        "length-mismatch",
        [*LOADER, f"data._target_={MODULE}.short_y"],
        "short_y: x has 60 examples but y has 59",
    ),
    ("ragged", [*LOADER, f"data._target_={MODULE}.ragged"], "ragged returned x that is no array"),
    (
        "class-out-of-range",
        [
            *LOADER,
            f"data._target_={MODULE}.separable",
            "+data.n=60",
            "data.val_size=10",
            "data.test_size=10",
            "data.classes=[0,5]",
        ],  # fmt: skip
        f"{MODULE}.separable: data.classes: 5 is not a class of loader; choices: 0..2",
    ),
]


@pytest.mark.parametrize("args, message", [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_a_bad_loader_is_one_line_naming_it_exit_2_and_nothing_written(folder, args, message):
    before = sorted(p for p in folder.rglob("*") if "__pycache__" not in p.parts)
    result = dlrun("train", *args, *TRAIN, "--out", "bad")
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and "Traceback" not in lines[0], result.output
    assert message in lines[0]
    assert sorted(p for p in folder.rglob("*") if "__pycache__" not in p.parts) == before
