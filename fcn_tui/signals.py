"""Graceful stop on SIGINT, SIGTERM and SIGHUP for headless runs.

The first signal sets a stop flag that the engine checks between batches, so the current batch
finishes and the run is saved as `stopped`; the exit status becomes 128 + the signal number
(130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP). A second Ctrl-C exits at once: every run
file is written atomically or appended per line, so what is on disk stays readable. A signal
that is ignored when the run starts (`nohup fcn-tui run ...` ignores SIGHUP) stays ignored.
"""

from __future__ import annotations

import os
import signal
import threading
from types import FrameType
from typing import Self

HANDLED = tuple(
    s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None), getattr(signal, "SIGHUP", None))
    if s is not None
)


CLEAR_LINE = "\r\x1b[2K"  # to the start of the line, then erase it (what Rich's live display does too)


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False


def _say(line: str, fd: int = 2) -> None:
    """A line straight to a file descriptor, stderr by default (safe in a handler; a closed terminal is fine)."""
    try:
        os.write(fd, (line + "\n").encode())
    except OSError:
        pass


class StopOnSignals:
    """Context manager: installs the handlers (main thread only) and restores them on exit.

    With `ignore_after`, the signals are ignored on exit instead: a process whose work is done
    (a study's worker) only ends, and a stop passed on to it then must not kill it on its way out."""

    def __init__(self, ignore_after: bool = False) -> None:
        self.event = threading.Event()
        self.signum: int | None = None
        self.ignore_after = ignore_after
        self._previous: dict[int, object] = {}

    @property
    def exit_code(self) -> int | None:
        return None if self.signum is None else 128 + self.signum

    def is_set(self) -> bool:
        return self.event.is_set()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.event.is_set() and signum == signal.SIGINT:
            if os.isatty(1):
                _say("\x1b[?25h", fd=1)  # show the cursor a progress bar may have hidden
            os._exit(128 + (self.signum or signum))  # second Ctrl-C: leave now
        if self.signum is None:
            self.signum = signum
            # on a terminal, the line a progress bar is drawing is cleared first, so the message
            # starts a line of its own; the bar is drawn again on the next line
            clear = CLEAR_LINE if _isatty(2) else ""
            _say(
                f"{clear}fcn-tui: {signal.Signals(signum).name}: stopping after the current batch and saving "
                "the run (Ctrl-C again quits at once)"
            )
        self.event.set()

    def __enter__(self) -> Self:
        if threading.current_thread() is threading.main_thread():
            for signum in HANDLED:
                if signal.getsignal(signum) is signal.SIG_IGN:
                    continue  # ignored on purpose (`nohup`, a background job): keep it that way
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, signal.SIG_IGN if self.ignore_after else handler)
        self._previous.clear()


PARENT_ENV = "FCN_TUI_PARENT_PID"  # set by `run --workers` for its worker processes
PR_SET_PDEATHSIG = 1  # prctl(2) option: a signal for this process when its parent ends


def stop_with_parent() -> None:
    """In a worker started by `run --workers` (PARENT_ENV names that process): when the parent
    is gone (SIGKILL), receive SIGTERM, which stops the run and saves it as after a Ctrl-C.
    Linux's prctl(PR_SET_PDEATHSIG) delivers it; a parent that died before this call is seen
    by its pid. Elsewhere, or outside `run --workers`, nothing changes."""
    parent = os.environ.get(PARENT_ENV, "")
    if not parent.isdigit():
        return
    os.environ.pop(PARENT_ENV)  # not for this worker's own children
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):  # not Linux: the check below still catches an early death
        pass
    if os.getppid() != int(parent):
        os.kill(os.getpid(), signal.SIGTERM)
