"""The `dlrun` command: parses arguments, composes the config, calls one library function.

Kept short on purpose; the logic lives in modules that tests import directly.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.markup import escape

from dlrun import api
from dlrun.commands import EXIT_FAILED, EXIT_INTERRUPTED, console, in_config_dir, user_errors
from dlrun.errors import RunFailed
from dlrun.interrupt import handling_signals
from dlrun.text import plural

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Train, sweep and compare deep-learning experiments (JAX, Flax, Optax, Hydra configs).",
)
config_app = typer.Typer(no_args_is_help=True, help="Inspect composed configs.")


def _show_version(asked: bool) -> None:
    if asked:
        from dlrun import __version__

        typer.echo(f"dlrun {__version__}")
        raise typer.Exit()


@app.callback()
def _options(
    version: bool = typer.Option(
        False, "--version", callback=_show_version, is_eager=True, help="Print dlrun's version and exit."
    ),
):
    """Train, sweep and compare deep-learning experiments (JAX, Flax, Optax, Hydra configs)."""


app.add_typer(config_app, name="config")

OVERRIDES_HELP = "Hydra overrides, e.g. model=lenet lr=0.01 model.hidden=[256,128] data.subset=5000"


@app.command()
@user_errors
@in_config_dir
def train(
    overrides: Optional[List[str]] = typer.Argument(None, help=OVERRIDES_HELP, show_default=False),
    out: Optional[Path] = typer.Option(
        None, "--out", help="Write the run folder exactly here (default runs/<name>/<timestamp>/)."
    ),
    resume: Optional[Path] = typer.Option(
        None, "--resume", help="Continue the run in this folder from its last finished epoch."
    ),
    init_from: Optional[Path] = typer.Option(
        None, "--init-from", help="Start from this run's best parameters, layer by layer (sets init_from)."
    ),
    replay: Optional[Path] = typer.Option(
        None,
        "--replay",
        help="A --search pbt member folder: train its hyperparameter schedule again from scratch.",
    ),
) -> None:
    """Train one model and write its results folder.

    Run again with the same --out, it continues an unfinished run there (--resume DIR too).
    """
    try:
        run = api.train(
            overrides or [], out=out, resume=resume, init_from=init_from, replay=replay, console=console
        )
    except RunFailed as error:  # a continued run's says whether its folder was put back
        console.print(f"[red]run failed:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_FAILED) from None
    if run.summary.get("status") == "interrupted":
        raise typer.Exit(EXIT_INTERRUPTED)


@app.command()
@user_errors
@in_config_dir
def sweep(
    overrides: Optional[List[str]] = typer.Argument(
        None,
        help="Hydra overrides and sweeps, e.g. lr=0.1,0.01 seed=range(3) lr='interval(1e-4,1e-1)'",
        show_default=False,
    ),
    trials: Optional[int] = typer.Option(
        None, "--trials", help="The budget of a random or adaptive search (needed for interval())."
    ),
    search_seed: int = typer.Option(0, "--search-seed", help="Seed of the random draws."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan (trials, groups, cost) and exit."),
    out: Optional[Path] = typer.Option(
        None, "--out", help="Sweep folder; running the same sweep again there skips finished trials."
    ),
    max_group: Optional[int] = typer.Option(
        None,
        "--max-group",
        help="At most this many trials in one vectorised group (default: what fits memory).",
    ),
    jobs: Optional[int] = typer.Option(
        None,
        "--jobs",
        help="Run independent groups in this many worker processes (CPU; --executor local).",
        show_default=False,
    ),
    executor: str = typer.Option(
        "local",
        "--executor",
        help="local (this host) or ray (each group a Ray task, on a local Ray or a cluster).",
    ),
    address: Optional[str] = typer.Option(
        None,
        "--address",
        help="--executor ray: the cluster (auto, host:port, ray://host:port; default a local Ray).",
    ),
    gpus_per_group: Optional[float] = typer.Option(
        None,
        "--gpus-per-group",
        help="--executor ray: GPUs per group (default 1 where the cluster has GPUs, else 0).",
        show_default=False,
    ),
    cpus_per_group: Optional[float] = typer.Option(
        None,
        "--cpus-per-group",
        help="--executor ray: CPUs per group (default 1 with GPUs, else the smallest node's CPUs).",
        show_default=False,
    ),
    name: str = typer.Option(
        "sweep", "--name", help="Name for the default folder runs/sweeps/<name>/<timestamp>/."
    ),
    search: Optional[str] = typer.Option(
        None,
        "--search",
        help="grid, random (the default with --trials), an Optuna sampler: tpe, cmaes, qmc, nsga2 "
        "(several --metric), or pbt (population-based training).",
    ),
    batch: Optional[int] = typer.Option(
        None,
        "--batch",
        help="Adaptive search: trials asked at "
        "a time (default: tpe/cmaes/nsga2 a quarter of --trials, so "
        "the sampler learns between rounds (nsga2: one generation); qmc all; at most "
        "what fits one group in memory).",
    ),
    metric: Optional[str] = typer.Option(
        None,
        "--metric",
        help="Adaptive search: what is optimised (best_val_accuracy, best_val_loss); several, "
        "comma-separated, for a Pareto front (params, train_time_s too).",
    ),
    pruner: str = typer.Option(
        "none",
        "--pruner",
        help="Adaptive search: none, median, sha or hyperband (stops losing trials between epochs).",
    ),
    min_epochs: int = typer.Option(
        1, "--min-epochs", help="Epochs every trial runs before it may be pruned."
    ),
    storage: Optional[str] = typer.Option(
        None, "--storage", help="Optuna RDB URL of the study (default: sqlite study.db in the sweep folder)."
    ),
    study: Optional[str] = typer.Option(
        None, "--study", help="Study name in the storage (default: the sweep folder's name)."
    ),
    init_from: Optional[Path] = typer.Option(
        None, "--init-from", help="Start every trial from this run's best parameters (sets init_from)."
    ),
    population: Optional[int] = typer.Option(
        None, "--population", help="--search pbt: members trained together (default 8).", show_default=False
    ),
    perturb_every: Optional[int] = typer.Option(
        None,
        "--perturb-every",
        help="--search pbt: epochs between perturbations (default 2).",
        show_default=False,
    ),
    quantile: Optional[float] = typer.Option(
        None,
        "--quantile",
        help="--search pbt: the bottom fraction that copies the top one, in (0, 0.5] (default 0.25).",
        show_default=False,
    ),
    resample: Optional[float] = typer.Option(
        None,
        "--resample",
        help="--search pbt: chance a value is drawn anew instead of scaled by 0.8 or 1.2 (default 0.25).",
        show_default=False,
    ),
) -> None:
    """Train many trials; those that share a program shape train together, vectorised."""
    from dlrun.sweep.folder import INDEX_FILE
    from dlrun.sweep.tables import best_table

    given = dict(locals())  # the API's keywords (dlrun/api.py) are these parameters' names
    options = {name: given[name] for name in api.SWEEP_KEYWORDS}
    stdout = Console()
    command = "dlrun sweep " + " ".join(sys.argv[2:])
    outcome = api.sweep_outcome(overrides or [], console=console, stdout=stdout, command=command, **options)
    if outcome.index is None:  # a dry run: the plan was shown
        return
    stdout.print(best_table(outcome.index, outcome.plan))
    stdout.print(f"sweep folder: {outcome.out}  (index: {outcome.out / INDEX_FILE})", markup=False)
    if outcome.failure:  # the other groups ran and the index is written
        console.print(f"[red]error:[/] {escape(outcome.failure)}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_FAILED)
    if outcome.interrupted:
        raise typer.Exit(EXIT_INTERRUPTED)


@app.command()
@user_errors
def report(
    paths: Optional[List[Path]] = typer.Argument(
        None, help="Run or sweep folders (default: the latest sweep, else runs/).", show_default=False
    ),
    sort: Optional[str] = typer.Option(
        None, "--sort", help="Column to sort by (accuracies descending, losses ascending)."
    ),
    top: Optional[int] = typer.Option(None, "--top", help="Show only the first N rows."),
    where: Optional[str] = typer.Option(
        None,
        "--filter",
        help="A condition on the columns, e.g. "
        "'best_val_accuracy > 0.9 and status == \"completed\"': "
        "column names (optim.lr, or `any name` in backticks), "
        "numbers, strings, True/False/None, == != < <= > >= "
        "(chained: 0.1 < lr < 1), and/or/not, unary minus, and "
        "in/not in a list of constants. Nothing else (no calls, "
        "attributes, arithmetic or @variables).",
    ),
    group: Optional[str] = typer.Option(
        None, "--group-by", help="Mean and std over the runs sharing this column (e.g. seeds per lr)."
    ),
    fmt: str = typer.Option("table", "--format", help="table, csv, markdown, json, html or latex."),
    plot: bool = typer.Option(
        False,
        "--plot",
        help="Also draw learning curves and sensitivity plots (PNG; inlined into the HTML report).",
    ),
    output: Optional[Path] = typer.Option(
        None, "--output", "-o", help="Write to this file instead of standard output."
    ),
    threshold: Optional[List[str]] = typer.Option(
        None, "--threshold", help="Override a diagnosis threshold, e.g. --threshold overfit_rise=0.2."
    ),
    ensemble: bool = typer.Option(
        False,
        "--ensemble",
        help="Also vote: runs that differ only in "
        "their seed form an ensemble (mean-probability and majority).",
    ),
    columns: Optional[str] = typer.Option(
        None,
        "--columns",
        help="Table columns, e.g. run,lr,best_val_accuracy,diagnosis (default: what fits the terminal).",
    ),
    live: bool = typer.Option(
        False,
        "--watch",
        help="The live screen of one run or sweep while it trains (as dlrun watch); with "
        "--format html -o PAGE, the page rewritten until it ends, reloading itself.",
    ),
) -> None:
    """Compare runs in a table that diagnoses under- and overfitting, with plots."""
    from dlrun.report.output import ReportRequest, show_report

    request = ReportRequest(
        paths or [], sort, top, where, group, fmt, plot, output, threshold or [], ensemble, columns
    )
    if live:
        from dlrun.report.watch import watch_report

        watch_report(request)
        return
    show_report(request, console)


@app.command()
@user_errors
def watch(
    folder: Path = typer.Argument(..., help="A run or sweep folder (what --out named).", show_default=False),
    interval: float = typer.Option(2.0, "--interval", help="Seconds between two refreshes."),
    wait: float = typer.Option(
        10.0, "--wait", help="Seconds to wait for a folder that a sweep just started has not written yet."
    ),
) -> None:
    """Watch a run or sweep while it trains: a live screen from its folder, until it ends
    (q or Ctrl-C leaves; the training goes on). Not on a terminal: the last screen, once."""
    from dlrun.report.watch import watch_folder

    watch_folder(folder, interval, wait)


@app.command()
@user_errors
def export(
    runs: Path = typer.Argument(..., help="A run or sweep folder (or a folder of them).", show_default=False),
    target: Optional[str] = typer.Argument(
        None,
        help="tensorboard: the log folder to write; mlflow: the tracking URI (default ./mlruns).",
        show_default=False,
    ),
    to: str = typer.Option(..., "--to", help="tensorboard or mlflow.", show_default=False),
    experiment: str = typer.Option("dlrun", "--experiment", help="MLflow experiment name."),
) -> None:
    """Export runs to TensorBoard or MLflow; exporting again updates them, never duplicates."""
    from rich.markup import escape

    from dlrun.export.trackers import export as export_runs

    done = export_runs(runs, to, target, experiment)
    for warning in done.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
    Console().print(
        f"exported {plural(done.runs, 'run')} to {to} at {done.where}",
        highlight=False,
        soft_wrap=True,
        markup=False,
    )


def _flag(name: str, what: str):
    return typer.Option(False, f"--{name}", help=f"Make {what} (the flags given pick the parts; none: all).")


@app.command("inspect")
@user_errors
def inspect_command(
    run: Path = typer.Argument(..., help="A classifier's or autoencoder's run folder.", show_default=False),
    confusions: bool = _flag("confusions", "the confusion matrix (printed, CSV, PNG) and worst pairs"),
    misclassified: bool = _flag("misclassified", "the grid of misclassified test images"),
    filters: bool = _flag("filters", "the first conv layer's filters as images"),
    feature_maps: bool = _flag("feature-maps", "feature maps of a few test images at each conv layer"),
    gradcam: bool = _flag("gradcam", "Grad-CAM heatmaps (gradcam.npz and PNG)"),
    reconstructions: bool = _flag(
        "reconstructions", "an autoencoder's grid of test inputs, noisy inputs (denoise) and outputs"
    ),
    checkerboard: bool = _flag("checkerboard", "an autoencoder's checkerboard energy on a flat image"),
    layer: Optional[str] = typer.Option(None, "--layer", help="The conv layer probed (default: the last)."),
    examples: int = typer.Option(
        16, "--examples", help="Grad-CAM examples (the misclassified first), or reconstructions shown."
    ),
    index: Optional[str] = typer.Option(
        None, "--index", help="Test indices to explain instead, e.g. 3,17,42."
    ),
) -> None:
    """Look inside a trained classifier or autoencoder from its best checkpoint: writes RUN/inspect/."""
    from dlrun.inspection.run import parse_index, show

    given = dict(confusions=confusions, misclassified=misclassified, filters=filters)
    given.update(feature_maps=feature_maps, gradcam=gradcam)
    given.update(reconstructions=reconstructions, checkerboard=checkerboard)
    done = api.inspect(run, [part for part, on in given.items() if on], layer, examples, parse_index(index))
    show(done, Console())


@config_app.command("show")
@user_errors
@in_config_dir
def config_show(
    overrides: Optional[List[str]] = typer.Argument(None, help=OVERRIDES_HELP, show_default=False),
) -> None:
    """Print the composed, validated config as YAML."""
    from dlrun.config.compose import to_yaml
    from dlrun.config.load import compose_config

    sys.stdout.write(to_yaml(compose_config(overrides or [])))


@app.command("list")
@user_errors
@in_config_dir
def list_choices() -> None:
    """List the available models (with parameter counts), data sets, optimizers, schedules,
    inits, activations, losses and ready experiments."""
    from dlrun.catalog import choices_table, experiments_table, models_table

    Console().print(choices_table())
    Console().print(models_table())
    Console().print(experiments_table())


def main() -> None:
    """Run the app; a usage error (unknown option, extra argument) is one line, exit 2."""
    try:  # Typer vendors click since 0.2x; before, it used click itself
        from typer._click import exceptions
    except ImportError:
        from click import exceptions
    try:
        with handling_signals():
            code = app(standalone_mode=False)
    except getattr(exceptions, "NoArgsIsHelpError", ()) as error:
        error.show()  # `dlrun` alone: the help, as before
        code = error.exit_code
    except exceptions.ClickException as error:
        from dlrun.usage import one_line

        message = escape(one_line(error, sys.argv[1:]))
        console.print(f"[red]error:[/] {message}", highlight=False, soft_wrap=True)
        code = error.exit_code
    sys.exit(code or 0)
