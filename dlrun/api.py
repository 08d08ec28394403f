"""dlrun in Python (a notebook, a script): train one run, sweep many, read run folders back.

    import dlrun
    run = dlrun.train(["model=lenet", "epochs=2"])           # a Run: .summary, .epochs, .folder
    frame = dlrun.sweep(["lr=0.1,0.01"], trials=None)         # one row per trial, diagnosed
    frame = dlrun.runs("runs/sweeps/sweep")                   # what `dlrun report` reads

The CLI's `train` and `sweep` commands are these functions (they add the argument parsing,
the exit status and the sweep's closing table). Bad input raises ConfigError with a one-line
message, before anything is written; a run whose training raised raises RunFailed. Progress
and notes are rich output on `console` (stderr by default; rich shows it in Jupyter too).
The heavy modules (JAX, Hydra, pandas) are imported when a function is called, so that
`import dlrun` stays quick.
"""

from __future__ import annotations

import shlex
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dlrun.errors import ConfigError, DataError
from dlrun.interrupt import handling_signals
from dlrun.layout import using_config_dir

if TYPE_CHECKING:  # for the annotations only: importing them costs start-up time
    import pandas as pd
    from rich.console import Console

    from dlrun.sweep.run import SweepOutcome

# The API's sweep options, by the CLI's names (`--search-seed` is search_seed=): SearchOptions'
# fields, then SweepSettings' (dlrun/sweep/search.py, dlrun/sweep/run.py).
SEARCH_OPTIONS = (
    "search",
    "trials",
    "search_seed",
    "batch",
    "metric",
    "pruner",
    "min_epochs",
    "storage",
    "study",
    "population",
    "perturb_every",
    "quantile",
    "resample",
)
SWEEP_OPTIONS = ("name", "jobs", "max_group", "executor", "address", "gpus_per_group", "cpus_per_group")
SWEEP_OPTIONS += ("init_from", "dry_run")
SWEEP_KEYWORDS = ("out", *SEARCH_OPTIONS, *SWEEP_OPTIONS)  # what the CLI's sweep passes on


@dataclass(frozen=True)
class Run:
    """One run folder as data: its summary.json, its metrics.csv (one row per epoch) and where."""

    folder: Path
    summary: dict
    epochs: pd.DataFrame

    @classmethod
    def read(cls, folder, summary: dict | None = None) -> Run:
        """The run in `folder`; `summary` stands in where none was written (stopped before it)."""
        import pandas as pd

        from dlrun import results

        folder = Path(folder)
        if (folder / results.SUMMARY_FILE).exists():
            summary = results.read_summary(folder)
        try:
            epochs = results.read_metrics(folder)
        except FileNotFoundError:
            epochs = pd.DataFrame()
        return cls(folder, dict(summary or {}), epochs)


def _searching(config_dir):
    """`--config-dir` for one call; None leaves the folder the caller (the CLI) set alone."""
    return nullcontext() if config_dir is None else using_config_dir(config_dir)


def train(
    overrides=(),
    *,
    model=None,
    data=None,
    out=None,
    resume=None,
    init_from=None,
    replay=None,
    config_dir=None,
    console: Console | None = None,
) -> Run:
    """Train one model (as `dlrun train OVERRIDES`) and return its Run.

    `replay` (`--replay MEMBER`): a member folder of a `--search pbt` sweep, trained again from
    scratch with its hyperparameter schedule (the values it inherited through each copy, then
    its own), into `out` or a new run folder; the same call again continues it.

    `model`: a Flax module class (NNX or Linen) or a function returning one, in place of
    `model=user model._target_=...`; its arguments are overrides `+model.NAME=VALUE`.
    `data`: arrays `(x, y)` or a dict with `x`/`y` or `x_train`/`y_train` (and `x_val`, `y_val`,
    `x_test`, `y_test`), in place of `data=npz data.path=FILE`. `out`, `resume` and `init_from`
    are `--out`, `--resume` and `--init-from`: the same `out` again continues an unfinished run
    there, and returns a finished one as it is. `config_dir` is `--config-dir`. Raises
    ConfigError for bad input and RunFailed when training raised (its folder records status `failed`).
    """
    from dlrun.config.loggers import split_loggers
    from dlrun.export import live
    from dlrun.training.group import train_and_evaluate
    from dlrun.training.resume import kept_on_failure

    console = console or _stderr()
    with _one_line(), _searching(config_dir), handling_signals(), ExitStack() as claims:
        overrides, loggers = split_loggers(_overrides(overrides))
        live.check(loggers)
        replayed = _replayed(replay, overrides, model, data, resume, init_from)
        if replayed is not None:
            start, init = _replay_start(replayed[0], out, claims), None
        else:
            start, init = _start(overrides, model, data, out, resume, init_from, claims)
        if start.note:
            console.print(start.note, highlight=False, soft_wrap=True, markup=False)
        if start.mode == "done":
            return Run.read(start.run_dir)
        if init is not None:
            console.print(init.describe(), highlight=False, soft_wrap=True, markup=False)
        keep = kept_on_failure(start.run_dir) if start.mode == "continue" else nullcontext()
        with keep, live.following(start.run_dir, loggers, console):
            summary = train_and_evaluate(
                start.cfg,
                start.run_dir,
                resume=start.mode == "continue",
                console=console,
                **(_replaying(replayed, start.run_dir) if replayed else {}),
            )
        return Run.read(start.run_dir, summary)


def _replayed(replay, overrides: list, model, data, resume, init_from):
    """(config, {epoch: values}, keys) of a PBT member's replay; None without --replay."""
    if replay is None:
        return None
    from dlrun.sweep.population import replay_config

    for flag, value in (("--resume", resume), ("--init-from", init_from), ("model=", model), ("data=", data)):
        if value is not None:
            raise ConfigError(f"--replay {replay} trains the member's own config: drop {flag}")
    return replay_config(Path(replay), overrides)


def _replay_start(cfg, out, claims: ExitStack):
    from dlrun import results
    from dlrun.claims import claimed
    from dlrun.sweep.folder import check_run_folder
    from dlrun.training import resume as resuming

    run_dir = Path(out) if out is not None else results.default_run_dir(f"{cfg.model.name}-replay")
    check_run_folder(run_dir)
    claims.enter_context(claimed(run_dir))
    return resuming.for_out(run_dir, cfg)


def _replaying(replayed, run_dir: Path) -> dict:
    """train_and_evaluate's keywords that write the schedule into the state as it trains."""
    from functools import partial

    from dlrun import results
    from dlrun.sweep.population import Replay
    from dlrun.training.population import PopulationRun

    _, changes, keys = replayed
    checkpoint = Path(run_dir) / results.POPULATION_CHECKPOINT
    return {"callbacks": [Replay(changes, keys)], "make_group": partial(PopulationRun, checkpoint=checkpoint)}


def _start(overrides: list, model, data, out, resume, init_from, claims: ExitStack):
    """(how the run starts (dlrun/training/resume.py), what init_from loads), its folder claimed."""
    from dlrun import objects, results
    from dlrun.claims import claimed
    from dlrun.training import resume as resuming

    if resume is not None:
        if init_from is not None:
            raise ConfigError(
                f"--resume {resume} continues a run from its own checkpoint; "
                f"--init-from {init_from} starts a new one: give one of them"
            )
        if out is not None and Path(out) != Path(resume):
            raise ConfigError(
                f"--resume {resume} continues the run in its own folder; drop "
                f"--out {out} (or copy the folder there first)"
            )
        if data is not None:
            raise ConfigError(
                f"resume={resume} continues with the run's own data (its data.path): drop data="
            )
        if model is not None:  # the stored config names it: handed over, its name resolves to it
            objects.model_overrides(model, overrides)
        if Path(resume).is_dir():  # else for_resume says there is no such folder
            claims.enter_context(claimed(resume))
            claims.enter_context(resuming.in_recorded_config_dir(resume))
        return resuming.for_resume(Path(resume), overrides), None
    from dlrun.config.load import compose_config
    from dlrun.sweep.folder import check_run_folder
    from dlrun.training.transfer import check_init, init_override

    given = _given(overrides, model, data)
    cfg = compose_config([*given, *([init_override(init_from)] if init_from else [])])
    init = check_init(cfg)  # a bad source is refused before anything is written
    run_dir = (
        Path(out)
        if out is not None
        else results.default_run_dir(cfg.name or f"{cfg.model.name}-{cfg.data.name}")
    )
    check_run_folder(run_dir)
    claims.enter_context(claimed(run_dir))  # a second command here is refused, not run twice
    return resuming.for_out(run_dir, cfg), init


def sweep(
    overrides=(),
    *,
    model=None,
    data=None,
    out=None,
    config_dir=None,
    console: Console | None = None,
    **options,
) -> pd.DataFrame:
    """Run a sweep (as `dlrun sweep OVERRIDES`) and return its trials as `runs(folder)` reads them:
    one row per trial, the swept values, the headline numbers and the diagnosis.

    `model` and `data` as for `train`; `out` is `--out` (the same folder again continues the
    sweep), `config_dir` is `--config-dir`. `options` are the CLI's options by name: search=,
    trials=, search_seed=, batch=,
    metric=, pruner=, min_epochs=, storage=, study=, name=, jobs=, max_group=, executor=,
    address=, gpus_per_group=, cpus_per_group=, init_from=, dry_run=. A dry run prints the plan
    and returns an empty frame. The frame's `attrs["folder"]` is the sweep folder; groups that
    failed leave their trials' status `failed` (the same call runs them again).
    """
    import pandas as pd

    with _searching(config_dir):
        outcome = sweep_outcome(overrides, model=model, data=data, out=out, console=console, **options)
    if outcome.out is None:
        return pd.DataFrame()
    frame = runs(outcome.out)
    frame.attrs["folder"] = outcome.out
    return frame


def sweep_outcome(
    overrides=(),
    *,
    model=None,
    data=None,
    out=None,
    console: Console | None = None,
    stdout: Console | None = None,
    command: str | None = None,
    **options,
) -> SweepOutcome:
    """What `sweep` runs, returning the SweepOutcome (index, plan, folder, how it ended) that the
    CLI prints from. `command` is recorded in sweep.yaml (default: this call, as text)."""
    from dlrun import data as datasets
    from dlrun import objects
    from dlrun.config.loggers import split_loggers
    from dlrun.sweep.run import run_sweep

    with _one_line(), handling_signals(), datasets.reused_loads():
        settings = _settings(out, options)
        if settings.executor == "ray" or (settings.jobs or 1) > 1:
            where = "a Ray task" if settings.executor == "ray" else f"a worker process (jobs={settings.jobs})"
            problem = objects.worker_problem(model, where)
            if problem:
                raise ConfigError(problem)
        given, settings.loggers = split_loggers(_given(_overrides(overrides), model, data))
        command = command or f"dlrun.sweep({given!r}{''.join(f', {k}={v!r}' for k, v in options.items())})"
        return run_sweep(given, settings, command, console or _stderr(), stdout)


def runs(*folders) -> pd.DataFrame:
    """The runs under these run or sweep folders, one row per run, as `dlrun report` reads them:
    the settings that vary, the headline numbers, the diagnosis, flags, advice and evidence.
    A folder that is partial or foreign is a row with a warning (warnings.warn), as in the report."""
    import warnings

    from dlrun.errors import InputWarning
    from dlrun.report.build import build_report

    if not folders:
        raise ConfigError("runs() needs a run or sweep folder, e.g. dlrun.runs('runs/sweeps/sweep')")
    paths = [Path(folder) for folder in folders]
    if not any(path.exists() for path in paths):
        raise ConfigError(f"no such folder: {', '.join(map(str, paths))} (give run or sweep folders)")
    built = build_report(paths)
    for warning in built.warnings:
        warnings.warn(warning, InputWarning, stacklevel=2)
    return built.rows


def inspect(run, parts=(), layer: str | None = None, examples: int = 16, index=None):
    """Inspect a run folder from its best checkpoint (nothing retrains) and write RUN/inspect/.
    A classifier's: confusion.csv and .png, the worst pairs, misclassified images, first-layer
    filters, feature maps, Grad-CAM heatmaps (gradcam.npz) and index.html; `parts`: some of
    confusions, misclassified, filters, feature_maps, gradcam (default: all that apply);
    `layer`: the conv layer probed (default the last); `index`: the test examples explained
    (default the misclassified first). An autoencoder's (task=reconstruct|denoise):
    reconstructions.png (`examples` or `index` the test images shown), checkerboard.json and
    index.html; `parts`: some of reconstructions, checkerboard. Returns the Inspection (its
    `confusion` a DataFrame, or its `psnr` and `checkerboard` dicts)."""
    from dlrun.inspection.run import InspectRequest, inspect_run

    request = InspectRequest(tuple(parts), layer, int(examples), None if index is None else tuple(index))
    with _one_line():
        return inspect_run(Path(run), request)


def _overrides(overrides) -> list[str]:
    """A list of override texts; one string is split as a shell splits a command line."""
    if overrides is None:
        return []
    if isinstance(overrides, str):
        return shlex.split(overrides)
    texts = list(overrides)
    for text in texts:
        if not isinstance(text, str):
            raise ConfigError(f"overrides are text such as 'lr=0.01', not {type(text).__name__} {text!r}")
    return texts


def _given(overrides: list[str], model, data) -> list[str]:
    """The overrides, with those that name the handed-over model and data in front."""
    from dlrun import objects

    named = objects.model_overrides(model, overrides) if model is not None else []
    named += objects.data_overrides(data, overrides) if data is not None else []
    return [*named, *overrides]


def _settings(out, options: dict[str, Any]):
    """The SweepSettings of `out` and the options; ConfigError naming an unknown one."""
    from dlrun.sweep.run import SweepSettings
    from dlrun.sweep.search import SearchOptions

    known = (*SEARCH_OPTIONS, *SWEEP_OPTIONS)
    unknown = [name for name in options if name not in known]
    if unknown:
        raise ConfigError(f"unknown sweep option {unknown[0]}= (choose from: {', '.join(known)})")
    search = {
        ("seed" if name == "search_seed" else name): options[name]
        for name in SEARCH_OPTIONS
        if name in options
    }
    rest = {name: options[name] for name in SWEEP_OPTIONS if name in options}
    if rest.get("init_from") is not None:
        rest["init_from"] = Path(rest["init_from"])
    return SweepSettings(SearchOptions(**search), Path(out) if out is not None else None, **rest)


@contextmanager
def _one_line():
    """Bad data is bad input: the API raises one kind of error for both (ConfigError)."""
    try:
        yield
    except DataError as error:
        raise ConfigError(str(error)) from None


def _stderr() -> Console:
    from rich.console import Console

    return Console(stderr=True)
