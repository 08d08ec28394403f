"""What every `dlrun` command shares: its errors as one line and an exit code (bad input 2, a
failed run 1, an interrupted one 130), its warnings as one line, and Hydra's `--config-dir`."""

from __future__ import annotations

import functools
import inspect
import warnings
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from dlrun.errors import ConfigError, DataError, InputWarning
from dlrun.interrupt import STOP, Interrupted
from dlrun.layout import using_config_dir

console = Console(stderr=True)
EXIT_BAD_INPUT, EXIT_FAILED, EXIT_INTERRUPTED = 2, 1, 130


def _showing_input_warnings(show):
    """`warnings.showwarning` that prints an InputWarning as one `warning:` line, others as `show`."""

    def shown(message, category, *args, **kwargs) -> None:
        if issubclass(category, InputWarning):
            console.print(f"[yellow]warning:[/] {escape(str(message))}", highlight=False, soft_wrap=True)
        else:
            show(message, category, *args, **kwargs)

    return shown


def user_errors(command):
    """Report bad input as one line on stderr and exit 2, without a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            STOP.check()  # a Ctrl-C while the command was starting up
            with warnings.catch_warnings():
                warnings.simplefilter("once", InputWarning)  # a sweep's trials say it once
                warnings.showwarning = _showing_input_warnings(warnings.showwarning)
                return command(*args, **kwargs)
        except (ConfigError, DataError) as error:
            # escaped: a message quoting `dlrun[ray]` or `model.hidden=[8]` is text, not markup
            console.print(f"[red]error:[/] {escape(str(error))}", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_BAD_INPUT) from None
        except (Interrupted, KeyboardInterrupt):
            console.print("[yellow]interrupted[/]", highlight=False)
            raise typer.Exit(EXIT_INTERRUPTED) from None

    return wrapper


CONFIG_DIR_OPTION = typer.Option(
    None,
    "--config-dir",
    help="Your config folder: its model/ data/ optim/ schedule/ options and experiments/ studies "
    "join the built-ins (yours win on a shared name).",
    show_default=False,
)


def in_config_dir(command):
    """Give the command Hydra's `--config-dir DIR`, searched before the shipped `conf/`."""

    @functools.wraps(command)
    def wrapper(*args, config_dir: Optional[Path] = None, **kwargs):
        with using_config_dir(config_dir):
            return command(*args, **kwargs)

    signature = inspect.signature(command, eval_str=True)
    extra = inspect.Parameter(
        "config_dir", inspect.Parameter.KEYWORD_ONLY, default=CONFIG_DIR_OPTION, annotation=Optional[Path]
    )
    wrapper.__signature__ = signature.replace(parameters=[*signature.parameters.values(), extra])
    return wrapper
