"""`logger=tensorboard`, `logger=mlflow`: the run folders copied into trackers while they train.

A follower thread in the process that writes the run folders (the sweep's driver, which also
writes what `--jobs` workers and Ray tasks train) looks at them every FLUSH_S and hands each
run that changed to every logger as a RunState, read from the folder as `dlrun export` reads it
and written by the export's own functions, so a live logger and `dlrun export` write the same.

1. Training never waits for a logger: the writes are off the training thread, and batched
   (one look, every epoch that arrived since, one write per run and logger).
2. A logger that fails (disk full, server gone) says so in one warning line and is dropped;
   the run folder stays the truth, and `dlrun export` fills the gap afterwards.
3. After a kill -9 the same command resumes each tracker from what it holds: no point twice.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from dlrun import results
from dlrun.config.loggers import Loggers
from dlrun.errors import ConfigError
from dlrun.export import runs as exported
from dlrun.export.trackers import require
from dlrun.report.build import build_report, settings_of
from dlrun.text import clip

# How often the folders are looked at: TensorBoard itself reloads every 5 s (--reload_interval),
# and one look at a quiet folder is two stat() calls per run.
FLUSH_S = 1.0
# At the end, how long a logger may go on writing (a server that stopped answering, retried by
# its client) before the command leaves it behind: the folders hold everything it missed.
CLOSE_WAIT_S = 30.0


def check(loggers: Loggers) -> None:
    """Refuse, before anything trains, a logger whose extra is not installed."""
    for name in loggers.names:
        require(name, f"logger={name}")


def _open(loggers: Loggers) -> list:
    """The live loggers chosen; their modules import TensorBoard or MLflow, so only once chosen."""
    opened = []
    for logger in loggers.chosen:
        if logger.name == "tensorboard":
            from dlrun.export.tensorboard import LiveTensorBoard

            opened.append(LiveTensorBoard())
        elif logger.name == "mlflow":
            from dlrun.export.mlflow import LiveMlflow

            opened.append(LiveMlflow(logger.tracking_uri, logger.experiment))
    return opened


@contextmanager
def following(root: Path, loggers: Loggers, console: Console, configs: dict | None = None):
    """Follow the runs in `root` (a sweep folder or one run's) into `loggers` while the block
    trains them. `configs` ({run folder: its config}) are the runs planned, so that the
    hyperparameters that vary are known before every run has started."""
    if not loggers:
        yield
        return
    follower = Follower(Path(root), _open(loggers), console, configs or {})
    follower.start()
    try:
        yield
    finally:
        follower.close()


class Follower:
    def __init__(self, root: Path, loggers: list, console: Console, configs: dict):
        self.root = root.resolve()
        self.loggers = loggers
        self.console = console
        self.settings = {Path(folder).resolve(): settings_of(config) for folder, config in configs.items()}
        self.hparams: dict[Path, dict] = {}  # fixed at a run's first sight: its session start
        self.stamps: dict[Path, tuple] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dlrun-loggers", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        """One last look at the folders, then the loggers' ends; waits CLOSE_WAIT_S at most."""
        self._stop.set()
        self._thread.join(CLOSE_WAIT_S)
        if self._thread.is_alive():
            names = ", ".join(logger.name for logger in self.loggers)
            waited = f"still writing after {CLOSE_WAIT_S:.0f} s, left behind"
            self._warn(f"logger={names} {waited}; {self._fill()}")

    def _run(self) -> None:
        for logger in list(self.loggers):
            self._call(logger, logger.begin, self.root, self._all_hparams())
        while not self._stop.wait(FLUSH_S):
            self.look()
        self.look()
        try:
            collected = exported.collect(self.root)
        except ConfigError:  # nothing was written: no run to end
            collected = None
        for logger in list(self.loggers):
            self._call(logger, logger.end, collected)

    def look(self) -> None:
        """Hand every run folder that changed since the last look to every logger."""
        for run_dir in self._folders():
            stamp = _stamp(run_dir)
            if stamp == self.stamps.get(run_dir) or not self.loggers:
                continue
            run = self._state(run_dir)
            if run is None:  # its summary not there yet: the next look
                continue
            for logger in list(self.loggers):
                self._call(logger, logger.update, run)
            self.stamps[run_dir] = stamp

    def _folders(self) -> list[Path]:
        """The root when it is a run, else its trial folders that have begun."""
        if (self.root / results.SUMMARY_FILE).is_file() or (self.root / results.CONFIG_FILE).is_file():
            return [self.root]
        try:
            return sorted(p for p in self.root.iterdir() if (p / results.SUMMARY_FILE).is_file())
        except OSError:  # not made yet
            return []

    def _state(self, run_dir: Path) -> exported.RunState | None:
        try:
            summary = results.read_summary(run_dir)
            curves = results.read_metrics(run_dir) if (run_dir / results.METRICS_FILE).exists() else None
        except (OSError, ValueError):  # the folder's own problem: the report warns about it
            return None
        status = str(summary.get("status", "running"))
        row = None
        if status != "running":  # ended: the report's row has the diagnosis and the headline
            report = build_report([run_dir])
            row = report.rows.iloc[0]
            curves = report.curves.get(str(run_dir), curves)
        name = exported.run_name(self.root, run_dir)
        return exported.RunState(run_dir, name, curves, status, self._hparams(run_dir, summary), row)

    def _hparams(self, run_dir: Path, summary: dict) -> dict:
        if run_dir not in self.hparams:
            if run_dir not in self.settings and isinstance(summary.get("config"), dict):
                self.settings[run_dir] = settings_of(summary["config"])
            values = dict(zip(self.settings, self._all_hparams()))
            self.hparams[run_dir] = values.get(run_dir, {})
        return self.hparams[run_dir]

    def _all_hparams(self) -> list[dict]:
        """Each known run's settings that vary across the known runs (the planned ones, and
        any other seen so far), typed as `dlrun export` types them."""
        return exported.hparams_over(list(self.settings.values())) if self.settings else []

    def _call(self, logger, method, *args) -> None:
        """Run one logger's step; a failure drops the logger with one warning line."""
        try:
            method(*args)
        except Exception as error:  # whatever a tracker raises, training goes on
            self.loggers.remove(logger)
            reason = clip(str(error).strip().splitlines()[0] if str(error).strip() else "")
            self._warn(
                f"logger={logger.name} failed ({type(error).__name__}: {reason}); training goes on "
                f"without it; {self._fill(logger)}"
            )

    def _fill(self, logger=None) -> str:
        """How `dlrun export` writes what `logger` missed, into the same place."""
        name = getattr(logger, "name", "tensorboard|mlflow")
        target = self.root.parent if name == "tensorboard" else getattr(logger, "uri", "")
        where = f" {target}" if target else ""
        command = f"dlrun export {self.root} --to {name}{where}"
        return f"the run folders hold every epoch: `{command}` fills the gap"

    def _warn(self, line: str) -> None:
        self.console.print(f"[yellow]warning:[/] {escape(line)}", highlight=False, soft_wrap=True)


def _stamp(run_dir: Path) -> tuple:
    """What changes when a run's curves or status do (files are replaced, never edited)."""
    stamp = []
    for name in (results.METRICS_FILE, results.SUMMARY_FILE):
        try:
            stat = (run_dir / name).stat()
            stamp.append((stat.st_mtime_ns, stat.st_size, stat.st_ino))
        except OSError:
            stamp.append(None)
    return tuple(stamp)
