"""What `dlrun list` shows: every choice a config can name, and the ready studies."""

from __future__ import annotations

from rich.table import Table

from dlrun.config.compose import group_options


def choices_table() -> Table:
    """Models, data sets, optimizers, schedules, inits, activations, losses and studies."""
    from dlrun.models import activations, inits
    from dlrun.sweep.studies import list_experiments
    from dlrun.training import losses

    rows = [
        ("model", "model=", group_options("model")),
        ("data", "data=", group_options("data")),
        ("optimizer", "optim=", group_options("optim")),
        ("schedule", "schedule=", group_options("schedule")),
        ("init", "init= / bias_init=", ["auto", *inits.INITS]),
        ("activation", "activation=", list(activations.ACTIVATIONS)),
        ("loss", "loss=", ["auto", *losses.LOSSES]),
        ("study", "dlrun sweep experiment=", list_experiments()),
    ]
    table = Table(title="dlrun choices")
    for column in ("what", "set with", "choices"):
        table.add_column(column)
    for what, how, choices in rows:
        table.add_row(what, how, ", ".join(choices))
    return table


def studies_table() -> Table:
    """Each study in dlrun/experiments/ with what it shows."""
    from dlrun.sweep.studies import list_experiments, load_experiment

    table = Table(title="studies in dlrun/experiments/ (dlrun sweep experiment=NAME)")
    table.add_column("study", no_wrap=True)
    table.add_column("shows")
    for name in list_experiments():
        table.add_row(name, load_experiment(name).summary)
    return table
