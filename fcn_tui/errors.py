"""The program's exception classes that several modules raise or catch, in one light module.

Importing this pulls in nothing (no torch, optuna or Textual), so a front end can catch
`DataError` or `CheckpointError` by type without loading the library that raises it. Every module
imports them from here; the modules that raise them re-export them (`from fcn_tui.engine import
CheckpointError`, `from fcn_tui.config import ConfigError` keep working).
"""

from __future__ import annotations


class ConfigError(ValueError):
    """A preset or override is invalid; the message is one line meant for the user."""

    def __init__(self, message: str) -> None:
        # one line, whatever a key or value holds: control characters are shown escaped
        super().__init__("".join(c if c.isprintable() else repr(c)[1:-1] for c in message))


class NoRunsError(ValueError):
    """The folder holds no run; the message is one line for the user."""


class KeptFileError(ValueError):
    """The CSV would replace a file that a study or a run is kept in; one line for the user."""


class PlotError(ValueError):
    """Nothing to plot (no runs under the folder); the message is one line for the user."""


class ServeError(Exception):
    """Bad input to `serve` (a refused host, an address that cannot be listened on)."""


class NoTestImages(RuntimeError):
    """The test images are not loaded (yet, or at all); the message says which."""


class DataError(RuntimeError):
    """The dataset is missing, unreadable or malformed; the message names the file."""


class DeviceError(RuntimeError):
    """The requested device does not exist here; the message says what is available."""


class CheckpointError(ValueError):
    """A checkpoint does not belong to this run or cannot be used; the message says why."""


class MemoryCheckError(RuntimeError):
    """The run would need more memory than the device has; the message says how much of each."""


class RunWriteError(OSError):
    """A run's files could not be written (disk full, permissions); the message names the path."""


class RunBusy(Exception):
    """Another live process trains this run; the message names it (pid and host)."""


class UnreadableFile(ValueError):
    """A run file that is not what the program writes; the message is the reason, one line."""


class StudyError(Exception):
    """A study that cannot be opened, created or joined; the message is one line for the user."""


class StudyNotFound(StudyError):
    """The storage holds no such study (yet: a worker may wait for it to be created)."""


class StorageLost(StudyError):
    """The storage could not be reached for `fcn_tui.studies.store.OUTAGE_S` seconds."""
