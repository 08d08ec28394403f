"""LeNet-5 training step on CPU: JAX (each conv lowering) vs PyTorch eager.

Times, side by side in one process with interleaved rounds:
  * one jitted train step (forward + backward + Adam), batch 128, float32;
  * a jitted lax.scan of 20 steps over batches gathered by index from a uint8
    array already on the device (how the product runs an epoch);
  * the same model/step in PyTorch eager;
  * pieces: conv1 fwd, conv1 fwd+weight-grad, conv2 fwd+bwd, 2x2 max pool fwd+bwd.
``--flags`` re-runs the scan timing in child processes under XLA_FLAGS variants.

    python benchmarks/bench_lenet_step_cpu.py [--quick] [--flags]

The machine may be shared: the ratio of medians within one run is the number
to trust; the min column shows the uncontended speed.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import optax  # noqa: E402
from jax import lax  # noqa: E402

from dlrun.models import conv  # noqa: E402

BATCH = 128
SCAN_STEPS = 20
FLAG_VARIANTS = [
    "",
    "--xla_cpu_multi_thread_eigen=false",
    "--xla_cpu_use_thunk_runtime=false",
    "--xla_cpu_experimental_ynn_fusion_type=",
    "--xla_cpu_use_xnnpack=true",
    "--xla_cpu_prefer_vector_width=512",
    "--xla_cpu_enable_fast_math=true",
]


# ---------------------------------------------------------------- JAX model
def init_params(key):
    shapes = {"c1": (5, 5, 1, 6), "c2": (5, 5, 6, 16), "d1": (400, 120), "d2": (120, 84), "d3": (84, 10)}
    keys = jax.random.split(key, len(shapes))
    params = {}
    for k, (name, shape) in zip(keys, shapes.items()):
        fan_in = int(np.prod(shape[:-1]))
        params[name] = jax.random.normal(k, shape, jnp.float32) * np.sqrt(2.0 / fan_in)
        params[name + "_b"] = jnp.zeros((shape[-1],), jnp.float32)
    return params


def _dense_head(p, h):
    h = jax.nn.relu(h @ p["d1"] + p["d1_b"])
    h = jax.nn.relu(h @ p["d2"] + p["d2_b"])
    return h @ p["d3"] + p["d3_b"]


def forward_nhwc(p, x, lowering):
    """x [B, 28, 28, 1] float; the public NHWC conv2d with one lowering."""
    h = conv.max_pool(jax.nn.relu(conv.conv2d(x, p["c1"], padding=2, lowering=lowering) + p["c1_b"]))
    h = conv.max_pool(jax.nn.relu(conv.conv2d(h, p["c2"], lowering=lowering) + p["c2_b"]))
    return _dense_head(p, h.reshape(h.shape[0], -1))


def forward_chwb(p, x):
    """Whole conv stack kept batch-last [C, H, W, B]; back to NHWC (a 200 KB
    transpose) before flattening so weights match forward_nhwc."""
    h = conv.to_batch_last(x)
    h = conv.conv2d_batch_last(h, p["c1"], padding=2) + p["c1_b"][:, None, None, None]
    h = conv.max_pool(jax.nn.relu(h))
    h = conv.conv2d_batch_last(h, p["c2"]) + p["c2_b"][:, None, None, None]
    h = conv.max_pool(jax.nn.relu(h))
    h = conv.from_batch_last(h)
    return _dense_head(p, h.reshape(h.shape[0], -1))


def make_forwards():
    lows = ("auto",) + conv.LOWERINGS
    fwds = {f"nhwc/{low}": (lambda p, x, low=low: forward_nhwc(p, x, low)) for low in lows}
    fwds["chwb/batch_last"] = forward_chwb
    return fwds


def make_train_fns(forward, tx):
    def loss_fn(p, x, y):
        return optax.softmax_cross_entropy_with_integer_labels(forward(p, x), y).mean()

    def step(carry, xb_u8, yb):
        p, o = carry
        x = (xb_u8.astype(jnp.float32) / 255.0)[..., None]
        loss, g = jax.value_and_grad(loss_fn)(p, x, yb)
        upd, o = tx.update(g, o, p)
        return (optax.apply_updates(p, upd), o), loss

    def scan_epoch(carry, images_u8, labels, idx):
        def body(c, row):
            return step(c, images_u8[row], labels[row])

        return lax.scan(body, carry, idx)

    return jax.jit(step), jax.jit(scan_epoch)


# -------------------------------------------------------------- torch model
def make_torch(threads):
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    torch.set_num_threads(threads)

    class LeNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.c2 = nn.Conv2d(1, 6, 5, padding=2), nn.Conv2d(6, 16, 5)
            self.f1, self.f2, self.f3 = nn.Linear(400, 120), nn.Linear(120, 84), nn.Linear(84, 10)

        def forward(self, x):
            x = F.max_pool2d(F.relu(self.c1(x)), 2)
            x = F.max_pool2d(F.relu(self.c2(x)), 2).flatten(1)
            return self.f3(F.relu(self.f2(F.relu(self.f1(x)))))

    model = LeNet()
    opt = torch.optim.Adam(model.parameters(), 1e-3)

    def step(xb_u8, yb):
        x = (xb_u8.float() / 255.0).unsqueeze(1)
        opt.zero_grad()
        loss = F.cross_entropy(model(x), yb)
        loss.backward()
        opt.step()
        return loss

    def epoch(images_u8, labels, idx):
        for row in idx:
            loss = step(images_u8[row], labels[row])
        return loss.item()

    return torch, step, epoch


# ------------------------------------------------------------------ timing
def interleaved(fns, rounds, inner):
    """fns: name -> callable returning something to block on. ms per call."""
    for f in fns.values():
        _block(f())
        _block(f())
    samples = {k: [] for k in fns}
    for _ in range(rounds):
        for name, f in fns.items():
            t0 = time.perf_counter()
            for _ in range(inner):
                out = f()
            _block(out)
            samples[name].append((time.perf_counter() - t0) / inner * 1e3)
    return {k: (statistics.median(v), min(v)) for k, v in samples.items()}


def _block(out):
    if type(out).__module__.startswith("torch"):
        return out  # eager CPU torch is synchronous
    return jax.block_until_ready(out)


def print_table(title, res, ref, per=1):
    print(f"\n{title}  (ms; ratio = median / median of {ref})")
    ref_med = res[ref][0] / per
    for name, (med, mn) in res.items():
        med, mn = med / per, mn / per
        print(f"  {name:24s} median {med:8.3f}  min {mn:8.3f}  ratio {med / ref_med:5.2f}")


def make_data(seed=0, n=4096):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n).astype(np.int32)
    idx = rng.permutation(n)[: SCAN_STEPS * BATCH].reshape(SCAN_STEPS, BATCH).astype(np.int32)
    return images, labels, idx


def bench_steps(args, names):
    images, labels, idx = make_data()
    tx = optax.adam(1e-3)
    fwds = make_forwards()
    p = init_params(jax.random.PRNGKey(0))
    carry = (p, tx.init(p))
    d_img, d_lab, d_idx = jnp.asarray(images), jnp.asarray(labels), jnp.asarray(idx)
    xb, yb = d_img[d_idx[0]], d_lab[d_idx[0]]
    step_fns, scan_fns = {}, {}
    for name in names:
        step, scan = make_train_fns(fwds[name], tx)
        step_fns[name] = lambda step=step: step(carry, xb, yb)[1]
        scan_fns[name] = lambda scan=scan: scan(carry, d_img, d_lab, d_idx)[1]
    torch, t_step, t_epoch = make_torch(args.threads)
    t_img, t_lab = torch.from_numpy(images), torch.from_numpy(labels).long()
    t_idx = torch.from_numpy(idx).long()
    step_fns["torch"] = lambda: t_step(t_img[t_idx[0]], t_lab[t_idx[0]])
    scan_fns["torch"] = lambda: t_epoch(t_img, t_lab, t_idx)
    return step_fns, scan_fns


def check_same_loss(scan_fns):
    """All JAX variants must train identically (same init, same batches)."""
    losses = {k: float(np.asarray(f())[-1]) for k, f in scan_fns.items() if k != "torch"}
    ref = next(iter(losses.values()))
    for k, v in losses.items():
        assert abs(v - ref) < 1e-3 * max(1.0, abs(ref)), f"{k} loss {v} != {ref}"
    return losses


# ------------------------------------------------------------------ pieces
def piece_fns(threads):
    rng = np.random.default_rng(1)
    x1 = jnp.asarray(rng.standard_normal((BATCH, 28, 28, 1)), jnp.float32)
    k1 = jnp.asarray(rng.standard_normal((5, 5, 1, 6)) * 0.2, jnp.float32)
    x2 = jnp.asarray(rng.standard_normal((BATCH, 14, 14, 6)), jnp.float32)
    k2 = jnp.asarray(rng.standard_normal((5, 5, 6, 16)) * 0.1, jnp.float32)
    p1 = jnp.asarray(rng.standard_normal((BATCH, 28, 28, 6)), jnp.float32)
    fns = {}
    for low in conv.LOWERINGS:
        c1 = lambda x, k, low=low: conv.conv2d(x, k, padding=2, lowering=low)
        c2 = lambda x, k, low=low: conv.conv2d(x, k, lowering=low)
        fns[f"conv1 fwd {low}"] = _bind(jax.jit(c1), x1, k1)
        wg = jax.jit(jax.grad(lambda k, x: jnp.sum(jax.nn.relu(c1(x, k)) ** 2)))
        fns[f"conv1 fwd+wgrad {low}"] = _bind(wg, k1, x1)
        g2 = jax.jit(jax.grad(lambda x, k: jnp.sum(jax.nn.relu(c2(x, k)) ** 2), argnums=(0, 1)))
        fns[f"conv2 fwd+bwd {low}"] = _bind(g2, x2, k2)
    pool = jax.jit(jax.grad(lambda x: jnp.sum(conv.max_pool(x) ** 2)))
    fns["maxpool fwd+bwd reshape"] = _bind(pool, p1)
    rw = jax.jit(
        jax.grad(
            lambda x: jnp.sum(
                lax.reduce_window(x, -jnp.inf, lax.max, (1, 2, 2, 1), (1, 2, 2, 1), "VALID") ** 2
            )
        )
    )
    fns["maxpool fwd+bwd reduce_window"] = _bind(rw, p1)
    fns.update(_torch_pieces(threads, x1, k1, x2, k2, p1))
    return fns


def _bind(f, *a):
    return lambda: f(*a)


def _torch_pieces(threads, x1, k1, x2, k2, p1):
    import torch
    import torch.nn.functional as F

    torch.set_num_threads(threads)
    t = lambda a, perm: torch.from_numpy(np.array(np.transpose(np.asarray(a), perm)))
    tx1, tx2, tp1 = t(x1, (0, 3, 1, 2)), t(x2, (0, 3, 1, 2)), t(p1, (0, 3, 1, 2))
    tk1, tk2 = t(k1, (3, 2, 0, 1)), t(k2, (3, 2, 0, 1))

    def fwd_bwd(fn, *inputs):
        ins = [a.clone().requires_grad_(True) for a in inputs]
        out = fn(*ins)
        (F.relu(out) ** 2).sum().backward()
        return ins[-1].grad

    def c1_wgrad():
        k = tk1.clone().requires_grad_(True)
        (F.relu(F.conv2d(tx1, k, padding=2)) ** 2).sum().backward()
        return k.grad

    return {
        "conv1 fwd torch": lambda: F.conv2d(tx1, tk1, padding=2),
        "conv1 fwd+wgrad torch": c1_wgrad,
        "conv2 fwd+bwd torch": lambda: fwd_bwd(F.conv2d, tx2, tk2),
        "maxpool fwd+bwd torch": lambda: fwd_bwd(lambda x: F.max_pool2d(x, 2), tp1),
    }


# ------------------------------------------------------------------- flags
def run_flag_variants(args):
    print("\nXLA_FLAGS variants (child processes; scan of 20 steps, ms/step)")
    for flags in FLAG_VARIANTS:
        env = dict(os.environ, XLA_FLAGS=flags)
        cmd = [sys.executable, os.path.abspath(__file__), "--_child", "--threads", str(args.threads)]
        if args.quick:
            cmd.append("--quick")
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=900)
        lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
        if proc.returncode or not lines:
            err = (proc.stderr.strip().splitlines() or ["?"])[-1][:120]
            print(f"  {flags or '(default)':45s} failed: {err}")
            continue
        r = json.loads(lines[-1])
        print(
            f"  {flags or '(default)':45s} jax {r['jax']:7.3f}  torch {r['torch']:7.3f}  "
            f"ratio {r['jax'] / r['torch']:5.2f}"
        )


def child(args):
    name = "chwb/batch_last"
    _, scan_fns = bench_steps(args, [name])
    res = interleaved(scan_fns, rounds=args.rounds, inner=1)
    print(json.dumps({"jax": res[name][0] / SCAN_STEPS, "torch": res["torch"][0] / SCAN_STEPS}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="fewer rounds, no pieces")
    ap.add_argument("--flags", action="store_true", help="also try XLA_FLAGS variants")
    ap.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads")
    ap.add_argument("--rounds", type=int, default=None)
    ap.add_argument("--_child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.rounds = args.rounds or (5 if args.quick else 11)
    if args._child:
        return child(args)
    print(
        f"jax {jax.__version__} backend={jax.default_backend()} auto={conv.resolve_lowering('auto')} "
        f"cpus={os.cpu_count()} torch_threads={args.threads} XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}"
    )
    names = list(make_forwards())
    step_fns, scan_fns = bench_steps(args, names)
    print("final losses after 20 scanned steps:", check_same_loss(scan_fns))
    print_table("train step, one jit call per step", interleaved(step_fns, args.rounds, 10), "torch")
    print_table(
        f"lax.scan of {SCAN_STEPS} steps, per step",
        interleaved(scan_fns, args.rounds, 1),
        "torch",
        per=SCAN_STEPS,
    )
    if not args.quick:
        res = interleaved(piece_fns(args.threads), args.rounds, 10)
        print("\npieces (ms, batch 128)")
        for name, (med, mn) in res.items():
            print(f"  {name:36s} median {med:8.3f}  min {mn:8.3f}")
    if args.flags:
        run_flag_variants(args)


if __name__ == "__main__":
    main()
