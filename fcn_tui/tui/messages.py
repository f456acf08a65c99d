"""Messages from the worker threads to the UI (posted with `post_message`, which is thread-safe).

Each wraps one engine event or one step of the queue. `Progress` (per-batch) implements
`can_replace`, so when the UI falls behind only the newest progress is drawn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.message import Message


class DataReady(Message):
    """torch and the dataset are loaded; `backend` makes splits and trainers."""

    def __init__(self, backend: Any) -> None:
        super().__init__()
        self.backend = backend


class DataFailed(Message):
    """The dataset (or torch) could not be loaded; `error` is one line for the user."""

    def __init__(self, error: str) -> None:
        super().__init__()
        self.error = error


class RunsLoaded(Message):
    """Run history read from the output folder (`fcn_tui.runs.find_runs`)."""

    def __init__(self, records: list) -> None:
        super().__init__()
        self.records = records


class TrainEvent(Message):
    """One engine event of run `position` of `total` in the queue."""

    def __init__(self, event: Any, position: int, total: int, run_dir: Path | None) -> None:
        super().__init__()
        self.event = event
        self.position = position
        self.total = total
        self.run_dir = run_dir


class Progress(TrainEvent):
    """A `BatchProgress` event. When the UI falls behind, a newer one replaces an older one still
    waiting in the queue, taking over its chart points, so the loss curve loses nothing."""

    def __init__(self, event: Any, position: int, total: int, run_dir: Path | None) -> None:
        super().__init__(event, position, total, run_dir)
        self.points = [(event.global_step / event.steps_per_epoch, event.loss)]  # (epoch, loss)

    def can_replace(self, message: Message) -> bool:
        if isinstance(message, Progress):
            message.points[:0] = self.points  # `message` is the newer one; it is drawn instead
            return True
        return False


class RunError(Message):
    """A run could not start or broke outside the engine (device, data, disk); shown as an error."""

    def __init__(self, name: str, error: str, run_dir: Path | None = None) -> None:
        super().__init__()
        self.name = name
        self.error = error
        self.run_dir = run_dir


class SweepWritten(Message):
    """A sweep group finished and its `results.csv` / `results.md` were written."""

    def __init__(self, sweep_dir: Path, name: str) -> None:
        super().__init__()
        self.sweep_dir = sweep_dir
        self.name = name


class QueueDone(Message):
    """The training worker has finished (every run done, or stopped)."""

    def __init__(self, stopped: bool) -> None:
        super().__init__()
        self.stopped = stopped
