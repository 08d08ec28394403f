import json
import math
import os
import stat

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


def test_metrics_round_trip_through_pandas(tmp_path):
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
