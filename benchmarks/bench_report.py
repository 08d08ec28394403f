"""`dlrun report` over 2,000 run folders (target: under 5 s on a 2-core CPU).

    python benchmarks/bench_report.py [--runs 2000] [--compare PYTHON]

Builds the folders from one real short run (config, 20-epoch metrics, summary), varying lr and
seed in each config, then times the report the CLI makes (read, diagnose, render as a table
and as JSON) in this process, after a warm-up import; then the whole command, start-up
included (`python -m dlrun report DIR --format csv > /dev/null`, best of 3). `--compare` times
the same command with another interpreter (another checkout's venv) on the same folders, so
before and after are measured side by side.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml


def make_runs(root: Path, count: int) -> Path:
    from dlrun.config.load import compose_config
    from dlrun.training.group import train_and_evaluate

    template = root / "template"
    train_and_evaluate(compose_config(["data=moons", "model.hidden=[16]", "epochs=20"]), template)
    config = yaml.safe_load((template / "config.yaml").read_text())
    summary = json.loads((template / "summary.json").read_text())
    for index in range(count):
        run = root / "runs" / f"trial-{index:04d}"
        run.mkdir(parents=True)
        shutil.copy(template / "metrics.csv", run / "metrics.csv")
        config.update(lr=10 ** (-1 - 3 * index / count), seed=index % 5)
        (run / "config.yaml").write_text(yaml.safe_dump(config))
        (run / "summary.json").write_text(json.dumps({**summary, "config": config}))
    return root / "runs"


def whole_command(python: str, runs: Path, repeats: int = 3) -> float:
    """Best wall time of `python -m dlrun report runs --format csv` over `repeats` runs."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(
            [python, "-m", "dlrun", "report", str(runs), "--format", "csv"],
            stdout=subprocess.DEVNULL,
            check=True,
        )
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--compare", help="another interpreter to time the same command with")
    args = parser.parse_args()
    from io import StringIO

    from rich.console import Console

    from dlrun.report import render
    from dlrun.report.build import build_report, select

    with tempfile.TemporaryDirectory() as scratch:
        runs = make_runs(Path(scratch), args.runs)
        start = time.perf_counter()
        built = build_report([runs])
        frame = select(built, sort="best_val_loss")
        Console(file=StringIO(), width=160).print(render.terminal_table(frame, built.varying, "bench"))
        render.render_text(frame, "json", built.constant)
        seconds = time.perf_counter() - start
        command = whole_command(sys.executable, runs)
        other = whole_command(args.compare, runs) if args.compare else None
    assert len(built.varying) == 2, built.varying  # lr and seed, read back from every folder
    print(
        f"{args.runs} run folders reported in {seconds:.2f} s ({1000 * seconds / args.runs:.2f} ms per run); "
        f"target < 5 s: {'met' if seconds < 5 else 'NOT met'}"
    )
    print(
        f"whole command (python -m dlrun report --format csv, best of 3): {command:.2f} s; "
        f"target < 5 s: {'met' if command < 5 else 'NOT met'}"
    )
    if other is not None:
        print(f"the same command with {args.compare}: {other:.2f} s")


if __name__ == "__main__":
    main()
