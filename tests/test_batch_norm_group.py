"""Batch norm inside a vectorised group: each trial normalises with its own batch statistics
and keeps its own running averages (the group vmaps the whole TrainState, `batch_stats`
included), so a trial trained in a group is the same run as that trial trained alone."""

import flax.serialization
import numpy as np
import pandas as pd
from conftest import needs_mnist
from typer.testing import CliRunner

from dlrun import results
from dlrun.cli import app

runner = CliRunner()
BASE = [
    "model=cnn",
    "model.channels=[4,8]",
    "model.dense=[16]",
    "model.batch_norm=true",
    "data=mnist",
    "data.subset=512",
    "data.val_size=256",
    "epochs=2",
    "batch_size=64",
    # SGD, not Adam: a bias before batch norm has a zero gradient up to rounding, which Adam
    # scales up to lr-sized steps in rounding-chosen directions; they move the running means,
    # so a group and a lone run (summing in other orders) would differ in validation alone
    "optim=momentum",
]
CURVES = ["train_loss", "train_accuracy", "val_loss", "val_accuracy"]


def batch_stats(run_dir):
    payload = flax.serialization.msgpack_restore((run_dir / results.LAST_CHECKPOINT).read_bytes())
    return payload["state"]["batch_stats"]


@needs_mnist
def test_each_trial_of_a_batch_norm_group_is_the_run_it_would_be_alone(tmp_path):
    swept = runner.invoke(app, ["sweep", *BASE, "lr=0.1,0.01", "--out", str(tmp_path / "sweep")])
    assert swept.exit_code == 0, swept.output
    trials = pd.read_csv(tmp_path / "sweep" / "trials.csv")
    assert trials.group.nunique() == 1 and len(trials) == 2  # one vectorised group of two
    for lr, trial in zip(trials.lr, trials.trial):
        alone = tmp_path / f"alone-{lr}"
        trained = runner.invoke(app, ["train", *BASE, f"lr={lr}", "--out", str(alone)])
        assert trained.exit_code == 0, trained.output
        in_group = tmp_path / "sweep" / trial
        pd.testing.assert_frame_equal(
            results.read_metrics(in_group)[CURVES], results.read_metrics(alone)[CURVES], rtol=1e-4, atol=1e-5
        )
        ours, theirs = batch_stats(in_group), batch_stats(alone)
        for layer in ("conv1_bn", "conv2_bn", "fc1_bn"):
            for stat in ("mean", "var"):
                np.testing.assert_allclose(ours[layer][stat], theirs[layer][stat], rtol=1e-4, atol=1e-5)
    first, second = (batch_stats(tmp_path / "sweep" / f"trial-{i:03d}") for i in (0, 1))
    # different learning rates give different weights, hence different running statistics
    assert not np.allclose(first["conv2_bn"]["mean"], second["conv2_bn"]["mean"], atol=1e-3)
