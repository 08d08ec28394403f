"""One group on 1 and on 2 (forced) CPU devices: sharding the trial axis must cost nothing.

    python benchmarks/bench_multidevice_cpu.py [--repeats 2]

The same 16-trial `dlrun sweep` (default MLP, 10,000-image MNIST subset, 3 epochs, an lr x seed
grid) runs with XLA_FLAGS=--xla_force_host_platform_device_count=1 and =2. The two forced
devices share this machine's cores, so this checks the overhead of the sharded program, not a
speed-up. Reported: the median `epoch_time_s` of epochs 2-3 over the trials, and the wall and
CPU seconds of the whole command. Target: 2 devices no slower than 1.
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

WORKLOAD = ["data=mnist", "data.subset=10000", "epochs=3", "optim=momentum", "schedule=constant",
            "lr=0.003,0.01,0.03,0.1", "seed=0,1,2,3"]


def sweep(devices: int, out: Path, cache: Path) -> tuple[float, float, float]:
    """Return (median epoch seconds, wall seconds, CPU seconds) of one whole sweep command."""
    env = {**os.environ, "DLRUN_CACHE_DIR": str(cache),
           "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    subprocess.run([sys.executable, "-m", "dlrun", "sweep", *WORKLOAD, "--out", str(out)],
                   check=True, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    times = pd.concat([pd.read_csv(path) for path in out.glob("*/metrics.csv")])
    return float(times[times.epoch > 1].epoch_time_s.median()), wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    seen: dict = {1: [], 2: []}
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        for devices in seen:
            sweep(devices, scratch / f"warm{devices}", scratch / f"cache{devices}")
        for repeat in range(args.repeats):  # interleaved, so that a noisy neighbour hits both
            for devices, runs in seen.items():
                runs.append(sweep(devices, scratch / f"d{devices}r{repeat}", scratch / f"cache{devices}"))
    print(f"{os.cpu_count()} cores; 16 trials, one group; each run (epoch s, wall s, CPU s): "
          + "; ".join(f"{d} device(s) {[tuple(round(v, 2) for v in r) for r in runs]}"
                      for d, runs in seen.items()))
    print(f"{'devices':<9}{'epoch s':>9}{'wall s':>8}{'CPU s':>8}")
    for devices, runs in seen.items():
        medians = [statistics.median(run[i] for run in runs) for i in range(3)]
        print(f"{devices:<9}{medians[0]:>9.2f}{medians[1]:>8.1f}{medians[2]:>8.1f}")


if __name__ == "__main__":
    main()
