"""`dlrun inspect` of a LeNet MNIST run, the whole command, against the issue's target of 10 s
on a 2-core CPU, with the time a bare `import jax` and `dlrun --version` take beside it (what
no inspect can save).

    python benchmarks/bench_inspect_cpu.py [--repeats 3] [--examples 16]

Trains a LeNet for one epoch on MNIST (DLRUN_DATA_DIR) in a temporary folder, then times
`dlrun inspect RUN --examples N` in fresh processes (imports, the checkpoint, the 10,000-image
test pass, every picture and the page), alternating with `python -c "import jax"`.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_S = 10.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--examples", type=int, default=16)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        run = Path(folder) / "lenet"
        command = [sys.executable, "-m", "dlrun"]
        subprocess.run([*command, "train", "model=lenet", "epochs=1", "--out", str(run)], check=True)
        walls, imports = [], []
        for _ in range(args.repeats):
            imports.append(_timed([sys.executable, "-c", "import jax, jax.numpy"]))
            walls.append(_timed([*command, "inspect", str(run), "--examples", str(args.examples)]))
    wall = statistics.median(walls)
    print(f"dlrun inspect, whole command: median {wall:.2f} s of {args.repeats} (target < {TARGET_S:g} s): "
          f"{'met' if wall < TARGET_S else 'NOT met'}")  # fmt: skip
    print(f"import jax alone: median {statistics.median(imports):.2f} s")


def _timed(command: list) -> float:
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


if __name__ == "__main__":
    main()
