"""What a live logger costs a sweep: epoch time with and without `logger=`, side by side.

    python benchmarks/bench_logger_cpu.py [--logger tensorboard] [--repeats 3] [--epochs 6]

Runs the same sweep (an MLP on 10,000 MNIST images, four learning rates trained as one
vectorised group) into fresh folders, alternately without a logger and with the one named
(`tensorboard`, `mlflow` to a file store, or `tensorboard,mlflow`), so that a machine busy
with something else slows both sides alike. An epoch's time is what metrics.csv records
(epoch_time_s: training and validation, the follower thread competing for the CPU), the
first epoch left out (it warms the caches); the sweep's wall time includes the loggers'
last writes. The issue's target: a logger costs under 5 % of an epoch (ratio < 1.05).

Measured on the 2-core CPU that runs the tests, shared with other jobs (3 repeats, 6 epochs):
logger=tensorboard epoch 1732 ms vs 1761 ms without, ratio 0.98 (noise: the follower's work
is a few ms a second); the sweep's wall time 11.0 s vs 13.5 s (noise likewise).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import pandas as pd
from rich.console import Console

import dlrun

SWEEP = ["model=mlp", "data.subset=10000", "lr=0.1,0.01,0.001,0.0001"]


def one_sweep(out: Path, epochs: int, logger: str | None) -> tuple[float, float]:
    """(median epoch seconds over the trials' epochs 2.., the sweep's wall seconds)."""
    overrides = [*SWEEP, f"epochs={epochs}"]
    if logger:
        overrides.append(f"logger=[{logger}]")
    if logger and "mlflow" in logger:
        overrides.append(f"logger.mlflow.tracking_uri={(out.parent / 'mlruns').as_uri()}")
    quiet = Console(file=open(os.devnull, "w"))
    start = time.perf_counter()
    dlrun.sweep(overrides, out=out, console=quiet, stdout=quiet)
    wall = time.perf_counter() - start
    times = [
        seconds
        for trial in sorted(out.glob("trial-*"))
        for seconds in pd.read_csv(trial / "metrics.csv")["epoch_time_s"].iloc[1:]
    ]
    return statistics.median(times), wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--logger", default="tensorboard")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=6)
    args = parser.parse_args()
    os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
    results = {None: [], args.logger: []}
    with tempfile.TemporaryDirectory() as scratch:
        one_sweep(Path(scratch) / "warm-up", 2, None)  # data loaded, programs compiled once
        for repeat in range(args.repeats):
            for logger in (None, args.logger) if repeat % 2 == 0 else (args.logger, None):
                out = Path(scratch) / f"{logger or 'none'}-{repeat}"
                results[logger].append(one_sweep(out, args.epochs, logger))
    print(f"{'':24} {'epoch (median)':>15} {'sweep wall':>11}")
    for logger, rows in results.items():
        epoch = statistics.median(row[0] for row in rows)
        wall = statistics.median(row[1] for row in rows)
        print(f"{'logger=' + (logger or 'csv (none)'):24} {epoch * 1000:12.1f} ms {wall:9.2f} s")
    base, live = (statistics.median(row[0] for row in results[key]) for key in (None, args.logger))
    base_wall, live_wall = (statistics.median(row[1] for row in results[key]) for key in (None, args.logger))
    print(f"ratio with/without: epoch {live / base:.3f}, sweep wall {live_wall / base_wall:.3f}")


if __name__ == "__main__":
    main()
