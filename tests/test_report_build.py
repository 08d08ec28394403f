"""report/build.py and `dlrun report`: real short runs whose fate is certain, and broken folders."""

import html
import io
import json
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from conftest import needs_mnist
from typer.testing import CliRunner

from dlrun.cli import app
from dlrun.report import build, render

runner = CliRunner()


def dlrun(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three real runs: a diverging lr, a healthy fit, and a big MLP overfitting 300 images."""
    root = tmp_path_factory.mktemp("runs")
    common = ["data=moons", "model.hidden=[16]", "schedule=constant", "epochs=15"]
    assert (
        dlrun("train", *common, "optim=sgd", "loss=mse", "lr=1e6", "--out", root / "huge-lr").exit_code == 0
    )
    assert dlrun("train", *common, "lr=0.01", "--out", root / "healthy").exit_code == 0
    overfit = [
        "data=mnist",
        "data.subset=300",
        "data.val_size=1000",
        "model.hidden=[512,512]",
        "schedule=constant",
        "epochs=40",
        "batch_size=32",
    ]
    assert dlrun("train", *overfit, "--out", root / "overfit").exit_code == 0
    return root


@needs_mnist
def test_labels_follow_the_runs_fate(runs):
    built = build.build_report([runs])
    labels = dict(zip(built.rows.run, built.rows.diagnosis))
    assert labels["huge-lr"] == "diverged"
    assert labels["overfit"] == "overfitting"
    assert labels["healthy"] not in ("diverged", "overfitting", "no_learning", "unstable")
    overfit = built.rows.set_index("run").loc["overfit"]
    assert "val loss lowest" in overfit.evidence and overfit.gap > 0.05


@needs_mnist
def test_varying_hyperparameters_are_columns_and_constant_ones_are_not(runs):
    built = build.build_report([runs])
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
@pytest.mark.parametrize(
    "fmt, marker",
    [
        ("csv", "run,"),
        ("markdown", "| run"),
        ("latex", "\\begin{tabular}"),
        ("html", "<table"),
        ("table", "overfitting"),
    ],
)
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
    # the sensitivity to each swept key, the overlay and the per-run grid, inline: no image files
    assert text.count("<svg") >= 3 and "data:image" not in text and "<table" in text
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
    result = dlrun(
        "report",
        tmp_path / "partial",
        tmp_path / "corrupt",
        tmp_path / "foreign",
        tmp_path / "missing",
        "--format",
        "json",
    )
    assert result.exit_code == 0, result.output
    records = json.loads(result.stdout)
    assert {r["run"] for r in records} == {"partial", "corrupt"}
    for fragment in (
        "summary.json is corrupt",
        "no summary.json",
        "foreign: no run folders",
        "missing: no such",
    ):
        assert fragment in result.output


def test_bad_report_options_exit_2(tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "summary.json").write_text('{"status": "completed"}')
    for args, fragment in (
        (["--format", "pdf"], "unknown --format 'pdf'"),
        (["--sort", "colour"], "unknown --sort column 'colour'"),
        (["--filter", "("], "bad --filter"),
        (["--threshold", "overfit_rice=0.2"], "overfit_rice"),
        (["--top", "0"], "--top must be >= 1, got 0"),
    ):
        result = dlrun("report", tmp_path, *args)
        assert result.exit_code == 2 and fragment in result.output, result.output


# Damaged copies of a healthy run, one file damaged in each: name -> what is done to the copy.
def _rewrite_summary(run, **changes):
    summary = json.loads((run / "summary.json").read_text())
    summary.update(changes)
    (run / "summary.json").write_text(json.dumps({k: v for k, v in summary.items() if v is not ...}))


def _foreign(run):
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir()
    (run / "README.md").write_text("# notes, not a run\n")
    (run / "figure.png").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(64))


DAMAGES = {
    "truncated-summary": lambda run: (run / "summary.json").write_bytes(
        (run / "summary.json").read_bytes()[:90]
    ),
    "binary-metrics": lambda run: (run / "metrics.csv").write_bytes(bytes(range(255, -1, -1)) * 4),
    "ragged-metrics": lambda run: (run / "metrics.csv").open("a").write("4,0.1\n"),
    "empty-summary": lambda run: (run / "summary.json").write_bytes(b""),
    "empty-metrics": lambda run: (run / "metrics.csv").write_bytes(b""),
    "empty-config": lambda run: (run / "config.yaml").write_bytes(b""),
    "list-summary": lambda run: (run / "summary.json").write_text("[1, 2, 3]"),
    "numeric-status": lambda run: _rewrite_summary(run, status=3),
    "missing-metrics": lambda run: (run / "metrics.csv").unlink(),
    "missing-config": lambda run: ((run / "config.yaml").unlink(), _rewrite_summary(run, config=...)),
    "garbage-config": lambda run: (
        (run / "config.yaml").write_bytes(b"lr: [0.1\n\x00\xff: :"),
        _rewrite_summary(run, config=...),
    ),
    "truncated-checkpoints": lambda run: [
        (run / "checkpoints" / name).write_bytes(b"\x82\xa6") for name in ("best.msgpack", "last.msgpack")
    ],
    "foreign": _foreign,
}


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """(healthy, damaged): two real tiny runs, and the same two beside a damaged copy of one of
    them for each of DAMAGES."""
    root = tmp_path_factory.mktemp("damage")
    sweep = dlrun(
        "sweep", "data=moons", "model.hidden=[8]", "epochs=3", "lr=0.1,0.01", "--out", root / "sweep"
    )
    assert sweep.exit_code == 0, sweep.output
    healthy, damaged = root / "healthy", root / "damaged"
    for trial in sorted((root / "sweep").glob("trial-*")):
        shutil.copytree(trial, healthy / trial.name)
        shutil.copytree(trial, damaged / trial.name)
    for name, damage in DAMAGES.items():
        shutil.copytree(healthy / "trial-000", damaged / name)
        damage(damaged / name)
    return healthy, damaged


def _markdown(text):
    lines = [line for line in text.splitlines() if line.startswith("|")]
    cells = [[cell.strip() for cell in line.strip("|").split("|")] for line in lines]
    shared = [line for line in text.splitlines() if line.startswith("- `")]
    return cells[0], cells[2:], shared


def _latex(text):
    lines = text.splitlines()
    body = lines[lines.index("\\midrule") + 1 : lines.index("\\bottomrule")]
    cells = [
        [cell.strip() for cell in line.rstrip("\\ ").split(" & ")]
        for line in [lines[lines.index("\\toprule") + 1], *body]
    ]
    return cells[0], cells[1:], []


def _html(text):
    table = re.search(r"<table class='runs sortable'>(.*?)</table>", text, re.S).group(1)
    # a diagnosis cell reads as its label: the evidence and advice open under it on a click
    cell_text = lambda cell: re.sub(r"<[^>]+>", "", re.sub(r"</summary>.*", "", cell, flags=re.S))
    rows = [
        [
            html.unescape(cell_text(cell)).strip()
            for cell in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)
        ]
        for row in re.findall(r"<tr[^>]*>(.*?)</tr>", table, re.S)
    ]
    return rows[0], rows[1:], re.findall(r"<li><code>(.*?)</code></li>", text)


def _terminal(text):
    lines = text.splitlines()
    header = [cell.strip() for cell in next(line for line in lines if "┃" in line).strip("┃").split("┃")]
    rows = [[cell.strip() for cell in line.strip("│").split("│")] for line in lines if line.startswith("│")]
    if header[0] != "run":  # runs named trial-000, trial-001 show as 000, 001 under "trial"
        rows = [[f"{header[0]}-{row[0]}", *row[1:]] for row in rows]
        header[0] = "run"
    return header, rows, [line for line in lines if line.startswith("same in every run")]


def _csv(text):
    frame = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    return list(frame.columns), frame.values.tolist(), []


def _json(text):
    records = json.loads(text)
    return list(records[0]), [list(record.values()) for record in records], []


PARSERS = {
    "table": _terminal,
    "csv": _csv,
    "markdown": _markdown,
    "json": _json,
    "html": _html,
    "latex": _latex,
}


def _report(folder, fmt, out, *options):
    """Run `dlrun report` into a file; return the result and (columns, rows by run, shared)."""
    result = dlrun("report", folder, "--format", fmt, "-o", out, *options)
    assert result.exit_code == 0 and result.exception is None, result.output
    assert "Traceback" not in result.output
    header, rows, shared = PARSERS[fmt](out.read_text())
    by_run = {
        row[0]: {column: cell for column, cell in zip(header, row) if column != "folder"} for row in rows
    }
    # The terminal table shows a status column only when some run did not complete.
    return result, [column for column in header if column != "status" or fmt != "table"], by_run, shared


def test_the_parsers_cover_every_format():
    assert set(PARSERS) == set(render.FORMATS)


@pytest.mark.parametrize("plot", [False, True], ids=["no-plot", "plot"])
@pytest.mark.parametrize("fmt", render.FORMATS)
def test_damaged_runs_are_warnings_and_the_healthy_ones_read_as_if_alone(folders, tmp_path, fmt, plot):
    healthy, damaged = folders
    _, columns, alone, shared = _report(healthy, fmt, tmp_path / "healthy" / f"report.{fmt}")
    options = ["--plot"] if plot else []
    result, damaged_columns, rows, damaged_shared = _report(
        damaged, fmt, tmp_path / f"report.{fmt}", *options
    )
    warned = [line for line in result.output.splitlines() if line.startswith("warning: ")]
    for name in DAMAGES:
        assert any(line.startswith(f"warning: {damaged / name}: ") for line in warned), name
    assert not any(str(damaged / healthy_run) in line for line in warned for healthy_run in alone)
    assert set(rows) == {*alone, *DAMAGES} - {"foreign"}
    assert damaged_columns == columns and damaged_shared == shared
    assert "lr" in columns and not {"model.hidden", "data.name", "optim.name"} & set(columns)
    for run, cells in alone.items():
        assert {column: rows[run][column] for column in cells} == cells, run
    if plot:
        assert (tmp_path / "report" / "sensitivity_lr.png").exists()


def _lines(result, start):
    return [line for line in result.output.splitlines() if line.startswith(start)]


def test_binary_metrics_with_plot_is_a_warning_and_its_run_is_not_drawn(folders, tmp_path):
    _, damaged = folders
    result = dlrun(
        "report",
        damaged / "binary-metrics",
        damaged / "trial-000",
        "--plot",
        "-o",
        tmp_path / "r.csv",
        "--format",
        "csv",
    )
    assert result.exit_code == 0, result.output
    assert f"warning: {damaged / 'binary-metrics'}: metrics.csv is not text (binary data)" in result.output
    assert {p.name for p in (tmp_path / "report").glob("*.png")} == {"curves_trial-000.png"}


def test_a_run_without_metrics_shows_what_its_summary_knows_and_no_diagnosis(folders):
    _, damaged = folders
    built = build.build_report([damaged / "missing-metrics"])
    assert built.warnings == [f"{damaged / 'missing-metrics'}: no metrics.csv"]
    row = built.rows.iloc[0]
    assert row.epochs_run == 3 and row.status == "completed" and 0.5 < row.test_accuracy <= 1
    assert row.diagnosis == build.NO_CURVES and row.evidence == "no metrics.csv"


@pytest.mark.parametrize(
    "name, problem",
    [("list-summary", "it holds a list, not an object"), ("numeric-status", "its status is 3, not a word")],
)
def test_a_summary_that_is_not_an_object_with_a_word_status_is_unreadable(folders, name, problem):
    _, damaged = folders
    built = build.build_report([damaged / name])
    assert built.warnings == [f"{damaged / name}: summary.json is corrupt: {problem}"]
    assert built.rows.iloc[0].status == "corrupt" and pd.isna(built.rows.iloc[0].test_accuracy)


@pytest.mark.parametrize("name", ["missing-config", "garbage-config"])
def test_a_run_of_unknown_settings_does_not_make_the_others_vary(folders, name):
    healthy, damaged = folders
    alone = build.build_report([healthy])
    built = build.build_report([healthy, damaged / name])
    assert built.varying == alone.varying == ["lr"]
    assert built.constant == alone.constant
    assert built.rows.lr.tolist()[:2] == alone.rows.lr.tolist() and pd.isna(built.rows.lr.iloc[2])
    assert built.rows.run.iloc[2] == f"damaged/{name}" and built.unknown_settings == {str(damaged / name)}
    assert any(w.startswith(f"{damaged / name}: ") and "settings are unknown" in w for w in built.warnings)


def test_a_foreign_folder_beside_runs_is_a_warning_but_the_plots_folder_is_not(folders, tmp_path):
    healthy, _ = folders
    shutil.copytree(healthy, tmp_path / "runs")
    _foreign(tmp_path / "runs" / "notes")
    (tmp_path / "runs" / build.PLOTS_FOLDER).mkdir()
    (tmp_path / "runs" / build.PLOTS_FOLDER / "sweep_curves.png").write_bytes(b"\x89PNG")
    runs, warnings = build.find_runs([tmp_path / "runs"])
    assert [run.name for run in runs] == ["trial-000", "trial-001"]
    assert warnings == [
        f"{tmp_path / 'runs' / 'notes'}: not a run folder (no summary.json, metrics.csv "
        "or config.yaml), skipped"
    ]


def _voting_runs(root):
    """Four runs, lr 0.003 and 0.1 with seeds 0 and 1, whose saved predictions are 3/4 right."""
    labels = np.array([0, 1, 1, 0])
    probabilities = np.eye(2)[[0, 1, 1, 1]].astype(np.float32)
    for lr in (0.003, 0.1):
        for seed in (0, 1):
            run = root / f"lr{lr}-seed{seed}"
            run.mkdir(parents=True)
            (run / "config.yaml").write_text(f"lr: {lr}\nseed: {seed}\n")
            (run / "summary.json").write_text('{"status": "completed"}')
            np.savez(run / "test_predictions.npz", probabilities=probabilities, labels=labels)
    return root


def test_ensembles_show_the_lr_as_a_number_and_only_accuracies_as_percentages(tmp_path):
    result = dlrun("report", _voting_runs(tmp_path), "--ensemble")
    assert result.exit_code == 0, result.output
    rows = [
        [cell.strip() for cell in line.strip("│").split("│")]
        for line in result.output.splitlines()
        if line.startswith("│") and "75.00%" in line
    ]
    assert [row[:2] for row in rows] == [["0.003", "2"], ["0.1", "2"]]
    assert all(cell == "75.00%" for row in rows for cell in row[2:])


def test_table_output_goes_whole_into_the_file_with_the_shared_settings(folders, tmp_path):
    healthy, _ = folders
    out = tmp_path / "report.txt"
    result = dlrun("report", healthy, "-o", out)
    assert result.exit_code == 0 and result.stdout == "", result.output
    text = out.read_text()
    assert text.startswith("same in every run (defaults left out): model.hidden=[8]")
    assert f"2 runs from {healthy}, all completed" in text and "\x1b[" not in text
    assert [p.name for p in tmp_path.iterdir()] == ["report.txt"]  # no temporary left beside it


@pytest.mark.parametrize("fmt", ["table", "csv"])
@pytest.mark.parametrize(
    "where, fragment", [("a-file/report.txt", "is a file, not a folder"), ("a-folder", "it is a folder")]
)
def test_an_output_that_cannot_be_written_is_one_line_before_any_work(tmp_path, fmt, where, fragment):
    (tmp_path / "a-file").write_text("not a folder")
    (tmp_path / "a-folder").mkdir()
    result = dlrun("report", tmp_path / "no-runs-here", "--format", fmt, "-o", tmp_path / where)
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.output.strip().splitlines() == [
        f"error: cannot write {tmp_path / where}: {result.output.split(': ', 2)[2].strip()}"
    ]
    assert fragment in result.output and "no such folder" not in result.output


def test_plots_that_cannot_be_written_are_refused_before_any_work(folders, tmp_path):
    healthy, _ = folders
    (tmp_path / build.PLOTS_FOLDER).write_text("a file where the plots would go")
    result = dlrun("report", healthy, "--plot", "-o", tmp_path / "r.csv", "--format", "csv")
    assert result.exit_code == 2 and "is a file, not a folder" in result.output
    assert not (tmp_path / "r.csv").exists()


@pytest.mark.parametrize("where, title", [("lr == 0.1", "1 run from"), ("lr > 1", "0 runs from")])
def test_the_title_counts_runs_in_words_and_says_all_completed_only_of_some(folders, where, title):
    healthy, _ = folders
    result = dlrun("report", healthy, "--filter", where)
    assert result.exit_code == 0, result.output
    words = " ".join(result.output.split())  # a title wider than its table wraps
    assert f"{title} {healthy}" in words and ("all completed" in words) == (title == "1 run from")


def test_a_grouped_table_counts_groups_of_runs(folders):
    healthy, _ = folders
    result = dlrun("report", healthy, "--group-by", "lr")
    assert result.exit_code == 0 and "2 groups of 2 runs from" in result.output, result.output


def test_the_report_package_imports_no_jax():
    """The report reads 2,000 folders in seconds only if it never pays for importing JAX."""
    code = (
        "import sys, dlrun.report.build, dlrun.report.render, dlrun.report.plots, "
        "dlrun.report.ensemble; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'jax', 'jaxlib', 'flax', 'optax'}))"
    )
    loaded = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert loaded.stdout.strip() == "[]"
