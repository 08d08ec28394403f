"""Compaction: once half a group is frozen its live trials train in a smaller stacked state,
with the same curves as without compaction."""

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dlrun import results
from dlrun.cli import app
from dlrun.config.load import compose_config
from dlrun.report.build import build_report
from dlrun.sweep import executor, folder
from dlrun.sweep.plan import make_plan
from dlrun.training import compaction
from dlrun.training.callbacks import EpochCallback
from dlrun.training.group import run_group

BASE = [
    "data=spirals",
    "data.n_samples=600",
    "data.val_size=100",
    "data.n_test=100",
    "model.hidden=[16]",
    "batch_size=50",
    "schedule=constant",
    "epochs=4",
]
LRS = ("0.3", "0.1", "0.03", "0.01")


@pytest.mark.parametrize("live, size", [(1, 1), (2, 2), (3, 4), (4, 4), (5, 8), (17, 32)])
def test_sizes_round_up_to_a_power_of_two(live, size):
    assert compaction.padded_size(live) == size


@pytest.mark.parametrize(
    "slots, live, kept",
    [
        ([0, 1, 2, 3], [True, False, True, False], [0, 2]),  # half frozen: the live two
        ([0, 1, 2, 3], [True, True, True, False], None),  # a quarter frozen: stays
        ([0, 1, 2, 3], [False] * 4, None),  # none live: the loop ends anyway
        ([0, 1, 2, 3, 4, 5], [False, True, False, True, True, False], [0, 1, 3, 4]),  # 3 live + 1 pad
        ([2, 5, 7], [False, False, True], [7]),  # slots of an earlier compaction
        ([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [True] * 5 + [False] * 5, [0, 1, 2, 3, 4, 5, 6, 7]),
        ([0, 1, 2], [True, True, False], None),  # a third frozen: stays
    ],
)
def test_compacted_slots_keep_the_live_trials_padded_with_frozen_ones(slots, live, kept):
    assert compaction.compacted_slots(slots, live) == kept


class PruneAt(EpochCallback):
    """Prune the given trials after `epoch` through the group's own stop_trial; record the
    stacked size each epoch ran with."""

    def __init__(self, epoch: int, indices: tuple):
        self.epoch, self.indices, self.sizes, self.compiled = epoch, indices, [], None

    def on_epoch(self, group, epoch, rows):
        self.sizes.append(len(group.slots))
        if epoch == self.epoch:
            for index in self.indices:
                group.stop_trial(index, "pruned", pruned_epoch=epoch)

    def on_end(self, group):
        self.compiled = list(group.compiled)


def _group(tmp_path, name: str, lrs=LRS, **kwargs):
    cfgs = [compose_config([*BASE, f"lr={lr}"]) for lr in lrs]
    dirs = [tmp_path / name / f"trial-{i:03d}" for i in range(len(lrs))]
    return run_group(cfgs, dirs, **kwargs), dirs


def test_a_compacted_trial_has_the_curve_it_has_without_compaction(tmp_path):
    pruner = PruneAt(1, (1, 3))
    summaries, dirs = _group(tmp_path, "compacted", callbacks=[pruner])
    # epoch 1 ran 4 wide; the two survivors ran 2 wide after it, compiled once per size
    assert pruner.sizes == [4, 2, 2, 2] and pruner.compiled == [4, 2]
    plain = PruneAt(1, (1, 3))
    reference, plain_dirs = _group(tmp_path, "plain", callbacks=[plain], compact=False)
    assert plain.sizes == [4, 4, 4, 4] and plain.compiled == [4]
    for index in range(4):
        ours = results.read_metrics(dirs[index])
        theirs = results.read_metrics(plain_dirs[index])
        columns = ["train_loss", "train_accuracy", "val_loss", "val_accuracy", "grad_norm"]
        np.testing.assert_allclose(ours[columns].to_numpy(), theirs[columns].to_numpy(), rtol=1e-4, atol=1e-6)
        for key in ("status", "epochs_run", "best_epoch"):
            assert summaries[index][key] == reference[index][key]
        # the pruned trials were tested with the state they kept when they left the stack
        assert summaries[index]["test_loss"] == pytest.approx(reference[index]["test_loss"], rel=1e-4)
    assert [s["status"] for s in summaries] == ["completed", "pruned", "completed", "pruned"]
    assert [s["epochs_run"] for s in summaries] == [4, 1, 4, 1]


def test_a_group_run_one_trial_a_pass_is_not_restacked_and_keeps_its_curves(tmp_path, monkeypatch):
    """One trial a pass skips a frozen trial already (lax.cond, or not run at all side by side):
    compaction would only cost. Run one side by side, whose rows carry over between epochs."""
    monkeypatch.setenv("DLRUN_TRIALS_PER_PASS", "1")
    monkeypatch.setenv("DLRUN_SIDE_BY_SIDE", "2")
    pruner = PruneAt(1, (1, 3))
    summaries, dirs = _group(tmp_path, "passes", callbacks=[pruner])
    assert pruner.sizes == [4, 4, 4, 4] and pruner.compiled == [4]
    monkeypatch.delenv("DLRUN_TRIALS_PER_PASS")
    monkeypatch.delenv("DLRUN_SIDE_BY_SIDE")
    reference, plain_dirs = _group(tmp_path, "plain", callbacks=[PruneAt(1, (1, 3))], compact=False)
    for ours, theirs in zip(dirs, plain_dirs):
        np.testing.assert_allclose(
            results.read_metrics(ours)["val_loss"], results.read_metrics(theirs)["val_loss"], rtol=1e-4
        )
    assert [s["epochs_run"] for s in summaries] == [4, 1, 4, 1]
    assert [s["status"] for s in summaries] == [s["status"] for s in reference]
    for ours, theirs in zip(summaries, reference):  # tested with the state each trial ended with
        assert ours["test_loss"] == pytest.approx(theirs["test_loss"], rel=1e-4)


def test_survivors_train_as_they_would_in_a_group_of_their_own(tmp_path):
    """Each trial's keys come from its own seed, so a trial's curve does not depend on its group."""
    summaries, dirs = _group(tmp_path, "four", callbacks=[PruneAt(2, (0, 2))])
    alone, alone_dirs = _group(tmp_path, "two", lrs=(LRS[1], LRS[3]))
    for ours, theirs in zip((dirs[1], dirs[3]), alone_dirs):
        np.testing.assert_allclose(
            results.read_metrics(ours)["val_loss"], results.read_metrics(theirs)["val_loss"], rtol=1e-4
        )


@pytest.fixture(scope="module")
def pruned_sweep(tmp_path_factory):
    """A real 3-trial sweep folder whose trial 001 was pruned after epoch 2."""
    plan = make_plan([*BASE, f"lr={','.join(LRS[:3])}"])
    out = tmp_path_factory.mktemp("pruned") / "sweep"
    folder.prepare_folder(out, plan, "dlrun sweep (test)")
    dirs = [folder.trial_dir(out, trial) for trial in plan.trials]
    pruner = PruneAt(2, (1,))
    summaries = run_group([trial.cfg for trial in plan.trials], dirs, callbacks=[pruner])
    return plan, out, dirs, summaries, pruner


def test_a_trial_pruned_at_epoch_2_keeps_its_folder_and_curves_and_is_never_rerun(pruned_sweep):
    plan, out, dirs, summaries, pruner = pruned_sweep
    assert pruner.sizes == [3, 3, 3, 3] and pruner.compiled == [3]  # 1 of 3 frozen: not compacted
    pruned = results.read_summary(dirs[1])
    assert (pruned["status"], pruned["pruned_epoch"], pruned["epochs_run"]) == ("pruned", 2, 2)
    assert np.isfinite(pruned["test_loss"]) and pruned["best_epoch"] in (1, 2)
    assert len(results.read_metrics(dirs[1])) == 2 and (dirs[1] / results.LAST_CHECKPOINT).exists()
    assert [s["epochs_run"] for s in summaries] == [4, 2, 4]
    frame = pd.read_csv(dirs[1] / results.METRICS_FILE)
    assert list(frame["epoch"]) == [1, 2]
    # the same sweep run again: nothing to do, the pruned trial's value is the search's
    assert executor.jobs_for(plan, out) == []
    assert folder.write_index(out, plan)["pruned_epoch"].tolist()[1] == 2


def test_the_report_shows_a_pruned_trial_with_its_epoch_at_80_columns(pruned_sweep):
    _, out, dirs, _, _ = pruned_sweep
    result = CliRunner().invoke(app, ["report", str(out)], env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert max(map(len, lines)) <= 80
    assert "3 runs from" in result.output and "2 completed, 1 pruned" in result.output
    row = next(line for line in lines if "│ 001" in line)
    assert "pruned@2" in row
    assert "pruned@N = stopped by the search's pruner after epoch N" in result.output
    frame = build_report([out]).rows.set_index("run")
    # diagnosed from its two epochs like any run, the pruning said in the evidence
    assert frame.loc["trial-001", "diagnosis"] not in ("diverged", "no_curves")
    assert frame.loc["trial-001", "evidence"].endswith("pruned by the search after epoch 2")
    assert frame.loc["trial-001", "pruned_epoch"] == 2 and frame["pruned_epoch"].isna().sum() == 2
