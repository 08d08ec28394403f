"""One group on 1 and on 2 (forced) CPU devices: sharding the trial axis must cost nothing.

    python benchmarks/bench_multidevice_cpu.py [--repeats 2]

The same 16-trial `dlrun sweep` (default MLP, 10,000-image MNIST subset, 3 epochs, an lr x seed
grid) runs with XLA_FLAGS=--xla_force_host_platform_device_count=1 and =2. The two forced
devices share this machine's cores, so this checks the overhead of the sharded program, not a
speed-up. Reported: the median `epoch_time_s` of epochs 2-3 over the trials, and the wall and
CPU seconds of the whole command. Target: 2 devices no slower than 1.

Two one-device rows: the default, where a CPU group of big-step trials trains one trial a pass,
a core each side by side (dlrun/training/side_by_side.py), and the whole group vmapped
(DLRUN_TRIALS_PER_PASS=16), the very program that two devices split: the sharding overhead is
the second comparison.
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

WORKLOAD = [
    "data=mnist",
    "data.subset=10000",
    "epochs=3",
    "optim=momentum",
    "schedule=constant",
    "lr=0.003,0.01,0.03,0.1",
    "seed=0,1,2,3",
]


SETUPS = {"1 device": (1, {}), "1 vmapped": (1, {"DLRUN_TRIALS_PER_PASS": "16"}), "2 devices": (2, {})}


def sweep(setup: str, out: Path, cache: Path) -> tuple[float, float, float]:
    """Return (median epoch seconds, wall seconds, CPU seconds) of one whole sweep command."""
    devices, extra = SETUPS[setup]
    env = {
        **os.environ,
        **extra,
        "DLRUN_CACHE_DIR": str(cache),
        "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}",
    }
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "dlrun", "sweep", *WORKLOAD, "--out", str(out)],
        check=True,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    times = pd.concat([pd.read_csv(path) for path in out.glob("*/metrics.csv")])
    return float(times[times.epoch > 1].epoch_time_s.median()), wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    seen: dict = {setup: [] for setup in SETUPS}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        for index, setup in enumerate(seen):
            sweep(setup, scratch / f"warm{index}", scratch / f"cache{index}")
        for repeat in range(args.repeats):  # interleaved, so that a noisy neighbour hits all
            for index, (setup, runs) in enumerate(seen.items()):
                runs.append(sweep(setup, scratch / f"s{index}r{repeat}", scratch / f"cache{index}"))
    print(
        f"{os.cpu_count()} cores; 16 trials, one group; each run (epoch s, wall s, CPU s): "
        + "; ".join(
            f"{setup} {[tuple(round(v, 2) for v in r) for r in runs]}" for setup, runs in seen.items()
        )
    )
    print(f"{'':<11}{'epoch s':>9}{'wall s':>8}{'CPU s':>8}")
    medians = {
        setup: [statistics.median(run[i] for run in runs) for i in range(3)] for setup, runs in seen.items()
    }
    for setup, (epoch, wall, cpu) in medians.items():
        print(f"{setup:<11}{epoch:>9.2f}{wall:>8.1f}{cpu:>8.1f}")
    two = medians["2 devices"][0]
    print(
        f"2 devices / 1 vmapped (the sharding overhead): {two / medians['1 vmapped'][0]:.2f}x; "
        f"2 devices / 1 device (default): {two / medians['1 device'][0]:.2f}x (epoch time)"
    )


if __name__ == "__main__":
    main()
