"""Transfer learning: start from another run's parameters (`init_from`), train only some layers
(`model.trainable`).

Which layers train is `model.trainable`, read by dlrun/models/trainable.py. The other
layers are frozen: the optimizer gives them zero updates and holds no state for them
(`optax.multi_transform` with `set_to_zero`), and the L2 penalty leaves them out, so their
parameters stay bit-identical.
A frozen layer's batch-norm *statistics* still follow the new data (as in PyTorch, unlike
Keras): they describe the data rather than what was learnt, re-estimating them adapts the frozen
features to the new inputs (AdaBN, Li et al. 2016), and it needs no change in any model.

`init_from` (`--init-from RUN_DIR`) loads that run's best checkpoint into every module whose
name and shapes match, and draws the rest afresh. The rules, checked before anything is
written (one line, exit 2, when broken):
- the folder must hold a run (`config.yaml` or `summary.json`) with a best checkpoint;
- the output layer is loaded only when its shapes match *and* the source run learnt the same
  classes (same `data.name` and `data.classes`); otherwise it is re-initialised (a new head);
- any other module with the same name but other shapes is refused (a different architecture
  cannot be loaded layer by layer); modules the source lacks are drawn afresh;
- at least one module must load.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dlrun import models, results
from dlrun.errors import ConfigError
from dlrun.models.trainable import HEAD, model_modules


def freeze(optimizer: optax.GradientTransformation, frozen: frozenset) -> optax.GradientTransformation:
    """The optimizer for the trainable modules; zero updates and no state for the frozen ones."""
    if not frozen:
        return optimizer

    def labels(params):
        return {
            module: jax.tree_util.tree_map(lambda _: "frozen" if module in frozen else "trainable", tree)
            for module, tree in params.items()
        }

    return optax.multi_transform({"trainable": optimizer, "frozen": optax.set_to_zero()}, labels)


@dataclass(frozen=True)
class InitPlan:
    """What `init_from` loads: the source run and which modules it loads or draws afresh."""

    source: str
    loaded: tuple
    reinitialised: tuple

    def record(self) -> dict:
        """For summary.json."""
        return {"source": self.source, "loaded": list(self.loaded), "reinitialised": list(self.reinitialised)}

    def describe(self) -> str:
        fresh = ", ".join(self.reinitialised) or "none"
        return f"initialised from {self.source}: loaded {', '.join(self.loaded)}; re-initialised {fresh}"


def _refuse(source, why: str) -> ConfigError:
    return ConfigError(f"init_from {source}: {why}")


@functools.lru_cache(maxsize=8)
def _checkpoint(path: str, stamp: float) -> dict:
    """The best checkpoint's {'params': ..., 'batch_stats': ...} as numpy trees (cached per file
    version: a sweep checks and loads it once per trial)."""
    import flax.serialization

    try:
        return flax.serialization.msgpack_restore(Path(path).read_bytes())
    except Exception as error:
        raise ConfigError(
            f"init_from {Path(path).parents[1]}: its best checkpoint cannot be read ({type(error).__name__})"
        ) from None


def source_variables(run_dir) -> dict:
    """The source run's best parameters and batch statistics. Raises ConfigError."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise _refuse(run_dir, "no such folder (give a run folder that `dlrun train` wrote)")
    if not any((run_dir / name).is_file() for name in (results.CONFIG_FILE, results.SUMMARY_FILE)):
        raise _refuse(run_dir, f"not a run folder (no {results.CONFIG_FILE} or {results.SUMMARY_FILE})")
    best = run_dir / results.BEST_CHECKPOINT
    if not best.is_file():
        raise _refuse(
            run_dir, f"the run has no checkpoint ({results.BEST_CHECKPOINT} is missing: no epoch finished)"
        )
    variables = _checkpoint(str(best.resolve()), best.stat().st_mtime)
    if not isinstance(variables, dict) or not isinstance(variables.get("params"), dict):
        raise _refuse(run_dir, f"{results.BEST_CHECKPOINT} holds no parameters")
    return variables


def _same_classes(run_dir: Path, cfg) -> bool:
    """Whether the source run learnt the classes this run learns (its head then means the same)."""
    try:
        data = results.read_config(run_dir).get("data") or {}
    except (OSError, ValueError):
        return False
    mine = cfg.data
    return data.get("name") == mine.name and _classes(data.get("classes")) == _classes(mine.get("classes"))


def _classes(value):
    """A class list as a plain list (a ListConfig or YAML list); a count or None as it is."""
    return value if value is None or isinstance(value, (int, str)) else list(value)


def plan_init(cfg, spec) -> InitPlan | None:
    """Which modules `cfg.init_from` loads; None when it is not set. Raises ConfigError."""
    source = cfg.get("init_from")
    if not source:
        return None
    variables = source_variables(source)
    theirs = variables["params"]
    shape_of = lambda tree: jax.tree_util.tree_map(np.shape, tree)  # noqa: E731
    same_head = _same_classes(Path(source), cfg)
    loaded, fresh = [], []
    for module, shapes in model_modules(cfg, spec).items():
        if module not in theirs:
            fresh.append(module)
        elif shape_of(theirs[module]) == shapes:
            (loaded if same_head or models.layer_of(module) != HEAD else fresh).append(module)
        elif models.layer_of(module) == HEAD:
            fresh.append(module)
        else:
            raise _refuse(
                source,
                f"its layer {module} has shapes {shape_of(theirs[module])}, "
                f"model {cfg.model.name} here {shapes}; only the output layer may "
                "differ (use the same architecture)",
            )
    if not loaded:
        raise _refuse(
            source,
            f"no layer of model {cfg.model.name} ({', '.join(fresh)}) is in that "
            f"run (its layers: {', '.join(theirs)})",
        )
    return InitPlan(str(source), tuple(loaded), tuple(fresh))


def initialise(state, cfg, spec, optimizer):
    """Return (state with the source's modules loaded and a fresh optimizer state, InitPlan),
    or (state, None) when `init_from` is not set."""
    plan = plan_init(cfg, spec)
    if plan is None:
        return state, None
    source = source_variables(plan.source)

    def take(collection, own):
        theirs = source.get(collection) or {}
        return {
            module: (
                jax.tree_util.tree_map(
                    lambda mine, loaded: jnp.asarray(loaded, mine.dtype), tree, theirs[module]
                )
                if module in plan.loaded and module in theirs
                else tree
            )
            for module, tree in own.items()
        }

    params = take("params", state.params)
    batch_stats = take("batch_stats", state.batch_stats)
    return state.replace(params=params, batch_stats=batch_stats, opt_state=optimizer.init(params)), plan


def init_override(run_dir) -> str:
    """The override `--init-from RUN_DIR` stands for: the folder as an absolute path, so that the
    run's config.yaml names it from anywhere; quoted, so that any path is one Hydra value."""
    path = str(Path(run_dir).expanduser().absolute())
    quote = "'" if "'" not in path else '"'
    return f"init_from={quote}{path}{quote}"


def check_init(cfg) -> InitPlan | None:
    """What `cfg.init_from` will load (None when unset). Raises ConfigError before anything is
    written when the source is missing, not a run, has no checkpoint or another architecture."""
    from dlrun import data

    return plan_init(cfg, data.describe(cfg.data)) if cfg.get("init_from") else None
