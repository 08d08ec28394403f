"""terminal.py: the report table fitted to 80 and 160 columns on a real sweep, through the real
command (COLUMNS) and through rich's recording console."""

import io
import os
import subprocess
import sys

import pandas as pd
import pytest
from rich.console import Console

from dlrun.report import render
from dlrun.report.build import build_report
from dlrun.report.settings import non_default
from dlrun.report.terminal import run_ids, setting_texts

# A grid over two keys whose lr values are the kind that were cut to `0…` (3e-05, 0.0003).
SWEEP = [
    "data=moons",
    "data.n_samples=600",
    "data.val_size=100",
    "model.hidden=[8]",
    "epochs=3",
    "lr=3e-05,0.0003,0.1",
    "seed=0,1",
]
LRS, SEEDS = ["3e-05", "0.0003", "0.1"], ["0", "1"]


def dlrun(*args, columns=80):
    env = {**os.environ, "COLUMNS": str(columns)}
    return subprocess.run(
        [sys.executable, "-m", "dlrun", *map(str, args)], capture_output=True, text=True, env=env
    )


@pytest.fixture(scope="module")
def sweep(tmp_path_factory):
    out = tmp_path_factory.mktemp("terminal") / "sweep"
    result = dlrun("sweep", *SWEEP, "--out", out)
    assert result.returncode == 0, result.stderr
    return out


def rows_of(text):
    return [
        [cell.strip() for cell in line.strip("│").split("│")]
        for line in text.splitlines()
        if line.startswith("│")
    ]


def header_of(text):
    line = next(line for line in text.splitlines() if line.startswith("┃"))
    return [cell.strip() for cell in line.strip("┃").split("┃")]


def assert_fits(text, width):
    assert max(map(len, text.splitlines())) <= width
    assert "…" not in text


def test_at_80_columns_every_swept_value_label_and_metric_is_whole(sweep):
    result = dlrun("report", sweep, columns=80)
    assert result.returncode == 0, result.stderr
    assert_fits(result.stdout, 80)
    header, rows = header_of(result.stdout), rows_of(result.stdout)
    assert header[:3] == ["trial", "lr", "seed"] and "val acc" in header and "diagnosis" in header
    assert sorted(row[0] for row in rows) == ["000", "001", "002", "003", "004", "005"]
    assert {row[1] for row in rows} == set(LRS) and {row[2] for row in rows} == set(SEEDS)
    csv = pd.read_csv(io.StringIO(dlrun("report", sweep, "--format", "csv").stdout))
    assert sorted(row[header.index("diagnosis")] for row in rows) == sorted(csv["diagnosis"])
    accuracies = sorted(f"{value:.1%}" for value in csv["best_val_accuracy"])
    assert sorted(row[header.index("val acc")] for row in rows) == accuracies
    assert "val acc = best_val_accuracy" in result.stdout  # the legend of the short headers


def test_at_160_columns_more_columns_are_shown(sweep):
    narrow, wide = dlrun("report", sweep, columns=80).stdout, dlrun("report", sweep, columns=160).stdout
    assert_fits(wide, 160)
    assert set(header_of(narrow)) < set(header_of(wide))
    assert {"gap", "test acc"} <= set(header_of(wide))


def test_group_by_fits_80_columns_and_its_title_counts_groups(sweep):
    result = dlrun("report", sweep, "--group-by", "lr", columns=80)
    assert result.returncode == 0, result.stderr
    assert_fits(result.stdout, 80)
    assert "3 groups of 6 runs" in " ".join(result.stdout.split())
    rows = rows_of(result.stdout)
    assert [row[0] for row in rows] == sorted(LRS, key=float) and {row[1] for row in rows} == {"2"}
    assert all("±" in row[header_of(result.stdout).index("val acc")] for row in rows)


def test_columns_picks_the_columns_by_name_or_short_header(sweep):
    result = dlrun("report", sweep, "--columns", "lr,val acc,diagnosis", columns=80)
    assert result.returncode == 0, result.stderr
    assert header_of(result.stdout) == ["trial", "lr", "val acc", "diagnosis"]


def test_an_unknown_column_is_one_line_naming_it_and_the_valid_ones(sweep):
    result = dlrun("report", sweep, "--columns", "lr,accuracy", columns=80)
    assert result.returncode == 2 and result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "unknown --columns column 'accuracy'" in lines[0]
    assert "best_val_accuracy" in lines[0] and "seed" in lines[0]


def test_the_recorded_80_column_text_keeps_every_value_whole(sweep):
    built = build_report([sweep])
    console = Console(width=80, record=True, file=open(os.devnull, "w"))
    for part in render.table_parts(
        built.rows, built.varying, non_default(built.constant, built.rows), "6 runs", width=console.width
    ):
        console.print(part)
    text = console.export_text()
    assert_fits(text, 80)
    assert {row[1] for row in rows_of(text)} == set(LRS)
    assert "model.hidden=[8]" in text and "data.name=moons" in text and "data.noise" not in text


@pytest.mark.parametrize(
    "values, texts",
    [
        ([3e-05, 0.0003, 10.0], ["3e-05", "0.0003", "10"]),
        ([0.0012344, 0.0012345], ["0.0012344", "0.0012345"]),  # 3-4 digits read as one
        ([1.0, float("nan")], ["1", ""]),  # a seed read back as a float beside an unknown one
        (["[8]", "[8, 8]"], ["[8]", "[8, 8]"]),
    ],
)
def test_setting_values_are_short_and_stay_distinct(values, texts):
    assert setting_texts(values) == texts


@pytest.mark.parametrize(
    "names, expected",
    [
        (["trial-003", "trial-010"], ("trial", ["003", "010"])),
        (["sweep/trial-0", "sweep/trial-1"], ("trial", ["0", "1"])),
        (["trial-003"], ("run", ["trial-003"])),
        (["adam", "sgd"], ("run", ["adam", "sgd"])),
    ],
)
def test_run_ids_drop_the_prefix_every_run_shares(names, expected):
    assert run_ids(names) == expected
