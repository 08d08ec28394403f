"""The `dlrun` command: parses arguments, composes the config, calls one library function.

Kept short on purpose; the logic lives in modules that tests import directly.
"""

from __future__ import annotations

import functools
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console
from rich.table import Table

from dlrun.errors import ConfigError
from dlrun.interrupt import STOP, Interrupted, handling_signals
from dlrun.text import plural

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
        from dlrun.errors import DataError

        try:
            STOP.check()  # a Ctrl-C while the command was starting up
            return command(*args, **kwargs)
        except (ConfigError, DataError) as error:
            console.print(f"[red]error:[/] {error}", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except (Interrupted, KeyboardInterrupt):
            console.print("[yellow]interrupted[/]", highlight=False)
            raise typer.Exit(EXIT_INTERRUPTED) from None

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
    """Train one model and write its results folder.

    Run again with the same --out, it continues an unfinished run there (--resume DIR too).
    """
    from dlrun import results
    from dlrun.training import resume as resuming
    from dlrun.training.group import RunFailed, train_and_evaluate

    if resume is not None:
        if out is not None and Path(out) != Path(resume):
            raise ConfigError(f"--resume {resume} continues the run in its own folder; drop "
                              f"--out {out} (or copy the folder there first)")
        start = resuming.for_resume(resume, overrides or [])
    else:
        from dlrun.config.load import compose_config  # here, not above: `report` needs no Hydra
        from dlrun.sweep.executor import check_run_folder

        cfg = compose_config(overrides or [])
        run_dir = out or results.default_run_dir(cfg.name or f"{cfg.model.name}-{cfg.data.name}")
        check_run_folder(run_dir)
        start = resuming.for_out(run_dir, cfg)
    if start.note:
        console.print(start.note, highlight=False, soft_wrap=True)
    if start.mode == "done":
        return
    keep = resuming.kept_on_failure(start.run_dir) if start.mode == "continue" else nullcontext()
    try:
        with keep:
            summary = train_and_evaluate(start.cfg, start.run_dir, resume=start.mode == "continue")
    except RunFailed as error:
        left = f"; {start.run_dir} is left as it was" if start.mode == "continue" else ""
        console.print(f"[red]run failed:[/] {error}{left}", highlight=False, soft_wrap=True)
        raise typer.Exit(EXIT_FAILED) from None
    if summary["status"] == "interrupted":
        raise typer.Exit(EXIT_INTERRUPTED)


@app.command()
@user_errors
def sweep(
    overrides: Optional[List[str]] = typer.Argument(None, help="Hydra overrides and sweeps, e.g. "
                                                    "lr=0.1,0.01 seed=range(3) lr='interval(1e-4,1e-1)'",
                                                    show_default=False),
    trials: Optional[int] = typer.Option(None, "--trials", help="Random search: draw this many "
                                         "trials (needed for interval())."),
    search_seed: int = typer.Option(0, "--search-seed", help="Seed of the random draws."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan (trials, groups, cost) "
                                 "and exit."),
    out: Optional[Path] = typer.Option(None, "--out", help="Sweep folder; running the same sweep "
                                       "again there skips finished trials."),
    max_group: Optional[int] = typer.Option(None, "--max-group", help="At most this many trials "
                                            "in one vectorised group (default: what fits memory)."),
    jobs: int = typer.Option(1, "--jobs", help="Run independent groups in this many worker "
                             "processes (CPU)."),
    name: str = typer.Option("sweep", "--name", help="Name for the default folder "
                             "runs/sweeps/<name>/<timestamp>/."),
) -> None:
    """Train many trials; those that share a program shape train together, vectorised."""
    from dlrun import results
    from dlrun.sweep import executor
    from dlrun.sweep.plan import group_trials, make_plan

    if max_group is not None and max_group < 1:
        raise ConfigError(f"--max-group must be >= 1, got {max_group}")
    if jobs < 1:
        raise ConfigError(f"--jobs must be >= 1, got {jobs}")
    if out is not None:  # before composing every trial: a bad folder is the cheaper refusal
        executor.check_sweep_folder(out)
    plan = make_plan(overrides or [], trials=trials, seed=search_seed, max_group=max_group)
    if max_group is None:  # regroup the trials already composed: planning again would compose twice
        max_group = min(executor.auto_max_group(group.trials[0].cfg) for group in plan.groups)
        plan.groups = group_trials(plan.trials, max_group)
    STOP.check()  # stopped while composing: nothing written yet
    if not dry_run:  # refuse a bad folder or data file before showing a plan that will not run
        out = out or results.default_run_dir(name, Path("runs") / "sweeps")
        executor.prepare_folder(out, plan, "dlrun sweep " + " ".join(sys.argv[2:]))
    stdout = Console()
    stdout.print(plan_table(plan))
    if dry_run:
        return
    index = executor.run_plan(plan, out, jobs=jobs, max_group=max_group, console=console)
    stdout.print(executor.best_table(index, plan))
    stdout.print(f"sweep folder: {out}  (index: {out / executor.INDEX_FILE})")
    if (index.status == "interrupted").any() or (index.status == "pending").any():
        raise typer.Exit(EXIT_INTERRUPTED)


@app.command()
@user_errors
def report(
    paths: Optional[List[Path]] = typer.Argument(None, help="Run or sweep folders (default: the "
                                                 "latest sweep, else runs/).", show_default=False),
    sort: Optional[str] = typer.Option(None, "--sort", help="Column to sort by (accuracies "
                                       "descending, losses ascending)."),
    top: Optional[int] = typer.Option(None, "--top", help="Show only the first N rows."),
    where: Optional[str] = typer.Option(None, "--filter", help="A pandas expression, e.g. "
                                        "'best_val_accuracy > 0.9 and status == \"completed\"'."),
    group: Optional[str] = typer.Option(None, "--group-by", help="Mean and std over the runs "
                                        "sharing this column (e.g. seeds per lr)."),
    fmt: str = typer.Option("table", "--format", help="table, csv, markdown, json, html or latex."),
    plot: bool = typer.Option(False, "--plot", help="Also draw learning curves and sensitivity "
                              "plots (PNG; inlined into the HTML report)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Write to this file "
                                          "instead of standard output."),
    threshold: Optional[List[str]] = typer.Option(None, "--threshold", help="Override a diagnosis "
                                                  "threshold, e.g. --threshold overfit_rise=0.2."),
    ensemble: bool = typer.Option(False, "--ensemble", help="Also vote: runs that differ only in "
                                  "their seed form an ensemble (mean-probability and majority)."),
    columns: Optional[str] = typer.Option(None, "--columns", help="Table columns, e.g. "
                                          "run,lr,best_val_accuracy,diagnosis (default: what fits "
                                          "the terminal)."),
) -> None:
    """Compare runs in a table that diagnoses under- and overfitting, with plots."""
    from rich.markup import escape

    from dlrun.report import render
    from dlrun.report.build import PLOTS_FOLDER, build_report, group_by, select
    from dlrun.report.settings import non_default
    from dlrun.text import plural

    if top is not None and top < 1:
        raise ConfigError(f"--top must be >= 1, got {top}")
    if fmt not in render.FORMATS:
        raise ConfigError(f"unknown --format '{fmt}' (choose from: {', '.join(render.FORMATS)})")
    thresholds = _thresholds(threshold or [])
    targets = paths or [_latest_runs_folder()]
    plot_folder = (output.parent if output else Path(targets[0])) / PLOTS_FOLDER
    try:  # before reading 2,000 runs, not after
        if output:
            render.check_writable(output)
        if plot:
            render.check_writable(plot_folder, folder=True)
    except ValueError as error:
        raise ConfigError(str(error)) from None
    if paths and not any(path.exists() for path in paths):  # beside a real one it is a warning
        raise ConfigError(f"no such folder: {', '.join(map(str, paths))} (give run or sweep folders)")
    built = build_report(targets, thresholds)
    for warning in built.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False, soft_wrap=True)
    if built.rows.empty:
        raise ConfigError(f"no runs found in {', '.join(map(str, targets))}")
    try:
        frame = select(built, where=where, sort=sort, top=top)
        shown = group_by(frame, group) if group else frame
    except ValueError as error:
        raise ConfigError(str(error)) from None
    images = []
    if plot:
        from dlrun.report import plots  # matplotlib: ~0.9 s of start-up, only for --plot

        images = plots.write_plots(frame, built.varying, plot_folder, built.curves)
        console.print(f"{plural(len(images), 'plot')} in {plot_folder}", highlight=False)
    if ensemble:  # runs of unknown settings cannot be told to differ only in their seed
        _print_ensembles(frame[~frame["folder"].isin(built.unknown_settings)], built.varying, fmt)
    if fmt == "table":
        title = render.report_title(len(frame), len(shown) if group else None, targets)
        screen = Console()
        picked = [name.strip() for name in columns.split(",") if name.strip()] if columns else None
        try:  # a file is read in an editor, not a terminal: as wide as plain_text writes it
            parts = render.table_parts(shown, built.varying, non_default(built.constant, built.rows), title,
                                       width=200 if output else screen.width, columns=picked)
        except ValueError as error:
            raise ConfigError(str(error)) from None
        if not output:
            for part in parts:
                screen.print(part, highlight=False)
            return
        text = render.plain_text(parts)
    else:
        text = (render.html_page(shown, built.constant, images) if fmt == "html"
                else render.render_text(shown, fmt, built.constant))
    if output:
        from dlrun.results import atomic_write_text

        atomic_write_text(output, text)
    else:
        sys.stdout.write(text)


def _print_ensembles(frame, varying, fmt) -> None:
    """The vote of each group of runs that differ only in their seed (stderr for non-table formats)."""
    from dlrun.report.ensemble import ensembles
    from dlrun.report.render import ensemble_table

    votes = ensembles(frame, varying)
    if votes.empty:
        console.print("[yellow]warning:[/] no ensembles: need 2+ runs that differ only in seed, "
                      "with test_predictions.npz")
        return
    (Console() if fmt == "table" else console).print(ensemble_table(votes))


def _thresholds(pairs: list[str]):
    from dlrun.report.thresholds import DEFAULT_THRESHOLDS, Thresholds

    values = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            raise ConfigError(f"--threshold '{pair}' must look like name=value")
        values[key] = value
    try:
        return Thresholds.from_dict(values) if values else DEFAULT_THRESHOLDS
    except ValueError as error:
        raise ConfigError(str(error)) from None


def _latest_runs_folder() -> Path:
    """The most recent sweep folder under runs/sweeps/, else runs/ itself."""
    sweeps = sorted(Path("runs/sweeps").glob("*/*"), key=lambda p: p.stat().st_mtime)
    return sweeps[-1] if sweeps else Path("runs")


def plan_table(plan) -> Table:
    """The plan as a table: one row per group, with what it costs."""
    groups = len(plan.groups)
    table = Table(title=f"{plural(len(plan.trials), 'trial')} ({plan.mode}) in "
                        f"{plural(groups, 'group')} = {plural(groups, 'compiled program')}")
    for column in ("group", "trials", "model", "data", "batch", "act", "optim", "epochs",
                   "updates"):
        table.add_column(column, no_wrap=True)
    from dlrun.data import describe

    for group in plan.groups:
        cfg, shape = group.trials[0].cfg, group.shape
        steps = describe(cfg.data).n_train // cfg.batch_size
        table.add_row(group.id, str(group.size), shape["model"], shape["data"],
                      str(shape["batch_size"]), shape["activation"], shape["optim"],
                      str(shape["epochs"]), f"{group.size * cfg.epochs * steps:,}")
    varied = ", ".join(plan.space) or "nothing"
    cost = sum(g.size * g.trials[0].cfg.epochs for g in plan.groups)
    table.caption = (f"varied: {varied}; cost: {plural(cost, 'trial-epoch')}"
                     " (updates = trials x epochs x steps)")
    return table


@config_app.command("show")
@user_errors
def config_show(
    overrides: Optional[List[str]] = typer.Argument(None, help=OVERRIDES_HELP, show_default=False),
) -> None:
    """Print the composed, validated config as YAML."""
    from dlrun.config.compose import to_yaml
    from dlrun.config.load import compose_config

    sys.stdout.write(to_yaml(compose_config(overrides or [])))


@app.command("list")
def list_choices() -> None:
    """List the available models, data sets, optimizers, schedules, inits, activations, losses."""
    from dlrun.config.compose import group_options
    from dlrun.models import activations, inits
    from dlrun.training import losses

    rows = [
        ("model", "model=", group_options("model")),
        ("data", "data=", group_options("data")),
        ("optimizer", "optim=", group_options("optim")),
        ("schedule", "schedule=", group_options("schedule")),
        ("init", "init= / bias_init=", ["auto", *inits.INITS]),
        ("activation", "activation=", list(activations.ACTIVATIONS)),
        ("loss", "loss=", ["auto", *losses.LOSSES]),
    ]
    from dlrun.sweep.studies import list_experiments, load_experiment

    rows.append(("study", "dlrun sweep experiment=", list_experiments()))
    table = Table(title="dlrun choices")
    for column in ("what", "set with", "choices"):
        table.add_column(column)
    for what, how, choices in rows:
        table.add_row(what, how, ", ".join(choices))
    Console().print(table)
    studies = Table(title="studies in dlrun/experiments/ (dlrun sweep experiment=NAME)")
    studies.add_column("study", no_wrap=True)
    studies.add_column("shows")
    for name in list_experiments():
        studies.add_row(name, load_experiment(name).summary)
    Console().print(studies)


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
        # Typer's default draws a multi-line box; one line reads like every other refusal
        console.print(f"[red]error:[/] {error.format_message()}{_given(error, sys.argv[1:])} "
                      f"(see {_help_hint(error)})", highlight=False, soft_wrap=True)
        code = error.exit_code
    sys.exit(code or 0)


def _given(error, argv: list[str]) -> str:
    """`, got 'abc'` for a bad option value: Typer's message names the option, not the value."""
    options = getattr(getattr(error, "param", None), "opts", None) or []
    for index, arg in enumerate(argv):
        for option in options:
            if arg == option and index + 1 < len(argv):
                return f", got '{argv[index + 1]}'"
            if arg.startswith(f"{option}="):
                return f", got '{arg.partition('=')[2]}'"
    return ""


def _help_hint(error) -> str:
    context = getattr(error, "ctx", None)
    return f"'{context.command_path} --help'" if context else "'dlrun --help'"
