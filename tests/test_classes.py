"""Tests of dlrun/data/classes.py through data.describe/load: `data.classes` keeps and relabels
classes, `data.per_class` takes a stratified, seeded, nested sample after the validation split;
bad values are one-line errors. MNIST's real files, and one real `dlrun train` on them."""

import json
import types

import numpy as np
import pytest
from conftest import needs_mnist
from typer.testing import CliRunner

from dlrun.cli import app
from dlrun.data import DataError, describe, load, mnist
from dlrun.data.classes import first_per_class, keep_classes


def cfg(**overrides):
    fields = dict(
        name="mnist", subset=None, val_size=5000, scaling="unit", seed=0, classes=None, per_class=None
    )
    return types.SimpleNamespace(**{**fields, **overrides})


def test_keep_classes_relabels_in_the_given_order():
    y = np.array([3, 1, 2, 3, 0, 1], np.int32)
    x = np.arange(6) * 10
    kept_x, kept_y = keep_classes(x, y, (3, 1))
    np.testing.assert_array_equal(kept_x, [0, 10, 30, 50])
    np.testing.assert_array_equal(kept_y, [0, 1, 0, 1])


def test_first_per_class_takes_the_first_of_each_class_in_order():
    y = np.array([0, 1, 0, 0, 1, 1, 1, 0])
    order = np.array([7, 6, 5, 4, 3, 2, 1, 0])
    np.testing.assert_array_equal(first_per_class(y, order, 2, ("a", "b"), 0), [7, 6, 5, 3])
    with pytest.raises(DataError, match=r"per_class=5: class 0 \(a\) has only 4"):
        first_per_class(y, order, 5, ("a", "b"), 0)


@needs_mnist
def test_describe_sizes_a_class_subset_from_the_official_counts():
    spec = describe(cfg(classes=[5, 6, 7, 8, 9]))
    assert spec.num_classes == 5 and spec.class_names == ("5", "6", "7", "8", "9")
    assert spec.n_train == 5421 + 5918 + 6265 + 5851 + 5949 - 5000
    assert spec.n_test == 892 + 958 + 1028 + 974 + 1009


@needs_mnist
def test_mnist_class_counts_match_the_files():
    _, y_pool, _, y_test = mnist.arrays(None)
    assert tuple(np.bincount(y_pool)) == mnist.CLASS_COUNTS[0]
    assert tuple(np.bincount(y_test)) == mnist.CLASS_COUNTS[1]


@needs_mnist
def test_classes_keeps_and_relabels_every_split():
    full = load(cfg(val_size=1000))
    ds = load(cfg(val_size=1000, classes=[7, 2]))
    assert ds.spec.n_train == len(ds.y_train) == 6265 + 5958 - 1000 and ds.spec.n_val == 1000
    for y in (ds.y_train, ds.y_val, ds.y_test):
        assert set(np.unique(y)) == {0, 1}
    # the test set is t10k's sevens (now 0) and twos (now 1), in file order
    keep = np.isin(full.y_test, [7, 2])
    np.testing.assert_array_equal(ds.x_test, full.x_test[keep])
    np.testing.assert_array_equal(ds.y_test, np.where(full.y_test[keep] == 7, 0, 1))


@needs_mnist
def test_per_class_is_stratified_seeded_and_nested():
    small = load(cfg(classes=[0, 1, 2], per_class=20, val_size=500))
    assert np.bincount(small.y_train).tolist() == [20, 20, 20] and small.spec.n_train == 60
    again = load(cfg(classes=[0, 1, 2], per_class=20, val_size=500))
    np.testing.assert_array_equal(small.x_train, again.x_train)
    bigger = load(cfg(classes=[0, 1, 2], per_class=40, val_size=500))
    rows = lambda x: {r.tobytes() for r in x.reshape(len(x), -1)}
    assert rows(small.x_train) <= rows(bigger.x_train)  # nested: a learning curve adds examples
    np.testing.assert_array_equal(small.x_val, bigger.x_val)  # N does not move the validation set
    other = load(cfg(classes=[0, 1, 2], per_class=20, val_size=500, seed=1))
    assert rows(other.x_train) != rows(small.x_train)
    assert not rows(small.x_train) & rows(small.x_val)


@pytest.mark.parametrize(
    "overrides, needle",
    [
        (dict(classes=[0, 10]), r"data.classes: 10 is not a class of mnist; choices: 0..9"),
        (dict(classes=[3, 1, 3]), r"lists class 3 \(3\) more than once"),
        (dict(classes=[4]), r"at least 2"),
        (dict(classes=3), r"must be a list of class indices"),
        (dict(classes=[0, True]), r"True is not a class"),
        (dict(per_class=0), r"data.per_class=0 must be an integer >= 1"),
        (dict(per_class=6000, classes=[5, 6]), r"per_class=6000: class 5 \(5\) has only 5421"),
        (dict(per_class=10, subset=100), r"set one of them"),
    ],
)
def test_bad_classes_and_per_class_are_one_line_errors(overrides, needle):
    with pytest.raises(DataError, match=needle) as info:
        describe(cfg(**overrides))
    assert "\n" not in str(info.value)


@needs_mnist
def test_per_class_beyond_what_the_split_leaves_fails_in_load():
    # 5421 fives in the pool, ~450 of them drawn into a 5000 validation set: describe passes
    with pytest.raises(
        DataError,
        match=r"class 0 \(5\) has only \d+ training examples after "
        r"the validation split of 5000",
    ):
        load(cfg(classes=[5, 6], per_class=5400))


@needs_mnist
def test_train_on_two_classes_twenty_each_end_to_end(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(
        app,
        [
            "train",
            "model=mlp",
            "data.classes=[0,1]",
            "data.per_class=20",
            "data.val_size=200",
            "batch_size=10",
            "epochs=1",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["n_train"] == 40
    assert summary["class_names"] == ["0", "1"] and summary["n_test"] == 980 + 1135
    assert summary["config"]["data"]["classes"] == [0, 1]
    assert summary["test_accuracy"] > 0.9  # zeros against ones: easy even from 40 examples


def test_bad_class_on_the_command_line_exits_2_writing_nothing(tmp_path):
    out = tmp_path / "run"
    result = CliRunner().invoke(app, ["train", "model=mlp", "data.classes=[1,1]", "--out", str(out)])
    assert result.exit_code == 2
    assert "data.classes lists class 1 (1) more than once" in result.output
    assert not out.exists()
