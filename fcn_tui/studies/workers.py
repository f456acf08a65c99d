"""Worker processes on this machine for one study (`fcn-tui run --workers N`).

`run_workers` starts N `fcn-tui worker` processes (no more than the study has queued runs), each
writing to `worker-K.log` in the study's folder, and yields the study's progress from the storage
about once a second until they are done. On stop it passes the signal on to each and kills those
that do not end within `WORKER_STOP_S` or are paused; the workers also stop by themselves when it
is gone (`signals.stop_with_parent`). A worker stopped on its own (someone's SIGTERM) has its
stopped run queued again, for the live workers to continue.

The runner opens the study before and writes its results after (`runner.run_presets`). No torch.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from fcn_tui import events as ev
from fcn_tui.runs import RunRecord, RunWriteError, open_append
from fcn_tui.signals import PARENT_ENV
from fcn_tui.studies.events import RunCrashed
from fcn_tui.studies.options import RunOptions
from fcn_tui.studies.store import POLL_S, StudyStore, process_paused, safely

WORKER_STOP_S = 30  # after passing a stop on, wait this long for workers to save their runs
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)  # what a stop is passed on as, and what it ends
NORMAL_EXITS = (0, 1, *(128 + s for s in STOP_SIGNALS))  # done, a run failed, stopped


@dataclass
class WorkerPlan:
    count: int
    devices: list[str] = field(default_factory=list)  # one per worker, round robin; empty: the preset's
    threads: int = 1  # torch threads per worker
    data_dir: Path | None = None


@dataclass(frozen=True)
class WorkersProgress:
    """Every run of a study trained by several workers, as the storage has it now."""

    name: str
    records: tuple[RunRecord, ...]
    workers_alive: int


@dataclass(frozen=True)
class WorkersStarted:
    """`count` worker processes started for a study (no more than it has runs to train)."""

    count: int
    threads: int
    devices: tuple[str, ...] = ()


@dataclass(frozen=True)
class WorkerExited:
    """A worker process that ended abnormally; its run, if any, is taken over by the others."""

    label: str
    returncode: int
    last_line: str

    @property
    def reason(self) -> str:
        if self.returncode - 128 in STOP_SIGNALS:  # it saved its run as stopped
            return f"was stopped by {signal.Signals(self.returncode - 128).name}"
        if self.returncode < 0:
            with contextlib.suppress(ValueError):
                return f"killed by {signal.Signals(-self.returncode).name}"
            return f"killed by signal {-self.returncode}"
        return f"exited with status {self.returncode}: {self.last_line}"


def worker_command(store: StudyStore, options: RunOptions, plan: WorkerPlan, index: int) -> list[str]:
    command = [sys.executable, "-m", "fcn_tui", "worker", "--storage", store.spec, "--study", store.name,
               "--out", str(options.out), "--threads", str(plan.threads), "--label", f"w{index + 1}"]
    if plan.devices:
        command += ["--device", plan.devices[index % len(plan.devices)]]
    if plan.data_dir is not None:
        command += ["--data-dir", str(plan.data_dir)]
    command += ["--pack", str(options.pack or "auto")]
    if options.checkpoint_every_s is not None:
        command += ["--checkpoint-every", str(options.checkpoint_every_s)]
    return command


def run_workers(store: StudyStore, folder: Path, options: RunOptions, plan: WorkerPlan,
                should_stop: Callable[[], bool], stop_signal: Callable[[], int | None]) -> Iterator[Any]:
    """The open study `store` trained by `plan.count` worker processes on this machine, its runs
    in `folder`; yields its progress about once a second and passes a stop on to the workers."""
    folder.mkdir(parents=True, exist_ok=True)
    count = max(1, min(plan.count, len(store.queued())))  # an idle worker only waits
    yield WorkersStarted(count, plan.threads, tuple(plan.devices[:count]))
    logs = _open_logs(folder, count)
    env = {**os.environ, PARENT_ENV: str(os.getpid())}  # each worker stops when this process is gone
    procs = [subprocess.Popen(worker_command(store, options, plan, index), stdout=log, stderr=log, env=env,
                              stdin=subprocess.DEVNULL, start_new_session=True)  # our signals, not the terminal's
             for index, log in enumerate(logs)]
    workers = Workers(store, folder, procs, logs)
    try:
        yield from workers.watch(should_stop, stop_signal)
    finally:
        workers.shut_down()
    yield from workers.exits()
    if not workers.forwarded:
        yield from _left_queued(store)


def _open_logs(folder: Path, count: int) -> list[IO[bytes]]:
    """Every worker's log, before any worker starts: appended to on --resume, never through a link
    (symbolic or hard) planted there."""
    logs: list[IO[bytes]] = []
    for index in range(count):
        try:
            logs.append(os.fdopen(open_append(folder / f"worker-{index + 1}.log"), "ab"))
        except RunWriteError:
            for log in logs:
                log.close()
            raise
    return logs


class Workers:
    """The worker processes of one study, and what is said about their ends."""

    def __init__(self, store: StudyStore, folder: Path, procs: list[subprocess.Popen], logs: list[IO[bytes]]) -> None:
        self.store, self.folder, self.procs, self.logs = store, folder, procs, logs
        self.forwarded: float | bool = 0.0  # when a stop was passed on (true once one was)
        self.reported: set[int] = set()  # workers whose end was said

    def killed(self, p: subprocess.Popen) -> bool:
        """Ended by a signal that was no stop of ours: a kill or a crash, not a Ctrl-C passed on."""
        return p.returncode is not None and p.returncode < 0 and not (self.forwarded and -p.returncode in STOP_SIGNALS)

    def stopped_alone(self, p: subprocess.Popen) -> bool:
        """Stopped by a signal of its own (someone's SIGTERM), not one passed on: its run saved as stopped."""
        return not self.forwarded and p.returncode is not None and p.returncode - 128 in STOP_SIGNALS

    def exited(self, index: int) -> WorkerExited:
        log = self.folder / f"worker-{index + 1}.log"
        return WorkerExited(f"w{index + 1}", self.procs[index].returncode, _last_line(log))

    def watch(self, should_stop: Callable[[], bool], stop_signal: Callable[[], int | None]) -> Iterator[Any]:
        """The study's progress until every worker ended, or a stop passed on was not answered."""
        while True:
            alive = [p for p in self.procs if p.poll() is None]
            yield from self._ended(alive)
            yield WorkersProgress(self.store.name, tuple(safely(lambda: self.store.records(), ()) or ()), len(alive))
            if not alive:
                return
            if should_stop() and not self.forwarded:
                self.forwarded = time.monotonic()
                for p in alive:
                    with contextlib.suppress(ProcessLookupError):
                        p.send_signal(stop_signal() or signal.SIGINT)
            if self.forwarded and (time.monotonic() - self.forwarded > WORKER_STOP_S
                                   or all(process_paused(p.pid) for p in alive)):
                return  # a paused or hung worker cannot answer: killed by `shut_down`, its run left to --resume
            time.sleep(POLL_S)

    def _ended(self, alive: list[subprocess.Popen]) -> Iterator[WorkerExited]:
        for index, p in enumerate(self.procs):
            if (self.killed(p) or self.stopped_alone(p)) and index not in self.reported:
                self.reported.add(index)
                yield self.exited(index)
                if self.stopped_alone(p) and alive:
                    _requeue_stopped(self.store, f"w{index + 1}")  # for a live worker to continue

    def shut_down(self) -> None:
        """Stop the workers still running, wait for them (one grace in all, from the first stop
        passed on), kill those that do not end or are paused; close the logs."""
        deadline = (self.forwarded or time.monotonic()) + WORKER_STOP_S
        self.forwarded = self.forwarded or any(p.poll() is None for p in self.procs)  # the stop below is ours too
        for p in self.procs:
            if p.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    p.send_signal(signal.SIGINT)
        for p in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                if not process_paused(p.pid):
                    p.wait(timeout=max(0.1, deadline - time.monotonic()))
            if p.poll() is None:
                p.kill()
                p.wait()
        for log in self.logs:
            log.close()

    def exits(self) -> Iterator[WorkerExited]:
        """The abnormal ends not said while watching."""
        for index, p in enumerate(self.procs):
            if index not in self.reported and (p.returncode not in NORMAL_EXITS or self.stopped_alone(p)) and (
                    p.returncode >= 0 or self.killed(p)):
                yield self.exited(index)


def _left_queued(store: StudyStore) -> Iterator[RunCrashed]:
    """Runs queued again for a worker that had ended just before: left to --resume, and said so."""
    for trial in safely(store.queued, ()) or ():
        if trial.continues is not None:
            yield RunCrashed(str(trial.name or f"run {trial.run}"),
                             f"{trial.name}: stopped, and no worker was left to continue it; --resume continues it")


def _requeue_stopped(store: StudyStore, label: str) -> None:
    """Queue again the runs a worker saved as stopped when it was stopped on its own (not by a
    stop of the whole study), so that the live workers continue them."""
    for trial in safely(store.latest, ()) or ():
        if trial.worker == label and trial.status == ev.STOPPED:
            safely(lambda t=trial: store.requeue(t))


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(encoding="utf-8", errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no log"
    return lines[-1][-300:] if lines else "no output"
