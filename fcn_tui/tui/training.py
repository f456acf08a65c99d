"""The training queue, run in the app's thread worker: the study runner's events as messages.

`run_queue` drives `fcn_tui.studies.runner.run_presets`, the same runner `fcn-tui run` uses, so the app's
run folders, studies and numbers are the CLI's. It touches no widget: every event goes to the UI
through `post` (`App.post_message`, thread-safe) wrapped in a message from `messages.py`. It
stops between batches once `stop` is set, and the runs in progress are saved as `stopped`.
A sweep's runs train in packs, as with `fcn-tui run` (several at once); the Training tab shows one
run at a time (`OneAtATime`), the Runs and Study tabs every run.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fcn_tui import events as ev
from fcn_tui.config import Preset
from fcn_tui.tui.messages import Progress, QueueDone, RunError, SweepWritten, TrainEvent


def run_queue(presets: list[Preset], out: Path, backend: Any, stop: threading.Event,
              post: Callable[[Any], Any]) -> None:
    """Run every planned run of `presets` in order; a failing run is reported, the rest go on."""
    from fcn_tui.studies import runner  # Optuna: imported in this thread, after the app's first paint

    follow = OneAtATime()

    def show(events: list) -> None:
        for shown in events:
            kind = Progress if isinstance(shown.event, ev.BatchProgress) else TrainEvent
            post(kind(shown.event, shown.position, shown.total, shown.run_dir))

    try:
        for event in runner.run_presets(presets, backend, stop.is_set, runner.RunOptions(out=Path(out))):
            if isinstance(event, runner.Trained):
                show(follow.show(event))
            elif isinstance(event, runner.RunCrashed):
                post(RunError(event.name, event.message, event.run_dir))
                show(follow.drop(event.run_dir))
            elif isinstance(event, runner.StudyFinished) and event.folder is not None:
                if event.error:
                    post(RunError(event.name, f"results not written: {event.error}"))
                else:
                    post(SweepWritten(event.folder, event.name, "search" if event.preset.search else "sweep"))
    except Exception as err:  # noqa: BLE001 - planning failed (output folder not writable, storage, ...)
        post(RunError("queue", f"{type(err).__name__}: {err}"))
    finally:
        post(QueueDone(stopped=stop.is_set()))


class OneAtATime:
    """The Training tab follows one run, and a pack trains several at once: this passes on the
    events of the earliest started run still training; when it ends, the start and the epochs so far
    of the next one (then its events live), so the tab always shows one run, whole."""

    def __init__(self) -> None:
        self.followed: Path | None = None
        self.others: dict[Path | None, list] = {}  # runs not shown yet: their events but the batches'

    def show(self, event) -> list:
        """What to show of one `runner.Trained` event."""
        if self.followed is None and not self.others:
            self.followed = event.run_dir
        if event.run_dir != self.followed:
            if not isinstance(event.event, ev.BatchProgress):
                self.others.setdefault(event.run_dir, []).append(event)
            return []
        if isinstance(event.event, ev.RunFinished):
            return [event, *self.drop(event.run_dir)]
        return [event]

    def drop(self, run_dir: Path | None) -> list:
        """The followed run ended (or crashed): what to show of the next one."""
        self.others.pop(run_dir, None)
        if run_dir != self.followed:
            return []
        self.followed = None
        shown: list = []
        while self.others and self.followed is None:
            self.followed, caught_up = next(iter(self.others.items()))
            del self.others[self.followed]
            shown += caught_up
            if caught_up and isinstance(caught_up[-1].event, ev.RunFinished):  # it ended meanwhile
                self.followed = None
        return shown
