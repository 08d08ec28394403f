"""The worked example experiments/own_code/ (docs/own-code-example.md): a copy of the folder, its
make_data.py, then the page's very commands through the real CLI (`python -m dlrun`, cwd = the
copy), as a new user runs them. The study's conclusion is asserted in numbers."""

import csv
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from test_docs import documented_commands

import dlrun

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "experiments" / "own_code"
PAGE = "docs/own-code-example.md"
# the page's commands, in the order a user runs them (after `cd experiments/own_code` and
# `python make_data.py`); each is marked on the page as run here
COMMANDS = [
    "dlrun list --config-dir conf",
    "dlrun sweep --config-dir conf experiment=width_lr --dry-run",
    "dlrun sweep --config-dir conf experiment=width_lr --out runs/width-lr",
    "dlrun report runs/width-lr",
]
FEATURES, CLASSES = 6, 3  # rings.csv: x, y and four noise columns; inner, middle, outer


def parameters(width: int) -> int:
    """RingNet's parameter count at depth 1: features -> width -> classes, with biases."""
    return FEATURES * width + width + width * CLASSES + CLASSES


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A fresh copy of the example, as a user gets it, with its data written by make_data.py."""
    folder = tmp_path_factory.mktemp("example") / "own_code"
    shutil.copytree(EXAMPLE, folder, ignore=shutil.ignore_patterns("runs", "*.csv", "__pycache__"))
    made = subprocess.run(
        [sys.executable, "make_data.py"], cwd=folder, capture_output=True, text=True, timeout=60
    )
    assert made.returncode == 0, made.stderr
    return folder


def dlrun_cli(folder: Path, command: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "dlrun", *shlex.split(command)[1:]],
        cwd=folder,
        env={**os.environ, "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def test_the_page_shows_these_commands_and_the_folders_own_files():
    page = (ROOT / PAGE).read_text()
    marked = [c.text for c in documented_commands() if c.page == PAGE]
    assert marked == COMMANDS
    assert all("tests/test_own_code_example.py" in c.not_run for c in documented_commands() if c.page == PAGE)
    assert "cd experiments/own_code" in page and "python make_data.py" in page
    # every file the page shows (a block opening with `# FILE`) is that file of the folder, verbatim
    shown = re.findall(r"```(?:python|yaml)\n# (\S+\.(?:py|yaml))\n(.*?)```", page, re.S)
    assert {name for name, _ in shown} >= {"nets.py", "conf/model/ringnet.yaml", "conf/data/rings.yaml"}
    for name, text in shown:
        assert text.strip() in (EXAMPLE / name).read_text(), f"{PAGE} shows {name} otherwise than it is"


def test_make_data_writes_the_same_small_table_every_time(project, tmp_path):
    again = tmp_path / "again.csv"
    subprocess.run([sys.executable, "make_data.py", "--out", str(again)], cwd=project, check=True, timeout=60)
    assert again.read_bytes() == (project / "rings.csv").read_bytes()
    with open(again) as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == 1200 and len(rows[0]) == FEATURES + 1
    assert {row["ring"] for row in rows} == {"inner", "middle", "outer"}


# ~35 s on a busy 2-core CPU: four fresh processes, each importing JAX, and two groups compiled
@pytest.mark.slow
def test_the_documented_walk_through_runs_and_the_report_diagnoses_it(project):
    listed, planned, swept, reported = (dlrun_cli(project, command) for command in COMMANDS)
    # 1. the folder's options join dlrun's, marked; none of it is a shipped study
    for option in ("ringnet (yours)", "rings (yours)", "width_lr (yours)"):
        assert option in listed
    # 2. two widths are two program shapes; the three lrs of each train in one group
    assert "6 trials (grid) in 2 groups" in planned
    # 3. every trial completed, with the parameters its width gives
    runs = dlrun.runs(project / "runs" / "width-lr")
    assert len(runs) == 6 and set(runs.status) == {"completed"}, swept
    counts = {
        (w, json.loads((Path(f) / "summary.json").read_text())["params"])
        for w, f in zip(runs["model.width"], runs.folder)
    }
    assert counts == {(2, parameters(2)), (32, parameters(32))}
    # 4. the report shows them diagnosed, with what to do
    assert "6 runs from runs/width-lr, all completed" in reported
    assert "underfitting" in reported and "good_fit" in reported and "add capacity" in reported
    # 5. the study's conclusion: width 2 underfits at every lr, width 32 fits at lr 0.1 and 0.01
    narrow, wide = runs[runs["model.width"] == 2], runs[runs["model.width"] == 32]
    assert set(narrow.diagnosis) <= {"underfitting", "no_learning"}
    fitted = wide[wide.lr >= 0.01]
    assert set(fitted.diagnosis) == {"good_fit"} and fitted.best_val_accuracy.min() > 0.95
    assert narrow.best_val_accuracy.max() < 0.8
