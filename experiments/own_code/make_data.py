"""Write rings.csv, the data of this example: a small table of numbers with a class to predict.

    python make_data.py        # 1,200 rows in under a second, the same rows every time

A row's class is the ring around the origin that its first two columns fall in (radius 0-1:
`inner`, 1-2: `middle`, 2-3: `outer`); the four other columns are noise, as a real table has
columns that do not matter. No straight line separates rings, so what the network can draw,
its width, decides what it learns: the study in conf/experiments/ sweeps it.
"""

import argparse
import csv
from pathlib import Path

import numpy as np

CLASSES = ("inner", "middle", "outer")
NOISE_COLUMNS = 4
# a gap of 0.1 either side of each boundary, so that no row's class is a coin toss
MARGIN = 0.1


def rings(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(features (rows, 2 + NOISE_COLUMNS), class index per row), drawn from `seed`."""
    rng = np.random.default_rng(seed)
    label = rng.integers(0, len(CLASSES), size=rows)
    radius = label + rng.uniform(MARGIN, 1 - MARGIN, size=rows)
    angle = rng.uniform(0, 2 * np.pi, size=rows)
    ring = np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1)
    noise = rng.normal(size=(rows, NOISE_COLUMNS))
    return np.concatenate([ring, noise], axis=1), label


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1200)  # 800 to train, 200 each to validate and test
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("rings.csv"))
    args = parser.parse_args()
    x, label = rings(args.rows, args.seed)
    with open(args.out, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["x", "y", *(f"noise{i}" for i in range(1, NOISE_COLUMNS + 1)), "ring"])
        for features, index in zip(x, label):
            writer.writerow([*(f"{value:.5f}" for value in features), CLASSES[index]])
    print(f"wrote {args.out} ({args.rows} rows)")


if __name__ == "__main__":
    main()
