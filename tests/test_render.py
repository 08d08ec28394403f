"""render.py: the terminal table and every text format, read back by the parsers of each."""

import io
import json

import pandas as pd
import pytest

from dlrun.errors import ConfigError
from dlrun.paths import check_writable
from dlrun.report import render
from dlrun.report.terminal import terminal_table

FRAME = pd.DataFrame(
    {
        "run": ["trial-000", "trial-001"],
        "lr": [0.003, 0.1],
        "status": ["completed", "completed"],
        "epochs_run": [3.0, 3.0],
        "best_val_loss": [0.25, float("nan")],
        "best_val_accuracy": [0.97, 0.5],
        "test_accuracy": [0.955, 0.5],
        "gap": [0.01, -0.02],
        "diagnosis": ["good_fit", "no_learning"],
        "flags": [[], ["dead_units"]],
        "advice": ["nothing to fix", "check the init"],
        "evidence": ["fine", "flat"],
        "folder": ["runs/a", "runs/b"],
    }
)


def test_terminal_table_shows_percentages_settings_and_one_advice_line_per_diagnosis():
    text = render.plain_text([terminal_table(FRAME, ["lr"], "2 runs from runs", width=80)])
    assert "2 runs from runs, all completed" in text and "status" not in text
    rows = [line for line in text.splitlines() if line.startswith("│")]
    assert [cell.strip() for cell in rows[0].strip("│").split("│")] == [
        "000",
        "0.003",
        "3",
        "0.25",
        "97.0%",
        "95.5%",
        "+0.01",
        "good_fit",
    ]
    assert "good_fit: nothing to fix" in text and "no_learning: check the init" in text


def test_a_run_that_did_not_complete_brings_the_status_column_back():
    frame = FRAME.assign(status=["completed", "corrupt"])
    text = render.plain_text([terminal_table(frame, ["lr"], "2 runs")])
    assert "all completed" not in text and "corrupt" in text


def test_csv_reads_back_with_the_same_values():
    back = pd.read_csv(io.StringIO(render.render_text(FRAME, "csv", {})))
    assert back.lr.tolist() == [0.003, 0.1] and back["flags"].fillna("").tolist() == ["", "dead_units"]
    assert back.best_val_loss.isna().tolist() == [False, True]


def test_json_is_one_object_per_run_with_null_for_nan_and_flags_as_lists():
    records = json.loads(render.render_text(FRAME, "json", {}))
    assert [r["run"] for r in records] == ["trial-000", "trial-001"]
    assert records[1]["best_val_loss"] is None and records[1]["flags"] == ["dead_units"]


@pytest.mark.parametrize(
    "fmt, markers",
    [
        ("markdown", ["- `epochs=3`", "| run", "| trial-001"]),
        ("html", ["<table", "<li><code>epochs=3</code></li>", "trial-001"]),
        ("latex", ["\\begin{tabular}", "trial-001", "\\end{tabular}"]),
    ],
)
def test_each_text_format_carries_the_shared_settings_and_every_run(fmt, markers):
    text = render.render_text(FRAME, fmt, {"epochs": 3})
    for marker in markers:
        assert marker in text, marker


def test_an_unknown_format_names_the_choices():
    with pytest.raises(ValueError, match="choose from: table, csv"):
        render.render_text(FRAME, "pdf", {})


def test_ensemble_table_shows_settings_as_in_the_report_and_accuracies_as_percentages():
    votes = pd.DataFrame(
        {
            "lr": [0.003],
            "members": [3],
            "member_mean": [0.9],
            "member_best": [0.95],
            "member_worst": [0.85],
            "mean_probability_vote": [0.96],
            "majority_vote": [0.955],
        }
    )
    text = render.plain_text([render.ensemble_table(votes)])
    row = next(line for line in text.splitlines() if line.startswith("│"))
    assert [cell.strip() for cell in row.strip("│").split("│")] == [
        "0.003",
        "3",
        "90.00%",
        "95.00%",
        "85.00%",
        "96.00%",
        "95.50%",
    ]


def test_check_writable_accepts_new_paths_and_refuses_files_and_folders_in_the_way(tmp_path):
    (tmp_path / "file").write_text("x")
    check_writable(tmp_path / "new" / "deeper" / "report.csv", folder=False)
    check_writable(tmp_path / "plots", folder=True)
    for path, folder, message in (
        (tmp_path / "file" / "r.csv", False, "is a file, not a folder"),
        (tmp_path, False, "it is a folder"),
        (tmp_path / "file", True, "is a file, not a folder"),
    ):
        with pytest.raises(ConfigError, match=message):
            check_writable(path, folder=folder)


def test_report_title_counts_in_words():
    assert render.report_title(1, None, ["runs/x"]) == "1 run from runs/x"
    assert render.report_title(6, 2, ["a", "b"]) == "2 groups of 6 runs from a, b"


def test_shared_settings_in_brackets_are_printed_not_read_as_markup():
    text = render.plain_text(render.table_parts(FRAME, ["lr"], {"model.acts": "[relu, tanh]"}, "2 runs"))
    assert text.startswith("same in every run (defaults left out): model.acts=[relu, tanh]")
