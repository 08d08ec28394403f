"""`dlrun report` on real short runs whose fate is certain, and on broken folders."""

import json

import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import needs_mnist
from dlrun import report
from dlrun.cli import app

runner = CliRunner()


def dlrun(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three real runs: a diverging lr, a healthy fit, and a big MLP overfitting 300 images."""
    root = tmp_path_factory.mktemp("runs")
    common = ["data=moons", "model.hidden=[16]", "schedule=constant", "epochs=15"]
    assert dlrun("train", *common, "optim=sgd", "loss=mse", "lr=1e6", "--out", root / "huge-lr").exit_code == 0
    assert dlrun("train", *common, "lr=0.01", "--out", root / "healthy").exit_code == 0
    overfit = ["data=mnist", "data.subset=300", "data.val_size=1000", "model.hidden=[512,512]",
               "schedule=constant", "epochs=40", "batch_size=32"]
    assert dlrun("train", *overfit, "--out", root / "overfit").exit_code == 0
    return root


@needs_mnist
def test_labels_follow_the_runs_fate(runs):
    built = report.build_report([runs])
    labels = dict(zip(built.rows.run, built.rows.diagnosis))
    assert labels["huge-lr"] == "diverged"
    assert labels["overfit"] == "overfitting"
    assert labels["healthy"] not in ("diverged", "overfitting", "no_learning", "unstable")
    overfit = built.rows.set_index("run").loc["overfit"]
    assert "val loss lowest" in overfit.evidence and overfit.gap > 0.05


@needs_mnist
def test_varying_hyperparameters_are_columns_and_constant_ones_are_not(runs):
    built = report.build_report([runs])
    assert {"lr", "data.name", "epochs"} <= set(built.varying)
    assert "seed" in built.constant and "seed" not in built.rows.columns


@needs_mnist
def test_json_lists_every_run_with_diagnosis_flags_advice_and_folder(runs):
    result = dlrun("report", runs, "--format", "json")
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert len(records) == 3
    for record in records:
        assert {"diagnosis", "flags", "advice", "folder", "test_accuracy"} <= set(record)
        assert isinstance(record["flags"], list)


@needs_mnist
@pytest.mark.parametrize("fmt, marker", [("csv", "run,"), ("markdown", "| run"), ("latex", "\\begin{tabular}"),
                                         ("html", "<table"), ("table", "overfitting")])
def test_every_format_renders(runs, fmt, marker):
    result = dlrun("report", runs, "--format", fmt)
    assert result.exit_code == 0, result.output
    assert marker in result.stdout


@needs_mnist
def test_sort_top_filter_and_group_by(runs):
    result = dlrun("report", runs, "--format", "csv", "--sort", "best_val_loss", "--top", "2")
    frame = pd.read_csv(pd.io.common.StringIO(result.stdout))
    assert len(frame) == 2 and frame.best_val_loss.is_monotonic_increasing
    result = dlrun("report", runs, "--format", "csv", "--filter", "diagnosis == 'diverged'")
    assert list(pd.read_csv(pd.io.common.StringIO(result.stdout)).run) == ["huge-lr"]
    result = dlrun("report", runs, "--format", "csv", "--group-by", "data.name")
    grouped = pd.read_csv(pd.io.common.StringIO(result.stdout))
    assert set(grouped["data.name"]) == {"moons", "mnist"} and "best_val_loss_std" in grouped


@needs_mnist
def test_plots_and_a_self_contained_html_report(runs, tmp_path):
    page = tmp_path / "report.html"
    result = dlrun("report", runs, "--plot", "--format", "html", "-o", page)
    assert result.exit_code == 0, result.output
    text = page.read_text()
    assert text.count("data:image/png;base64,") >= 4 and "<table" in text
    pngs = {p.name for p in (tmp_path / "report").glob("*.png")}
    assert {"curves_overfit.png", "sweep_curves.png", "sensitivity_lr.png"} <= pngs


def test_broken_and_foreign_folders_are_warnings_not_crashes(tmp_path):
    (tmp_path / "partial").mkdir()
    (tmp_path / "partial" / "config.yaml").write_text("lr: 0.1\n")
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "summary.json").write_text("{not json")
    (tmp_path / "corrupt" / "metrics.csv").write_text("epoch,train_loss\n1,0.5\n2,\n\x00")
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("hello")
    result = dlrun("report", tmp_path / "partial", tmp_path / "corrupt", tmp_path / "foreign",
                   tmp_path / "missing", "--format", "json")
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert {r["run"] for r in records} == {"partial", "corrupt"}
    for fragment in ("summary.json is corrupt", "no summary.json", "foreign: no run folders", "missing: no such"):
        assert fragment in result.output


def test_bad_report_options_exit_2(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "summary.json").write_text('{"status": "completed"}')
    for args, fragment in ((["--format", "pdf"], "unknown --format 'pdf'"),
                           (["--sort", "colour"], "unknown --sort column 'colour'"),
                           (["--filter", "("], "bad --filter"),
                           (["--threshold", "overfit_rice=0.2"], "overfit_rice"),
                           (["--top", "0"], "--top must be >= 1, got 0")):
        result = dlrun("report", tmp_path, *args)
        assert result.exit_code == 2 and fragment in result.output, result.output
