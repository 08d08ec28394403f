"""Shared batches: the epoch time of a 16-trial lr sweep at one seed, in this checkout and another.

    python benchmarks/bench_shared_batches_cpu.py [--baseline /path/to/other/checkout/.venv/bin/python]
                                                  [--repeats 2]

Workload (issue 12): the default MLP 784-512-256-10 on a 10,000-image MNIST subset, 3 epochs,
momentum SGD, 16 learning rates, one seed: every trial draws the same batch order, which this
checkout gathers once for all trials. The baseline interpreter (e.g. a worktree of the commit
before shared batches, with its own venv) runs the very same command. Reported: the median
`epoch_time_s` over all trials' epochs 2-3 (epoch 1 may still warm caches) from metrics.csv,
and the CPU seconds of the whole command (steadier than wall time on a shared machine).
Target: at least 1.5x faster per epoch than before.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd

LRS = ",".join(f"{0.001 * 1.5**i:.5f}" for i in range(16))
WORKLOAD = [
    "data=mnist",
    "data.subset=10000",
    "epochs=3",
    "optim=momentum",
    "schedule=constant",
    "seed=0",
    f"lr={LRS}",
]


def sweep(python: str, out: Path, env: dict) -> tuple[float, float]:
    """Run the sweep; return (median epoch seconds, CPU seconds of the command)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run(
        [python, "-m", "dlrun", "sweep", *WORKLOAD, "--out", str(out)],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    times = pd.concat([pd.read_csv(path) for path in out.glob("*/metrics.csv")])
    return float(times[times.epoch > 1].epoch_time_s.median()), cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", help="python of another checkout to compare with")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    sides = {"this checkout": sys.executable}
    if args.baseline:
        sides["baseline"] = args.baseline
    seen: dict = {name: [] for name in sides}
    with tempfile.TemporaryDirectory() as scratch:
        for name, python in sides.items():
            env = {**os.environ, "DLRUN_CACHE_DIR": str(Path(scratch) / name / "cache")}
            sweep(python, Path(scratch) / name / "warm", env)  # fill the compilation cache
        for repeat in range(args.repeats):  # interleaved, so that a noisy neighbour hits both
            for name, python in sides.items():
                env = {**os.environ, "DLRUN_CACHE_DIR": str(Path(scratch) / name / "cache")}
                seen[name].append(sweep(python, Path(scratch) / name / f"run{repeat}", env))
    print(
        f"{os.cpu_count()} cores; 16-trial lr sweep at one seed; each run (epoch s, command CPU s): "
        + "; ".join(f"{name} {[(round(e, 2), round(c, 1)) for e, c in runs]}" for name, runs in seen.items())
    )
    print(f"{'':<15}{'epoch s (median)':>17}{'command CPU s':>15}")
    for name, runs in seen.items():
        print(
            f"{name:<15}{statistics.median(e for e, _ in runs):>17.2f}"
            f"{statistics.median(c for _, c in runs):>15.1f}"
        )
    if args.baseline:
        ratio = statistics.median(e for e, _ in seen["baseline"]) / statistics.median(
            e for e, _ in seen["this checkout"]
        )
        print(f"epoch speed-up over the baseline: {ratio:.2f}x")


if __name__ == "__main__":
    main()
