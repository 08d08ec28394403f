"""`dlrun watch` in a real terminal (tmux: a private server, an 80x40 window, keys sent and the
screen captured) beside a real sweep, its keys, and its refusals of a bad folder."""

import os
import re
import shutil
import subprocess
import sys
import time

import pytest

from dlrun import results
from dlrun.claims import LOCK_FILE

# A search that prunes (hyperband stops most trials after their first epoch) with epochs long
# enough (20,000 points) that the watch sees its trials running.
SWEEP = [
    "data=spirals",
    "data.n_samples=20000",
    "model.hidden=[32,32]",
    "batch_size=32",
    "optim=momentum",
    "lr=interval(1e-4,1)",
    "optim.momentum=interval(0.5,0.95)",
    "epochs=6",
    *("--search", "tpe", "--search-seed", "3", "--trials", "6", "--batch", "3", "--pruner", "hyperband"),
]
DEADLINE_S = 300  # the sweep takes ~15 s on a quiet 2-core CPU; a busy one, a lot longer
WIDTH, HEIGHT = 80, 40


def dlrun(*args, cwd=None):
    return subprocess.run(
        [sys.executable, "-m", "dlrun", *args], capture_output=True, text=True, timeout=120, cwd=cwd
    )


class Terminal:
    """A private tmux server: one WIDTHxHEIGHT window per command, kept after it exits."""

    def __init__(self, name: str, cwd):
        self.name, self.cwd = name, cwd
        self("new-session", "-d", "-s", "t", "-x", str(WIDTH), "-y", str(HEIGHT), "sleep 3600")
        self("set-option", "-g", "remain-on-exit", "on")

    def __call__(self, *args) -> str:
        done = subprocess.run(
            ["tmux", "-L", self.name, "-f", "/dev/null", *args], capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    def start(self, window: str, *args) -> None:
        # the exit status through a file: tmux 3.3 leaves #{pane_dead_status} blank for some
        # commands that exit, so a shell records it once the command has ended
        command = " ".join([sys.executable, "-m", "dlrun", *args])
        status = self.cwd / f"{window}.status"
        status.unlink(missing_ok=True)
        shell = f"{command}; echo $? > {status}.part && mv {status}.part {status}"
        self("new-window", "-d", "-t", "t", "-n", window, "-c", str(self.cwd), shell)

    def screen(self, window: str) -> str:
        return self("capture-pane", "-p", "-S", "-", "-t", f"t:{window}")

    def exit_status(self, window: str) -> int | None:
        """The command's exit status once it has ended; None while it runs."""
        status = self.cwd / f"{window}.status"
        return int(status.read_text()) if status.exists() else None

    def wait_exit(self, window: str, seconds: float) -> int | None:
        deadline = time.monotonic() + seconds
        while self.exit_status(window) is None and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.exit_status(window)


@pytest.fixture(scope="module")
def terminal(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("watch")
    name = f"dlrun-test-{os.getpid()}"
    try:
        yield Terminal(name, cwd)
    finally:
        subprocess.run(["tmux", "-L", name, "kill-server"], capture_output=True)


@pytest.fixture(scope="module")
def watched_sweep(terminal):
    """A sweep started in the background, then `dlrun watch` on its folder in the terminal:
    every screen seen while it ran, the watch's exit status and the final screen."""
    out = terminal.cwd / "study"
    with open(terminal.cwd / "sweep.log", "w") as log:
        sweep = subprocess.Popen(
            [sys.executable, "-m", "dlrun", "sweep", *SWEEP, "--out", str(out)],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=terminal.cwd,
        )
    try:
        terminal.start("watch", "watch", "study", "--interval", "0.5", "--wait", "120")
        screens, deadline = [], time.monotonic() + DEADLINE_S
        while terminal.exit_status("watch") is None and time.monotonic() < deadline:
            screens.append(terminal.screen("watch"))
            time.sleep(0.2)
        assert sweep.wait(timeout=DEADLINE_S) == 0, (terminal.cwd / "sweep.log").read_text()
    finally:
        sweep.kill()
    return out, screens, terminal.exit_status("watch"), terminal.screen("watch")


def test_the_watch_shows_the_running_trials_beside_the_sweep(watched_sweep):
    _, screens, _, _ = watched_sweep
    running = [s for s in screens if "tpe sweep, training: study" in s and "running: 3 trials" in s]
    assert running, "never saw the trials running:\n" + screens[-1]
    assert re.search(r"^0\d\d +\S+ +\S+ +\d/6", running[-1], re.M)  # trial, lr, momentum, epoch


def test_the_watch_shows_a_pruned_trial_while_the_sweep_goes_on(watched_sweep):
    _, screens, _, _ = watched_sweep
    assert any("training: study" in s and re.search(r"pruned \(\d+, trial@epoch", s) for s in screens)


def test_the_watch_exits_0_when_the_sweep_ends_leaving_its_final_screen(watched_sweep):
    out, _, status, final = watched_sweep
    assert status == 0, final
    statuses = [results.read_summary(run)["status"] for run in sorted(out.glob("trial-*"))]
    assert "tpe sweep, ended: study" in final and len(statuses) == 6
    assert f"6 trials: {statuses.count('completed')} completed, {statuses.count('pruned')} pruned" in final
    assert "best so far: trial-" in final and "running:" not in final.split("ended: study")[-1]
    assert max(len(line) for line in final.splitlines()) <= WIDTH


def test_off_a_terminal_it_prints_the_final_screen_once(watched_sweep):
    out, _, _, _ = watched_sweep
    done = dlrun("watch", str(out))
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("tpe sweep, ended") == 1 and "pruned (" in done.stdout
    report = dlrun("report", "--watch", str(out))
    assert report.returncode == 0 and report.stdout == done.stdout


@pytest.fixture
def never_ending(terminal):
    """A run folder that stays `running`, held: a watch on it goes on until it is left."""
    run = terminal.cwd / "held"
    shutil.rmtree(run, ignore_errors=True)
    run.mkdir()
    results.write_summary(run, {"status": "running", "config": {"epochs": 5}})
    results.write_metrics(run, [{"epoch": 1, "train_loss": 1.0, "val_loss": 1.0}])
    (run / LOCK_FILE).write_text("{}")
    return run


@pytest.mark.parametrize("key", ["q", "C-c"])
def test_q_or_ctrl_c_leaves_the_watch_with_0(terminal, never_ending, key):
    window = f"leave-{key}"
    terminal.start(window, "watch", never_ending.name, "--interval", "0.2")
    deadline = time.monotonic() + 60
    while "run, training: held" not in terminal.screen(window) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert terminal.exit_status(window) is None  # it goes on until left
    terminal("send-keys", "-t", f"t:{window}", key)
    assert terminal.wait_exit(window, 30) == 0, terminal.screen(window)
    assert "run, training: held" in terminal.screen(window)  # the last screen stays


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["missing", "--wait", "0"],
            "error: no such folder: missing (waited 0 s); give a run folder or a sweep",
        ),
        (
            ["a-file", "--wait", "0"],
            "error: a-file is a file, not a folder; give a run folder or a sweep folder",
        ),
        (["foreign"], "error: foreign is not a run or sweep folder: it holds no sweep.yaml, summary.json"),
        (["held", "--interval", "0"], "error: --interval must be a number of seconds > 0, got 0"),
    ],
)
def test_a_bad_folder_or_interval_is_one_line_and_exit_2(terminal, never_ending, args, message):
    (terminal.cwd / "a-file").write_text("x")
    (terminal.cwd / "foreign").mkdir(exist_ok=True)
    (terminal.cwd / "foreign" / "notes.txt").write_text("x")
    done = dlrun("watch", *args, cwd=terminal.cwd)
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(message) and done.stderr.count("\n") == 1, done.stderr


@pytest.mark.parametrize(
    "args, message",
    [
        (["--format", "json"], "error: --watch cannot be used with --format: it shows the live screen"),
        (["held", "held"], "error: --watch follows one folder, got 2: held, held"),
    ],
)
def test_report_watch_refuses_what_a_live_screen_cannot_take(terminal, never_ending, args, message):
    done = dlrun("report", "--watch", *args, cwd=terminal.cwd)
    assert done.returncode == 2 and done.stderr.startswith(message) and done.stderr.count("\n") == 1
