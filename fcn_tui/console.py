"""Headless progress for `fcn-tui run`: a Rich progress bar on a terminal, plain lines otherwise.

`Reporter` consumes the engine's events (the same ones the TUI gets) and prints a line per
epoch and a summary table at the end; `StudyPresenter` prints what the study runner yields around
them (a study opened, runs skipped or crashed, workers' progress, the study's table at its end).
Output errors (a closed SSH session, a broken pipe) are swallowed so that they never interrupt
training or the saving of results. User text (run names, paths, error messages) is printed as it
is, never read as Rich markup.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from fcn_tui import events as ev
from fcn_tui.formatting import QUEUED, duration, loss_text, percent, seconds, speed


def epoch_line(e: ev.EpochEnded) -> str:
    return (
        f"epoch {e.epoch:>3}/{e.epochs}  train loss {loss_text(e.train_loss)} acc {percent(e.train_acc)}%  "
        f"val loss {loss_text(e.val_loss)} acc {percent(e.val_acc)}%  {seconds(e.seconds, minutes=False)}  "
        f"{speed(e.samples_per_s)}"
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

    def error(self, message: str) -> None:
        """`error: MESSAGE`, the word in red (the message is user text, never markup)."""
        self.print(f"[red]error[/]: {escape(message)}")

    def warning(self, message: str) -> None:
        """`warning: MESSAGE`, the word in yellow."""
        self.print(f"[yellow]warning[/]: {escape(message)}")

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
                    loss=loss_text(event.loss), speed=speed(event.samples_per_s),
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
            line += f"{plural(event.epochs_completed, 'epoch')} in {seconds(event.wall_s, minutes=False)}"
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
                seconds(r.get('wall_s') or 0, minutes=False),
            )
        self.print(table)
        for r in records if folders is None else folders:
            if r.path.is_dir():  # a study's run that never started, or trained on another host, has none here
                self.print(escape(f"{r.name}: written to {r.path}"))


class StudyPresenter:
    """Prints what the study runner yields: one line per event, Rich progress while a run trains
    in this process, a line per epoch of each worker's runs, the study's table at its end."""

    def __init__(self, reporter: Reporter) -> None:
        self.reporter = reporter
        self.records: list = []
        self.failed = False
        self.bad_input = False
        self.in_study = False  # a study's runs are listed once, from its StudyFinished
        self.started = 0  # runs this process began to train
        self.study_records: set[int] = set()  # of `records`, those in a study's folder (named once)
        self._seen: dict[tuple, tuple] = {}
        self._finished_before: set[str] = set()
        self.training: set[str] = set()  # folders of the runs training now (several in a pack)
        self.tags: dict[str, str] = {}  # per run folder: what heads its lines ("" for a run alone)
        self._shown_by: dict[type, Callable] = {}

    def show(self, event) -> None:
        """Print one of the runner's events (`fcn_tui.studies.runner.RunnerEvent`)."""
        if not self._shown_by:
            self._shown_by = self._handlers()
        handler = self._shown_by.get(type(event))
        if handler is not None:
            handler(event)

    def _handlers(self) -> dict[type, Callable]:
        from fcn_tui.studies import runner  # the runner's events: once a study runs

        return {
            runner.StudyOpened: self._opened, runner.RunStarting: self._starting,
            runner.RunSkipped: self._skipped, runner.Trained: self._trained, runner.RunCrashed: self._crashed,
            runner.Waiting: self._waiting, runner.WorkersStarted: self._workers_started,
            runner.RunTakenOver: self._taken_over, runner.WorkerExited: self._worker_exited,
            runner.WorkersProgress: self._workers_progress, runner.StudyFinished: self._finished,
        }

    def _keep(self, run_dir: Path | None) -> None:
        """A run outside a study goes in the closing summary (a study lists its runs itself)."""
        from fcn_tui.runs import read_run

        if not self.in_study and run_dir is not None and (record := read_run(run_dir)) is not None:
            self.records.append(record)

    def _opened(self, event) -> None:
        verb = "created" if event.created else "opened"
        self.in_study = True
        where = str(event.folder)
        if not event.storage.startswith(where):  # a journal in the folder is the folder: said once
            where += f" ({event.storage})"
        self.reporter.print(escape(f"study {event.name}: {verb}, {event.total} runs, in {where}"))
        self.reporter.start_study(event.total)
        for record in event.skipped:  # a run in the study's folder by its own folder's name
            where = record.path.name if record.path.parent.absolute() == event.folder.absolute() else record.path
            self.reporter.print(escape(f"  {record.name}: already {record.status} in {where}, skipped"))
        self._finished_before = {str(record.path) for record in event.skipped}  # told once, above

    def _starting(self, event) -> None:
        self.started += 1
        self.training.add(str(event.run_dir))
        self.reporter.total_runs = event.total
        self.reporter.start_run(event.position, event.name)
        if event.note:
            self.reporter.print(escape(f"  {event.note}"))

    def _skipped(self, event) -> None:
        self.reporter.total_runs = event.total
        self.reporter.skip_run(event.position, event.name, event.run_dir)
        self._keep(event.run_dir)

    def _trained(self, event) -> None:
        folder = str(event.run_dir)
        if folder not in self.tags:  # a run that trains beside others says whose each line is
            self.tags[folder] = f"run {event.position}" if len(self.training) > 1 else ""
        self.reporter.handle(event.event, tag=self.tags[folder])
        if isinstance(event.event, ev.RunFinished):
            self.training.discard(folder)
            self.failed |= event.event.status == ev.FAILED
            self._keep(event.run_dir)

    def _crashed(self, event) -> None:
        self.training.discard(str(event.run_dir))
        self.reporter.close()
        self.reporter.error(event.message)
        self.failed = True
        self.bad_input |= event.bad_input
        self._keep(event.run_dir)

    def _waiting(self, event) -> None:
        self.reporter.print(escape(f"  no run left to claim; waiting for {plural(event.running, 'run')} of other workers"))

    def _workers_started(self, event) -> None:
        self.reporter.print(escape(f"{plural(event.count, 'worker')}, {plural(event.threads, 'thread')} each"
                                   + (f", on {', '.join(event.devices)}" if event.devices else "")))

    def _taken_over(self, event) -> None:
        self.reporter.close()
        self.reporter.warning(f"{event.name}: another worker took this run over while this one was paused or cut off "
                              f"from the storage; stopped training it here ({event.run_dir.name})")

    def _worker_exited(self, event) -> None:
        self.reporter.warning(f"worker {event.label} {event.reason}; its run is taken over by another worker or by --resume")

    def _workers_progress(self, event) -> None:
        for record in event.records:
            key = (record.get("trial"), record.path.name)
            state = (record.status, record.get("epochs_completed"))
            if self._seen.get(key) == state or str(record.path) in self._finished_before:
                continue
            first = key not in self._seen
            if (line := progress_line(record, first=first)) is not None:
                self._seen[key] = state
                who = f"  [{record.get('worker') or '-'}] {record.name}: "
                if first and not line.startswith(("starting", "continu")):  # begun between two looks
                    self.reporter.print(escape(who + "starting"))
                self.reporter.print(escape(who + line))

    def _finished(self, event) -> None:
        from fcn_tui.tables import comparison_table

        self.reporter.close()
        if event.results is not None:
            self.reporter.print(escape(f"results: {event.results[0]} and {event.results[1].name}"))
        if event.error:
            self.reporter.error(event.error)
            self.failed = True
        self.reporter.print(comparison_table(list(event.records), event.preset))
        self.in_study = False
        self.records += list(event.records)
        self.study_records |= {id(record) for record in event.records}
        self._left_unfinished(event.name, event.records)

    def _left_unfinished(self, study: str, records) -> None:
        """The study's runs that did not finish, named (the first ten), for `--resume`."""
        left = [x for x in records if x.status in UNFINISHED]
        if left:
            names = ", ".join(f"{x.name} ({x.status})" for x in left[:10]) + (", ..." if len(left) > 10 else "")
            self.reporter.print(escape(f"left: {plural(len(left), 'run')} of {study} did not finish: {names}; "
                                       "--resume continues them"))
        self.failed |= bool(left)


UNFINISHED = (ev.FAILED, ev.INCOMPLETE, QUEUED, ev.STOPPED)  # a study's runs that --resume continues


def progress_line(record, first: bool = False) -> str | None:
    """What a worker's run is at, as the storage has it: `starting`, `continuing after epoch 3`,
    `running, epoch 2/5, val acc 81.20%` (that epoch's value), `completed, epoch 5/5, ...`; the
    `first` line of a continued run that is past its checkpoint already starts `continued after
    epoch 3: `. None while there is nothing true to say yet: queued, not yet sampled (a search
    trial), or an epoch whose value is not written yet."""
    if record.status == QUEUED or record.get("epochs") is None:
        return None
    epoch, epochs = record.get("epochs_completed") or 0, record.get("epochs")
    continued = record.get("continued_after") or record.get("resumed_after_epoch")  # storage, or its folder
    if record.status == ev.RUNNING:
        if epoch == (continued or 0):
            return f"continuing after epoch {continued}" if continued else "starting"
        acc = next((m.get("val_acc") for m in record.metrics if m.get("epoch") == epoch), None)
        if acc is None or epoch == epochs:  # the last epoch: told with the run's end, just after
            return None
    else:
        acc = record.get("val_acc")
    acc_text = f", val acc {percent(acc, '%')}" if isinstance(acc, (int, float)) else ""
    told = f"continued after epoch {continued}: " if first and continued else ""
    return f"{told}{record.status}, epoch {epoch}/{epochs}{acc_text}"
