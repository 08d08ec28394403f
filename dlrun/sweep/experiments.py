"""Ready-made experiments: `experiments/<name>.yaml`, run with `dlrun sweep experiment=<name>`.

An experiment file holds the base overrides, the sweep space (Hydra's sweep grammar, one entry per
key), optionally named variants (alternatives that set several keys at once, such as "L2" vs
"dropout"), optionally a run to pre-train first (`pretrain:`, see pretrain.py), and the command
and conclusion in its opening comment. Overrides given on the
command line after `experiment=...` win, so an experiment runs smaller with e.g. `epochs=2`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import yaml

from dlrun.errors import ConfigError
from dlrun.layout import study_files

VARIANT_KEY = "variant"


@dataclass
class Experiment:
    name: str
    overrides: list
    sweep: dict
    variants: dict = field(default_factory=dict)  # variant name -> its overrides
    summary: str = ""  # the first comment line after the command: what it shows
    pretrain: list = field(default_factory=list)  # a run to train first (dlrun/sweep/pretrain.py)


def list_experiments() -> list[str]:
    return sorted(study_files())


def load_experiment(name: str) -> Experiment:
    """Read one experiment file. Raises ConfigError for an unknown name or a malformed file."""
    found = study_files().get(name)
    path = found[0] if found else None
    if path is None:
        raise ConfigError(f"unknown experiment '{name}' (choose from: {', '.join(list_experiments())})")
    text = path.read_text()
    data = yaml.safe_load(text) or {}
    unknown = set(data) - {"overrides", "sweep", "variants", "pretrain"}
    if unknown:
        raise ConfigError(
            f"{path}: unknown keys {sorted(unknown)} (valid: overrides, sweep, variants, pretrain)"
        )
    shows = _paragraph(text, "Shows:")
    variants = {str(k): [str(o) for o in v] for k, v in (data.get("variants") or {}).items()}
    sweep = {str(k): str(v) for k, v in (data.get("sweep") or {}).items()}
    return Experiment(
        name,
        [str(o) for o in data.get("overrides") or []],
        sweep,
        variants,
        shows,
        [str(o) for o in data.get("pretrain") or []],
    )


def _paragraph(text: str, heading: str) -> str:
    """The comment paragraph that starts with `heading` (continued by indented comment lines)."""
    lines, taking = [], False
    for line in text.splitlines():
        body = line[1:] if line.startswith("#") else None
        if body is None:
            break
        if body.strip().startswith(heading):
            taking, body = True, body.strip()[len(heading) :]
        elif taking and not body.startswith("   "):
            break
        if taking:
            lines.append(body.strip())
    return " ".join(lines)


def resolve(overrides: list[str]) -> tuple[list[str], dict]:
    """Replace `experiment=NAME` by the experiment's overrides and sweep (command-line keys win).

    Returns the override list and the experiment's variants ({} when no experiment is named).
    """
    named = [o for o in overrides if o.startswith("experiment=")]
    chosen = [o for o in overrides if o.startswith(f"{VARIANT_KEY}=")]
    if not named:
        if chosen:
            raise ConfigError(_no_variants(chosen[0], "no experiment= is given"))
        return list(overrides), {}
    if len(named) > 1:
        raise ConfigError(f"one experiment at a time, got {', '.join(named)}")
    experiment = load_experiment(named[0].partition("=")[2])
    if chosen and not experiment.variants:
        raise ConfigError(_no_variants(chosen[0], f"{named[0]} has none"))
    rest = [o for o in overrides if o not in named]
    given = {o.partition("=")[0].lstrip("+~") for o in rest}
    swept = [f"{key}={value}" for key, value in experiment.sweep.items() if key not in given]
    if experiment.variants and VARIANT_KEY not in given:
        swept.append(f"{VARIANT_KEY}={','.join(experiment.variants)}")
    return [*experiment.overrides, *swept, *rest], experiment.variants


def _no_variants(override: str, why: str) -> str:
    experiments = [name for name in list_experiments() if load_experiment(name).variants]
    return (
        f"'{override}' picks a variant of an experiment, but {why} (experiments with variants: "
        f"{', '.join(f'experiment={name}' for name in experiments) or 'none'})"
    )
