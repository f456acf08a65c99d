"""The Train tab's status line: run name, epoch k/N, batch, running loss, samples/s, elapsed time,
ETA, device; and once a run ends, its status with final validation and test accuracy.

Before the first progress of a run it says what is happening instead of empty numbers: the run
being prepared (split, memory check) until `RunStarted`, then the data going to the device and
the first batches.

`RunState` is plain data that the app updates from the engine's events; `status_text` renders it.
Elapsed time and ETA come from the clock while a run is going, and from the run's own `wall_s`
once it has ended (so a finished run always reads the same).
"""

from __future__ import annotations

import time

from rich.text import Text

from fcn_tui import events as ev
from fcn_tui.formatting import duration, percent, speed, status_style

PREPARING = "preparing the run: data split, memory check"  # ctrl+r pressed, no RunStarted yet
FIRST_BATCHES = "loading data to the device, then the first batches"  # RunStarted, no progress yet
IDLE = "No run yet: set up the model on the Setup tab (F1) and press ctrl+r."


class RunState:
    """What the Train tab shows about the current (or last) run; plain data, updated by messages."""

    def __init__(self) -> None:
        self.name = ""
        self.position = self.total = 0
        self.epoch = self.epochs = 0
        self.step = self.steps = self.global_step = 0
        self.samples_per_s = 0.0
        self.loss: float | None = None  # mean training loss of the latest progress window
        self.device = ""  # the device's name, for people ("NVIDIA H100 80GB HBM3")
        self.torch_device = ""  # the device as torch names it ("cuda:0"), for the system readout
        self.started = 0.0
        self.phase = ""  # "validating" / "testing" between the last batch and the next event;
        # PREPARING before the run's first event
        self.finished: ev.RunFinished | None = None
        self.error: str | None = None


def status_text(run: RunState, data_error: str | None = None, stopping: bool = False) -> Text:
    """Two or three lines about `run` (or why there is no run)."""
    if not run.name:
        if run.phase and not run.error:
            return Text(f"{run.phase}…", style="bold")
        if run.error:
            return Text(f"error: {run.error}", style="bold red")
        if data_error:
            return Text(f"data: error: {data_error}", style="bold red")
        return Text(IDLE)
    done = run.finished
    if done is None:
        epoch = f"epoch {max(run.epoch, 1)}/{run.epochs}"  # before the first progress: the first epoch
    else:
        epoch = f"{done.epochs_completed}/{run.epochs} epochs"
    head = Text.assemble(
        (run.name, "bold"), f" · run {run.position}/{run.total}" if run.total > 1 else "",
        f" · {epoch} · {run.device}",
    )
    if done is None and not run.epoch:  # no progress yet
        body = Text(f"{FIRST_BATCHES}… · elapsed {duration(time.monotonic() - run.started)}")
        body.stylize("bold", 0, len(FIRST_BATCHES) + 1)
        if stopping:
            body.append(" · stopping…", style="yellow")
    elif done is None:
        elapsed = time.monotonic() - run.started
        total_steps = run.epochs * run.steps
        fraction = run.global_step / total_steps if total_steps else 0.0
        eta = elapsed * (1 - fraction) / fraction if fraction > 0 else None
        loss = f"loss {run.loss:.4g} · " if run.loss is not None else ""
        body = Text(
            f"batch {run.step}/{run.steps} · {loss}{speed(run.samples_per_s)} · "
            f"elapsed {duration(elapsed)} · ETA {duration(eta) if eta is not None else '-'}"
        )
        if run.phase:
            body.append(f" · {run.phase}…", style="bold")
        if stopping:
            body.append(" · stopping…", style="yellow")
    else:
        body = Text.assemble(
            (done.status, status_style(done.status, bold=True, other="red")),
            f" · val {percent(done.val_acc, '%')} (best {percent(done.best_val_acc, '%')})"
            f" · test {percent(done.test_acc, '%')}"
            f" · {duration(done.wall_s)} · {speed(done.samples_per_s)}",
        )
    lines = [head, body]
    if run.error:
        lines.append(Text(f"error: {run.error}", style="bold red"))
    return Text("\n").join(lines)
