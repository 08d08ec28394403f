"""What `dlrun list` shows: every choice a config can name, the models with their sizes, and
the ready studies."""

from __future__ import annotations

import dataclasses
import sys

from rich.table import Table

from dlrun.config.compose import entry_option, group_options
from dlrun.layout import option_files, study_files, user_config_dir
from dlrun.plugins import entry_options
from dlrun.targets import shown

YOURS = "(yours)"


def _marked(found: dict) -> list[str]:
    """Option names, each from the user's config folder marked as theirs."""
    return [name if source == "dlrun" else f"{name} {YOURS}" for name, (_, source) in sorted(found.items())]


def choices_table() -> Table:
    """Models, data sets, optimizers, schedules, inits, activations, losses and experiments."""
    from dlrun.models import activations, inits, losses

    rows = [
        ("model", "model=", labelled_options("model")),
        ("data", "data=", labelled_options("data")),
        ("optimizer", "optim=", labelled_options("optim")),
        ("schedule", "schedule=", labelled_options("schedule")),
        ("init", "init= / bias_init=", ["auto", *inits.INITS]),
        ("activation", "activation=", list(activations.ACTIVATIONS)),
        ("loss", "loss=", ["auto", *losses.LOSSES]),
        ("experiment", "dlrun sweep experiment=", _marked(study_files())),
    ]
    user = user_config_dir()
    caption = (
        f"{YOURS}: from --config-dir {shown(user)}, winning over a built-in of its name" if user else None
    )
    table = Table(title="dlrun choices", caption=caption)
    for column in ("what", "set with", "choices"):
        table.add_column(column)
    for what, how, choices in rows:
        table.add_row(what, how, ", ".join(choices))
    return table


def labelled_options(group: str) -> list[str]:
    """The group's options: each of the user's config folder marked as theirs, each that an
    installed package adds marked with its distribution (`wide (from my-pkg 0.1)`), one that
    cannot be chosen as broken or hidden."""
    files = option_files(group)
    labels = []
    for name in group_options(group):
        option = entry_option(group, name)
        if option is not None:
            labels.append(f"{name} (from {option.distribution}{'; broken' if option.problem else ''})")
        elif files[name][1] != "dlrun":
            labels.append(f"{name} {YOURS}")
        else:
            labels.append(name)
    for name, option in entry_options(group).items():
        if entry_option(group, name) is None:
            winner = "built-in" if files[name][1] == "dlrun" else "your"
            labels.append(f"({name} from {option.distribution} is hidden: the {winner} {name} wins)")
    return labels


def experiments_table() -> Table:
    """Each ready experiment in experiments/ with what it shows."""
    from dlrun.sweep.experiments import list_experiments, load_experiment

    table = Table(title="experiments/ (dlrun sweep experiment=NAME)")
    table.add_column("experiment", no_wrap=True)
    table.add_column("shows")
    for name in list_experiments():
        table.add_row(name, load_experiment(name).summary)
    return table


# The inputs the models table counts parameters for: MNIST's, and CIFAR-10's shape (described,
# not loaded: nothing is read or downloaded for a count).
COUNTED_INPUTS = (("28x28x1", (28, 28, 1)), ("32x32x3", (32, 32, 3)))


def models_table() -> Table:
    """Each model at its default config with its parameter count for 28x28x1 and 32x32x3 images
    and 10 classes, from jax.eval_shape: nothing is initialised or compiled."""
    from dlrun import models
    from dlrun.config.load import compose_config
    from dlrun.data import describe
    from dlrun.errors import ConfigError

    table = Table(title="models (dlrun train model=NAME): parameters for 10 classes")
    table.add_column("model", no_wrap=True)
    for label, _ in COUNTED_INPUTS:
        table.add_column(label, justify="right", no_wrap=True)
    table.add_column("what")
    for name in models.MODELS.names:
        cfg = compose_config([f"model={name}", "data=mnist"])
        mnist = describe(cfg.data)
        counts = []
        for _, shape in COUNTED_INPUTS:
            spec = dataclasses.replace(mnist, input_shape=shape)
            try:
                models.check(cfg, spec)
                counts.append(f"{models.param_count(cfg, spec):,}")
            except ConfigError:  # a model made for other inputs (none of today's)
                counts.append("-")
        table.add_row(name, *counts, _first_line(models.MODELS.get(name).build))
    return table


def _first_line(build) -> str:
    doc = sys.modules[build.__module__].__doc__ or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""
