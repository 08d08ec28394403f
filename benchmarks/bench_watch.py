"""`dlrun watch` on a 1,000-trial sweep: one refresh after one trial's metrics.csv grew, against
reading the whole folder again (a fresh reader), and the screen drawn from it.

    python benchmarks/bench_watch.py [--trials 1000] [--running 32] [--epochs 20]

Writes the sweep folder in the real formats with dlrun's own writers (sweep.yaml of a grid,
trial-NNN/ with config.yaml, summary.json and metrics.csv): most trials completed, `--running`
of them mid-training. Each timed refresh follows one running trial gaining an epoch, as
a sweep's writes do. Prints the milliseconds per refresh (median of 20), per full reread and
per drawn screen, and the ratio of a reread to a refresh.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import yaml
from rich.console import Console

from dlrun import results
from dlrun.report.live import LiveFolder
from dlrun.report.live_view import watch_view


def rows(epochs: int, lr: float) -> list[dict]:
    return [
        {
            "epoch": e,
            "train_loss": 1 / (e * lr * 100 + 1),
            "train_accuracy": 1 - 1 / (e + 1),
            "val_loss": 1.1 / (e * lr * 100 + 1),
            "val_accuracy": 1 - 1.1 / (e + 1),
            "lr": lr,
            "epoch_time_s": 0.05,
        }
        for e in range(1, epochs + 1)
    ]


def make_sweep(root: Path, trials: int, running: int, epochs: int) -> tuple[Path, list[Path]]:
    out = root / "sweep"
    ids = [f"trial-{i:03d}" for i in range(trials)]
    lrs = [10 ** (-1 - 3 * i / trials) for i in range(trials)]
    plan = {
        "mode": "grid",
        "space": {"lr": "..."},
        "trials": [{"id": t, "params": {"lr": str(lr)}} for t, lr in zip(ids, lrs)],
        "groups": [{"id": "g000", "trials": ids}],
    }
    results.atomic_write_text(out / results.SWEEP_FILE, yaml.safe_dump({"command": "bench", "plan": plan}))
    live = []
    for index, (trial, lr) in enumerate(zip(ids, lrs)):
        run = out / trial
        config = {"lr": lr, "epochs": epochs, "model": {"name": "mlp"}, "data": {"name": "spirals"}}
        results.atomic_write_text(run / results.CONFIG_FILE, yaml.safe_dump(config))
        done = index >= running
        curves = rows(epochs if done else epochs // 2, lr)
        results.write_metrics(run, curves)
        summary = {"status": "completed" if done else "running", "config": config, "task": "classification"}
        if done:
            summary.update(epochs_run=epochs, best_val_accuracy=curves[-1]["val_accuracy"])
        results.write_summary(run, summary)
        if not done:
            live.append(run)
    return out, live


def median_ms(timings: list[float]) -> float:
    return 1000 * statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=1000)
    parser.add_argument("--running", type=int, default=32)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        out, live = make_sweep(Path(scratch), args.trials, args.running, args.epochs)
        reader = LiveFolder(out)
        reader.refresh()
        refresh, reread, draw = [], [], []
        console = Console(file=open("/dev/null", "w"), width=120)
        for step in range(20):
            run = live[step % len(live)]
            grown = rows(args.epochs // 2 + 1 + step // len(live), 0.01)
            results.write_metrics(run, grown)
            start = time.perf_counter()
            watched = reader.refresh()
            refresh.append(time.perf_counter() - start)
            start = time.perf_counter()
            LiveFolder(out).refresh()
            reread.append(time.perf_counter() - start)
            start = time.perf_counter()
            console.print(watch_view(watched, 120, 40))
            draw.append(time.perf_counter() - start)
    print(
        f"{args.trials} trials ({args.running} running, {args.epochs} epochs): "
        f"refresh after one metrics.csv grew {median_ms(refresh):.1f} ms, "
        f"full reread {median_ms(reread):.0f} ms ({median_ms(reread) / median_ms(refresh):.0f}x), "
        f"screen drawn {median_ms(draw):.1f} ms"
    )


if __name__ == "__main__":
    main()
