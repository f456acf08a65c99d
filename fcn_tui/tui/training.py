"""The training queue, run in the app's thread worker: the study runner's events as messages.

`run_queue` drives `fcn_tui.runner.run_presets`, the same runner `fcn-tui run` uses, so the app's
run folders, studies and numbers are the CLI's. It touches no widget: every event goes to the UI
through `post` (`App.post_message`, thread-safe) wrapped in a message from `messages.py`. It
stops between batches once `stop` is set, and the run in progress is saved as `stopped`.
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
    from fcn_tui import runner  # Optuna: imported in this thread, after the app's first paint

    try:
        for event in runner.run_presets(presets, backend, stop.is_set, runner.RunOptions(out=Path(out))):
            if isinstance(event, runner.Trained):
                kind = Progress if isinstance(event.event, ev.BatchProgress) else TrainEvent
                post(kind(event.event, event.position, event.total, event.run_dir))
            elif isinstance(event, runner.RunCrashed):
                post(RunError(event.name, event.message, event.run_dir))
            elif isinstance(event, runner.StudyFinished) and event.folder is not None:
                if event.error:
                    post(RunError(event.name, f"results not written: {event.error}"))
                else:
                    post(SweepWritten(event.folder, event.name))
    except Exception as err:  # noqa: BLE001 - planning failed (output folder not writable, storage, ...)
        post(RunError("queue", f"{type(err).__name__}: {err}"))
    finally:
        post(QueueDone(stopped=stop.is_set()))
