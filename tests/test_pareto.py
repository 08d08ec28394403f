"""Multi-objective search (`--metric a,b`): the front of hand-made points, the refusals, a real
TPE sweep over widths whose report's front is the non-dominated set of its trials.csv and
Optuna's `best_trials`, and a pruner judging such a study by its first metric."""

import subprocess
import sys

import numpy as np
import optuna
import pandas as pd
import pytest
from typer.testing import CliRunner

from dlrun.cli import app
from dlrun.objectives import directions, pareto_front
from dlrun.sweep.pruning import FirstObjective

WIDTHS = ["data=spirals", "model.hidden=choice([4],[16],[64])", "batch_size=32", "epochs=2", "lr=0.05"]
MOO = ["--search", "tpe", "--trials", "3", "--batch", "3", "--metric", "best_val_accuracy,params"]


def dlrun(*args):
    return CliRunner().invoke(app, list(args))


def test_the_front_of_hand_made_points():
    """Accuracy up, cost down: (0.9, 100) and (0.8, 50) trade off; (0.85, 200) is beaten by
    (0.9, 100); a tie with a front point is on it too (neither dominates); NaN never is."""
    points = [[0.9, 100], [0.8, 50], [0.85, 200], [0.9, 100], [np.nan, 1], [0.7, 50], [0.95, 400]]
    front = pareto_front(points, [True, False])
    assert front.tolist() == [True, True, False, True, False, False, True]
    # both minimised: the staircase x + y = 4 is the front, (3, 3) is behind (2, 2)
    staircase = pareto_front([[1, 3], [2, 2], [3, 1], [3, 3]], [False, False])
    assert staircase.tolist() == [True, True, True, False]
    assert directions("best_val_accuracy,params,train_time_s,best_val_loss") == [
        "maximize",
        "minimize",
        "minimize",
        "minimize",
    ]


@pytest.mark.parametrize(
    "flags, message",
    [
        (
            ["--search", "tpe", "--metric", "best_val_accuracy,size"],
            "unknown --metric 'size' (choose from: best_val_accuracy, best_val_loss, params, train_time_s)",
        ),
        (
            ["--search", "tpe", "--metric", "params,params"],
            "--metric params,params names params twice; give each metric once",
        ),
        (
            ["--search", "cmaes", "--metric", "best_val_accuracy,params"],
            "--search cmaes optimises one metric; for --metric best_val_accuracy,params "
            "use --search nsga2|tpe|qmc",
        ),
        (
            ["--search", "tpe", "--metric", "best_val_accuracy,params", "--pruner", "hyperband"],
            "--pruner hyperband cannot judge a study of several metrics; use --pruner none|median|sha",
        ),
        (
            ["--search", "tpe", "--metric", "params,best_val_accuracy", "--pruner", "median"],
            "--pruner median judges the first --metric each epoch, and params has no per-epoch value",
        ),
        (["--search", "random", "--metric", "best_val_accuracy,params"], "--metric needs an adaptive search"),
    ],
)
def test_bad_metric_lists_are_refused_in_one_line(tmp_path, flags, message):
    result = dlrun("sweep", *WIDTHS, "--trials", "2", *flags, "--out", str(tmp_path / "s"))
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
    assert "Traceback" not in result.output and not (tmp_path / "s").exists()


@pytest.fixture(scope="module")
def swept(tmp_path_factory):
    """Three widths at a fixed lr, told as (accuracy, parameter count): 3 trials, 2 epochs."""
    out = tmp_path_factory.mktemp("pareto") / "widths"
    result = dlrun("sweep", *WIDTHS, *MOO, "--pruner", "median", "--out", str(out))
    assert result.exit_code == 0, result.output
    return out


def _direct_front(out) -> set:
    trials = pd.read_csv(out / "trials.csv")
    done = trials[trials["status"] == "completed"]
    front = pareto_front(done[["best_val_accuracy", "params"]].to_numpy(), [True, False])
    return set(done["trial"][front])


def test_the_reports_front_is_the_trials_non_dominated_set(swept):
    study = optuna.load_study(study_name=swept.name, storage=f"sqlite:///{swept / 'study.db'}")
    assert [d.name for d in study.directions] == ["MAXIMIZE", "MINIMIZE"]
    expected = _direct_front(swept)
    assert {t.user_attrs["run_dir"] for t in study.best_trials} == expected
    # an MLP 2 -> h -> 2 on the spirals holds 2h + h + 2h + 2 parameters
    trials = pd.read_csv(swept / "trials.csv")
    widths = trials["model.hidden"].str.strip("[]").astype(int)
    assert (trials["params"] == 5 * widths + 2).all()
    env = {"COLUMNS": "80", "PYTHONPATH": ":".join(sys.path)}
    shown = subprocess.run(
        [sys.executable, "-m", "dlrun", "report", str(swept)], capture_output=True, text=True, env=env
    )
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("Pareto front:"))
    assert f"Pareto front: {len(expected)} of {len(trials)} finished trials" in lines[start]
    rows = {line.split("│")[1].strip() for line in lines[start + 4 :] if line.startswith("│")}
    assert rows == expected and all(len(line) <= 80 for line in lines)


def test_the_html_report_draws_the_front(swept, tmp_path):
    page = tmp_path / "report.html"
    assert dlrun("report", str(swept), "--format", "html", "--output", str(page)).exit_code == 0
    html = page.read_text()
    section = html[html.index("<section id='pareto'>") :]
    section = section[: section.index("</section>")]
    assert "<svg" in section and f"{len(_direct_front(swept))} trial" in section
    assert "val acc up, params down" in section


def test_a_study_for_another_metric_list_is_refused(swept):
    result = dlrun("sweep", *WIDTHS, *MOO[:-1], "best_val_accuracy", "--out", str(swept))
    assert result.exit_code == 2 and "holds a different sweep" in result.output
    shared = f"sqlite:///{swept / 'study.db'}"
    other = swept.parent / "other"
    result = dlrun(
        "sweep",
        *WIDTHS,
        *MOO[:-1],
        "params,best_val_accuracy",
        "--storage",
        shared,
        "--study",
        swept.name,
        "--out",
        str(other),
    )
    assert result.exit_code == 2, result.output
    assert "exists with another space or metric" in result.output and not other.exists()


def test_the_pruner_judges_a_study_of_several_metrics_by_the_first():
    """Median pruning on the first metric (accuracy, up): at epoch 1 the median of the finished
    trials' 0.5, 0.6, 0.7 is 0.6, so a trial at 0.55 stops and one at 0.65 goes on. The study
    itself refuses the pruner (Optuna's issue #3450)."""
    study = optuna.create_study(directions=["maximize", "minimize"])
    for accuracy in (0.5, 0.6, 0.7):
        study.add_trial(optuna.trial.create_trial(values=[accuracy, 10.0], intermediate_values={1: accuracy}))
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
    judged = FirstObjective(study, study.directions[0])
    for value, pruned in ((0.55, True), (0.65, False)):
        trial = study.ask()
        study._storage.set_trial_intermediate_value(trial._trial_id, 1, value)
        frozen = study._storage.get_trial(trial._trial_id)
        assert bool(pruner.prune(judged, frozen)) is pruned
    with pytest.raises(RuntimeError):
        pruner.prune(study, frozen)


def test_nsga2_breeds_one_generation_per_round_of_batch_trials(tmp_path):
    """NSGA-II's population is --batch: six trials asked three at a time are two generations of
    three, each a round (with Optuna's default of 50, all six would be generation 0)."""
    out = tmp_path / "nsga2"
    space = ["data=spirals", "data.n_samples=600", "model.hidden=choice([4],[16])", "epochs=1"]
    flags = ["--search", "nsga2", "--trials", "6", "--batch", "3", "--metric", "best_val_accuracy,params"]
    result = dlrun("sweep", *space, "lr=interval(1e-3,1e-1)", *flags, "--out", str(out))
    assert result.exit_code == 0, result.output
    study = optuna.load_study(study_name=out.name, storage=f"sqlite:///{out / 'study.db'}")
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    assert [t.system_attrs["NSGAIISampler:generation"] for t in done] == [0, 0, 0, 1, 1, 1]
    assert set(pd.read_csv(out / "trials.csv")["status"]) == {"completed"}
