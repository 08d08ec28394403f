"""The `dlrun` command: parses arguments, composes the config, calls one library function.

Kept short on purpose; the logic lives in modules that tests import directly.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from dlrun.config import ConfigError, compose_config, group_options, to_yaml

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Train, sweep and compare deep-learning experiments (JAX, Flax, Optax, Hydra configs).",
)
config_app = typer.Typer(no_args_is_help=True, help="Inspect composed configs.")
app.add_typer(config_app, name="config")

console = Console(stderr=True)
OVERRIDES_HELP = "Hydra overrides, e.g. model=lenet lr=0.01 model.hidden=[256,128] data.subset=5000"
EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED = 2, 1, 130


def user_errors(command):
    """Report bad input as one line on stderr and exit 2, without a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        from dlrun.data import DataError

        try:
            return command(*args, **kwargs)
        except (ConfigError, DataError) as error:
            console.print(f"[red]error:[/] {error}", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None

    return wrapper


@app.command()
@user_errors
def train(
    overrides: Optional[List[str]] = typer.Argument(None, help=OVERRIDES_HELP, show_default=False),
    out: Optional[Path] = typer.Option(None, "--out", help="Write the run folder exactly here "
                                       "(default runs/<name>/<timestamp>/)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue the run in this folder "
                                          "from its last finished epoch."),
) -> None:
    """Train one model and write its results folder."""
    from dlrun import results
    from dlrun.run import RunFailed, train_and_evaluate

    if resume is not None:
        cfg, run_dir = _resume_config(resume, overrides or []), resume
    else:
        cfg = compose_config(overrides or [])
        run_dir = out or results.default_run_dir(cfg.name or f"{cfg.model.name}-{cfg.data.name}")
        if (run_dir / results.SUMMARY_FILE).exists():
            raise ConfigError(f"--out {run_dir} already holds a run (use --resume {run_dir})")
    try:
        summary = train_and_evaluate(cfg, run_dir, resume=resume is not None)
    except RunFailed as error:
        console.print(f"[red]run failed:[/] {error}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_FAILED) from None
    if summary["status"] == "interrupted":
        raise typer.Exit(EXIT_INTERRUPTED)


def _resume_config(run_dir: Path, overrides: list[str]):
    from omegaconf import OmegaConf

    from dlrun import results
    from dlrun.config import load_run_config, validate

    if not (run_dir / results.LAST_CHECKPOINT).exists():
        raise ConfigError(f"--resume {run_dir}: no epoch checkpoint there to resume from")
    cfg = load_run_config(run_dir / results.CONFIG_FILE)
    try:
        cfg.merge_with_dotlist(overrides)  # e.g. `epochs=20` to train a finished run further
    except Exception as error:
        raise ConfigError(f"bad override for --resume: {str(error).splitlines()[0]}") from None
    validate(cfg)
    OmegaConf.set_readonly(cfg, False)
    return cfg


@config_app.command("show")
@user_errors
def config_show(
    overrides: Optional[List[str]] = typer.Argument(None, help=OVERRIDES_HELP, show_default=False),
) -> None:
    """Print the composed, validated config as YAML."""
    sys.stdout.write(to_yaml(compose_config(overrides or [])))


@app.command("list")
def list_choices() -> None:
    """List the available models, data sets, optimizers, schedules, inits, activations, losses."""
    from dlrun import activations, inits, losses

    rows = [
        ("model", "model=", group_options("model")),
        ("data", "data=", group_options("data")),
        ("optimizer", "optim=", group_options("optim")),
        ("schedule", "schedule=", group_options("schedule")),
        ("init", "init= / bias_init=", ["auto", *inits.INITS]),
        ("activation", "activation=", list(activations.ACTIVATIONS)),
        ("loss", "loss=", ["auto", *losses.LOSSES]),
    ]
    table = Table(title="dlrun choices")
    for column in ("what", "set with", "choices"):
        table.add_column(column)
    for what, how, choices in rows:
        table.add_row(what, how, ", ".join(choices))
    Console().print(table)


def main() -> None:
    app()
