"""`dlrun sweep --search pbt`: population-based training as one vectorised group, and the
replay of a member's hyperparameter schedule (`dlrun train --replay MEMBER`).

1. The space is checked: every swept key must be one the state holds (dlrun/training/hparams.py
   MUTABLE), so that a new value is a write into the state, not a new program.
2. The population is drawn from the space (seeded by --search-seed) and composed as a grid's
   trials are; all of it must fit one group.
3. The group trains with `PopulationTraining` as its epoch callback: at each perturbation
   epoch it asks dlrun/sweep/pbt.py who copies whom, has the group move the rows on the device
   (dlrun/training/population.py) and writes each copier's lineage.csv.
4. The same command again continues from the population's checkpoint (kill -9 included).
"""

from __future__ import annotations

import math
from dataclasses import asdict
from functools import partial
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from dlrun import data, results
from dlrun.claims import claimed
from dlrun.config.compose import with_values
from dlrun.config.load import typed_config
from dlrun.errors import ConfigError
from dlrun.sweep import memory, pbt
from dlrun.sweep.folder import (
    FINAL_STATUSES,
    prepare_folder,
    trial_dir,
    trial_status,
    write_index,
)
from dlrun.sweep.plan import Plan, _plan_trial, _study_space, group_trials
from dlrun.sweep.progress import SweepProgress
from dlrun.sweep.search import default_metric, direction, distributions, epoch_value, value_text
from dlrun.sweep.workers import CLAIM_WAIT_S, SETUP_WAIT_S
from dlrun.training import hparams
from dlrun.training.callbacks import EpochCallback
from dlrun.training.group import run_group
from dlrun.training.population import PopulationRun


def mutable_keys() -> str:
    return ", ".join(entry.key for entry in hparams.TRIAL_HPARAMS if entry.reaches in hparams.MUTABLE)


def check_keys(swept: dict) -> None:
    """Refuse a key the state does not hold, in one line (ConfigError)."""
    if not swept:
        raise ConfigError(
            f"--search pbt needs a key to perturb, e.g. lr='interval(1e-3,1)' ({mutable_keys()})"
        )
    for key in swept:
        if hparams.is_mutable(key):
            continue
        why = (
            "is fixed when a trial starts (its init, random keys or bookkeeping)"
            if key in hparams.TRIAL_KEYS
            else "changes the program's shape"
        )
        raise ConfigError(f"{key} {why}: --search pbt can perturb only {mutable_keys()}")


def updates(values: dict) -> dict:
    """{key: parsed value}, as the planner sets a trial's values."""
    parser = OverridesParser.create()
    return {key: parser.parse_override(f"{key}={value_text(v)}").value() for key, v in values.items()}


def typed(dist, raw):
    """A value read back as text (lineage.csv, a config) as the space holds it."""
    if hasattr(dist, "choices"):
        return next((choice for choice in dist.choices if str(choice) == str(raw)), raw)
    return int(float(raw)) if type(dist).__name__ == "IntDistribution" else float(raw)


class Population:
    """A PBT sweep's space and its drawn, composed members."""

    def __init__(self, overrides: list[str], options):
        self.options, self.pbt = options, options.pbt
        fixed, swept, variants = _study_space(overrides)
        check_keys(swept)
        self.space = distributions(swept)
        self.space_text = {key: o.input_line.partition("=")[2] for key, o in swept.items()}
        rng, composed = pbt.step_rng(options.seed, 0), {}
        draws = [
            {key: pbt.sample(d, rng) for key, d in self.space.items()} for _ in range(self.pbt.population)
        ]
        self.values = draws
        base = int(_plan_trial(0, {}, fixed, variants, composed).cfg.seed)
        # a population of randomly initialised networks (Jaderberg et al.): member i draws its
        # weights, dropout and batch order from seed + i, as `seed=` would give a grid's trials
        self.members = [
            _plan_trial(
                i,
                {**{k: value_text(v) for k, v in values.items()}, "seed": str(base + i)},
                fixed,
                variants,
                composed,
            )
            for i, values in enumerate(draws)
        ]
        cfg = self.members[0].cfg
        self.epochs = int(cfg.epochs)
        self.pbt.check(self.epochs)
        for key in self.space:
            if not hparams.reached_values(cfg, [key]):
                raise ConfigError(
                    f"{key} does not reach optim={cfg.optim.name}'s training: PBT cannot perturb it"
                )
        self.metric = options.metric or default_metric(_task(cfg))
        self.plan = Plan(
            fixed,
            self.space_text,
            "pbt",
            self.members,
            group_trials(self.members),
            options.seed,
            settings={"metric": self.metric, **asdict(self.pbt)},
        )

    def check_fits(self, max_group: int | None) -> None:
        fits = max_group or memory.trials_that_fit(self.members[0].cfg)
        if self.pbt.population > fits:
            why = "--max-group" if max_group else "this device's memory"
            raise ConfigError(
                f"--population {self.pbt.population} does not fit one group: at most {fits} members "
                f"of this model do ({why})"
            )


def _task(cfg) -> str:
    return data.describe(cfg.data).task


class PopulationTraining(EpochCallback):
    """At each perturbation epoch: rank, exploit and explore (dlrun/sweep/pbt.py)."""

    def __init__(self, population: Population):
        self.population = population
        self.values: list[dict] = []

    def on_start(self, group, first_epoch: int) -> None:
        """The values each member trains with now: its config's, then its lineage's last; a
        resume drops the lineage from the epoch it continues after and decides that again."""
        space, last = self.population.space, first_epoch - 1
        self.values = []
        for trial in group.trials:
            values = {key: typed(d, OmegaConf.select(trial.cfg, key)) for key, d in space.items()}
            kept = [row for row in results.read_lineage(trial.run_dir) if row["epoch"] < last]
            results.write_lineage(trial.run_dir, kept)
            if kept:
                values = {key: typed(d, kept[-1][f"after.{key}"]) for key, d in space.items()}
            self.values.append(values)
        if last >= 1 and self.population.pbt.perturbs_at(last, self.population.epochs):
            self._perturb(group, last, [trial.rows[-1] if trial.live else None for trial in group.trials])

    def on_epoch(self, group, epoch: int, rows: list) -> None:
        if self.population.pbt.perturbs_at(epoch, self.population.epochs):
            self._perturb(group, epoch, rows)

    def _perturb(self, group, epoch: int, rows: list) -> None:
        population = self.population
        scores = [
            epoch_value(population.metric, row) if row is not None and trial.live else None
            for trial, row in zip(group.trials, rows)
        ]
        maximize = direction(population.metric) == "maximize"
        exploits = pbt.decide(
            epoch, scores, self.values, population.space, population.pbt, population.options.seed, maximize
        )
        if not exploits:
            return
        cfgs = {e.member: with_values(group.trials[e.member].cfg, updates(e.after)) for e in exploits}
        group.exploit({e.member: e.source for e in exploits}, cfgs, list(population.space))
        for e in exploits:
            trial = group.trials[e.member]
            rows = [row for row in results.read_lineage(trial.run_dir) if row["epoch"] < epoch]
            rows.append(lineage_row(e, group.trials[e.source].run_dir.name))
            results.write_lineage(trial.run_dir, rows)
            self.values[e.member] = dict(e.after)

    def on_end(self, group) -> None:
        for trial, values in zip(group.trials, self.values):
            trial.summary["pbt_values"] = {key: value_text(v) for key, v in values.items()}


def lineage_row(exploit: pbt.Exploit, source: str) -> dict:
    return {
        "epoch": exploit.epoch,
        "copied_from": source,
        **{f"before.{key}": value_text(v) for key, v in exploit.before.items()},
        **{f"after.{key}": value_text(v) for key, v in exploit.after.items()},
    }


def run_population(population: Population, out: Path, command: str, console) -> None:
    """Train (or continue) the population into `out`."""
    out = Path(out)
    with claimed(out, SETUP_WAIT_S):
        prepare_folder(out, population.plan, command)
    run_dirs = [trial_dir(out, member) for member in population.members]
    done = sum(trial_status(run_dir) in FINAL_STATUSES for run_dir in run_dirs)
    if done == len(run_dirs):
        console.print(f"{done} of {done} members already finished in {out}: skipped")
        return
    checkpoint = out / results.POPULATION_CHECKPOINT
    with SweepProgress(console, len(run_dirs), 0) as progress:
        with _claimed_all(run_dirs):
            summaries = run_group(
                [member.cfg for member in population.members],
                run_dirs,
                resume=checkpoint.exists(),
                callbacks=[progress.group("population", len(run_dirs)), PopulationTraining(population)],
                make_group=partial(PopulationRun, checkpoint=checkpoint),
            )
        statuses = [summary["status"] for summary in summaries]
        progress.trials_done(
            len(run_dirs), ", ".join(f"{statuses.count(s)} {s}" for s in sorted(set(statuses)))
        )


class _claimed_all:
    """Every member's folder claimed: no other process trains the population meanwhile."""

    def __init__(self, run_dirs):
        self.claims = [claimed(run_dir, CLAIM_WAIT_S) for run_dir in run_dirs]

    def __enter__(self):
        for claim in self.claims:
            claim.__enter__()

    def __exit__(self, *exc):
        for claim in reversed(self.claims):
            claim.__exit__(*exc)


def index(population: Population, out: Path):
    return write_index(Path(out), population.plan)


# Replay (Ray Tune's PopulationBasedTrainingReplay): a member's values epoch by epoch, its own
# from its last exploit on, before that the schedule of the member it copied, up to the copy.


def schedule(member: Path) -> list[tuple[int, dict]]:
    """[(first epoch, {key: value text})]: the hyperparameters that trained `member`'s state
    from scratch, following each copy back through its sources (folders beside it)."""
    member = Path(member)
    return _schedule(member, swept_keys(member), math.inf)


def swept_keys(member: Path) -> list[str]:
    """The keys a PBT member's sweep perturbs. Raises ConfigError for a folder that is none."""
    record = results.read_sweep_record(member.parent) if (member / results.CONFIG_FILE).exists() else None
    if record is None or record.get("plan", {}).get("mode") != "pbt":
        raise ConfigError(f"--replay {member}: not a member folder of a --search pbt sweep")
    return list(record["plan"]["space"])


def _schedule(member: Path, keys: list, before: float) -> list[tuple[int, dict]]:
    """The schedule that trained `member` up to the epoch `before` (exclusive of what came after)."""
    events = [row for row in results.read_lineage(member) if row["epoch"] < before]
    if not events:
        initial = results.read_config(member)
        return [(1, {key: _select(initial, key) for key in keys})]
    last = events[-1]
    inherited = _schedule(member.parent / last["copied_from"], keys, last["epoch"])
    return [*inherited, (last["epoch"] + 1, {key: last[f"after.{key}"] for key in keys})]


def _select(config: dict, key: str) -> str:
    node = config
    for part in key.split("."):
        node = node[part]
    return value_text(node)


def replay_config(member: Path, overrides: list[str]):
    """(the config a replay of `member` starts with, {epoch: values taken after it}): the
    member's own config with the first values of its schedule, then the overrides."""
    member = Path(member)
    keys = swept_keys(member)
    steps = schedule(member)
    cfg = with_values(typed_config(results.read_config(member)), updates(steps[0][1]))
    if overrides:
        cfg = with_values(cfg, {key: value for key, value in (_parsed(o) for o in overrides)})
    return cfg, {first - 1: values for first, values in steps[1:]}, keys


def _parsed(override: str) -> tuple:
    parsed = OverridesParser.create().parse_override(override)
    return parsed.key_or_group, parsed.value()


class Replay(EpochCallback):
    """Writes a schedule's values into a lone run's state after the epochs it names."""

    def __init__(self, changes: dict, keys: list):
        self.changes, self.keys = changes, keys

    def on_start(self, group, first_epoch: int) -> None:
        if first_epoch - 1 in self.changes:  # resumed from the epoch before a change
            self._apply(group, first_epoch - 1)

    def on_epoch(self, group, epoch: int, rows: list) -> None:
        if epoch in self.changes:
            self._apply(group, epoch)

    def _apply(self, group, epoch: int) -> None:
        cfg = with_values(group.trials[0].cfg, updates(self.changes[epoch]))
        group.exploit({0: 0}, {0: cfg}, self.keys)
