"""Graceful stop on SIGINT, SIGTERM and SIGHUP for headless runs.

The first signal sets a stop flag that the engine checks between batches, so the current batch
finishes and the run is saved as `stopped`; the exit status becomes 128 + the signal number
(130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP). A second Ctrl-C exits at once: every run
file is written atomically or appended per line, so what is on disk stays readable.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType

HANDLED = tuple(
    s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None))
    if s is not None
)


class StopOnSignals:
    """Context manager: installs the handlers (main thread only) and restores them on exit."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: int | None = None
        self._previous: dict[int, object] = {}

    @property
    def exit_code(self) -> int | None:
        return None if self.signum is None else 128 + self.signum

    def is_set(self) -> bool:
        return self.event.is_set()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.event.is_set() and signum == signal.SIGINT:
            os._exit(128 + (self.signum or signum))  # second Ctrl-C: leave now
        if self.signum is None:
            self.signum = signum
        self.event.set()

    def __enter__(self) -> "StopOnSignals":
        if threading.current_thread() is threading.main_thread():
            for signum in HANDLED:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
