"""The best value so far against trials and trial-epochs, and `dlrun report --plot` drawing it."""

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from dlrun.cli import app
from dlrun.report.build import build_report
from dlrun.report.search import best_so_far, objective, progress, search_kind
from dlrun.report.sweeps import read_sweeps

FRAME = pd.DataFrame(
    {
        # out of order on purpose: trials are taken by number, and trial-10 comes after trial-9
        "run": ["trial-10", "trial-2", "trial-9", "trial-1", "trial-3"],
        "best_val_accuracy": [0.95, 0.7, np.nan, 0.5, 0.9],
        "best_val_loss": [0.1, 0.8, np.nan, 1.0, 0.2],
        "epochs_run": [3, 1, 2, 3, 3],
        "status": ["completed", "pruned", "diverged", "completed", "completed"],
    }
)


@pytest.mark.parametrize(
    "metric, maximise, best",
    [
        ("best_val_accuracy", True, [0.5, 0.7, 0.9, 0.9, 0.95]),
        ("best_val_loss", False, [1.0, 0.8, 0.2, 0.2, 0.1]),
    ],
)
def test_best_so_far_is_the_running_best_in_trial_order(metric, maximise, best):
    series = best_so_far(FRAME, metric, maximise)
    assert list(series["run"]) == ["trial-1", "trial-2", "trial-3", "trial-9", "trial-10"]
    assert list(series["trials"]) == [1, 2, 3, 4, 5]
    # a pruned trial counts the one epoch it ran, the diverged one its two
    assert list(series["trial_epochs"]) == [3, 4, 7, 9, 12]
    np.testing.assert_allclose(series["best"], best)


def test_a_search_that_has_no_value_yet_has_no_best():
    series = best_so_far(
        FRAME.assign(best_val_accuracy=[0.2, np.nan, 0.1, np.nan, 0.3]), "best_val_accuracy", True
    )
    np.testing.assert_allclose(series["best"], [np.nan, np.nan, 0.3, 0.3, 0.3])


def test_report_plot_draws_a_random_search_s_progress(tmp_path):
    out = tmp_path / "study"
    runner = CliRunner()
    result = runner.invoke(
        app,
        [
            "sweep",
            "data=spirals",
            "data.n_samples=400",
            "data.val_size=100",
            "data.n_test=100",
            "model.hidden=[8]",
            "epochs=2",
            "batch_size=50",
            "lr=interval(0.001,1)",
            "--trials",
            "5",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    records = read_sweeps([out])
    assert search_kind(records) == "random"
    page = tmp_path / "report.html"
    result = runner.invoke(app, ["report", str(out), "--plot", "--format", "html", "-o", str(page)])
    assert result.exit_code == 0, result.output
    image = tmp_path / "report" / "search_progress.png"  # --plot draws beside the -o file
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and image.stat().st_size > 10_000
    html = page.read_text()
    section = html[html.index("<section id='search'>") :]
    assert "trial-epochs spent" in section[: section.index("</section>")]
    assert "over 5 trials in the order they started, and over the 10 trial-epochs" in html
    rows = build_report([out]).rows
    assert objective(rows, records) == ("best_val_accuracy", True)
    series = best_so_far(rows, "best_val_accuracy", True)
    values = rows.sort_values("run")["best_val_accuracy"].to_numpy()
    np.testing.assert_allclose(series["best"], np.maximum.accumulate(values))
    np.testing.assert_array_equal(series["trial_epochs"], np.arange(1, 6) * 2)


def test_a_grid_or_plain_runs_get_no_search_plot():
    assert search_kind([]) is None and search_kind([{"plan": {"mode": "grid"}}]) == "grid"
    assert search_kind([{"search": "tpe", "plan": {"mode": "random"}}]) == "tpe"
    assert progress(FRAME, [{"plan": {"mode": "grid"}}]) is None and progress(FRAME, []) is None
    kind, metric, series = progress(FRAME, [{"search": "tpe", "metric": "best_val_loss"}])
    assert (kind, metric, series["best"].iloc[-1]) == ("tpe", "best_val_loss", 0.1)
