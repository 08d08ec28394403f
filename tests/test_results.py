import json
import math
import os
import stat

import numpy as np
import pytest

from dlrun import results


def test_atomic_write_replaces_whole_files_and_leaves_no_temporaries(tmp_path):
    target = tmp_path / "deep" / "file.txt"
    results.atomic_write_text(target, "first")
    results.atomic_write_text(target, "second")
    assert target.read_text() == "second"
    assert [p.name for p in target.parent.iterdir()] == ["file.txt"]


def test_a_failed_write_keeps_the_old_file(tmp_path):
    target = tmp_path / "summary.json"
    results.write_summary(tmp_path, {"status": "completed"})

    with pytest.raises(TypeError):
        results.atomic_write_bytes(target, object())  # not bytes: the write itself fails
    assert json.loads(target.read_text()) == {"status": "completed"}
    assert len(list(tmp_path.iterdir())) == 1


def test_summary_writes_non_finite_numbers_as_null(tmp_path):
    results.write_summary(tmp_path, {"test_loss": math.nan, "nested": {"x": math.inf}})
    assert results.read_summary(tmp_path) == {"test_loss": None, "nested": {"x": None}}


def test_metrics_round_trip(tmp_path):
    rows = [{"epoch": 1, "train_loss": 0.5}, {"epoch": 2, "train_loss": 0.25}]
    results.write_metrics(tmp_path, rows)
    frame = results.read_metrics(tmp_path)
    assert list(frame.epoch) == [1, 2] and frame.train_loss.tolist() == [0.5, 0.25]


def test_default_run_dirs_never_collide(tmp_path):
    first = results.default_run_dir("mlp-mnist", tmp_path)
    first.mkdir(parents=True)
    second = results.default_run_dir("mlp-mnist", tmp_path)
    assert second != first and second.parent == first.parent


@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_written_files_follow_the_users_umask_so_others_can_read_results(tmp_path, umask, mode):
    saved = os.umask(umask)
    try:
        results.write_summary(tmp_path, {"status": "completed"})
        results.atomic_write_bytes(tmp_path / "checkpoints" / "best.msgpack", b"\x00")
    finally:
        os.umask(saved)
    assert stat.S_IMODE((tmp_path / "summary.json").stat().st_mode) == mode
    assert stat.S_IMODE((tmp_path / "checkpoints" / "best.msgpack").stat().st_mode) == mode


def test_metrics_keep_integer_epochs_so_a_resume_writes_its_rows_back_unchanged(tmp_path):
    rows = [
        {"epoch": 1, "train_loss": 0.5, "train_accuracy": math.nan, "lr": 0.1},
        {"epoch": 2, "train_loss": 0.125, "train_accuracy": math.nan, "lr": 0.05},
    ]
    results.write_metrics(tmp_path, rows)
    written = (tmp_path / results.METRICS_FILE).read_bytes()
    frame = results.read_metrics(tmp_path)
    assert frame.epoch.dtype == np.int64 and frame.train_loss.dtype == np.float64
    results.write_metrics(tmp_path, frame.iloc[:2].to_dict("records"))  # what trial.py's resume does
    assert (tmp_path / results.METRICS_FILE).read_bytes() == written


def test_metrics_cells_that_are_not_numbers_become_nan(tmp_path):
    (tmp_path / results.METRICS_FILE).write_text("epoch,train_loss\n1,0.5\n2,oops\n")
    frame = results.read_metrics(tmp_path)
    assert frame.epoch.tolist() == [1, 2] and frame.train_loss.iloc[0] == 0.5
    assert math.isnan(frame.train_loss.iloc[1])


@pytest.mark.parametrize(
    "name, data, problem",
    [
        (results.METRICS_FILE, b"", "metrics.csv is empty"),
        (results.METRICS_FILE, bytes(range(255, -1, -1)) * 4, "metrics.csv is not text (binary data)"),
        (
            results.METRICS_FILE,
            b"epoch,train_loss\n1,0.5\n2\n",
            "metrics.csv is corrupt (rows of unequal length)",
        ),
        (results.SUMMARY_FILE, b"", "summary.json is empty"),
        (results.SUMMARY_FILE, b'{"status": "compl', "summary.json is corrupt (not JSON)"),
        (results.SUMMARY_FILE, b"[1, 2]", "summary.json is corrupt: it holds a list, not an object"),
        (results.SUMMARY_FILE, b'{"status": 3}', "summary.json is corrupt: its status is 3, not a word"),
        (results.CONFIG_FILE, b"", "config.yaml is empty"),
        (results.CONFIG_FILE, b"lr: [0.1\n", "config.yaml is not readable YAML"),
        (results.CONFIG_FILE, b"\x00\xff\xfe" * 50, "config.yaml is not readable YAML"),
        (results.CONFIG_FILE, b"- 0.1\n- 0.2\n", "config.yaml is not a mapping of settings"),
    ],
)
def test_a_damaged_run_file_is_a_value_error_that_says_what_is_wrong(tmp_path, name, data, problem):
    (tmp_path / name).write_bytes(data)
    reader = {
        results.METRICS_FILE: results.read_metrics,
        results.SUMMARY_FILE: results.read_summary,
        results.CONFIG_FILE: results.read_config,
    }[name]
    with pytest.raises(ValueError) as caught:
        reader(tmp_path)
    assert str(caught.value) == problem


@pytest.mark.parametrize(
    "reader", [results.read_metrics, results.read_summary, results.read_config, results.read_predictions]
)
def test_a_missing_run_file_is_file_not_found(tmp_path, reader):
    with pytest.raises(FileNotFoundError):
        reader(tmp_path)


def test_config_reads_back_as_nested_settings(tmp_path):
    (tmp_path / results.CONFIG_FILE).write_text("lr: 0.001\nmodel:\n  hidden: [8, 4]\n")
    assert results.read_config(tmp_path) == {"lr": 0.001, "model": {"hidden": [8, 4]}}


def test_predictions_read_back_and_a_damaged_file_is_a_value_error(tmp_path):
    probabilities, labels = np.full((3, 2), 0.5, dtype=np.float32), np.array([0, 1, 1])
    np.savez(tmp_path / results.PREDICTIONS_FILE, probabilities=probabilities, labels=labels)
    read = results.read_predictions(tmp_path)
    assert np.array_equal(read[0], probabilities) and np.array_equal(read[1], labels)
    (tmp_path / results.PREDICTIONS_FILE).write_bytes(b"PK\x03\x04 cut short")
    with pytest.raises(ValueError, match="test_predictions.npz is damaged"):
        results.read_predictions(tmp_path)
