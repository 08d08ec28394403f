"""`dlrun sweep --search pbt` end to end through the real CLI on the spirals: lineage.csv per
copier, curves that go on across each copy, the same command twice alike, kill -9 at any
moment (at a perturbation epoch too) then the same command finishes it as if never stopped,
and `dlrun train --replay` retraining the winner's schedule."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

from dlrun import results

EPOCHS = 6
SWEEP = [
    "sweep",
    "model=mlp",
    "data=spirals",
    "lr=interval(1e-3,1)",
    "optim.l2=interval(1e-6,1e-2)",
    "--search",
    "pbt",
    "--population",
    "4",
    "--perturb-every",
    "2",
    "--quantile",
    "0.5",
    f"epochs={EPOCHS}",
]
CURVES = ["epoch", "train_loss", "val_loss", "val_accuracy", "lr"]
MEMBERS = [f"trial-{i:03d}" for i in range(4)]


def dlrun(*args, check=True) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "dlrun", *args], capture_output=True, text=True, timeout=600)
    assert not check or done.returncode == 0, done.stdout + done.stderr
    return done


def lineages(out: Path) -> dict:
    return {m: results.read_lineage(out / m) for m in MEMBERS}


def curves(out: Path) -> dict:
    return {m: results.read_metrics(out / m)[CURVES] for m in MEMBERS}


def assert_same_sweep(out: Path, reference: Path) -> None:
    assert lineages(out) == lineages(reference)
    for member, curve in curves(reference).items():
        pd.testing.assert_frame_equal(curves(out)[member], curve)
        assert results.read_summary(out / member)["status"] == "completed"


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("pbt") / "sweep"
    dlrun(*SWEEP, "--out", str(out))
    return out


def test_copiers_record_their_lineage_and_train_on_the_values_they_took(reference):
    events = [(m, row) for m, rows in lineages(reference).items() for row in rows]
    assert {row["epoch"] for _, row in events} == {2, 4}  # every --perturb-every, never the last
    assert len(events) == 4  # half of four members, at each of two perturbation epochs
    for member, row in events:
        epoch, source = row["epoch"], row["copied_from"]
        ranked = {m: results.read_metrics(reference / m).val_accuracy[epoch - 1] for m in MEMBERS}
        assert ranked[source] >= sorted(ranked.values())[2]  # a member of the top half
        after = float(row["after.lr"])
        assert 1e-3 <= after <= 1 and 1e-6 <= float(row["after.optim.l2"]) <= 1e-2
        # the next epoch's lr is its new value on the same schedule as its source's
        mine = results.read_metrics(reference / member).lr[epoch]
        theirs = results.read_metrics(reference / source).lr[epoch]
        source_lr = _value_at(reference / source, epoch + 1)
        assert mine / after == pytest.approx(theirs / source_lr, rel=1e-5)


def _value_at(member: Path, epoch: int) -> float:
    """The lr a member trains epoch `epoch` with: its last exploit's before it, else its config's."""
    rows = [row for row in results.read_lineage(member) if row["epoch"] < epoch]
    return float(rows[-1]["after.lr"]) if rows else float(results.read_config(member)["lr"])


def test_a_curve_goes_on_across_each_copy_and_the_report_reads_the_sweep(reference):
    for curve in curves(reference).values():
        assert list(curve.epoch) == list(range(1, EPOCHS + 1))
    index = pd.read_csv(reference / results.INDEX_FILE)
    assert sorted(index.status) == ["completed"] * 4
    report = dlrun("report", str(reference), "--format", "csv")
    assert len(pd.read_csv(pd.io.common.StringIO(report.stdout))) == 4


def test_the_same_command_twice_makes_the_same_lineage_and_curves(reference, tmp_path):
    dlrun(*SWEEP, "--out", str(tmp_path / "again"))
    assert_same_sweep(tmp_path / "again", reference)


def killed(out: Path, arrived) -> None:
    process = subprocess.Popen(
        [sys.executable, "-m", "dlrun", *SWEEP, "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    started = time.time()
    while not arrived(out):
        assert process.poll() is None, "finished before the moment came"
        assert time.time() - started < 300
        time.sleep(0.005)
    process.send_signal(signal.SIGKILL)
    process.wait()


def _epochs_done(out: Path) -> int:
    try:
        return len(results.read_metrics(out / MEMBERS[-1]))
    except (FileNotFoundError, ValueError, KeyError):
        return 0


MOMENTS = {
    # just after the first exploit: some copier's lineage is written, the epoch after not trained
    "perturbation": lambda out: any((out / m / results.LINEAGE_FILE).exists() for m in MEMBERS),
    "mid_training": lambda out: _epochs_done(out) >= 3,
}


@pytest.mark.parametrize("moment", MOMENTS)
def test_killed_then_the_same_command_finishes_it_as_if_never_stopped(reference, tmp_path, moment):
    out = tmp_path / "sweep"
    killed(out, MOMENTS[moment])
    dlrun(*SWEEP, "--out", str(out))
    assert_same_sweep(out, reference)


def test_replay_trains_the_winners_schedule_from_scratch(reference, tmp_path):
    best = lambda m: results.read_summary(reference / m)["best_val_accuracy"]  # noqa: E731
    winner = reference / max(MEMBERS, key=best)
    dlrun("train", "--replay", str(winner), "--out", str(tmp_path / "replay"))
    replay = results.read_metrics(tmp_path / "replay")
    # epoch by epoch, the lr of the member whose state it was: the schedule through each copy
    owner, expected = winner, {}
    for epoch in range(EPOCHS, 0, -1):
        expected[epoch] = results.read_metrics(owner).lr[epoch - 1]
        copies = [row for row in results.read_lineage(owner) if row["epoch"] == epoch - 1]
        owner = reference / copies[0]["copied_from"] if copies else owner
    assert list(replay.lr) == pytest.approx([expected[e] for e in range(1, EPOCHS + 1)], rel=1e-6)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--population", "1"], "--population must be >= 2"),
        (["--perturb-every", "6"], "--perturb-every 6 must be below epochs=6"),
        (["--quantile", "0.75"], "--quantile must be in (0, 0.5], got 0.75"),
        (
            ["model.hidden=[8],[16]"],
            "model.hidden changes the program's shape: --search pbt can perturb only",
        ),
        (["seed=0,1"], "seed is fixed when a trial starts"),
        (["--max-group", "2"], "--population 4 does not fit one group: at most 2 members"),
        (["--trials", "4"], "--trials is not an option of --search pbt"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, extra, message):
    args = [*SWEEP, *extra]  # a later --population or --perturb-every wins
    done = dlrun(*args, "--out", str(tmp_path / "bad"), check=False)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr and "Traceback" not in done.stderr
    assert not (tmp_path / "bad").exists()


def test_no_mutable_key_is_refused(tmp_path):
    done = dlrun("sweep", "model=mlp", "data=spirals", "--search", "pbt", "epochs=4", check=False)
    assert done.returncode == 2 and "--search pbt needs a key to perturb" in done.stderr


def _owners(reference: Path, winner: Path) -> dict:
    """{epoch: the member whose state the winner's weights were at that epoch}, walked back
    through lineage.csv as in the replay test above."""
    owner, owners = winner, {}
    for epoch in range(EPOCHS, 0, -1):
        owners[epoch] = owner.name
        copies = [row for row in results.read_lineage(owner) if row["epoch"] == epoch - 1]
        owner = reference / copies[0]["copied_from"] if copies else owner
    return owners


def test_the_report_shows_the_winners_chain_and_the_lineage_tree_at_80_columns(reference, tmp_path):
    best = lambda m: results.read_summary(reference / m)["best_val_accuracy"]  # noqa: E731
    winner = max(MEMBERS, key=best)
    shown = subprocess.run(
        [sys.executable, "-m", "dlrun", "report", str(reference)],
        capture_output=True,
        text=True,
        env={**os.environ, "COLUMNS": "80"},
    )
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert all(len(line) <= 80 for line in lines)
    start = next(i for i, line in enumerate(lines) if line.startswith(f"PBT winner {winner} "))
    chain = []
    for line in lines[start + 2 :]:
        if not line.strip():
            break
        span, member = line.split()[:2]
        first, _, last = span.partition("-")
        chain += [(epoch, member) for epoch in range(int(first), int(last or first) + 1)]
    assert dict(chain) == _owners(reference, Path(reference) / winner)
    # the tree: one line per stretch that reached the end, the winner's chain starred
    tree = [line for line in lines if "trial-" in line and ": lr " in line]
    owners = [member for _, member in sorted(_owners(reference, Path(reference) / winner).items())]
    stretches = 1 + sum(a != b for a, b in zip(owners, owners[1:]))
    assert sum("* trial-" in line for line in tree) == stretches
    # every member's last state reached the end: each member's name starts some node's label
    assert {line.split("── ")[-1].removeprefix("* ").split()[0] for line in tree} >= set(MEMBERS)
    page = tmp_path / "report.html"
    dlrun("report", str(reference), "--format", "html", "-o", str(page))
    section = page.read_text().split("<section id='population'>")[1].split("</section>")[0]
    assert section.count("<svg") == 2 and f"the winner {winner}" in section
