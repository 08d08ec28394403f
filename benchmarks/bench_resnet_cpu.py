"""A ResNet-20 training epoch on CIFAR-shaped data: dlrun (each CPU conv lowering) vs PyTorch eager.

    python benchmarks/bench_resnet_cpu.py [--steps 10] [--repeats 3] [--lowerings auto,xla]

Both sides train the same network (He et al. 2016's CIFAR ResNet-20 with 1x1 projection
shortcuts; both parameter counts are printed and must agree) with Adam on random 32x32x3 uint8
images, batch 128. dlrun's side is the product's own code path (build_program ->
jit(train_epoch), a lax.scan over `--steps` batches), compile excluded; PyTorch runs the same
number of steps. Times are extrapolated to a 50,000-image epoch (390 steps). The sides alternate
so that a noisy neighbour hurts both alike; the ratio of medians is the number to trust on a
shared machine. Needs the bench extra: pip install -e '.[bench]'.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import sys
import time

import jax
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from dlrun import models  # noqa: E402
from dlrun.config.load import compose_config  # noqa: E402
from dlrun.data import Dataset, DataSpec  # noqa: E402
from dlrun.training import group, hparams, step  # noqa: E402

BATCH = 128
EPOCH_STEPS = 50_000 // BATCH
SHAPE = (32, 32, 3)


def random_cifar(n: int, seed: int = 0) -> Dataset:
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, *SHAPE), dtype=np.uint8)
    labels = rng.integers(0, 10, n).astype(np.int32)
    spec = DataSpec("cifar-shaped", "classification", SHAPE, 10, n, 0, 0)
    empty_x, empty_y = images[:0], labels[:0]
    return Dataset(spec, images, labels, empty_x, empty_y, empty_x, empty_y, 120.0, 1 / 64)


def dlrun_side(lowering: str, dataset: Dataset):
    """Return (parameter count, a function that runs one scanned epoch of len(dataset) steps)."""
    cfg = compose_config(["model=resnet", f"model.conv_lowering={lowering}", f"batch_size={BATCH}"])
    program = group.build_program([cfg], dataset)
    state = step.create_state(program, jax.random.PRNGKey(0), hparams.state_hparams(cfg))
    x, y = jax.device_put((dataset.x_train, dataset.y_train))
    epoch = jax.jit(functools.partial(step.train_epoch, program), donate_argnums=0)
    holder = {"state": state}

    def run(seed: int):
        holder["state"], metrics = epoch(holder["state"], x, y, jax.random.PRNGKey(seed))
        return float(jax.block_until_ready(metrics)["loss"])

    return models.count_params(state.params), run


def torch_resnet20():
    import torch.nn as tnn
    import torch.nn.functional as F

    class Block(tnn.Module):
        def __init__(self, cin, cout, stride):
            super().__init__()
            self.c1 = tnn.Conv2d(cin, cout, 3, stride, 1, bias=False)
            self.b1 = tnn.BatchNorm2d(cout)
            self.c2 = tnn.Conv2d(cout, cout, 3, 1, 1, bias=False)
            self.b2 = tnn.BatchNorm2d(cout)
            self.proj = None
            if stride != 1 or cin != cout:
                self.proj = tnn.Sequential(
                    tnn.Conv2d(cin, cout, 1, stride, bias=False), tnn.BatchNorm2d(cout)
                )

        def forward(self, x):
            y = self.b2(self.c2(F.relu(self.b1(self.c1(x)))))
            return F.relu(y + (x if self.proj is None else self.proj(x)))

    layers = [tnn.Conv2d(3, 16, 3, 1, 1, bias=False), tnn.BatchNorm2d(16), tnn.ReLU()]
    cin = 16
    for stage, cout in enumerate((16, 32, 64)):
        for block in range(3):
            layers.append(Block(cin, cout, 2 if stage and not block else 1))
            cin = cout
    layers += [tnn.AdaptiveAvgPool2d(1), tnn.Flatten(), tnn.Linear(64, 10)]
    return tnn.Sequential(*layers)


def torch_side(dataset: Dataset):
    import torch

    torch.set_num_threads(os.cpu_count() or 1)
    images = torch.from_numpy(dataset.x_train).permute(0, 3, 1, 2).contiguous()
    labels = torch.from_numpy(dataset.y_train.astype(np.int64))
    net = torch_resnet20()
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()

    def run(seed: int):
        order = torch.randperm(len(images), generator=torch.Generator().manual_seed(seed))
        for index in order.reshape(-1, BATCH):
            inputs = (images[index].float() - dataset.x_offset) * dataset.x_scale
            optimizer.zero_grad(set_to_none=True)
            loss = loss_fn(net(inputs), labels[index])
            loss.backward()
            optimizer.step()
        return loss.item()

    return sum(p.numel() for p in net.parameters()), run


def timed(run, seed: int) -> float:
    start = time.perf_counter()
    run(seed)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10, help="steps timed per repeat")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--lowerings", default="auto", help="comma-separated: auto,xla,im2col,batch_last")
    args = parser.parse_args()
    dataset = random_cifar(args.steps * BATCH)
    sides = {}
    for lowering in args.lowerings.split(","):
        count, run = dlrun_side(lowering, dataset)
        start = time.perf_counter()
        run(0)  # compile + warm up
        print(
            f"dlrun/{lowering}: {count:,} parameters, compile + first run "
            f"{time.perf_counter() - start:.1f} s",
            flush=True,
        )
        sides[f"dlrun/{lowering}"] = run
    count, run = torch_side(dataset)
    run(0)  # allocator and oneDNN warm-up
    print(f"torch: {count:,} parameters", flush=True)
    sides["torch"] = run
    times = {name: [] for name in sides}
    for repeat in range(args.repeats):
        for name, run in sides.items():
            times[name].append(timed(run, repeat + 1))
    scale = EPOCH_STEPS / args.steps
    reference = statistics.median(times["torch"])
    print(
        f"\njax {jax.__version__}, {os.cpu_count()} cores, batch {BATCH}, Adam, {args.steps} "
        f"steps x {args.repeats} repeats, per 50,000-image epoch (s):"
    )
    for name, samples in times.items():
        med = statistics.median(samples)
        print(
            f"  {name:<18} median {med * scale:8.1f}  min {min(samples) * scale:8.1f}  "
            f"all {[round(s * scale, 1) for s in samples]}  ratio {med / reference:5.2f}"
        )


if __name__ == "__main__":
    main()
