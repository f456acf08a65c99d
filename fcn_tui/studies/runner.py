"""The study runner: plan, claim, train and record runs. `fcn-tui run`, `fcn-tui worker` and the
app's training thread all drive it and only present the events it yields, so they lay out folders,
count runs and report numbers the same way.

    for event in run_presets(presets, backend, should_stop, RunOptions(out=Path("runs")), workers=plan):
        ...  # StudyOpened, RunStarting, Trained(engine event), RunSkipped, RunCrashed, Waiting, StudyFinished

- A preset without `[sweep]` or `[search]` is one run (a pack of one), written to `OUT/<time>-<name>/`
  (`--resume` continues or skips it by its configuration, `fcn_tui.studies.queue`).
- A preset with either is a study (`fcn_tui.studies.store`): its runs are trials of an Optuna
  study, queued once when the study is created. With the default storage the study is the folder
  `OUT/<time>-<name>/` (journal, `sweep.toml`, one folder per run, `results.csv`/`.md`); with
  `storage=URL` (PostgreSQL, SQLite) the runs this machine trains go to `OUT/<study name>/`.
- `work` is one worker: it takes over the runs of dead workers, claims queued runs and trains
  them until none is queued or running anywhere (it waits while other workers train, so it can
  take over theirs if they die). It claims a pack at a time: up to `RunOptions.pack` queued runs
  of one `pack_key` (search trials sampled together), trained at once (`fcn_tui.studies.packs`), each
  still a run with its own folder and trial. A claimed run continues from its checkpoint when its
  folder is on this host, else starts from epoch 1 in a new folder.
- `--resume` (`resume=True`) is driven by the storage: completed, diverged and pruned runs are
  skipped, runs still trained by a live worker are left to it, stopped, failed and incomplete
  ones are queued again (to continue from their checkpoint), and runs of a changed preset that
  the study does not have yet are added. Nothing is deleted.
- With a `WorkerPlan` of more than one worker, a study is trained by that many `fcn-tui worker`
  processes on this machine instead (`run_with_workers`, `fcn_tui.studies.workers`), and the
  runner yields its progress from the storage (`WorkersStarted`, `WorkersProgress`, `WorkerExited`).
- A run whose claim was taken over (its worker was paused or cut off) stops at its next check
  (`_fenced`); a storage away for longer than `store.OUTAGE_S` stops the run as `stopped`.

Everything it keeps in the storage goes through `StudyStore` (the only module that talks to
Optuna). No UI imports; torch only inside the functions that train.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fcn_tui import events as ev
from fcn_tui.config import Config, ConfigError, Preset, config_from_dict
from fcn_tui.errors import StudyError, StudyNotFound
from fcn_tui.runs import (
    STUDY_MANIFEST,
    RunBusy,
    RunRecord,
    RunWriteError,
    atomic_write_text,
    claim_run_folder,
    load_checkpoint,
    read_run,
    release_run_folder,
    slug,
    study_folder_name,
    timestamp,
    unique_dir,
)
from fcn_tui.studies.events import RunCrashed, RunSkipped, RunStarting, Trained
from fcn_tui.studies.options import RunOptions
from fcn_tui.studies.packs import PackRun, train_packs
from fcn_tui.studies.store import (
    JOURNAL,
    POLL_S,
    StoredRun,
    StudyStore,
    check_search_unchanged,
    config_key,
    describe,
    is_url,
    journal_path,
    safely,
    study_manifest,
)
from fcn_tui.studies.workers import WorkerExited, WorkerPlan, WorkersProgress, WorkersStarted, run_workers

CONTINUABLE = (ev.STOPPED, ev.INCOMPLETE, ev.FAILED)
FINISHED = (ev.COMPLETED, ev.DIVERGED, ev.PRUNED)


# --- what the runner yields ----------------------------------------------------------------------


@dataclass(frozen=True)
class StudyOpened:
    name: str
    folder: Path
    storage: str  # where the study is kept, for messages (a URL's password hidden)
    total: int  # runs in the study
    created: bool
    skipped: tuple[RunRecord, ...] = ()  # resume: runs already finished


@dataclass(frozen=True)
class Waiting:
    """No run is queued, and `running` runs are being trained by other workers."""

    running: int


@dataclass(frozen=True)
class RunTakenOver:
    """This worker's claim on a run lapsed (it was paused, or cut off from the storage) and another
    worker took the run over: this one stopped training it."""

    name: str
    run_dir: Path


@dataclass(frozen=True)
class StudyFinished:
    name: str
    folder: Path | None
    records: tuple[RunRecord, ...]
    preset: Preset
    results: tuple[Path, Path] | None = None  # results.csv and results.md
    error: str | None = None  # why the results could not be written


RunnerEvent = (StudyOpened | RunStarting | RunSkipped | Trained | RunCrashed | Waiting | WorkersProgress
               | WorkersStarted | RunTakenOver | WorkerExited | StudyFinished)


# --- entry points --------------------------------------------------------------------------------


def run_presets(presets: list[Preset], backend: Any, should_stop: Callable[[], bool], options: RunOptions,
                workers: WorkerPlan | None = None,
                stop_signal: Callable[[], int | None] = lambda: None) -> Iterator[RunnerEvent]:
    """Train every run of `presets`, study by study (`preset_runs`). Raises `StudyError` when a
    study cannot be opened."""
    for events in preset_runs(presets, backend, should_stop, options, workers, stop_signal):
        yield from events


def preset_runs(presets: list[Preset], backend: Any, should_stop: Callable[[], bool], options: RunOptions,
                workers: WorkerPlan | None = None,
                stop_signal: Callable[[], int | None] = lambda: None) -> Iterator[Iterator[RunnerEvent]]:
    """The events of each preset in turn, until `should_stop`: a single run or a study trained in
    this process, or a study trained by `workers.count` worker processes when that is more than
    one (`stop_signal`: the signal a stop is passed on to them as). One iterator per preset, so
    that a caller whose presentation of one fails can go on with the next."""
    singles = sum(1 for p in presets if not p.is_study)
    position = 0
    for preset in presets:
        if should_stop():
            return
        if preset.is_study and workers is not None and workers.count > 1:
            yield run_with_workers(preset, options, workers, should_stop, stop_signal)
        elif preset.is_study:
            yield run_study(preset, backend, should_stop, options)
        else:
            position += 1
            yield run_single(preset, position, singles, backend, should_stop, options)


def run_study(preset: Preset, backend: Any, should_stop: Callable[[], bool],
              options: RunOptions) -> Iterator[RunnerEvent]:
    """A sweep or search preset's study, trained by this process (one worker)."""
    store, folder, opened = open_study(preset, options)
    yield opened
    yield from work(store, folder, backend, should_stop, options)
    yield finish_study(store, folder)


def run_with_workers(preset: Preset, options: RunOptions, plan: WorkerPlan, should_stop: Callable[[], bool],
                     stop_signal: Callable[[], int | None]) -> Iterator[RunnerEvent]:
    """A sweep or search preset's study, trained by `plan.count` worker processes on this machine
    (`fcn_tui.studies.workers`); ends with `StudyFinished`."""
    store, folder, opened = open_study(preset, options)
    yield opened
    yield from run_workers(store, folder, options, plan, should_stop, stop_signal)
    yield finish_study(store, folder)


def open_study(preset: Preset, options: RunOptions) -> tuple[StudyStore, Path, StudyOpened]:
    """Create (or join, or with `resume` bring up to date) the study of a sweep or search preset."""
    name = options.study_name or preset.config.name
    out = Path(options.out)
    created = False
    skipped: list[RunRecord] = []
    if options.storage:
        spec = options.storage
        folder = runs_folder(spec, name, out)
        if options.resume:
            try:
                store = StudyStore.open(spec, name)
            except StudyNotFound:
                store, created = StudyStore.create_or_join(spec, name, preset)
            else:
                skipped = bring_up_to_date(store, preset)
        else:
            store, created = StudyStore.create_or_join(spec, name, preset)
    else:
        found = newest_study_folder(out, name) if options.resume else None
        if found is not None:
            folder = found
            store = StudyStore.open(folder)
            skipped = bring_up_to_date(store, preset)
        else:
            out.mkdir(parents=True, exist_ok=True)
            folder = unique_dir(out, f"{timestamp()}-{slug(name)}")
            atomic_write_text(folder / STUDY_MANIFEST, study_manifest(preset))
            store, created = StudyStore.create_or_join(folder, name, preset)
    total = store.count_runs()
    return store, folder, StudyOpened(name=name, folder=folder, storage=describe(store.spec), total=total,
                                      created=created, skipped=tuple(skipped))


def runs_folder(storage: str | Path, name: str, out: Path) -> Path:
    """Where this machine writes the runs of the study `name` kept in `storage`: `OUT/<study name>/`
    for a storage URL, else the study folder that holds the journal."""
    return Path(out) / study_folder_name(name) if is_url(storage) else journal_path(storage).parent


def newest_study_folder(out: Path, name: str) -> Path | None:
    """The newest study folder of `name` under OUT that holds a journal; never one reached
    through a link (that study is someone else's to resume)."""
    import tomllib

    if not out.is_dir():
        return None
    candidates = []
    for manifest in out.glob(f"*/{STUDY_MANIFEST}"):
        folder = manifest.parent
        if folder.is_symlink() or manifest.is_symlink() or not ((folder / JOURNAL).is_file() or (folder / JOURNAL).is_symlink()):
            continue
        try:
            if tomllib.loads(manifest.read_text(encoding="utf-8")).get("name") == name:
                candidates.append(folder)
        except (OSError, ValueError, RecursionError):  # not a manifest we wrote: not this study
            continue
    newest = max(candidates, default=None, key=lambda p: p.name)
    if newest is not None and (newest / JOURNAL).is_symlink():  # said, not passed over for a new study
        raise StudyError(f"{newest / JOURNAL}: is a link; a study's journal is never followed through one")
    return newest


def newest_study_folder_any(out: Path) -> Path | None:
    """The newest study folder (holding a journal) directly under OUT, of any preset."""
    if not Path(out).is_dir():
        return None
    found = [j.parent for j in Path(out).glob(f"*/{JOURNAL}") if not j.parent.is_symlink() and not j.is_symlink()]
    return max(found, default=None, key=lambda p: p.name)


def bring_up_to_date(store: StudyStore, preset: Preset) -> list[RunRecord]:
    """`--resume`: queue again what did not finish, add what the preset has and the study lacks;
    returns the runs that are already finished."""
    if preset.search is not None:
        check_search_unchanged(store.preset, preset)
    store.reclaim_dead()
    store.adopt(preset)
    skipped: list[RunRecord] = []

    def requeue_or_skip(trial: StoredRun) -> None:
        if trial.state in ("WAITING", "RUNNING"):
            return
        local = _local_record(trial)
        if trial.status in CONTINUABLE:
            store.requeue(trial)
        elif _here(trial) and (local is None or local.status == ev.UNREADABLE):
            # its folder here is damaged or is no run any more: kept as it is, the run again beside it
            store.requeue_beside(trial)
        else:
            skipped.append(local or store.record_of(trial))

    if preset.search is None:
        planned = {config_key(c) for c in preset.runs()}
        for trial in store.queued():  # queued for an earlier version of the preset
            if isinstance(trial.config, dict) and config_key(trial.config) not in planned:
                store.drop(trial.id)
        latest = store.latest()
        by_config = {config_key(t.config): t for t in latest if isinstance(t.config, dict)}
        next_run = max((t.run for t in latest), default=0) + 1
        for config in preset.runs():
            trial = by_config.get(config_key(config))
            if trial is None:  # new in this version of the preset (a changed run gets a new folder)
                store.enqueue(next_run, config, store.planned_params(config))
                next_run += 1
            else:
                requeue_or_skip(trial)
    else:
        trials = preset.search.trials
        for trial in store.queued():  # queued, past a lowered count of trials
            if isinstance(trial.run, int) and trial.run > trials:
                store.drop(trial.id)
        latest = store.latest()
        for trial in latest:
            if trial.run <= trials:  # the others are no runs of the preset: kept as they are
                requeue_or_skip(trial)
        for run in range(max((t.run for t in latest), default=0) + 1, trials + 1):
            store.enqueue(run, None)
    return skipped


def _here(trial: StoredRun) -> bool:
    """Whether the run's folder was on this host."""
    return bool(trial.run_dir) and trial.host == socket.gethostname()


def _local_record(trial: StoredRun) -> RunRecord | None:
    if not _here(trial) or Path(trial.run_dir).is_symlink():
        return None
    return read_run(Path(trial.run_dir))


def finish_study(store: StudyStore, folder: Path | None) -> StudyFinished:
    """The study's table of runs; `results.csv` and `results.md` written into its folder."""
    from fcn_tui.study import write_results

    records = tuple(store.records(local_only=True))
    results, error = None, None
    if folder is not None:
        try:
            folder.mkdir(parents=True, exist_ok=True)
            results = write_results(folder, list(records), store.name, store.preset)
        except (RunWriteError, OSError) as err:
            error = str(err)
    return StudyFinished(name=store.name, folder=folder, records=records, preset=store.preset,
                         results=results, error=error)


# --- one worker ----------------------------------------------------------------------------------


def work(store: StudyStore, folder: Path, backend: Any, should_stop: Callable[[], bool],
         options: RunOptions) -> Iterator[RunnerEvent]:
    """Claim and train runs of the study until none is queued or running anywhere: up to a pack of
    compatible queued runs at a time (`options.pack`), trained at once."""
    waiting_for = None
    while not should_stop():
        store.reclaim_dead()
        claimed = store.claim_many(lambda t: _queued_key(t, options), lambda t: _pack_limit(backend, store, t, options))
        if not claimed:
            busy = store.busy_elsewhere()
            if not busy:
                return
            if busy != waiting_for:
                waiting_for = busy
                yield Waiting(busy)
            deadline = time.monotonic() + POLL_S
            while time.monotonic() < deadline and not should_stop():
                time.sleep(0.1)
            continue
        waiting_for = None
        yield from train_claimed(store, claimed, folder, backend, should_stop, options)


def pack_key(config: Config) -> tuple:
    """Runs with equal keys may share a pack (`fcn_tui.engine.pack_key`: shapes, device, data, numerics)."""
    from fcn_tui.engine import pack_key as engine_pack_key  # torch: only in a process that trains

    return engine_pack_key(config)


def _on_device(config: Config, options: RunOptions) -> Config:
    return config.with_values({"train.device": options.device}, "--device") if options.device else config


def _queued_config(queued: StoredRun) -> Config | None:
    with contextlib.suppress(ConfigError, TypeError):
        if isinstance(queued.config, dict):
            return config_from_dict(queued.config, f"trial {queued.number}")
    return None


def _queued_key(queued: StoredRun, options: RunOptions) -> tuple:
    """Which queued runs a claim may pack together: by pack key; search trials not sampled yet
    together (they are grouped again once sampled); a run whose config cannot be read alone."""
    config = _queued_config(queued)
    if config is None:
        return ("not sampled",) if queued.config is None else ("unreadable", queued.number)
    try:
        return pack_key(_on_device(config, options))
    except ConfigError:
        return ("unreadable", queued.number)


def _pack_limit(backend: Any, store: StudyStore, queued: StoredRun, options: RunOptions) -> int:
    """How many runs a pack that begins with `queued` takes: `--pack N`, or the backend's `auto`."""
    if options.pack:
        return options.pack
    sizer = getattr(backend, "pack_size", None)
    if sizer is None:
        return 1
    try:
        return sizer(_on_device(_queued_config(queued) or store.preset.config, options))
    except Exception:  # noqa: BLE001 - a device that cannot be used: the run says so when it starts
        return 1


def train_claimed(store: StudyStore, claimed: list[StoredRun], folder: Path, backend: Any, should_stop: Callable[[], bool],
                  options: RunOptions) -> Iterator[RunnerEvent]:
    """Train claimed runs, those of one pack key as one pack; a run left untrained by a stop is
    told to the storage as stopped (`--resume` continues it)."""
    runs: list[TrialRun] = []
    try:
        total = safely(store.count_runs, 0)
        for queued in claimed:
            made = _claimed_run(store, queued, folder, should_stop, options, total)
            if isinstance(made, TrialRun):
                runs.append(made)
            else:
                yield from made
        groups: dict[tuple, list[TrialRun]] = {}
        for run in runs:
            groups.setdefault(pack_key(run.config), []).append(run)
        def refill(config: Config) -> tuple[TrialRun | None, list[RunnerEvent]]:
            run, said = _next_in_slot(store, config, folder, should_stop, options, total)
            if run is not None:
                runs.append(run)  # told to the storage as stopped if a stop comes before it starts
            return run, said

        for group in groups.values():
            if should_stop():
                break
            yield from train_packs(group, backend, should_stop, options.checkpoint_every_s, refill)
    finally:
        for run in runs:
            if not run.concluded:
                run.status, run.error = ev.STOPPED, "interrupted before the run started"
                run.conclude()


def _next_in_slot(store: StudyStore, config: Config, folder: Path, should_stop: Callable[[], bool],
                  options: RunOptions, total: int) -> tuple[TrialRun | None, list[RunnerEvent]]:
    """A run of the pack ended: the next queued run with its pack key, claimed for the free slot,
    and what to say about runs claimed on the way that need no training. Search trials not sampled
    yet are left to the next claim (their shapes are known only once sampled)."""
    said: list[RunnerEvent] = []
    while not should_stop():
        claimed = safely(lambda: store.claim_many(lambda t: _queued_key(t, options), like=pack_key(config)), [])
        if not claimed:
            break
        made = _claimed_run(store, claimed[0], folder, should_stop, options, total)
        if isinstance(made, TrialRun):
            return made, said
        said.extend(made)
    return None, said


def _claimed_run(store: StudyStore, claimed: StoredRun, folder: Path, should_stop: Callable[[], bool],
                 options: RunOptions, total: int) -> TrialRun | Iterable[RunnerEvent]:
    """A claimed trial made a run: who trains it, its configuration (sampled now for a search
    trial, the trials claimed with it already counted by the sampler), where it continues from;
    or what to say instead (it cannot be configured, or it finished here already)."""
    store.take(claimed, options.worker_label)
    fenced_stop, holds = _fenced(store, claimed.id, should_stop)
    run = claimed.run
    try:
        config = _on_device(store.configure(claimed.id, _queued_config(claimed)), options)
    except (ConfigError, ValueError) as err:
        _conclude(store, claimed.id, ev.FAILED, {"error": str(err)})
        return [RunCrashed(claimed.name or f"run {run}", str(err))]
    store.mark_running(claimed.id, config)
    if (done := _finished_here(claimed, config, folder)) is not None:
        return _record_finished(store, claimed.id, done, run, max(total, run))
    continue_dir, state, note = _continuation(claimed, config, folder)
    return TrialRun(store, claimed.id, config, run, max(total, run), folder, state, continue_dir, note,
                    fenced_stop, holds)


class TrialRun(PackRun):
    """A study's run in a pack: its folder in the study's, each epoch reported to its Optuna trial
    (and the pruner asked), its end told to the trial; its heartbeat recorded while it is claimed,
    and its claim checked (`_fenced`): a run another worker took over stops and reports no more."""

    def __init__(self, store: StudyStore, trial_id: int, config: Config, run: int, total: int, folder: Path,
                 state: dict | None, continue_dir: Path | None, note: str,
                 fenced_stop: Callable[[], bool], holds: Callable[[bool], bool]) -> None:
        super().__init__(config, run, total, state, continue_dir, note)
        self.store, self.trial_id, self.folder = store, trial_id, folder
        self.stop_check, self.holds = fenced_stop, holds
        self.pruning = store.preset.search is not None and store.preset.search.pruner != "none"
        self.pruned = self.concluded = self.taken_over = False
        self.stop_heartbeat = store.heartbeat(trial_id)

    def new_dir(self) -> Path:
        return unique_dir(self.folder, f"{self.position:03d}-{slug(self.config.name)}")

    def drop_checkpoint(self, reason: str) -> None:
        name = self.continue_dir.name if self.continue_dir else "the earlier attempt"
        super().drop_checkpoint(reason)
        self.note = f"cannot continue {name} ({reason}): a new folder"

    def should_prune(self) -> Callable[[], bool] | None:
        return (lambda: self.pruned) if self.pruning else None

    def opened(self) -> None:
        self.store.set_run_dir(self.trial_id, self.run_dir)

    def on_event(self, event: ev.Event) -> list:
        if isinstance(event, ev.RunStarted) and event.previous_epochs:  # told on the console too
            self.store.continued(self.trial_id, len(event.previous_epochs))
        elif isinstance(event, ev.EpochEnded) and not self.holds(True):  # another worker has the run now
            if not self.taken_over:
                self.taken_over = True
                return [RunTakenOver(self.name, self.run_dir)]
        elif isinstance(event, ev.EpochEnded):
            self.store.report_epoch(self.trial_id, event.epoch, event.val_acc)
            if self.pruning and event.epoch < event.epochs:
                self.pruned = self.store.should_prune(self.trial_id)
        return []

    def conclude(self) -> None:
        if self.concluded:
            return
        self.concluded = True
        record = read_run(self.run_dir) if self.run_dir is not None else None
        metrics = {k: record.get(k) for k in SUMMARY_KEYS} if record is not None else {}
        metrics["error"] = self.error
        try:
            _conclude(self.store, self.trial_id, self.status, metrics)
        finally:
            self.stop_heartbeat()


FENCE_S = 2.0  # how often a training run asks whether its claim still stands (one small read)


def _fenced(store: StudyStore, trial_id: int, should_stop: Callable[[], bool]):
    """`should_stop` that is also true once the storage is lost (`StorageLost`: the run is saved
    as stopped) or the claim was taken over by another worker (asked every `FENCE_S` between
    batches, so a worker resumed after a pause stops within a batch); and the check itself,
    which answers True while the claim stands."""
    held = [True, time.monotonic()]

    def holds(now: bool = False) -> bool:
        if held[0] and (now or time.monotonic() - held[1] >= FENCE_S):
            held[:] = [store.still_holds(trial_id), time.monotonic()]
        return held[0]

    def stop() -> bool:
        return should_stop() or store.lost is not None or not holds()

    return stop, holds


def _finished_here(claimed: StoredRun, config: Config, folder: Path) -> RunRecord | None:
    """The run's folder here when it already finished (completed, diverged, pruned) though the
    storage never heard it (the storage was away when it ended): recorded, never trained again."""
    earlier = claimed.continue_dir
    if not earlier or claimed.continue_host != socket.gethostname():
        return None
    path = Path(earlier)
    if os.path.abspath(path.parent) != os.path.abspath(folder):
        path = folder / path.name
    record = None if path.is_symlink() or not path.is_dir() else read_run(path)
    if record is None or record.config is None or config_key(record.config) != config_key(config):
        return None
    return record if record.status in FINISHED else None


def _record_finished(store: StudyStore, trial_id: int, record: RunRecord, run: int,
                     total: int) -> Iterator[RunnerEvent]:
    store.record_finished(trial_id, record)
    _conclude(store, trial_id, record.status, {k: record.get(k) for k in SUMMARY_KEYS} | {"error": record.get("error")})
    yield RunSkipped(run, total, record.name, record.path)


SUMMARY_KEYS = ("epochs_completed", "train_loss", "val_loss", "val_acc", "best_val_acc", "test_loss", "test_acc",
                "wall_s", "samples_per_s", "device")


def _conclude(store: StudyStore, trial_id: int, status: str, metrics: dict[str, Any]) -> None:
    """Record a run's end in the storage: its status and numbers, and the trial's state."""
    store.conclude(trial_id, status, metrics)


def _continuation(claimed: StoredRun, config: Config, folder: Path) -> tuple[Path | None, dict | None, str]:
    """The folder and checkpoint a re-queued run continues from, or (None, None, why not).

    Only a folder in `folder`, where this worker writes the study's runs: the storage names the
    run's folder where it was trained, which for a study folder that was copied (or moved) is the
    original's, another study's run to leave alone; the copy's own folder of that name is continued."""
    earlier = claimed.continue_dir
    if not earlier:
        return None, None, ""
    path = Path(earlier)
    if os.path.abspath(path.parent) != os.path.abspath(folder):
        path = folder / path.name
    if claimed.continue_host != socket.gethostname():
        return None, None, f"its earlier attempt is on {claimed.continue_host}: a new folder"
    if path.is_symlink() or not path.is_dir():
        return None, None, f"{path.name} is gone or is a link: a new folder"
    record = read_run(path)
    if record is None or record.config is None or config_key(record.config) != config_key(config):
        return None, None, f"{path.name} holds another run: a new folder"
    if record.status not in CONTINUABLE:
        return None, None, f"{path.name} is {record.status}: a new folder"
    state, reason = load_checkpoint(path)
    if state is None:
        return None, None, f"{path.name} has no usable checkpoint ({reason}): a new folder"
    return path, state, ""


# --- single runs (no study) -----------------------------------------------------------------------


def run_single(preset: Preset, position: int, total: int, backend: Any, should_stop: Callable[[], bool],
               options: RunOptions) -> Iterator[RunnerEvent]:
    """A preset of one run: trained (a pack of one) into `OUT/<time>-<name>/`, or skipped /
    continued by `resume`."""
    from fcn_tui.studies.queue import plan

    planned = plan([preset], Path(options.out), resume=options.resume)[0].runs[0]
    config = planned.config
    if options.device:
        config = config.with_values({"train.device": options.device}, "--device")
        planned.config = config
    if planned.skip:
        yield RunSkipped(position, total, config.name, planned.run_dir)
        return
    claim, instead = _claim_earlier_attempt(planned, position, total)
    if instead is not None:
        yield instead
        return
    try:
        state, cannot = _checkpoint_of(planned)
        note = f"cannot continue the earlier attempt ({cannot}): a new folder" if cannot else ""
        yield from train_packs([SingleRun(planned, position, total, state, note)], backend, should_stop,
                               options.checkpoint_every_s)
    finally:
        release_run_folder(claim)


def _claim_earlier_attempt(planned, position: int, total: int) -> tuple[int | None, RunnerEvent | None]:
    """Claim the folder a resumed single run continues, so that two `--resume` at once never train
    it twice: (the claim, None) to go on, or (None, what to say instead) when another live process
    trains it or it completed meanwhile."""
    folder, name = planned.continue_dir, planned.config.name
    if folder is None:
        return None, None
    try:
        claim = claim_run_folder(folder)
    except RunBusy as err:
        return None, RunCrashed(name, f"{name}: not started twice: {err}")
    except RunWriteError as err:
        return None, RunCrashed(name, str(err))
    record = read_run(folder)  # as it is now that this process holds it
    if record is not None and record.status == ev.COMPLETED:
        release_run_folder(claim)
        return None, RunSkipped(position, total, name, folder)
    if record is not None and record.status == ev.RUNNING:  # a process that took no claim trains it
        release_run_folder(claim)
        holder = f"pid {record.get('pid')} on {record.get('host')}"
        return None, RunCrashed(name, f"{name}: not started twice: {folder} is being trained by {holder}")
    return claim, None


class SingleRun(PackRun):
    """A run of its own (no study): its folder planned by `fcn_tui.studies.queue`."""

    def __init__(self, planned, position: int, total: int, state: dict | None, note: str) -> None:
        super().__init__(planned.config, position, total, state, None, note)
        self.planned = planned

    def new_dir(self) -> Path:
        return self.planned.make_dir()  # the earlier attempt's folder, when it continues

    def drop_checkpoint(self, reason: str) -> None:
        super().drop_checkpoint(reason)
        self.planned.continue_dir = None


def _checkpoint_of(planned) -> tuple[dict | None, str]:
    if planned.continue_dir is None:
        return None, ""
    state, reason = load_checkpoint(planned.continue_dir)
    if state is None:
        planned.continue_dir = None
    return state, reason
