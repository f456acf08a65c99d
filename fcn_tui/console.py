"""Headless progress for `fcn-tui run`: a Rich progress bar on a terminal, plain lines otherwise.

`Reporter` consumes the engine's events (the same ones the TUI gets) and prints a line per
epoch and a summary table at the end. Output errors (a closed SSH session, a broken pipe) are
swallowed so that they never interrupt training or the saving of results. User text (run names,
paths, error messages) is printed as it is, never read as Rich markup.
"""

from __future__ import annotations

import time
from pathlib import Path

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from fcn_tui import events as ev
from fcn_tui.formatting import duration, percent


def epoch_line(e: ev.EpochEnded) -> str:
    return (
        f"epoch {e.epoch:>3}/{e.epochs}  train loss {e.train_loss:.4f} acc {percent(e.train_acc)}%  "
        f"val loss {e.val_loss:.4f} acc {percent(e.val_acc)}%  {e.seconds:.1f}s  "
        f"{e.samples_per_s:,.0f} samples/s"
    )


def plural(count: int, noun: str) -> str:
    """`1 epoch`, `2 epochs`."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


class Reporter:
    def __init__(self, console: Console | None = None, interactive: bool | None = None) -> None:
        if console is None:
            console = Console(emoji=False)  # a name holding :smile: stays as typed
            if not console.is_terminal:
                console = Console(width=120, emoji=False)  # logs: tables wide enough not to cut statuses
        self.console = console
        self.interactive = self.console.is_terminal if interactive is None else interactive
        self.progress: Progress | None = None
        self.task = None
        self.total_runs = 0
        self.run_index = 0
        self.study_started = time.perf_counter()
        self.finished_wall: list[float] = []
        self.epochs = 0
        self._broken = False

    def print(self, *objects, **kwargs) -> None:
        if self._broken:
            return
        try:
            target = self.progress.console if self.progress else self.console
            if all(isinstance(o, str) for o in objects) and not self.interactive:
                kwargs.setdefault("soft_wrap", True)  # log lines stay whole in files; a terminal's break between words
            target.print(*objects, **kwargs)
            if not self.interactive:
                self.console.file.flush()
        except OSError:
            self._broken = True

    def start_study(self, total_runs: int) -> None:
        self.total_runs = total_runs
        self.study_started = time.perf_counter()

    def _eta_line(self) -> str:
        if not self.finished_wall or self.total_runs <= 1:
            return ""
        per_run = sum(self.finished_wall) / len(self.finished_wall)
        left = per_run * (self.total_runs - self.run_index + 1)
        return f", ETA {duration(left)}"

    def start_run(self, index: int, name: str) -> None:
        self.run_index = index
        if self.total_runs > 1:
            self.print(f"[bold]run {index} of {self.total_runs}[/]: {escape(name)}{self._eta_line()}")
        else:
            self.print(f"[bold]run[/]: {escape(name)}")

    def skip_run(self, index: int, name: str, path: Path) -> None:
        self.print(escape(f"run {index} of {self.total_runs}: {name}: already completed in {path}, skipped"))

    def handle(self, event: ev.Event, tag: str = "") -> None:
        """Show one engine event; `tag` (e.g. `run 3`) heads each line while several runs train at
        once (a pack), which share no progress bar."""
        if tag:
            self._stop_progress()
        lead = f"  {escape(tag)}: " if tag else "  "
        if isinstance(event, ev.RunStarted):
            self.epochs = event.config.train.epochs
            self.print(
                f"{lead}device {event.device_name}; {event.n_train:,} train / {event.n_val:,} val / "
                f"{event.n_test:,} test images; {event.steps_per_epoch} batches per epoch"
            )
            if event.previous_epochs:
                self.print(f"{lead}continuing from its checkpoint after epoch {len(event.previous_epochs)}")
            if event.note:
                self.print(f"{lead}{escape(event.note)}")
            if self.interactive and not self._broken and not tag:
                self.progress = Progress(
                    TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("loss {task.fields[loss]}"), TextColumn("{task.fields[speed]}"),
                    TimeElapsedColumn(), TimeRemainingColumn(), console=self.console, transient=True,
                )
                self.task = self.progress.add_task(
                    f"epoch 1/{self.epochs}", total=event.steps_per_epoch * self.epochs, loss="-", speed=""
                )
                try:
                    self.progress.start()
                except OSError:
                    self._broken = True
        elif isinstance(event, ev.BatchProgress):
            if self.progress is not None:
                self.progress.update(
                    self.task, completed=event.global_step, description=f"epoch {event.epoch}/{self.epochs}",
                    loss=f"{event.loss:.4f}", speed=f"{event.samples_per_s:,.0f} samples/s",
                )
        elif isinstance(event, ev.EpochEnded):
            self.print(lead + epoch_line(event))
        elif isinstance(event, ev.RunFinished):
            self._stop_progress()
            self.finished_wall.append(event.wall_s)
            line = f"  {tag + ': ' if tag else ''}{event.status}: "
            accuracies = [f"{label} acc {percent(value)}%" for label, value in
                          (("val", event.val_acc), ("test", event.test_acc)) if value is not None]
            if accuracies:  # a run stopped before its first epoch has no number to show
                line += ", ".join(accuracies) + ", "
            line += f"{plural(event.epochs_completed, 'epoch')} in {event.wall_s:.1f}s"
            if event.error:
                line += f" ({event.error})"
            self.print(escape(line))

    def _stop_progress(self) -> None:
        if self.progress is not None:
            try:
                self.progress.stop()
            except OSError:
                self._broken = True
            self.progress = None

    def close(self) -> None:
        self._stop_progress()

    def summary_table(self, records, title: str = "Summary", folders=None) -> None:
        """One row per run, then the folder of each of `folders` (default: every run; a study's
        runs are in its folder, named once already). At 80 columns the numbers keep their width
        and the run's name gets the rest, wrapped when it must be."""
        table = Table(title=title, box=box.SIMPLE_HEAD, show_edge=False, padding=(0, 1, 0, 0))
        table.add_column("run", overflow="fold", ratio=1)
        for col, justify in (("status", "left"), ("epochs", "right"), ("val %", "right"),
                             ("best %", "right"), ("test %", "right"), ("time", "right")):
            table.add_column(col, justify=justify, no_wrap=True)
        for r in records:
            table.add_row(
                Text(r.name), Text(r.status), str(r.get("epochs_completed") or 0), percent(r.get("val_acc")),
                percent(r.get("best_val_acc")), percent(r.get("test_acc")),
                f"{r.get('wall_s') or 0:.1f}s",
            )
        self.print(table)
        for r in records if folders is None else folders:
            if r.path.is_dir():  # a study's run that never started, or trained on another host, has none here
                self.print(escape(f"{r.name}: written to {r.path}"))
