"""The training queue, run in the app's thread worker: plan, train and write every run.

`run_queue` does what `fcn-tui run` does for each run (`fcn_tui.queue.plan`, `PlannedRun.make_dir`,
`fcn_tui.runs.record_run`, then `fcn_tui.study.write_results` after a sweep), so the TUI's run
folders are the CLI's. It touches no widget: every event goes to the UI through `post`
(`App.post_message`, thread-safe) wrapped in a message from `messages.py`. It stops between
batches once `stop` is set, and the run in progress is saved as `stopped`.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fcn_tui import events as ev
from fcn_tui.config import Preset
from fcn_tui.queue import plan
from fcn_tui.runs import record_run
from fcn_tui.study import write_results
from fcn_tui.tui.messages import Progress, QueueDone, RunError, SweepWritten, TrainEvent


def run_queue(presets: list[Preset], out: Path, backend: Any, stop: threading.Event,
              post: Callable[[Any], Any]) -> None:
    """Run every planned run of `presets` in order; a failing run is reported, the rest go on."""
    try:
        groups = plan(presets, out, resume=False)
        total = sum(len(g.runs) for g in groups)
        position = 0
        for group in groups:
            for planned in group.runs:
                if stop.is_set():
                    break
                position += 1
                name = planned.config.name
                try:
                    split = backend.split(planned.config)
                    trainer = backend.trainer(planned.config, split, stop.is_set)
                except Exception as err:  # noqa: BLE001 - DataError, DeviceError: no folder written
                    post(RunError(name, str(err)))
                    continue
                try:
                    run_dir = planned.make_dir()
                    for event in record_run(trainer, run_dir):
                        kind = Progress if isinstance(event, ev.BatchProgress) else TrainEvent
                        post(kind(event, position, total, run_dir))
                except Exception as err:  # noqa: BLE001 - a broken run is shown, not fatal
                    post(RunError(name, f"{type(err).__name__}: {err}", planned.run_dir))
            if group.is_sweep and group.sweep_dir is not None:
                try:
                    write_results(group.sweep_dir, group.records(), group.name, group.preset)
                    post(SweepWritten(group.sweep_dir, group.name))
                except Exception as err:  # noqa: BLE001 - e.g. disk full
                    post(RunError(group.name, f"results not written: {err}"))
            if stop.is_set():
                break
    except Exception as err:  # noqa: BLE001 - planning failed (output folder not writable, ...)
        post(RunError("queue", f"{type(err).__name__}: {err}"))
    finally:
        post(QueueDone(stopped=stop.is_set()))

