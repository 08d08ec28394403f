"""`python -m dlrun` and the `dlrun` script: take over Ctrl-C before the slow imports.

A signal during start-up (importing Typer, JAX) is recorded, and the command stops at its first
safe point with exit code 130 instead of a KeyboardInterrupt traceback.
"""

import sys


def main() -> None:
    from dlrun.interrupt import handling_signals

    try:
        with handling_signals():
            from dlrun.cli import main as run_command

            run_command()
    except KeyboardInterrupt:  # a second Ctrl-C before the command could catch it
        sys.exit(130)


if __name__ == "__main__":
    main()
