"""Tests for dlrun.report.diagnose: every label and flag on a synthetic curve built to show it, the edges
between labels, threshold overrides, and frames that are empty, short, partial or foreign."""

import dataclasses
import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from dlrun.report import diagnose as dg
from dlrun.report.diagnose import diagnose, label_run
from dlrun.report.flags import gradient_and_unit_flags
from dlrun.report.thresholds import DEFAULT_THRESHOLDS

N = 30
CLASSIFICATION = {"status": "completed", "task": "classification", "num_classes": 10}
REGRESSION = {"status": "completed", "task": "regression"}


def decay(start, end, tau, n=N):
    """A loss starting at `start` on epoch 1 and falling exponentially (tau epochs) towards `end`."""
    return end + (start - end) * np.exp(-np.arange(n) / tau)


def accuracy_of(loss):
    """A plausible monotone map from cross-entropy to accuracy (2.5 -> 0, 0.05 -> 0.98)."""
    return np.clip(1.0 - np.asarray(loss, dtype=float) / 2.5, 0.0, 1.0)


def run_frame(train, val=None, *, task="classification", **columns):
    """A full metrics.csv frame around the given losses; healthy defaults for everything else."""
    train = np.asarray(train, dtype=float)
    val = 1.2 * train if val is None else np.asarray(val, dtype=float)
    classify = task == "classification"
    data = {
        "epoch": np.arange(1, len(train) + 1),
        "train_loss": train,
        "train_accuracy": accuracy_of(train) if classify else math.nan,
        "val_loss": val,
        "val_accuracy": accuracy_of(val) if classify else math.nan,
        "lr": 0.01,
        "epoch_time_s": 1.0,
        "grad_norm": 1.0,
        "grad_norm_hidden1": 0.3,
        "grad_norm_hidden2": 0.5,
        "grad_norm_output": 0.8,
        "dead_fraction": 0.05,
        "saturated_fraction": math.nan,
    }
    data.update(columns)
    return pd.DataFrame(data)


def u_shaped(low_epoch, low, final, n=N):
    """A loss falling to `low` at `low_epoch`, then rising linearly to `final` at epoch n."""
    falling = decay(3 * low, low, tau=low_epoch / 4, n=low_epoch)
    falling[-1] = low
    rising = np.linspace(low, final, n - low_epoch + 1)[1:]
    return np.concatenate([falling, rising])


def healthy_frame():
    return run_frame(decay(2.0, 0.05, tau=3), decay(2.0, 0.08, tau=3))


# ---- labels, one synthetic curve each ----


def test_smooth_converged_curves_are_a_good_fit_with_accuracies_in_evidence():
    label, evidence = label_run(healthy_frame(), {**CLASSIFICATION, "test_accuracy": 0.975})
    assert label == "good_fit"
    assert "test 0.975" in evidence and f"at epoch {N} of {N}" in evidence


def test_nan_train_loss_is_diverged_and_names_the_epoch():
    train = decay(2.0, 0.05, tau=3)
    train[7:] = math.nan
    label, evidence = label_run(run_frame(train), CLASSIFICATION)
    assert label == "diverged"
    assert "train loss nan at epoch 8" in evidence


def test_inf_val_loss_is_diverged():
    val = decay(2.0, 0.08, tau=3)
    val[-1] = math.inf
    assert label_run(run_frame(decay(2.0, 0.05, tau=3), val), CLASSIFICATION)[0] == "diverged"


def test_status_diverged_is_diverged_even_with_no_epochs():
    label, evidence = label_run(pd.DataFrame(), {"status": "diverged"})
    assert label == "diverged" and "status diverged" in evidence


def test_finite_loss_exploding_from_its_minimum_is_diverged():
    train = np.concatenate([decay(2.0, 0.1, tau=2, n=15), np.geomspace(0.2, 1.5, 15)])
    label, evidence = label_run(run_frame(train), CLASSIFICATION)
    assert label == "diverged"
    assert f"= {1.5 / train.min():.0f}x its minimum" in evidence


def test_loss_climbing_far_above_its_first_value_is_diverged():
    label, evidence = label_run(run_frame([1.0, 0.9, 1.5, 3.5]), CLASSIFICATION)
    assert label == "diverged"
    assert "3.5x its first value 1" in evidence


def test_flat_loss_at_chance_accuracy_is_no_learning():
    train = np.full(N, 2.30)
    frame = run_frame(train, train, train_accuracy=np.full(N, 0.11))
    label, evidence = label_run(frame, CLASSIFICATION)
    assert label == "no_learning"
    assert "chance 0.1 (10 classes)" in evidence and "at most 0.110" in evidence


def test_no_learning_without_num_classes_means_accuracy_below_point_six():
    train = np.full(N, 0.69)
    summary = {"status": "completed", "task": "classification"}
    near_chance = run_frame(train, train, train_accuracy=np.full(N, 0.55))
    learned = run_frame(train, train, train_accuracy=np.full(N, 0.7))
    assert label_run(near_chance, summary)[0] == "no_learning"
    assert label_run(learned, summary)[0] != "no_learning"


def test_flat_low_loss_learned_within_epoch_one_is_not_no_learning():
    frame = run_frame(np.full(N, 0.06), np.full(N, 0.08), train_accuracy=np.full(N, 0.98))
    assert label_run(frame, CLASSIFICATION)[0] == "good_fit"


def test_flat_high_regression_loss_is_no_learning():
    train = np.full(N, 1.0)
    assert label_run(run_frame(train, train, task="regression"), REGRESSION)[0] == "no_learning"


def test_oscillating_train_loss_is_unstable():
    wobble = 1 + 0.1 * np.where(np.arange(N) % 2, 1, -1)
    train = decay(0.4, 0.3, tau=3) * wobble  # every other epoch ~20% above the one before
    label, evidence = label_run(run_frame(train, 1.2 * train), CLASSIFICATION)
    assert label == "unstable"
    assert f"{N // 2} times" in evidence


def test_train_loss_rising_after_its_minimum_is_unstable():
    train = u_shaped(low_epoch=10, low=0.2, final=0.3, n=20)
    label, evidence = label_run(run_frame(train), CLASSIFICATION)
    assert label == "unstable"
    assert "lowest 0.2 at epoch 10, +50% by epoch 20" in evidence


def test_u_shaped_is_overfitting_with_the_numbers_in_evidence():
    train = decay(2.0, 0.01, tau=3)
    val = u_shaped(low_epoch=6, low=0.071, final=0.098)
    label, evidence = label_run(run_frame(train, val), CLASSIFICATION)
    assert label == "overfitting"
    train_fall = 1 - train[-1] / train[5]
    assert evidence == (
        f"val loss lowest 0.071 at epoch 6, +38% by epoch {N} while train loss fell {train_fall:.0%}"
    )


def test_val_levelling_off_while_train_keeps_falling_is_overfitting():
    train = decay(0.5, 0.0, tau=8)
    val = u_shaped(low_epoch=8, low=0.1, final=0.102)  # +2%: under overfit_rise
    label, evidence = label_run(run_frame(train, val), CLASSIFICATION)
    assert label == "overfitting"
    assert "lowest 0.1 at epoch 8, +2% by epoch 30" in evidence
    assert f"no new low for {N - 8} epochs" in evidence


def test_val_far_noisier_than_train_is_unrepresentative_validation():
    train = decay(2.0, 0.05, tau=3)
    noise = 1 + 0.15 * np.random.default_rng(0).standard_normal(N)
    label, evidence = label_run(run_frame(train, decay(2.0, 0.08, tau=3) * noise), CLASSIFICATION)
    assert label == "unrepresentative_validation"
    assert "val loss jitter 27% vs train 0.8% (34x" in evidence


def test_wide_gap_while_both_fall_is_unrepresentative_validation():
    train = decay(1.0, 0.0, tau=20)
    label, evidence = label_run(run_frame(train, 4 * train), CLASSIFICATION)
    assert label == "unrepresentative_validation"
    assert "= 4.0x train loss" in evidence


def test_both_curves_falling_at_the_end_is_still_improving():
    train = decay(1.0, 0.0, tau=20)
    label, evidence = label_run(run_frame(train, 1.5 * train), CLASSIFICATION)
    assert label == "still_improving"
    fall = 1 - math.exp(-3 / 20)
    assert f"train loss fell {fall:.0%} (to {train[-1]:.3g})" in evidence


def test_low_plateaued_train_accuracy_is_underfitting():
    label, evidence = label_run(run_frame(decay(2.0, 0.5, tau=3), decay(2.0, 0.55, tau=3)), CLASSIFICATION)
    assert label == "underfitting"
    assert "final train accuracy 0.800 < 0.9" in evidence


def test_high_plateaued_regression_loss_is_underfitting():
    frame = run_frame(decay(1.0, 0.4, tau=3), decay(1.0, 0.45, tau=3), task="regression")
    label, evidence = label_run(frame, REGRESSION)
    assert label == "underfitting"
    assert "final train loss 0.4 > 0.1" in evidence


def test_low_plateaued_regression_loss_is_a_good_fit():
    frame = run_frame(decay(1.0, 0.02, tau=3), decay(1.0, 0.03, tau=3), task="regression")
    assert label_run(frame, REGRESSION)[0] == "good_fit"


def test_task_is_inferred_from_accuracy_when_the_summary_has_none():
    regression = run_frame(decay(1.0, 0.4, tau=3), decay(1.0, 0.45, tau=3), task="regression")
    assert "final train loss" in label_run(regression, {})[1]
    classification = run_frame(decay(2.0, 0.5, tau=3), decay(2.0, 0.55, tau=3))
    assert "final train accuracy" in label_run(classification, None)[1]


# ---- precedence ----


def test_unstable_takes_precedence_over_overfitting():
    wobble = 1 + 0.1 * np.where(np.arange(N) % 2, 1, -1)  # +-10% of a loss that stays well above 0
    frame = run_frame(decay(2.0, 0.3, tau=3) * wobble, u_shaped(6, 0.071, 0.2))
    assert label_run(frame, CLASSIFICATION)[0] == "unstable"


def test_noisy_val_is_not_read_as_overfitting():
    # Alternating +-25% noise puts the val minimum before the end and the last epoch 25% above it.
    val = decay(2.0, 0.08, tau=3) * (1 + 0.25 * np.where(np.arange(N) % 2, 1, -1))
    label = label_run(run_frame(decay(2.0, 0.05, tau=3), val), CLASSIFICATION)[0]
    assert label == "unrepresentative_validation"


# ---- edges between labels and threshold overrides ----


def _val_rising_by(rise):
    """Train falls ~40% after epoch 10 (below the levelling-off rule); val rises `rise` from there."""
    return run_frame(decay(2.0, 0.15, tau=3), u_shaped(10, 0.2, 0.2 * (1 + rise)))


def test_val_rise_just_below_the_overfit_threshold_is_not_overfitting():
    assert label_run(_val_rising_by(0.09), CLASSIFICATION)[0] == "good_fit"


def test_val_rise_just_above_the_overfit_threshold_is_overfitting():
    label, evidence = label_run(_val_rising_by(0.11), CLASSIFICATION)
    assert label == "overfitting" and "+11% by epoch 30" in evidence


def test_raising_overfit_rise_turns_overfitting_into_good_fit():
    lenient = dataclasses.replace(DEFAULT_THRESHOLDS, overfit_rise=0.2)
    assert label_run(_val_rising_by(0.11), CLASSIFICATION, lenient)[0] == "good_fit"
    assert diagnose(_val_rising_by(0.11), CLASSIFICATION, lenient).advice == dg.ADVICE["good_fit"]


def test_still_falling_low_accuracy_run_becomes_underfitting_once_flat():
    still_falling = decay(2.0, 0.4, tau=20)
    flattened = decay(2.0, 0.4, tau=3)
    assert label_run(run_frame(still_falling), CLASSIFICATION)[0] == "still_improving"
    assert label_run(run_frame(flattened), CLASSIFICATION)[0] == "underfitting"


def test_recent_drop_just_above_and_below_improving_drop():
    def falling_by(last_three):  # a curve whose last 3 steps fall by `last_three` in total
        train = np.concatenate([decay(2.0, 1.0, tau=3, n=N - 3), np.geomspace(1.0, 1.0 - last_three, 4)[1:]])
        return run_frame(train, 1.1 * train, train_accuracy=np.full(N, 0.8))

    assert label_run(falling_by(0.06), CLASSIFICATION)[0] == "still_improving"
    assert label_run(falling_by(0.04), CLASSIFICATION)[0] == "underfitting"


def test_train_loss_drop_just_below_and_above_no_learning_drop():
    # A regression: a classifier's accuracies at chance say no_learning whatever the loss did.
    def dropping_by(fraction):
        train = np.linspace(2.3, 2.3 * (1 - fraction), N)
        return run_frame(train, train, task="regression")

    assert label_run(dropping_by(0.04), REGRESSION)[0] == "no_learning"
    assert label_run(dropping_by(0.06), REGRESSION)[0] != "no_learning"


# ---- short, partial and foreign frames never crash ----


@pytest.mark.parametrize("epochs", [0, 1])
def test_fewer_than_two_epochs_is_insufficient_data(epochs):
    frame = run_frame(decay(2.0, 0.05, tau=3, n=epochs))
    label, evidence = label_run(frame, CLASSIFICATION)
    assert label == "insufficient_data" and f"{epochs} epoch(s)" in evidence


def test_two_epochs_get_a_real_label():
    assert label_run(run_frame([2.0, 1.0]), CLASSIFICATION)[0] in dg.LABELS[:-1]


def test_missing_train_loss_column_is_insufficient_data_naming_the_columns():
    label, evidence = label_run(pd.DataFrame({"epoch": [1, 2, 3], "loss": [1.0, 0.5, 0.2]}), {})
    assert label == "insufficient_data"
    assert "no train_loss column" in evidence and "epoch, loss" in evidence


def test_missing_val_loss_says_which_rules_were_not_checked():
    frame = healthy_frame().drop(columns=["val_loss", "val_accuracy"])
    label, evidence = label_run(frame, CLASSIFICATION)
    assert label == "good_fit" and "no val_loss" in evidence


@pytest.mark.parametrize("metrics", [None, pd.DataFrame(), pd.DataFrame({"train_loss": []})])
def test_empty_inputs_give_insufficient_data_and_no_flags(metrics):
    result = diagnose(metrics, None)
    assert result.label == "insufficient_data" and result.flags == () and result.flag_evidence == {}


def test_only_a_train_loss_column_never_crashes():
    result = diagnose(pd.DataFrame({"train_loss": decay(2.0, 0.05, tau=3)}))
    assert result.label in dg.LABELS and result.flags == ()


def test_non_numeric_cells_and_zero_losses_do_not_crash():
    frame = run_frame([1.0, 0.0, 0.0, 0.0, 0.0], grad_norm=["1.0", "x", "2", "", "3"])
    frame["dead_fraction"] = ["n/a"] * 5
    assert diagnose(frame, CLASSIFICATION).label in dg.LABELS


# ---- flags ----


def test_healthy_run_has_no_flags():
    assert gradient_and_unit_flags(healthy_frame()) == {}


def test_first_layer_gradient_far_below_last_is_vanishing_gradients():
    flags = gradient_and_unit_flags(
        run_frame(decay(2.0, 0.05, tau=3), grad_norm_hidden1=1e-6, grad_norm_output=1e-2)
    )
    assert list(flags) == ["vanishing_gradients"]
    assert "grad_norm_hidden1 1e-06 vs grad_norm_output 0.01 (ratio 1.0e-04" in flags["vanishing_gradients"]


def test_vanishing_gradients_reads_layers_in_column_order():
    # Conv nets name layers differently; the first grad_norm_ column is the input side.
    frame = pd.DataFrame(
        {"train_loss": [1.0, 0.5], "grad_norm_fc2": [1e-7] * 2, "grad_norm_conv1": [1.0] * 2}
    )
    assert "vanishing_gradients" in gradient_and_unit_flags(frame)
    assert gradient_and_unit_flags(frame[["train_loss", "grad_norm_conv1", "grad_norm_fc2"]]) == {}


def test_vanishing_gradients_needs_two_layer_columns():
    frame = pd.DataFrame({"train_loss": [1.0, 0.5], "grad_norm_output": [1e-9] * 2})
    assert gradient_and_unit_flags(frame) == {}


def test_large_gradient_norm_is_exploding_gradients():
    flags = gradient_and_unit_flags(run_frame(decay(2.0, 0.05, tau=3), grad_norm=5e3))
    assert flags["exploding_gradients"] == "grad_norm 5e+03 (median of last 3 epochs)"


def test_gradient_norm_growing_a_hundredfold_is_exploding_gradients():
    flags = gradient_and_unit_flags(run_frame(decay(2.0, 0.05, tau=3), grad_norm=np.geomspace(1, 500, N)))
    assert "grew" in flags["exploding_gradients"] and "1 at first" in flags["exploding_gradients"]


def test_infinite_gradient_norm_is_exploding_gradients():
    norms = np.ones(N)
    norms[12] = math.inf
    flags = gradient_and_unit_flags(run_frame(decay(2.0, 0.05, tau=3), grad_norm=norms))
    assert flags["exploding_gradients"] == "grad_norm infinite at epoch 13"


def test_many_never_active_units_is_dead_units():
    flags = gradient_and_unit_flags(run_frame(decay(2.0, 0.05, tau=3), dead_fraction=0.45))
    assert flags == {"dead_units": "dead_fraction 0.45 > 0.3 (median of last 3 epochs)"}


def test_flags_use_the_median_of_recent_epochs_not_one_odd_epoch():
    dead = np.full(N, 0.1)
    dead[-1] = 0.9
    assert gradient_and_unit_flags(run_frame(decay(2.0, 0.05, tau=3), dead_fraction=dead)) == {}


def test_outputs_at_their_bounds_is_saturated_units():
    flags = gradient_and_unit_flags(run_frame(decay(2.0, 0.05, tau=3), saturated_fraction=0.7))
    assert list(flags) == ["saturated_units"] and "0.70 > 0.5" in flags["saturated_units"]


def test_flags_are_independent_of_the_label_and_ordered_as_flags():
    frame = healthy_frame()
    frame["saturated_fraction"], frame["dead_fraction"], frame["grad_norm"] = 0.9, 0.5, 1e4
    result = diagnose(frame, CLASSIFICATION)
    assert result.label == "good_fit"
    assert result.flags == ("exploding_gradients", "dead_units", "saturated_units")
    assert set(result.flag_evidence) == set(result.flags)


# ---- public constants ----


def test_every_label_has_advice_and_diagnose_uses_it():
    assert set(dg.ADVICE) == set(dg.LABELS)
    result = diagnose(healthy_frame(), CLASSIFICATION)
    assert result.advice == dg.ADVICE[result.label]


def test_module_imports_no_jax():
    """Reports and notebooks import the rules cheaply: neither they nor what they import load JAX."""
    code = (
        "import sys, dlrun.report.diagnose; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'jax', 'jaxlib', 'flax', 'optax'}))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"


def test_bouncing_at_the_loss_floor_is_not_unstable():
    """Adam at a constant lr near zero loss: +60% rises of a loss of 0.005 are noise, not instability."""
    train = [0.6, 0.2, 0.08, 0.03, 0.012, 0.006, 0.009, 0.005, 0.008, 0.006, 0.009, 0.006]
    val = [0.55, 0.2, 0.09, 0.04, 0.02, 0.015, 0.014, 0.013, 0.0135, 0.013, 0.0132, 0.013]
    frame = pd.DataFrame(
        {
            "epoch": range(1, 13),
            "train_loss": train,
            "val_loss": val,
            "train_accuracy": 0.99,
            "val_accuracy": 0.99,
        }
    )
    label, evidence = label_run(frame, {"status": "completed", "task": "classification"})
    assert label != "unstable", evidence
    tight = dataclasses.replace(DEFAULT_THRESHOLDS, loss_floor_fraction=0.0)
    assert label_run(frame, {"status": "completed"}, tight)[0] == "unstable"


# ---- curves of real runs (issue 14), copied from their metrics.csv to 4 digits ----

# `dlrun sweep data=spirals model.hidden=[64,64] epochs=30 batch_size=32 schedule=constant
# lr=10,0.003`, trial lr=10 (Adam): the loss blows up in epochs 1-3, then both accuracies sit at
# chance (2 classes) with a loss that wanders around ln 2.
ADAM_LR10_SPIRALS = {
    "train_loss": [
        28690.0,
        1034.0,
        891.4,
        0.8298,
        1.258,
        1.406,
        1.005,
        0.8749,
        0.9042,
        0.8624,
        1.062,
        1.736,
        0.9699,
        0.7556,
        0.7776,
        0.8564,
        0.7463,
        0.8027,
        0.7871,
        0.847,
        0.8257,
        0.8331,
        0.8451,
        1.028,
        0.8653,
        0.8577,
        0.9663,
        1.071,
        1.189,
        1.029,
    ],
    "train_accuracy": [
        0.6617,
        0.7024,
        0.6501,
        0.5211,
        0.5217,
        0.5306,
        0.5217,
        0.5299,
        0.5082,
        0.4966,
        0.4918,
        0.5082,
        0.5041,
        0.5183,
        0.5163,
        0.5163,
        0.5312,
        0.5122,
        0.4918,
        0.534,
        0.4959,
        0.4952,
        0.5238,
        0.5177,
        0.5231,
        0.5095,
        0.5122,
        0.5,
        0.5312,
        0.5075,
    ],
    "val_loss": [
        79.56,
        3674.0,
        0.8293,
        0.8223,
        2.117,
        1.348,
        1.339,
        0.7382,
        1.055,
        1.622,
        1.083,
        1.857,
        0.7799,
        0.721,
        0.6865,
        1.143,
        1.067,
        0.9819,
        0.8161,
        0.8095,
        1.176,
        0.7087,
        1.058,
        1.035,
        0.6903,
        0.778,
        0.723,
        1.512,
        1.745,
        1.713,
    ],
    "val_accuracy": [
        0.654,
        0.696,
        0.538,
        0.52,
        0.496,
        0.496,
        0.52,
        0.52,
        0.496,
        0.496,
        0.496,
        0.496,
        0.496,
        0.52,
        0.496,
        0.496,
        0.52,
        0.52,
        0.52,
        0.496,
        0.496,
        0.496,
        0.496,
        0.52,
        0.496,
        0.52,
        0.496,
        0.496,
        0.496,
        0.496,
    ],
}
# `dlrun sweep data=moons,circles,spirals epochs=5 optim=adam lr=0.001,0.01,0.03 model.hidden=[32]
# schedule=constant`, circles at lr=0.03: a smooth fast fall whose val jitter (0.17) is above
# the floor only because 5 epochs bend sharply.
ADAM_5_EPOCHS_CIRCLES = {
    "train_loss": [0.583, 0.3277, 0.1724, 0.09179, 0.06267],
    "train_accuracy": [0.6662, 0.9205, 0.9794, 0.9922, 0.9943],
    "val_loss": [0.4302, 0.2522, 0.1019, 0.06516, 0.04682],
    "val_accuracy": [0.804, 0.914, 0.992, 0.998, 0.998],
}
# summary.json of both: spirals and circles carry no num_classes (chance is taken as 0.5)
REAL_SUMMARY = {"status": "completed", "task": "classification", "num_classes": None}


def real_frame(curves: dict, start: int = 0) -> pd.DataFrame:
    frame = pd.DataFrame(curves).iloc[start:].reset_index(drop=True)
    return frame.assign(epoch=range(1, len(frame) + 1))


def test_adam_at_lr_10_on_spirals_is_diverged_not_unrepresentative_validation():
    label, evidence = label_run(real_frame(ADAM_LR10_SPIRALS), REAL_SUMMARY)
    assert label == "diverged" and "at epoch 1" in evidence


def test_accuracies_at_chance_all_along_are_no_learning_although_the_loss_fell():
    """The same run from epoch 4, after the blow-up: its train loss fell 10% below its first value
    (past no_learning_drop), yet neither accuracy ever left chance."""
    label, evidence = label_run(real_frame(ADAM_LR10_SPIRALS, start=3), REAL_SUMMARY)
    assert label == "no_learning"
    assert "train accuracy at most 0.534, val accuracy at most 0.520 over 27 epochs vs chance 0.5" in evidence


def test_a_smooth_five_epoch_adam_run_is_not_unrepresentative_validation():
    frame = real_frame(ADAM_5_EPOCHS_CIRCLES)
    assert label_run(frame, REAL_SUMMARY)[0] == "still_improving"
    # A ratio of 2 would call its bend noise (val jitter 17% vs train 8%); the rises guard holds
    # because this val loss never rose.
    loose = dataclasses.replace(DEFAULT_THRESHOLDS, val_noise_ratio=2.0)
    assert label_run(frame, REAL_SUMMARY, loose)[0] == "still_improving"
    unguarded = dataclasses.replace(loose, noise_min_rises=0)
    assert label_run(frame, REAL_SUMMARY, unguarded)[0] == "unrepresentative_validation"
