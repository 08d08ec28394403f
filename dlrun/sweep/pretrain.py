"""Runs a sweep's trials start from: `--init-from`, and an experiment's pre-training stage.

An experiment file may hold `pretrain:`, the overrides of one run trained before its sweep; its
trials name that run with `init_from=PRETRAINED`. `dlrun sweep experiment=NAME` trains it into
`<sweep>/pretrain/` first (the same command again continues or skips it, as `dlrun train --out`
does), then points those trials at it. The command line's fixed overrides apply to the
pre-training run too, but for the keys it sets itself, the experiment's swept keys and its variants'
keys: `data.subset=2000` trains both on less, `epochs=5` changes the trials' length alone.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from dlrun.errors import ConfigError
from dlrun.sweep import experiments

PRETRAINED = "PRETRAINED"  # an experiment's trials' init_from, until its pre-training run exists
FOLDER = "pretrain"


def check_sources(plan, console: Console) -> None:
    """Check every trial's `init_from` (but a pre-training run yet to come); say what each
    source loads. Raises ConfigError before anything is written."""
    from dlrun.training import transfer

    said = set()
    for trial in plan.trials:
        if trial.cfg.get("init_from") in (None, PRETRAINED):
            continue
        note = transfer.check_init(trial.cfg).describe()
        if note not in said:
            said.add(note)
            console.print(note, highlight=False, soft_wrap=True)


def stage_overrides(overrides: list[str]) -> list[str] | None:
    """The pre-training run's overrides, None when no experiment with such a stage is named."""
    named = [o for o in overrides if o.startswith("experiment=")]
    if not named:
        return None
    experiment = experiments.load_experiment(named[0].partition("=")[2])
    if not experiment.pretrain:
        return None
    key = lambda override: override.partition("=")[0].lstrip("+~")  # noqa: E731
    skipped = {
        "experiment",
        experiments.VARIANT_KEY,
        *experiment.sweep,
        *map(key, experiment.pretrain),
        *(key(o) for variant in experiment.variants.values() for o in variant),
    }
    rest = [o for o in overrides if key(o) not in skipped]
    return [*experiment.pretrain, *rest]


def run_stage(plan, overrides: list[str], out: Path, console: Console) -> None:
    """Train the named experiment's pre-training run into `<out>/pretrain` (unless it is done), then
    point the trials that start from it there. Raises Interrupted when it is stopped."""
    stage = stage_overrides(overrides)
    if stage is None:
        return
    from dlrun.config.load import compose_config
    from dlrun.interrupt import Interrupted
    from dlrun.training import resume as resuming
    from dlrun.training.group import train_and_evaluate

    run_dir = Path(out) / FOLDER
    start = resuming.for_out(run_dir, compose_config(stage))
    if start.note:
        console.print(start.note, highlight=False, soft_wrap=True)
    if start.mode != "done":
        console.print(f"pre-training: dlrun train {' '.join(stage)} --out {run_dir}", highlight=False)
        summary = train_and_evaluate(start.cfg, run_dir, resume=start.mode == "continue", console=console)
        if summary["status"] == "interrupted":
            raise Interrupted()
        if summary["status"] != "completed":
            raise ConfigError(
                f"the pre-training run in {run_dir} ended {summary['status']}; "
                "its trials cannot start from it"
            )
    for trial in plan.trials:
        if trial.cfg.get("init_from") == PRETRAINED:
            trial.cfg.init_from = str(run_dir.absolute())
    check_sources(plan, console)
