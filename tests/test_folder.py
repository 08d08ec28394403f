"""The sweep folder: its record, the state of each trial folder, refusals before anything runs."""

import pytest

from dlrun.errors import ConfigError
from dlrun.sweep import folder
from dlrun.sweep.plan import make_plan

XOR = ["data=xor", "epochs=1"]


def test_a_new_folder_gets_the_record_and_the_same_plan_is_accepted_again(tmp_path):
    out = tmp_path / "sweep"
    plan = make_plan([*XOR, "lr=0.1,0.01"])
    assert folder.read_sweep_record(out) is None
    folder.prepare_folder(out, plan, "dlrun sweep lr=0.1,0.01")
    record = folder.read_sweep_record(out)
    assert record["command"] == "dlrun sweep lr=0.1,0.01"
    assert [g["trials"] for g in record["plan"]["groups"]] == [["trial-000", "trial-001"]]
    folder.prepare_folder(out, make_plan([*XOR, "lr=0.1,0.01"]), "again")  # no error
    with pytest.raises(ConfigError, match="holds a different sweep"):
        folder.prepare_folder(out, make_plan([*XOR, "lr=0.5,0.6"]), "other")


def test_trial_folders_that_never_started_or_cannot_be_read(tmp_path):
    assert folder.trial_status(tmp_path / "missing") == "pending"
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "summary.json").write_text("{not json")
    assert folder.trial_status(tmp_path / "bad") == "corrupt"
    assert folder.resumable_epoch(tmp_path / "bad") == 0


def test_the_index_lists_every_trial_with_its_group_and_status(tmp_path):
    plan = make_plan([*XOR, "lr=0.1,0.01", "batch_size=16,32"], max_group=1)
    index = folder.write_index(tmp_path, plan)
    # trials in grid order (lr, then batch size); groups by shape: batch 16 first
    assert list(index.group) == ["g000", "g002", "g001", "g003"]
    assert set(index.status) == {"pending"}
    assert (tmp_path / folder.INDEX_FILE).read_text().startswith("trial,group,lr,batch_size,status")


def test_a_training_run_is_no_sweep_folder_and_a_sweep_no_run_folder(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "summary.json").write_text("{}")
    with pytest.raises(ConfigError, match="holds a training run"):
        folder.check_sweep_folder(tmp_path / "run")
    (tmp_path / "sweep").mkdir()
    (tmp_path / "sweep" / "sweep.yaml").write_text("command: x\nplan: {trials: []}\n")
    with pytest.raises(ConfigError, match="holds a sweep"):
        folder.check_run_folder(tmp_path / "sweep")
