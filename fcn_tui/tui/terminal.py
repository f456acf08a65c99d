"""The terminal the app draws on, and what the app does when it goes away (a closed SSH session).

Textual's Linux driver hands every write to a writer thread through a queue of 30 entries. When
the terminal is gone, the thread's write fails (EIO) and the thread dies; the queue fills, and the
next write blocks the event loop for good: the app can no longer stop, save the run, or even act
on SIGTERM. `SafeLinuxDriver` writes through `DiscardOnError`, which drops output once a write
has failed, so a write never blocks, and posts `TerminalLost` to the app (a hang-up that came
without SIGHUP). Its `hang_up()` also stops reading the dead terminal (whose endless end-of-file
spins a core) and points stdout and stderr at /dev/null, so that nothing later (Textual's
shutdown, Python's final flush) writes to the dead terminal either.
`exit_anyway_after` is the last resort: the process ends after a bounded wait whatever happens.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from typing import IO, Any

from textual.drivers.linux_driver import LinuxDriver
from textual.message import Message


class TerminalLost(Message):
    """A write to the terminal failed: it is gone (posted from the writer thread)."""


class DiscardOnError:
    """A text file that drops writes once one has failed (or once told to with `discard()`);
    `on_error` is called (in the writing thread) when the first write fails."""

    def __init__(self, file: IO[str], on_error: Callable[[], Any] | None = None) -> None:
        self._file = file
        self.discarding = False
        self._on_error = on_error

    def discard(self) -> None:
        self.discarding = True

    def write(self, text: str) -> None:
        if self.discarding:
            return
        try:
            self._file.write(text)
        except (OSError, ValueError):  # EIO from a hung-up terminal, or a closed file
            self._failed()

    def flush(self) -> None:
        if self.discarding:
            return
        try:
            self._file.flush()
        except (OSError, ValueError):
            self._failed()

    def _failed(self) -> None:
        self.discarding = True
        if self._on_error is not None:
            self._on_error()

    def fileno(self) -> int:
        return self._file.fileno()

    def isatty(self) -> bool:
        return self._file.isatty()


def detach() -> None:
    """The terminal is gone: file descriptors 1 and 2 point at /dev/null from now on."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    for fd in (1, 2):
        with contextlib.suppress(OSError):
            os.dup2(null, fd)
    os.close(null)


class SafeLinuxDriver(LinuxDriver):
    """Textual's Linux driver, whose writes never block on a terminal that has gone away."""

    def __init__(self, app: Any, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        # the writer thread is made with `_file`; `post_message` is thread-safe
        self.output = DiscardOnError(self._file, on_error=lambda: app.post_message(TerminalLost()))
        self._file = self.output

    def hang_up(self) -> None:
        """The terminal has gone: drop all output and stop the input thread reading it."""
        self.output.discard()
        self.exit_event.set()  # the input thread's loop ends; disable_input() then does nothing
        detach()


def exit_anyway_after(seconds: float, code: int) -> threading.Timer:
    """Start a daemon timer that ends the process with `code` if it is still alive after `seconds`
    (the run files are written atomically, so what is on disk stays readable)."""
    timer = threading.Timer(seconds, os._exit, (code,))
    timer.daemon = True
    timer.start()
    return timer
