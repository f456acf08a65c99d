"""Messages from the worker threads to the UI (posted with `post_message`, which is thread-safe).

Each wraps one engine event or one step of the queue, as a small dataclass (Textual's `Message`
initialises itself in `__post_init__`, which the dataclass's `__init__` calls). `Progress`
(per-batch) implements `can_replace`, so when the UI falls behind only the newest progress is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from textual.message import Message


@dataclass
class DataReady(Message):
    """torch and the dataset are loaded; `backend` makes splits and trainers."""

    backend: Any


@dataclass
class DataFailed(Message):
    """The dataset (or torch) could not be loaded; `error` is one line for the user."""

    error: str


@dataclass
class RunsLoaded(Message):
    """Run history read from the output folder (`fcn_tui.runs.find_runs`)."""

    records: list


@dataclass
class TrainEvent(Message):
    """One engine event of run `position` of `total` in the queue."""

    event: Any
    position: int
    total: int
    run_dir: Path | None


@dataclass
class Progress(TrainEvent):
    """A `BatchProgress` event. When the UI falls behind, a newer one replaces an older one still
    waiting in the queue, taking over its chart points, so the loss curve loses nothing."""

    points: list[tuple[float, float]] = field(init=False)  # (epoch, loss)

    def __post_init__(self) -> None:
        super().__post_init__()
        self.points = [(self.event.global_step / self.event.steps_per_epoch, self.event.loss)]

    def can_replace(self, message: Message) -> bool:
        if isinstance(message, Progress):
            message.points[:0] = self.points  # `message` is the newer one; it is drawn instead
            return True
        return False


@dataclass
class RunError(Message):
    """A run could not start or broke outside the engine (device, data, disk); shown as an error."""

    name: str
    error: str
    run_dir: Path | None = None


@dataclass
class SweepWritten(Message):
    """A study (a sweep or a search) finished and its `results.csv` / `results.md` were written."""

    sweep_dir: Path
    name: str
    kind: str = "sweep"  # or "search": what the study is called when it is announced


@dataclass
class QueueDone(Message):
    """The training worker has finished (every run done, or stopped)."""

    stopped: bool
