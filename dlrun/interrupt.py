"""Ctrl-C and SIGTERM at any moment: stop at the next safe point, never mid-write or mid-compile.

The first signal only records a request; the work checks it at safe points (after loading data,
after compiling, after each epoch) and raises `Interrupted` there, so every trial ends with
status `interrupted` and its folder whole. A second signal stops at once (KeyboardInterrupt),
except inside a `critical()` section (compilation, writing a run's files), where it waits for
the section's end: interrupting XLA's compiler from Python has crashed the process.

One handler serves the whole process: the CLI installs it before anything else, so a signal
during start-up is not lost, and the group runner reuses it.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(Exception):
    """A stop was requested; raised at a safe point."""


class StopRequests:
    def __init__(self):
        self.signum: int | None = None
        self._installs = 0
        self._critical = 0
        self._deferred = False
        self._previous: dict = {}

    @property
    def requested(self) -> bool:
        return self.signum is not None

    def check(self) -> None:
        """Raise Interrupted when a stop was requested: call only where stopping is safe."""
        if self.requested:
            raise Interrupted(signal.Signals(self.signum).name)

    def request(self, signum: int) -> None:
        """Record a stop request, as a first signal does; never a second one."""
        if self.signum is None:
            self.signum = signum

    def handle(self, signum, frame=None) -> None:
        """What a signal does: the first requests a stop, a second stops at once."""
        if self.signum is None:
            self.signum = signum
        elif self._critical:
            self._deferred = True
        else:
            raise KeyboardInterrupt

    @contextmanager
    def critical(self):
        """A section that a second signal must not cut: it stops at the section's end instead."""
        self._critical += 1
        try:
            yield
        finally:
            self._critical -= 1
            if not self._critical and self._deferred:
                self._deferred = False
                raise KeyboardInterrupt

    def install(self, signals=SIGNALS) -> None:
        """Take over these signals (main thread only; elsewhere the parent handles them)."""
        if threading.current_thread() is not threading.main_thread():
            return
        if self._installs == 0:
            self._previous = {sig: signal.signal(sig, self.handle) for sig in signals}
        self._installs += 1

    def uninstall(self) -> None:
        if self._installs == 0:
            return
        self._installs -= 1
        if self._installs == 0:
            for sig, previous in self._previous.items():
                signal.signal(sig, previous)
            self._previous = {}
            self.signum, self._deferred = None, False


STOP = StopRequests()


@contextmanager
def handling_signals():
    """Install the process's stop handler for the duration (nested uses share one handler)."""
    STOP.install()
    try:
        yield STOP
    finally:
        STOP.uninstall()
