"""Label how one run's training went from its per-epoch metrics, with the numbers behind the label.

Pure pandas/numpy over one run's `metrics.csv` (one row per epoch) and `summary.json`; no JAX, so
reports and notebooks can import it cheaply. Every threshold the rules compare against lives in
`Thresholds` (thresholds.py), with its reason.

`label_run` checks one rule per label and returns the first that fires, in this precedence order:

1. diverged                     a broken run: no other reading of its curves means anything.
2. insufficient_data            fewer than 2 epochs (or no train loss): nothing else can be judged.
3. no_learning                  nothing was learned, so there is no fit to call over/under.
4. unstable                     the train curve is unreliable; fixing the optimiser comes first.
5. unrepresentative_validation  the val curve is noise; the val-based rules below would read noise.
6. overfitting                  val turned up / levelled off while train kept falling.
7. still_improving              both curves still falling: too early to call under- or good fit.
8. underfitting                 train loss stays high once it has stopped falling.
9. good_fit                     none of the above.

Flags (flags.py) are independent of the label and read the last few epochs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from dlrun.report.curves import arrays, column
from dlrun.report.flags import gradient_and_unit_flags
from dlrun.report.thresholds import DEFAULT_THRESHOLDS, Thresholds

LABELS = (
    "diverged",
    "no_learning",
    "underfitting",
    "still_improving",
    "overfitting",
    "unstable",
    "unrepresentative_validation",
    "good_fit",
    "insufficient_data",
)

ADVICE: dict[str, str] = {
    "diverged": "lower the lr or momentum, add warmup or a schedule, clip gradients",
    "no_learning": "check for symmetric or zero init and dead units; the lr may be far too small",
    "underfitting": "add capacity (wider/deeper), train for more steps, raise the lr, reduce regularisation",
    "still_improving": "train longer: both losses were still falling at the end",
    "overfitting": "add L2 or dropout, stop early, augment the data, get more data or use a smaller model",
    "unstable": "lower the lr or momentum, add a schedule or warmup, clip gradients",
    "unrepresentative_validation": "use a larger or better shuffled validation split",
    "good_fit": "nothing to fix; compare the test accuracy with other runs",
    "insufficient_data": "run at least 2 epochs (with train and val losses recorded) before judging",
}


@dataclass(frozen=True)
class Diagnosis:
    """A label with its evidence and advice, plus the independent gradient/unit flags."""

    label: str
    evidence: str
    advice: str
    flags: tuple[str, ...] = ()
    flag_evidence: dict = field(default_factory=dict)


@dataclass(frozen=True)
class _Run:
    """The columns the rules read, as float arrays (None when the column is missing)."""

    train: np.ndarray | None
    val: np.ndarray | None
    train_acc: np.ndarray | None
    val_acc: np.ndarray | None
    task: str
    status: str
    num_classes: int | None
    test_accuracy: float | None
    val_psnr: np.ndarray | None = None  # the image tasks' (dlrun/models/tasks.py), in dB

    @property
    def epochs(self) -> int:
        return 0 if self.train is None else len(self.train)


def _is_number(value) -> bool:
    """True for a finite int/float (summary.json writes NaN for a test set that was not run)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _read(metrics: pd.DataFrame | None, summary: dict | None) -> _Run:
    """Gather what the rules read from the frame and summary, tolerating either being absent."""
    summary = summary or {}
    metrics = arrays(metrics)
    train_acc = column(metrics, "train_accuracy")
    # Without a task in the summary, any recorded accuracy means classification.
    task = summary.get("task") or ("classification" if train_acc is not None else "regression")
    num_classes = summary.get("num_classes")
    test_accuracy = summary.get("test_accuracy")
    return _Run(
        train=column(metrics, "train_loss", keep_all_nan=True),
        val=column(metrics, "val_loss"),
        train_acc=train_acc,
        val_acc=column(metrics, "val_accuracy"),
        task=str(task),
        status=str(summary.get("status", "")),
        num_classes=int(num_classes) if _is_number(num_classes) and num_classes > 1 else None,
        test_accuracy=float(test_accuracy) if _is_number(test_accuracy) else None,
        val_psnr=column(metrics, "val_psnr"),
    )


def _pct(fraction: float) -> str:
    return f"{round(fraction * 100) or 0:+d}%"  # `or 0` turns a rounded -0 into +0


def _drop(values: np.ndarray, start: int) -> float:
    """Relative fall from values[start] to the last value (positive when the loss went down)."""
    return (values[start] - values[-1]) / abs(values[start]) if values[start] else 0.0


def _recent_drop(values: np.ndarray, window: int) -> float:
    """Relative fall over the last `window` epoch-to-epoch steps (fewer if the run is shorter)."""
    return _drop(values, max(0, len(values) - 1 - window))


def _jitter(values: np.ndarray) -> float:
    """Std of the change in the relative epoch-to-epoch change: noise with a smooth trend removed.

    The plain std of relative changes counts a smooth turn (a U-shaped val curve) as noise;
    differencing once more leaves ~0 for any smooth curve and keeps alternating noise.
    """
    relative = values[1:] / values[:-1] - 1.0
    return float(np.std(np.diff(relative)))


def _diverged(run: _Run, t: Thresholds) -> str | None:
    """Non-finite loss anywhere, status diverged, or a train loss that exploded from its min or start."""
    for name, values in (("train", run.train), ("val", run.val)):
        bad = np.flatnonzero(~np.isfinite(values)) if values is not None else []
        if len(bad):
            return f"{name} loss {values[bad[0]]} at epoch {bad[0] + 1} of {len(values)}"
    if run.status == "diverged":
        return f"status diverged after {run.epochs} epoch(s)"
    for name, values in (("train", run.train), ("val", run.val)):
        if values is not None and len(values) and np.max(values) > t.exploding_loss:
            worst = int(np.argmax(values))
            return (
                f"{name} loss {values[worst]:.3g} at epoch {worst + 1} "
                f"(> {t.exploding_loss:g}: the weights blew up)"
            )
    if run.epochs < 2:
        return None
    train, low = run.train, int(np.argmin(run.train))
    if train[-1] > t.diverge_over_min * train[low] and train[low] > 0:
        return (
            f"train loss {train[-1]:.3g} at epoch {len(train)} = {train[-1] / train[low]:.0f}x "
            f"its minimum {train[low]:.3g} at epoch {low + 1}"
        )
    if train[0] > 0 and train[-1] > t.diverge_over_first * train[0]:
        return (
            f"train loss {train[-1]:.3g} at epoch {len(train)} = {train[-1] / train[0]:.1f}x "
            f"its first value {train[0]:.3g}"
        )
    return None


def _chance(run: _Run) -> tuple[float, str]:
    """Chance accuracy and where it comes from: 1/num_classes, else 0.5 (the highest for K >= 2)."""
    if run.num_classes:
        return 1.0 / run.num_classes, f"{run.num_classes} classes"
    return 0.5, "classes unknown, assumed <= 0.5"


def _never_left_chance(run: _Run, t: Thresholds) -> str | None:
    """Train and val accuracy within `chance_margin` of chance in every epoch, never rising from
    their first epoch: a classifier that learned nothing, whatever its loss did (a loss blown up
    in epoch 1 then back to ln 2 has fallen a lot, yet the net predicts no better than a coin)."""
    if run.task != "classification" or run.train_acc is None:
        return None
    chance, source = _chance(run)
    curves = [("train", run.train_acc), *([("val", run.val_acc)] if run.val_acc is not None else [])]
    for _, values in curves:
        finite = values[np.isfinite(values)]
        # the rise guards the unknown-K case: 10 classes climbing from 0.1 to 0.55 is learning
        if (
            not len(finite)
            or finite.max() >= chance + t.chance_margin
            or finite.max() - finite[0] >= t.chance_margin
        ):
            return None
    tops = ", ".join(f"{name} accuracy at most {np.nanmax(values):.3f}" for name, values in curves)
    return (
        f"{tops} over {run.epochs} epochs vs chance {chance:.3g} ({source}); train loss "
        f"{run.train[0]:.3g} at epoch 1, {run.train[-1]:.3g} at the end"
    )


def _no_learning(run: _Run, t: Thresholds) -> str | None:
    """Accuracies at chance all along (classification), or a train loss that never fell a few %
    below its start (and, for classification, accuracy near chance)."""
    at_chance = _never_left_chance(run, t)
    if at_chance:
        return at_chance
    train = run.train
    best = float(np.min(train))
    drop = (train[0] - best) / abs(train[0]) if train[0] else 0.0
    if drop >= t.no_learning_drop:
        return None
    evidence = (
        f"train loss {train[0]:.3g} at epoch 1, best {best:.3g} ({_pct(-drop)}) over {len(train)} epochs"
    )
    if run.task != "classification":
        # A regression loss that settled low within epoch 1 did learn; only a high flat loss did not.
        return evidence if best > t.underfit_loss else None
    if run.train_acc is None:
        return evidence + " (train accuracy not recorded)"
    chance, source = _chance(run)
    top = float(np.nanmax(run.train_acc))
    if top >= chance + t.chance_margin:
        return None  # learned within the first epoch, then flat: not a failure to learn
    return evidence + f"; train accuracy at most {top:.3f} vs chance {chance:.3g} ({source})"


def _unstable(run: _Run, t: Thresholds) -> str | None:
    """Train loss oscillates (repeated rises) or ends well above its own minimum."""
    train = run.train
    relative = train[1:] / train[:-1] - 1.0
    floor = t.loss_floor_fraction * abs(train[0])
    rises = np.flatnonzero((relative > t.oscillation_rise) & (np.diff(train) > floor))
    if len(rises) >= t.oscillation_count:
        worst = rises[np.argmax(relative[rises])]
        return (
            f"train loss rose more than {t.oscillation_rise:.0%} between epochs {len(rises)} times "
            f"(largest {_pct(relative[worst])} at epoch {worst + 2})"
        )
    low = int(np.argmin(train))
    if train[-1] > (1 + t.unstable_rise) * train[low] and train[-1] - train[low] > floor:
        return (
            f"train loss lowest {train[low]:.3g} at epoch {low + 1}, "
            f"{_pct(train[-1] / train[low] - 1)} by epoch {len(train)}"
        )
    return None


def _unrepresentative_validation(run: _Run, t: Thresholds) -> str | None:
    """Val loss far noisier than train loss, or far above it while both still fall."""
    train, val = run.train, run.val
    if val is None:
        return None
    rises = int(np.sum(np.diff(val) > 0))
    if (
        len(val) >= t.noise_min_epochs
        and rises >= t.noise_min_rises
        and np.all(val > 0)
        and np.all(train > 0)
    ):
        val_jitter, train_jitter = _jitter(val), _jitter(train)
        if val_jitter > max(t.val_noise_ratio * train_jitter, t.val_noise_floor):
            ratio = f"{val_jitter / train_jitter:.0f}x" if train_jitter > 0 else "train ~0"
            return (
                f"val loss jitter {val_jitter:.0%} vs train {train_jitter:.1%} ({ratio}; std of the "
                f"change in relative epoch-to-epoch change) over {len(val)} epochs"
            )
    train_drop, val_drop = _recent_drop(train, t.window), _recent_drop(val, t.window)
    both_falling = min(train_drop, val_drop) > t.improving_drop
    if both_falling and train[-1] > 0 and val[-1] > t.val_gap_ratio * train[-1]:
        return (
            f"val loss {val[-1]:.3g} = {val[-1] / train[-1]:.1f}x train loss {train[-1]:.3g} "
            f"at epoch {len(val)} while both still fall ({_pct(-train_drop)} train, "
            f"{_pct(-val_drop)} val over the last {t.window} epochs)"
        )
    return None


def _overfitting(run: _Run, t: Thresholds) -> str | None:
    """Val loss rose from its minimum, or stalled while train loss kept falling a lot."""
    train, val = run.train, run.val
    if val is None:
        return None
    low = int(np.argmin(val))
    if low == len(val) - 1:
        return None  # val still at its best at the end
    rise = val[-1] / val[low] - 1.0
    train_drop = _drop(train, low)
    above_floor = val[-1] - val[low] > t.loss_floor_fraction * abs(val[0])
    # "while train loss keeps falling": by more than epoch noise, else it is not a fit going stale
    turned_up = rise > t.overfit_rise and train_drop > t.improving_drop and above_floor
    stalled = train_drop > t.overfit_train_drop
    if not (turned_up or stalled):
        return None
    stall = "" if turned_up else f" (no new low for {len(val) - 1 - low} epochs)"
    return (
        f"val loss lowest {val[low]:.3g} at epoch {low + 1}, {_pct(rise)} by epoch {len(val)}"
        f"{stall} while train loss fell {train_drop:.0%}"
    )


def _still_improving(run: _Run, t: Thresholds) -> str | None:
    """Both losses (train alone if val is missing) fell by more than `improving_drop` lately."""
    train_drop = _recent_drop(run.train, t.window)
    if train_drop <= t.improving_drop:
        return None
    steps = min(t.window, run.epochs - 1)
    evidence = f"over the last {steps} epochs train loss fell {train_drop:.0%} (to {run.train[-1]:.3g})"
    if run.val is None:
        return evidence
    val_drop = _recent_drop(run.val, t.window)
    if val_drop <= t.improving_drop:
        return None
    return evidence + f" and val loss {val_drop:.0%} (to {run.val[-1]:.3g})"


def _underfitting(run: _Run, t: Thresholds) -> str | None:
    """Train accuracy (classification) stays below target, or train loss stays high."""
    flat = f"{_pct(-_recent_drop(run.train, t.window))} over the last {t.window} epochs"
    if run.task == "classification" and run.train_acc is not None:
        accuracy = float(run.train_acc[-1])
        if accuracy < t.underfit_accuracy:
            return (
                f"final train accuracy {accuracy:.3f} < {t.underfit_accuracy:g} "
                f"(train loss {run.train[-1]:.3g}, {flat})"
            )
        return None
    # Regression targets are standardised, so the loss itself says how much is left unexplained;
    # classification without accuracy falls back to the same loss level.
    if run.train[-1] > t.underfit_loss:
        return f"final train loss {run.train[-1]:.3g} > {t.underfit_loss:g} ({flat})"
    return None


def _good_fit(run: _Run) -> str:
    """Describe the final state of a run no rule objected to."""
    parts = [f"train loss {run.train[-1]:.3g}"]
    if run.val is not None:
        low = int(np.nanargmin(run.val))
        parts.append(
            f"val loss {run.val[-1]:.3g} (lowest {run.val[low]:.3g} at epoch {low + 1} of {len(run.val)})"
        )
    accuracies = [
        (name, values[-1])
        for name, values in (("train", run.train_acc), ("val", run.val_acc))
        if values is not None and math.isfinite(values[-1])
    ]
    if run.test_accuracy is not None:
        accuracies.append(("test", run.test_accuracy))
    if accuracies:
        parts.append("accuracy " + ", ".join(f"{name} {value:.3f}" for name, value in accuracies))
    if run.val_psnr is not None and math.isfinite(run.val_psnr[-1]):
        parts.append(f"val PSNR {run.val_psnr[-1]:.2f} dB")
    return "; ".join(parts)


# Checked in this order after diverged/insufficient_data; see the module docstring for why.
_RULES = (
    ("no_learning", _no_learning),
    ("unstable", _unstable),
    ("unrepresentative_validation", _unrepresentative_validation),
    ("overfitting", _overfitting),
    ("still_improving", _still_improving),
    ("underfitting", _underfitting),
)


def label_run(
    metrics: pd.DataFrame | None, summary: dict | None = None, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> tuple[str, str]:
    """Return (label, evidence): the first rule that fires, in the module's precedence order."""
    run = _read(metrics, summary)
    # Zeros or negative losses from foreign folders make ratios inf/NaN; the rules then simply
    # do not fire, which is the right outcome, so numpy's warnings are noise here.
    with np.errstate(divide="ignore", invalid="ignore"):
        return _first_label(run, metrics, thresholds)


def _first_label(run: _Run, metrics, thresholds: Thresholds) -> tuple[str, str]:
    """Steps 1-9 of the module docstring's precedence order."""
    evidence = _diverged(run, thresholds)
    if evidence:
        return "diverged", evidence
    if run.train is None:
        columns = ", ".join(map(str, arrays(metrics))) or "none"
        return "insufficient_data", f"no train_loss column (columns: {columns})"
    if run.epochs < 2:
        return "insufficient_data", f"{run.epochs} epoch(s) recorded; need at least 2"
    # Missing val loss skips the val-based rules; say so rather than let good_fit look checked.
    note = "" if run.val is not None else "; no val_loss, so overfitting and validation not checked"
    for label, rule in _RULES:
        evidence = rule(run, thresholds)
        if evidence:
            return label, evidence + note
    return "good_fit", _good_fit(run) + note


def diagnose(
    metrics: pd.DataFrame | None, summary: dict | None = None, thresholds: Thresholds = DEFAULT_THRESHOLDS
) -> Diagnosis:
    """Return the run's Diagnosis: label, evidence and advice, plus the independent flags."""
    metrics = arrays(metrics)  # once for the rules and the flags
    label, evidence = label_run(metrics, summary, thresholds)
    if (summary or {}).get("status") == "pruned":  # short curves because the search stopped them
        evidence += f"; pruned by the search after epoch {summary.get('pruned_epoch', '?')}"
    flag_evidence = gradient_and_unit_flags(metrics, thresholds)
    return Diagnosis(
        label=label,
        evidence=evidence,
        advice=ADVICE[label],
        flags=tuple(flag_evidence),
        flag_evidence=flag_evidence,
    )
