"""report/query.py and the `dlrun report` options that name columns or values: a filter is data,
never code, and every bad value is one line naming it and the valid choices.

The escapes run through the real command (`python -m dlrun report`, ~1 s each) in an empty
folder, over a sweep folder written by hand with the run-folder files the report reads.
"""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from dlrun.report.query import MAX_LISTED, filter_rows

# (lr, model.hidden, status, best_val_accuracy): 16 beside '[16]' is a column of numbers and text
RUNS = [(0.1, "[16]", "completed", 0.9), (0.01, "32", "pruned", 0.8), (0.001, "[16]", "completed", None)]


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    """Three finished runs whose lr, model.hidden, status and accuracy differ."""
    root = tmp_path_factory.mktemp("query") / "sweep"
    for i, (lr, hidden, status, accuracy) in enumerate(RUNS):
        run = root / f"trial-{i:03d}"
        run.mkdir(parents=True)
        (run / "config.yaml").write_text(f"lr: {lr}\nseed: 0\nmodel:\n  name: mlp\n  hidden: {hidden}\n")
        summary = {"status": status} | ({} if accuracy is None else {"best_val_accuracy": accuracy})
        (run / "summary.json").write_text(json.dumps(summary))
        (run / "metrics.csv").write_text("epoch,train_loss,val_loss\n1,0.5,0.6\n2,0.4,0.5\n")
    return root


def report(sweep, cwd, *args):
    """(exit code, non-blank lines of stdout and stderr) of `dlrun report SWEEP ARGS` run in `cwd`."""
    result = subprocess.run(
        [sys.executable, "-m", "dlrun", "report", str(sweep), *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "200"},
    )
    return result.returncode, [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]


# filter -> a fragment of the refusal, which must name the offending part
ESCAPES = {
    '@pd.io.common.os.system("touch pwned")': "@variables are not allowed (a filter names columns only): @pd",
    "@os": "@variables are not allowed",
    'lr > 0 and @os.system("touch pwned")': "@os.system",
    "lr.__class__": "names starting with _ are not allowed: lr.__class__",
    '__import__("os").system("touch pwned")': 'calls are not allowed: __import__("os").system("touch pwned")',
    "lr.__class__.__mro__": "names starting with _ are not allowed: lr.__class__.__mro__",
    "().__class__.__bases__[0].__subclasses__()": "calls are not allowed: ().__class__",
    'open("pwned", "w")': 'calls are not allowed: open("pwned", "w")',
    "`lr`.__class__": "names starting with _ are not allowed: `lr`.__class__",
    "`lr`.real": "attribute access is not allowed: `lr`.real",
    "lr.real > 0": "attribute access is not allowed: lr.real",
    "lambda: 1": "lambdas are not allowed: lambda: 1",
    'f"{lr}" == "0.1"': 'f-strings are not allowed: f"{lr}"',
    "lr[0] > 0": "subscripts are not allowed: lr[0]",
    "[x for x in lr]": "comprehensions are not allowed",
    "(x := 1)": "assignments (:=) are not allowed: x := 1",
    "globals()": "calls are not allowed: globals()",
    "__builtins__": "names starting with _ are not allowed: __builtins__",
    "lr > 0 and status.__len__() > 0": "calls are not allowed: status.__len__()",
    "lr * 2 > 0.1": "arithmetic is not allowed: lr * 2",
    "9 ** 9 ** 9 > 1": "arithmetic is not allowed",
    "lr is None": "'is' is not allowed (use ==)",
    "not " * 3000 + "lr > 0": "nested too deeply",
    "lr in lr": "in needs a list on its right",
    "lr in [len]": "a list holds constants only: len",
}


@pytest.mark.parametrize("where, fragment", ESCAPES.items(), ids=range(len(ESCAPES)))
def test_an_escaping_filter_is_one_line_exit_2_and_runs_nothing(sweep, tmp_path, where, fragment):
    code, lines = report(sweep, tmp_path, "--filter", where, "--format", "csv")
    assert code == 2, lines
    assert len(lines) == 1 and lines[0].startswith("error: bad --filter '"), lines
    assert fragment in lines[0]
    assert not list(tmp_path.iterdir()) and not list(sweep.rglob("pwned"))


def test_a_filter_selects_by_dotted_names_lists_and_chains(sweep, tmp_path):
    where = "model.hidden in ['[16]'] and 0.0001 < lr < 0.5 or status == ['pruned']"
    code, lines = report(sweep, tmp_path, "--filter", where, "--format", "csv")
    assert code == 0, lines
    assert [line.split(",")[0] for line in lines[1:]] == ["trial-000", "trial-001", "trial-002"]
    code, lines = report(sweep, tmp_path, "--filter", "not best_val_accuracy > 0.85", "--format", "csv")
    assert [line.split(",")[0] for line in lines[1:]] == ["trial-001", "trial-002"]  # NaN is not > 0.85


# (arguments, fragments of the one refusal line)
BAD_OPTIONS = [
    (["--filter", "lrr > 0.1"], ["unknown column 'lrr'; did you mean 'lr'?", "(columns: run, lr,"]),
    (["--filter", "optim.lr > 0.1"], ["unknown column 'optim.lr'; did you mean 'lr'?"]),
    (["--filter", "model.lambda > 1"], ["`model.lambda` > 0.1"]),
    (["--filter", "status > 1"], ["cannot compare", "status > 1"]),
    (["--filter", "lr"], ["not a condition", ": lr"]),
    (["--sort", "colour"], ["unknown --sort column 'colour'", "test_accuracy", "more))"]),
    (["--group-by", "flags"], ["--group-by column 'flags' holds lists", "choose from: run, lr,"]),
    (["--group-by", "colour"], ["unknown --group-by column 'colour'", "model.hidden"]),
    (["--columns", "run,lrr"], ["unknown --columns column 'lrr'", "choose from: run, lr,"]),
    (["--group-by", "lr", "--columns", "lrr"], ["unknown --columns column 'lrr'", "runs"]),
    (["--threshold", "overfit_rice=0.2"], ["unknown threshold 'overfit_rice'", "overfit_rise"]),
    (["--threshold", "overfit_rise=inf"], ["'overfit_rise' must be a finite number"]),
    (["--threshold", "overfit_rise=__import__('os')"], ["'overfit_rise' must be a number"]),
]


@pytest.mark.parametrize("args, fragments", BAD_OPTIONS, ids=range(len(BAD_OPTIONS)))
def test_a_bad_column_or_value_is_one_line_naming_it_and_the_choices(sweep, tmp_path, args, fragments):
    code, lines = report(sweep, tmp_path, *args)
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), lines
    for fragment in fragments:
        assert fragment in lines[0]


def test_sorting_a_column_of_numbers_and_text_orders_them_as_printed(sweep, tmp_path):
    code, lines = report(sweep, tmp_path, "--sort", "model.hidden", "--format", "csv")
    assert code == 0, lines
    assert [line.split(",")[2] for line in lines[1:]] == ["[16]", "[16]", "32"]  # '[' > '3'


# A frame like the report's: dotted names, a missing accuracy, text, a column of True/False.
FRAME = pd.DataFrame(
    {
        "run": ["a", "b", "c", "d", "e"],
        "lr": [0.1, 0.01, np.nan, 0.001, 0.5],
        "optim.lr": [0.1, 0.02, 0.03, 0.04, 0.05],
        "model.hidden": ["[16]", "[32]", "[16]", None, "[64, 64]"],
        "model.batch_norm": [True, False, True, False, True],
        "status": ["completed", "pruned", "completed", "failed", "completed"],
        "epochs_run": [3, 1, 3, 2, 3],
        "train_loss": [0.2, 0.5, 0.3, 0.9, 0.1],
        "val_loss": [0.3, 0.4, 0.35, 0.8, 0.5],
    }
)

# (ours, the same in df.query's words where they differ: backticks around dotted names)
ALLOWED = [
    ("lr > 0.01", None),
    ("lr >= 0.01", None),
    ("lr < 0.1", None),
    ("lr <= 0.1", None),
    ("lr == 0.01", None),
    ("lr != 0.01", None),
    ("lr != lr", None),
    ("lr == lr", None),
    ("0.001 < lr < 0.5", None),
    ("0.001 <= lr <= 0.1 < optim.lr", "0.001 <= lr <= 0.1 < `optim.lr`"),
    ("train_loss < val_loss", None),
    ("lr > -0.05", None),
    ("-lr < -0.01", None),
    ("status == 'completed'", None),
    ('status != "completed"', None),
    ("status in ['completed', 'pruned']", None),
    ("status not in ('completed',)", None),
    ("status == ['completed', 'pruned']", None),
    ("status != ['completed', 'pruned']", None),
    ("lr in [0.1, -1, 0.5]", None),
    ("epochs_run in [1, 2]", None),
    ("status == None", None),
    ("not lr > 0.01", None),
    ("~(lr > 0.01)", None),
    ("lr > 0.01 and status == 'completed' or epochs_run == 2", None),
    ("lr > 0.01 & status == 'completed'", None),
    ("(lr > 0.05) | (epochs_run < 2)", None),
    ("model.hidden == '[16]'", "`model.hidden` == '[16]'"),
    ("`model.hidden` in ['[16]', '[64, 64]']", None),
    ("optim.lr > 0.02 and optim.lr < 0.05", "`optim.lr` > 0.02 and `optim.lr` < 0.05"),
    ("model.batch_norm", "`model.batch_norm`"),
    ("not model.batch_norm and epochs_run > 1", "not `model.batch_norm` and epochs_run > 1"),
    ("model.batch_norm == True", "`model.batch_norm` == True"),
]


@pytest.mark.filterwarnings("error")  # a warning would be a second line under `dlrun report`
@pytest.mark.parametrize("ours, pandas", ALLOWED, ids=[case[0] for case in ALLOWED])
def test_an_allowed_filter_selects_the_rows_df_query_selects(ours, pandas):
    expected = FRAME.query(pandas or ours, engine="python")
    assert list(filter_rows(FRAME, ours).run) == list(expected.run)


@pytest.mark.parametrize("where, runs", [("True", list("abcde")), ("False", []), ("1 < 2", list("abcde"))])
def test_a_constant_condition_keeps_every_row_or_none(where, runs):
    assert list(filter_rows(FRAME, where).run) == runs  # df.query refuses a bare True


@pytest.mark.filterwarnings("error")
def test_a_missing_cell_of_a_true_false_column_is_false():
    frame = FRAME.assign(**{"model.batch_norm": [True, None, True, math.nan, False]})
    assert list(filter_rows(frame, "model.batch_norm").run) == ["a", "c"]


def test_a_dotted_name_is_a_column_only_where_that_column_exists():
    with pytest.raises(ValueError, match=r"unknown column 'model.depth'"):
        filter_rows(FRAME, "model.depth > 1")
    with pytest.raises(ValueError, match=r"attribute access is not allowed: status.upper$"):
        filter_rows(FRAME, "status.upper")


def test_an_unknown_column_lists_at_most_max_listed_columns():
    wide = FRAME.assign(**{f"key{i}": i for i in range(30)})
    with pytest.raises(ValueError) as refused:
        filter_rows(wide, "colour == 1")
    message = str(refused.value)
    assert f"({len(wide.columns) - MAX_LISTED} more)" in message and "\n" not in message
    assert "key9" in message and "key29" not in message


def test_a_filter_over_lines_is_refused_in_one_line():
    with pytest.raises(ValueError) as refused:
        filter_rows(FRAME, "lr > 0.1\nand status == 'x'")
    assert "\n" not in str(refused.value) and "lr > 0.1\\nand" in str(refused.value)
