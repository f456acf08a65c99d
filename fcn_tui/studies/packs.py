"""Training a pack of runs: several runs of one `pack_key` trained at once, each still a run.

    runs = [SingleRun(...), ...]                 # or the study runner's TrialRun
    for event in train_packs(runs, backend, should_stop):
        ...  # RunStarting per run, then Trained (its engine events, interleaved) and RunCrashed

The backend trains the pack (`backend.pack_trainer(members, split)`, else
`fcn_tui.backend.InterleavedPack`); this module gives every member its own folder
(`fcn_tui.runs.RunRecorder`: metrics per epoch, checkpoints by time, predictions, summary) and
hands each of its events to the run (`PackRun.on_event`, where a study's run reports to its
trial). A pack of one is a single run: there is one path.

- A run that ends (last epoch, diverged, pruned, stopped) leaves the pack; the others go on. With
  `refill`, the next compatible queued run (the runner claims it) takes its slot from the pack's
  next epoch, so a long queue keeps the pack full.
- A run whose folder cannot be written, or whose event the front end failed to show (the error
  thrown back into this generator), is failed and halted (its `should_stop` turns true); the
  others go on.
- A pack that does not fit in memory is split in two, down to single runs; one that cannot start
  (data, device, memory of a single run) fails each of its runs as bad input, leaving no folder.
- A checkpoint the engine refuses is dropped for that run alone (it starts afresh in a new folder).
- Interrupted (the consumer stops iterating, Ctrl-C as an exception): every unfinished run is saved
  `stopped` with its last epoch's checkpoint, so each continues exactly with `--resume`.

No UI imports; torch only through the backend.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from fcn_tui import events as ev
from fcn_tui.backend import InterleavedPack, Member, new_trainer
from fcn_tui.config import Config
from fcn_tui.errors import CheckpointError, MemoryCheckError
from fcn_tui.runs import RunRecorder, RunWriteError, mark_failed
from fcn_tui.studies.events import RunCrashed, RunStarting, Trained


class PackRun:
    """One run of a pack: its configuration, the checkpoint it continues from, its folder and how
    it ended. Subclasses say where its folder goes and tell a study's storage what happens."""

    def __init__(self, config: Config, position: int, total: int, state: dict | None = None,
                 continue_dir: Path | None = None, note: str = "") -> None:
        self.config, self.position, self.total = config, position, total
        self.state, self.continue_dir, self.note = state, continue_dir, note
        self.run_dir: Path | None = None
        self.recorder: RunRecorder | None = None
        self.status, self.error = ev.STOPPED, "interrupted before the run finished"
        self.halted = False  # left the pack before the engine ended it
        self.finished = False
        self.stop_check: Callable[[], bool] | None = None  # its own stop check, else the pack's

    @property
    def name(self) -> str:
        return self.config.name

    def new_dir(self) -> Path:
        """A fresh folder for the run (or the one it continues in)."""
        raise NotImplementedError

    def drop_checkpoint(self, reason: str) -> None:
        """The engine refused the checkpoint: the run starts afresh, in a new folder."""
        self.state = self.continue_dir = None
        self.note = f"cannot continue the earlier attempt ({reason}): a new folder"

    def should_prune(self) -> Callable[[], bool] | None:
        """The pruning check handed to the engine, or None when the run is never pruned."""
        return None

    def opened(self) -> None:
        """Its folder exists (a study's run names it to its trial)."""

    def on_event(self, event: ev.Event) -> list:
        """An engine event, after the folder has it (a study's run reports it to its trial); what
        to tell the front ends about it besides the event itself."""
        return []

    def conclude(self) -> None:
        """The run ended with `status` and `error` (a study's run tells its trial)."""

    def crashed(self, message: str, bad_input: bool = False):

        self.status, self.error, self.halted, self.finished = ev.FAILED, message, True, True
        self.conclude()
        return RunCrashed(self.name, message, self.run_dir, bad_input=bad_input)


# The next queued run that packs with this config, claimed (None: none), and what to say first
# (runs claimed on the way that need no training: finished here already, or not configurable).
Refill = Callable[[Config], "tuple[PackRun | None, list]"]


def train_packs(runs: list[PackRun], backend: Any, should_stop: Callable[[], bool],
                checkpoint_every_s: float | None = None, refill: Refill | None = None) -> Iterator[Any]:
    """Train `runs` (of one pack_key) as one pack, or as smaller ones where it does not fit."""
    if not runs:
        return
    try:
        pack = _start_pack(runs, backend, should_stop)
    except Exception as err:  # noqa: BLE001 - DataError, DeviceError, MemoryCheckError: no folder made
        if isinstance(err, MemoryCheckError) and len(runs) > 1:
            half = len(runs) // 2
            yield from train_packs(runs[:half], backend, should_stop, checkpoint_every_s, refill)
            yield from train_packs(runs[half:], backend, should_stop, checkpoint_every_s, refill)
            return
        for run in runs:
            yield run.crashed(str(err), bad_input=True)
        return
    yield from _train(pack, runs, should_stop, checkpoint_every_s, refill)


def _members(runs: list[PackRun], should_stop: Callable[[], bool]) -> list[Member]:
    return [Member(run.config, should_stop=lambda run=run: run.halted or (run.stop_check or should_stop)(),
                   should_prune=run.should_prune(), resume_from=run.state) for run in runs]


def new_pack(backend: Any, members: list[Member], split: Any) -> Any:
    """The backend's pack trainer; a backend without one packs by taking turns between lone trainers."""
    if hasattr(backend, "pack_trainer"):
        return backend.pack_trainer(members, split)
    return InterleavedPack(backend, members, split)


def _start_pack(runs: list[PackRun], backend: Any, should_stop: Callable[[], bool]) -> Any:
    """The pack trainer; a checkpoint the engine refuses is dropped for its own run alone."""
    split = backend.split(runs[0].config)
    try:
        return new_pack(backend, _members(runs, should_stop), split)
    except Exception as err:
        if not isinstance(err, CheckpointError):
            raise
    for run in runs:  # which run's checkpoint it was: each one tried alone
        if run.state is not None:
            try:
                new_trainer(backend, run.config, split, lambda: True, run.state)
            except Exception as err:
                if not isinstance(err, CheckpointError):
                    raise
                run.drop_checkpoint(str(err))
    return new_pack(backend, _members(runs, should_stop), split)


def _open_folders(runs: list[PackRun], checkpoint_every_s: float | None) -> Iterator[Any]:
    """Each run's folder and recorder, and its RunStarting; a run whose folder fails is halted."""

    for run in runs:
        try:
            run.run_dir = run.continue_dir or run.new_dir()
            run.recorder = RunRecorder(run.run_dir, run.config, continuing=run.state is not None,
                                       checkpoint_every_s=checkpoint_every_s)
        except RunWriteError as err:
            yield run.crashed(str(err))
            continue
        run.state = None  # a full copy of the weights: the engine has it now
        run.opened()
        yield RunStarting(run.position, run.total, run.name, run.run_dir, run.note)


def _train(pack: Any, runs: list[PackRun], should_stop: Callable[[], bool],
           checkpoint_every_s: float | None, refill: Refill | None = None) -> Iterator[Any]:

    yield from _open_folders(runs, checkpoint_every_s)
    stream = pack.events()
    try:
        for k, event in stream:
            run = runs[k]
            if not run.halted:
                yield from _deliver(run, event, pack.members[k])
            if isinstance(event, ev.RunFinished) and refill is not None:  # its slot is free
                yield from _take_slot(pack, runs, run.config, refill, should_stop, checkpoint_every_s)
    except Exception as err:  # noqa: BLE001 - a bug in the pack: its unfinished runs fail, the study goes on
        for run in runs:
            if not run.finished:
                yield _failed(run, f"{type(err).__name__}: {err}")
    finally:
        stream.close()
        for run in runs:
            if not run.finished:  # interrupted: saved as stopped, with its last epoch's checkpoint
                run.finished = True
                if run.recorder is not None:
                    run.recorder.fail(ev.STOPPED, run.error)
                run.conclude()


def _deliver(run: PackRun, event: ev.Event, member: Any) -> Iterator[Any]:
    """The event written to the run's folder, told to the run, then to the front end."""
    yield from _record(run, event, member)
    if run.halted:
        return
    try:
        yield Trained(event, run.position, run.total, run.run_dir)
    except Exception as err:  # noqa: BLE001 - thrown back by a front end that could not show it
        yield _failed(run, f"{type(err).__name__}: {err}")


def _take_slot(pack: Any, runs: list[PackRun], config: Config, refill: Refill, should_stop: Callable[[], bool],
               checkpoint_every_s: float | None) -> Iterator[Any]:
    """A run left the pack: the next compatible queued run joins it from its next epoch (a pack
    that has ended, or one of another backend, takes none)."""
    if should_stop() or not getattr(pack, "can_add", lambda _: False)(config):
        return
    run, said = refill(config)
    yield from said
    if run is None:
        return
    member = _members([run], should_stop)[0]
    try:
        index = pack.add(member)
    except CheckpointError as err:  # its checkpoint does not fit: it starts afresh, in a new folder
        run.drop_checkpoint(str(err))
        index = pack.add(_members([run], should_stop)[0])
    assert index == len(runs), "the pack numbers its members in the order they join"
    runs.append(run)
    yield from _open_folders([run], checkpoint_every_s)


def _record(run: PackRun, event: ev.Event, member: Any) -> list:
    """Write what `event` adds to the run's folder and tell the run; what to say besides the event
    (a RunCrashed, and the run halted, when its folder failed)."""
    try:
        model = member.model if isinstance(event, ev.RunFinished) else None
        run.recorder.record(event, model, getattr(member, "checkpoint", None))
    except RunWriteError as err:
        run.recorder.fail(ev.FAILED, str(err))
        return [run.crashed(str(err))]
    if isinstance(event, ev.RunFinished):
        run.status, run.error, run.finished = event.status, event.error, True
    told = run.on_event(event)
    if isinstance(event, ev.RunFinished):
        run.conclude()
    return told


def _failed(run: PackRun, error: str):
    """A run that broke outside the engine: marked failed in its folder and halted."""
    if run.recorder is not None:
        run.recorder.save_checkpoint()  # a failed run can be continued: from its last epoch
    if run.run_dir is not None:
        mark_failed(run.run_dir, error)
    return run.crashed(f"{run.name} failed: {error}")
