"""Studies in Optuna storage: where they live, how their runs are queued, claimed and read back.

A study is an Optuna study (direction: maximise validation accuracy). Each run is a trial:

- its user attributes hold `run` (the run's 1-based number in the study), `name`, `config` (the
  full configuration as a dict), and once claimed `host`, `pid`, `worker`, `run_dir` (a folder on
  that host), `status` (`running`, then the run's final status), `epoch`/`epochs` and `metrics`
  (the final numbers of `summary.json`);
- its intermediate values are the per-epoch validation accuracy, its value the final one;
- its params are the swept and searched settings (choices that are lists, such as
  `model.hidden`, appear as their TOML text), so Optuna's samplers, pruners and importance
  plots see them.

Storage (`open_storage`): a folder or a file path is Optuna's file journal (`study.journal` in
the study folder: no server, safe for several processes on one machine); `postgresql://...`
(through psycopg) and `sqlite:///...` are `RDBStorage` with a heartbeat.

Claiming (`StudyStore.claim`, `claim_many` for a pack of compatible runs): every run is enqueued once as a WAITING trial when the study is
created, and a worker claims one by moving it to RUNNING with `set_trial_state_values`, which the
storage grants to exactly one caller (the journal decides by the order of its log, PostgreSQL by
a row lock). No trial is ever created by `ask()`, so however many workers join, and whenever,
each planned run is trained once.

A run whose worker died is failed and enqueued again with `continue_dir` (its folder, to
continue from its checkpoint) by whichever worker first sees it: on this host when the worker's
process is gone or paused (`host` and `pid`; a paused one's run starts again in a new folder, since
that process could go on writing into its own), elsewhere when its heartbeat (RDB) is older than
`GRACE_S`. An RDB storage rides out an outage of up to `OUTAGE_S` (`PatientRDBStorage`).
The move RUNNING -> FAIL, like the claim, succeeds for one caller only, so a run is re-enqueued
once. A trial that ended FAIL with status still `running` is a run that was `incomplete`.

The runner and the figures use the store's plain doors only: `StoredRun` records (`latest`,
`queued`, `claim_many`), trial ids for a claimed run's life (`take`, `configure`, `mark_running`,
`report_epoch`, `should_prune`, `conclude`, `heartbeat`, `still_holds`), `history` and
`param_importances`. No other module of the package imports optuna, and the attribute names
above are written and read here alone. Imports no torch and nothing of the UI.
"""

from __future__ import annotations

import contextlib
import errno
import os
import random
import re
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, FloatDistribution, IntDistribution
from optuna.exceptions import DuplicatedStudyError, UpdateFinishedTrialError
from optuna.storages.journal import JournalFileBackend, JournalStorage
from optuna.storages.journal._file import get_lock_file
from optuna.trial import FrozenTrial, TrialState

from fcn_tui import events as ev
from fcn_tui import runs
from fcn_tui.config import (
    Config,
    ConfigError,
    Preset,
    config_from_dict,
    config_to_dict,
    format_value,
    preset_from_text,
    preset_to_toml,
)
from fcn_tui.errors import StorageLost, StudyError, StudyNotFound
from fcn_tui.formatting import QUEUED, short_value
from fcn_tui.runs import RunRecord, read_run

JOURNAL = "study.journal"
POLL_S = 1.0  # how often an idle worker, or the parent of several, looks at the storage
HEARTBEAT_S = 10  # how often a training worker tells an RDB storage it is alive
GRACE_S = 60  # a run whose worker was silent this long is taken over (6 missed heartbeats)
SCHEMA_TRIES = 5  # attempts at creating Optuna's tables when other workers create them at the same time
CLAIM_GRACE_S = 120  # a claimed run whose worker never wrote its host and pid is taken over after this
FOREIGN_WAIT_S = 5  # a new study gets its preset within milliseconds of being created
PLAN_WAIT_S = 60  # a worker joining a study being created waits this long for its runs
PLAN_STALL_S = 10  # its creator queues a run every few milliseconds: this long without one, it stopped
DROPPED = "dropped"  # a queued run that `--resume` with a changed preset took out of the study
ANY_KEY = object()  # `claim_many(like=...)` left out: the first claimable run sets the pack's key
MAX_NAME = 512  # characters of a study name that Optuna's RDB storage keeps
RECORD_START = b'{"op_code":'  # how every line of an Optuna journal begins
RDB_SCHEMES = ("postgresql://", "postgres://", "postgresql+psycopg://", "sqlite:///")
# A server restart or a network blip takes seconds: a storage call is retried this long (with
# back-off) before the worker gives its run up; shorter than GRACE_S, so a worker gives up
# before its silent run could be handed to another worker.
OUTAGE_S = 45
OUTAGE_BACKOFF_S = (0.5, 8.0)  # first and longest pause between two tries during an outage

optuna.logging.set_verbosity(optuna.logging.WARNING)  # our own lines say what happens
# heartbeats and fail_stale_trials are marked experimental; they are what we rely on, on purpose
warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def check_study_name(name: str) -> None:
    """A study name every storage keeps and every message shows on one line."""
    if not name.strip() or not name.isprintable():
        raise StudyError(f"study name {name!r}: expected a name of printable text")
    if len(name) > MAX_NAME:
        raise StudyError(f"study name {name[:40]!r}...: {len(name):,} characters, more than {MAX_NAME}")


def is_url(spec: str | Path) -> bool:
    return str(spec).startswith(RDB_SCHEMES)


def describe(spec: str | Path) -> str:
    """The storage for messages, its password hidden."""
    if not is_url(spec):
        return str(spec)
    if _at_in_password(spec):  # SQLAlchemy would show the part after the '@'
        scheme, _, rest = _sqlalchemy_url(str(spec)).partition("://")
        return f"{scheme}://{re.split('[:@]', rest)[0]}:***@{rest.rpartition('@')[2]}"
    try:
        from sqlalchemy.engine import make_url

        return make_url(_sqlalchemy_url(str(spec))).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - a malformed URL is reported when it is opened
        return str(spec).split("@")[-1]


def _at_in_password(url: str | Path) -> bool:
    """Whether the URL's user name or password holds an unescaped '@' (its server part has two)."""
    return re.split(r"[/?#]", str(url).partition("://")[2])[0].count("@") > 1


def _sqlalchemy_url(url: str) -> str:
    for plain in ("postgresql://", "postgres://"):
        if url.startswith(plain):  # psycopg 3, the driver we install, not SQLAlchemy's default psycopg2
            return "postgresql+psycopg://" + url[len(plain):]
    return url


def journal_path(spec: str | Path) -> Path:
    """The journal file of a study folder (or the file itself)."""
    path = Path(spec)
    return path / JOURNAL if path.is_dir() or not path.suffix else path


def open_storage(spec: str | Path, on_stale: Callable[[optuna.Study, FrozenTrial], None] | None = None,
                 create: bool = False) -> optuna.storages.BaseStorage:
    """Optuna storage for a URL (`postgresql://`, `sqlite:///`) or a study folder / journal file.

    A journal that does not exist is an error unless `create`; a server that cannot be reached,
    or a missing driver, is a `StudyError` with the reason."""
    if is_url(spec):
        if str(spec).startswith("sqlite:///") and str(spec)[len("sqlite:///"):].split("?")[0] in ("", ":memory:"):
            # SQLite's in-memory database: the study would vanish with the process, unseen by any worker
            raise StudyError(f"{spec}: name a database file, e.g. sqlite:///study.db")
        if not create and str(spec).startswith("sqlite:///") and not _sqlite_file(str(spec)).exists():
            # opening would create an empty database where the user only meant to read one
            raise StudyNotFound(f"{describe(spec)}: no study here (no file {_sqlite_file(str(spec))})")
        if _at_in_password(spec):
            # the server would be looked up by the password's end, which its error message then shows
            raise StudyError(f"{describe(spec)}: its user name or password holds an '@'; write it as %40")
        for attempt in range(SCHEMA_TRIES):
            try:
                return PatientRDBStorage(
                    describe(spec), _sqlalchemy_url(str(spec)),
                    engine_kwargs={"pool_pre_ping": True},  # a dropped connection is reopened, not an error
                    heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S,
                    heartbeat_stale_trial_callback=on_stale,
                )
            except ImportError as err:
                raise StudyError(f"{describe(spec)}: needs the psycopg driver ({err}); pip install 'psycopg[binary]'") from None
            except Exception as err:  # noqa: BLE001 - sqlalchemy's OperationalError, ArgumentError, ...
                from sqlalchemy.exc import IntegrityError, ProgrammingError  # loaded: the storage uses it
                reason = str(getattr(err, "orig", None) or err).strip().splitlines()
                if isinstance(err, (IntegrityError, ProgrammingError)) and attempt + 1 < SCHEMA_TRIES:
                    # several machines creating Optuna's tables in an empty database at the same moment:
                    # one wins, the others find the tables made on their next try
                    time.sleep(0.2 + random.random() * (attempt + 1))
                    continue
                raise StudyError(f"cannot open {describe(spec)}: {reason[0] if reason else type(err).__name__}") from None
    if "://" in str(spec):
        raise StudyError(f"{spec}: unsupported storage; use a study folder, postgresql://... or sqlite:///...")
    path = journal_path(spec)
    if not create and not path.is_file():
        raise StudyNotFound(f"{spec}: no study here (no {JOURNAL})")
    if path.is_symlink():
        raise StudyError(f"{path}: is a link; open the study folder it points to")
    try:
        with contextlib.suppress(FileNotFoundError), os.fdopen(_open_journal(str(path), os.O_RDONLY), "rb") as f:
            start = f.read(len(RECORD_START))
            if start and start != RECORD_START:  # someone's file, never to be appended to
                hint = "; for SQLite give sqlite:///FILE" if start.startswith(b"SQLite") else ""
                raise StudyError(f"{path}: not a study journal{hint}")
        return JournalStorage(Journal(str(path)))
    except StudyError:
        raise
    except OSError as err:
        raise StudyError(f"{path}: cannot open the journal ({err.strerror or err})") from None
    except Exception as err:  # noqa: BLE001 - replaying it: a line that is no JSON, a record Optuna never wrote
        reason = " ".join(f"{type(err).__name__}: {err}".split())[:200]
        raise StudyError(f"{path}: damaged, not a journal fcn-tui can read ({reason})") from None


def check_storage(spec: str | Path) -> None:
    """`open_storage(spec, create=True)` as `run` checks it before anything is made: a server is
    reached and a file that exists is read, but a journal or SQLite file that does not exist yet is
    not created (bad input found next must leave nothing behind), only its folder checked."""
    text = str(spec)
    if text.startswith("sqlite:///"):
        file = _sqlite_file(text)
    else:
        file = None if "://" in text else journal_path(spec)
    if file is None or file.name in ("", ":memory:") or file.exists() or file.is_symlink():
        open_storage(spec, create=True)
    elif not file.parent.is_dir() or not os.access(file.parent, os.W_OK | os.X_OK):
        raise StudyError(f"{describe(spec)}: cannot create {file} (its folder is missing or not writable)")


def _sqlite_file(url: str) -> Path:
    return Path(url[len("sqlite:///"):].split("?")[0])


def is_outage(err: BaseException) -> bool:
    """Whether a storage error is the server or the network away (worth waiting out), not a
    refused or invalid request: SQLAlchemy's OperationalError / InterfaceError, which Optuna
    wraps in a StorageInternalError that speaks of "exceeding max length"."""
    from sqlalchemy import exc

    seen = 0
    while err is not None and seen < 10:
        if isinstance(err, (exc.OperationalError, exc.InterfaceError, exc.DisconnectionError)):
            return True
        if isinstance(err, exc.DBAPIError) and err.connection_invalidated:
            return True
        err, seen = err.__cause__ or err.__context__, seen + 1
    return False


def _reason(err: BaseException) -> str:
    while err.__cause__ is not None:
        err = err.__cause__
    lines = str(getattr(err, "orig", None) or err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


class PatientRDBStorage(optuna.storages.RDBStorage):
    """Optuna's RDB storage that rides out an outage: each call that fails because the server
    cannot be reached is tried again with back-off for `OUTAGE_S` seconds, then raises
    `StorageLost` with a line that says so. From then on (`lost` set) calls are tried once, so a
    worker that gives up is not held `OUTAGE_S` again by each of its last writes."""

    # calls that are safe to repeat: a read, a value set again, a state move (refused if done)
    RETRIED = ("get_all_studies", "get_study_id_from_name", "get_study_name_from_id", "get_study_directions",
               "get_study_user_attrs", "get_study_system_attrs", "set_study_user_attr", "set_study_system_attr",
               "get_trial", "get_all_trials", "get_trial_user_attrs", "get_trial_system_attrs", "get_trial_param",
               "get_trial_id_from_study_id_trial_number", "get_best_trial", "set_trial_param",
               "set_trial_state_values", "set_trial_intermediate_value", "set_trial_user_attr",
               "set_trial_system_attr", "record_heartbeat", "_get_stale_trial_ids", "get_n_trials",
               "_get_trials", "_get_best_trial_id", "_set_trial_param")  # the last three: Optuna's cache calls them

    def __init__(self, shown: str, *args: Any, **kwargs: Any) -> None:
        self.shown = shown
        self.lost: str | None = None
        super().__init__(*args, **kwargs)

    def patiently(self, name: str, call: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + (OUTAGE_S if self.lost is None and name in self.RETRIED else 0)
        pause = OUTAGE_BACKOFF_S[0]
        while True:
            try:
                return call()
            except Exception as err:
                if not is_outage(err):
                    raise
                left = deadline - time.monotonic()
                if left <= 0:
                    waited = f" for {OUTAGE_S} s" if name in self.RETRIED else ""
                    self.lost = f"lost the connection to {self.shown}{waited} ({_reason(err)})"
                    raise StorageLost(self.lost) from None
                time.sleep(min(pause, left))
                pause = min(2 * pause, OUTAGE_BACKOFF_S[1])


def _patient(name: str) -> Callable[..., Any]:
    def method(self: PatientRDBStorage, *args: Any, **kwargs: Any) -> Any:
        return self.patiently(name, lambda: getattr(optuna.storages.RDBStorage, name)(self, *args, **kwargs))

    method.__name__ = name
    return method


for _name in (*PatientRDBStorage.RETRIED, "create_new_study", "create_new_trial", "_create_new_trial", "delete_study"):
    if hasattr(optuna.storages.RDBStorage, _name):
        setattr(PatientRDBStorage, _name, _patient(_name))


class Journal(JournalFileBackend):
    """Optuna's journal file, except that a record is never appended to a cut-off one, and that a
    link planted at the journal (symbolic, or a hard link to a file elsewhere) is never followed.

    A write cut short (a full disk, a power loss) leaves a last line without its newline. Optuna's
    reader ignores such a line, but its writer appends the next record right after it, and that
    line, no longer the last, makes every later read fail: the whole study would be unreadable.
    So the cut-off tail, which no reader ever applied, is removed first, under the journal's lock
    (no other writer is midway).

    The journal is created and appended to through `O_NOFOLLOW` opens that also refuse a file of
    several hard links, and checked for a link right before each read (Optuna's reader opens the
    path itself): a link swapped in mid-study is a `StudyError`, never a write outside the folder."""

    def __init__(self, file_path: str) -> None:
        os.close(_open_journal(file_path, os.O_WRONLY | os.O_CREAT))  # Optuna's own create would follow a link
        super().__init__(file_path)

    def read_logs(self, log_number_from: int) -> Any:
        """Optuna's reader, whose errors (a JSONDecodeError, a FileNotFoundError) say what
        happened to the journal."""
        try:
            os.close(_open_journal(self._file_path, os.O_RDONLY))  # a link swapped in is refused, not read
            yield from super().read_logs(log_number_from)
        except FileNotFoundError:
            raise StudyError(self._gone()) from None
        except ValueError as err:  # JSONDecodeError, "Invalid log format": a line no writer made
            reason = " ".join(f"{type(err).__name__}: {err}".split())[:200]
            raise StudyError(f"{self._file_path}: damaged, not a journal fcn-tui can read ({reason})") from None

    def _gone(self) -> str:
        return f"{self._file_path}: the study's journal is gone (deleted or moved while it was in use)"

    def append_logs(self, logs: list[dict[str, Any]]) -> None:
        try:
            self._append(logs)
        except FileNotFoundError:
            raise StudyError(self._gone()) from None

    def _append(self, logs: list[dict[str, Any]]) -> None:
        import json

        text = "".join(json.dumps(log, separators=(",", ":")) + "\n" for log in logs)
        with get_lock_file(self._lock), os.fdopen(_open_journal(self._file_path, os.O_RDWR), "rb+") as f:
            keep = end = f.seek(0, os.SEEK_END)
            while keep > 0:  # back to just after the last newline
                start = max(0, keep - 65536)
                f.seek(start)
                newline = f.read(keep - start).rfind(b"\n")
                if newline >= 0:
                    keep = start + newline + 1
                    break
                keep = start
            f.seek(keep)
            if keep != end and f.read(len(RECORD_START)) == RECORD_START:  # only a record of ours
                f.truncate(keep)
            else:
                keep = end
            f.seek(keep)
            f.write(text.encode("utf-8"))
            f.flush()
            os.fsync(f.fileno())


def _open_journal(path: str, flags: int) -> int:
    """A descriptor of the journal, never through a link: StudyError for a symbolic link or a file
    with more than one hard link (a name of a file elsewhere)."""
    try:
        fd = os.open(path, flags | runs.O_NOFOLLOW, runs.FILE_MODE)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise StudyError(f"{path}: is a link; a study's journal is never followed through one") from None
        raise
    if os.fstat(fd).st_nlink > 1:
        os.close(fd)
        raise StudyError(f"{path}: has another hard link; a study's journal is never written through one")
    return fd


# --- params: the swept and searched settings as Optuna distributions --------------------------


def choice_label(value: Any) -> Any:
    """A setting's value as an Optuna categorical choice: lists (`model.hidden`) as TOML text."""
    if isinstance(value, (list, tuple)):
        return format_value(list(value))
    return value


def distributions(preset: Preset) -> dict[str, tuple[BaseDistribution, dict[Any, Any]]]:
    """Each swept or searched key's distribution, with the map from choice label back to value."""
    out: dict[str, tuple[BaseDistribution, dict[Any, Any]]] = {}
    for key, values in preset.sweep:
        labels = {choice_label(v): v for v in values}
        out[key] = (CategoricalDistribution(list(labels)), labels)
    for p in preset.search.params if preset.search else ():
        if p.kind == "choice":
            labels = {choice_label(v): v for v in p.choices}
            out[p.key] = (CategoricalDistribution(list(labels)), labels)
        elif p.kind == "int":
            out[p.key] = (IntDistribution(p.low, p.high, log=p.log), {})
        else:
            out[p.key] = (FloatDistribution(p.low, p.high, log=p.log), {})
    return out


def suggest(trial: optuna.Trial, preset: Preset, config: Config | None) -> Config:
    """The trial's configuration. A planned or continued run (`config` given) records its values
    as the trial's params; a new search trial samples them and is named after them."""
    values: dict[str, Any] = {}
    for key, (dist, labels) in distributions(preset).items():
        if config is not None:
            label = choice_label(config.get(key))
            if isinstance(dist, CategoricalDistribution) and label not in dist.choices:
                continue  # planned under an earlier version of the preset: nothing to record
            if not isinstance(dist, CategoricalDistribution) and not dist.low <= label <= dist.high:
                continue
        if isinstance(dist, CategoricalDistribution):
            try:
                raw = trial.suggest_categorical(key, dist.choices)
            except ValueError:  # the list grew since earlier trials, which Optuna refuses to record:
                if config is None:  # the run keeps its planned value, unrecorded; a sampled one cannot
                    raise
                continue
        elif isinstance(dist, IntDistribution):
            raw = trial.suggest_int(key, dist.low, dist.high, log=dist.log)
        else:
            raw = trial.suggest_float(key, dist.low, dist.high, log=dist.log)
        values[key] = labels.get(raw, raw) if labels else raw
    if config is not None:
        return config
    # named by its sampled values alone, as grid runs are by theirs
    name = ",".join(f"{k}={short_value(v)}" for k, v in values.items()) or preset.config.name
    return preset.config.with_values({**values, "name": name}, f"trial {trial.number}")


def check_search_unchanged(before: Preset, now: Preset) -> None:
    """Optuna samples a searched setting only with the distribution it began with: a list of
    choices that changed, or a range that became a list, would fail every new trial."""
    earlier = distributions(before)
    for key, (dist, _) in distributions(now).items():
        if key not in earlier:
            continue
        old = earlier[key][0]
        if type(old) is not type(dist) or (isinstance(dist, CategoricalDistribution) and old.choices != dist.choices):
            raise StudyError(f"search.{key}: changed since the study began ({_shown(old)} -> {_shown(dist)}), "
                             "which Optuna cannot search; start a new study (without --resume, or another --study)")


def _shown(dist: BaseDistribution) -> str:
    if isinstance(dist, CategoricalDistribution):
        return "[" + ", ".join(str(c) for c in dist.choices) + "]"
    return f"{dist.low} to {dist.high}{' (log)' if dist.log else ''}"


def make_sampler(preset: Preset, trial_number: int) -> optuna.samplers.BaseSampler:
    """The sampler for one trial, seeded from the preset's seed and the trial's number: the same
    history gives the same suggestion, and workers sampling at the same moment differ."""
    seed = (preset.config.train.seed * 1_000_003 + trial_number) % 2**32
    if preset.search is not None and preset.search.sampler == "tpe":
        # constant_liar: trials sampled while others run (a pack's, other workers') spread out
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    return optuna.samplers.RandomSampler(seed=seed)


def make_pruner(preset: Preset) -> optuna.pruners.BasePruner:
    name = preset.search.pruner if preset.search else "none"
    if name == "median":
        return optuna.pruners.MedianPruner()  # Optuna's defaults: from the 6th trial on, any epoch
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=preset.config.train.epochs)
    return optuna.pruners.NopPruner()


# --- the study ---------------------------------------------------------------------------------


def study_manifest(preset: Preset) -> str:
    """The preset as TOML: its base config, `[sweep]` and `[search]` tables (`sweep.toml`)."""
    return preset_to_toml(preset)


def config_key(config: Config | dict) -> str:
    import json

    data = config if isinstance(config, dict) else config_to_dict(config)
    return json.dumps({k: v for k, v in data.items() if k != "name"}, sort_keys=True)


def attr(trial: FrozenTrial, key: str, default: Any = None) -> Any:
    return trial.user_attrs.get(key, default)


def folder_attr(trial: FrozenTrial, key: str = "run_dir") -> str | None:
    """A run folder the trial names (`run_dir`, `continue_dir`); None for a value that is no path."""
    value = attr(trial, key)
    return value if isinstance(value, str) and value and "\0" not in value else None


def process_alive(host: Any, pid: Any) -> bool | None:
    """Whether the process `pid` on `host` runs; None when that cannot be told from here. A
    process that is paused (SIGSTOP, Ctrl-Z: it cannot answer a stop) or a zombie does not run."""
    alive = runs.process_alive(pid, host)
    return False if alive and process_paused(pid) else alive


def process_paused(pid: Any) -> bool:
    """Whether process `pid` here exists but is stopped or traced (state T or t) or a zombie (Z),
    from /proc/PID/stat; False where there is no /proc."""
    return runs.process_state(pid) in (b"T", b"t", b"Z")


def _still_there(host: Any, pid: Any) -> bool:
    """Whether the (paused) process of another worker that trained the run still exists here: it
    could go on writing into the run's folder, so the run is not continued there."""
    # a zombie (killed, its parent not yet told) never writes again: its runs continue in their folders
    return pid != os.getpid() and runs.process_alive(pid, host) is True


def claimant_alive(trial: FrozenTrial) -> bool | None:
    """Whether the worker that claimed a RUNNING trial lives (None: cannot be told from here).

    A worker writes its pid, then its host, right after claiming; until both are there the claim
    is in progress, unless it is older than `CLAIM_GRACE_S` (the worker died in between)."""
    host, pid = attr(trial, "host"), attr(trial, "pid")
    if host is None or pid is None:
        started = trial.datetime_start
        if started is not None and (datetime.now() - started).total_seconds() > CLAIM_GRACE_S:
            return False
        return None
    return process_alive(host, pid)


def run_status(trial: FrozenTrial) -> str:
    """The run's status as the study sees it: `queued`, `running`, or a run folder's status."""
    if trial.state == TrialState.WAITING:
        return QUEUED
    status = attr(trial, "status", ev.RUNNING)
    if trial.state == TrialState.RUNNING:
        return ev.INCOMPLETE if claimant_alive(trial) is False else ev.RUNNING
    if status in (ev.RUNNING, QUEUED):  # failed while running: its worker died or was taken over
        return ev.INCOMPLETE
    return status if status in ev.STATUSES else ev.FAILED


@dataclass(frozen=True)
class StoredRun:
    """A run as the storage holds it (one trial), in plain values: what the runner reads of a
    queued, claimed or finished run without holding an Optuna object."""

    id: int  # the storage's trial id, which every `StudyStore` method for one run takes
    number: int  # the trial's number in the study (0-based)
    run: Any  # the study's run number (1-based; the trial's number + 1 where it has none)
    state: str  # Optuna's state by name: WAITING, RUNNING, COMPLETE, PRUNED or FAIL
    status: str  # the run's status as the study sees it (`run_status`)
    name: Any
    config: Any  # the configuration as a dict; None for a search trial not sampled yet
    params: dict[str, Any]
    continues: Any  # the number of the earlier trial this one continues, or None
    continue_dir: str | None  # the earlier attempt's folder, to continue from its checkpoint
    continue_host: Any  # the host that folder is on
    host: Any  # the claimant's host and pid, its worker label, the run's folder there
    pid: Any
    worker: Any
    run_dir: str | None


def stored_run(trial: FrozenTrial) -> StoredRun:
    return StoredRun(
        id=trial._trial_id, number=trial.number, run=attr(trial, "run", trial.number + 1), state=trial.state.name,
        status=run_status(trial), name=attr(trial, "name"), config=attr(trial, "config"), params=dict(trial.params),
        continues=attr(trial, "continues"), continue_dir=folder_attr(trial, "continue_dir"),
        continue_host=attr(trial, "continue_host"), host=attr(trial, "host"), pid=attr(trial, "pid"),
        worker=attr(trial, "worker"), run_dir=folder_attr(trial),
    )


@dataclass(frozen=True)
class Outcome:
    """A run's result, for the optimisation history: its status, the trial's value (validation
    accuracy, 0 to 1, set when it completed) and its last epoch's validation accuracy."""

    status: str
    value: float | None
    last: float | None


def safely(action: Callable[[], Any], default: Any = None) -> Any:
    """A storage call during training: a lost connection must not end the run (its folder is the record)."""
    try:
        return action()
    except Exception:  # noqa: BLE001 - sqlalchemy / journal I/O errors
        return default


@dataclass
class StudyStore:
    """One open study: its Optuna `study`, the storage `spec` it came from, and its preset.

    The runner and the figures use its plain doors (`StoredRun`s, trial ids, numbers); `trials`,
    `latest_runs` and the Optuna objects behind them are the store's own (and the tests')."""

    study: optuna.Study
    spec: str
    preset: Preset
    # Local run folders of finished trials, read once: a progress display asks every second.
    _finished_folders: dict[int, RunRecord | None] = field(default_factory=dict, repr=False)
    # The Optuna trials of the runs this process trains, by trial id: they sample, report and prune.
    _live: dict[int, optuna.Trial] = field(default_factory=dict, repr=False)

    @property
    def name(self) -> str:
        return self.study.study_name

    @property
    def storage(self) -> optuna.storages.BaseStorage:
        return self.study._storage

    @property
    def is_rdb(self) -> bool:
        return is_url(self.spec)

    # -- opening -------------------------------------------------------------------------------

    @classmethod
    def create_or_join(cls, spec: str | Path, name: str, preset: Preset) -> tuple[StudyStore, bool]:
        """Create the study `name` with every planned run queued, or join it if it exists
        (created True/False). Joining a study made from another preset is refused."""
        check_study_name(name)
        holder: dict[str, StudyStore] = {}
        storage = open_storage(spec, on_stale=lambda study, trial: holder["store"].requeue(trial), create=True)
        manifest = study_manifest(preset)
        try:
            study = optuna.create_study(storage=storage, study_name=name, direction="maximize")
            created = True
        except DuplicatedStudyError:
            study = optuna.load_study(storage=storage, study_name=name)
            created = False
        store = cls(study=study, spec=str(spec), preset=preset)
        holder["store"] = store
        if created:
            study.set_user_attr("manifest", manifest)
            store.enqueue_plan()
            study.set_user_attr("planned", True)
        else:
            store.wait_for_plan()
            theirs = study.user_attrs.get("manifest")
            if theirs != manifest:
                raise StudyError(
                    f"study '{name}' in {describe(spec)} was made from another preset; "
                    "give another --study name, or --resume to bring it up to this preset"
                )
        return store, created

    @classmethod
    def open(cls, spec: str | Path, name: str | None = None) -> StudyStore:
        """An existing study (the only one in the storage when `name` is None)."""
        holder: dict[str, StudyStore] = {}
        storage = open_storage(spec, on_stale=lambda study, trial: holder["store"].requeue(trial))
        names = [s.study_name for s in storage.get_all_studies()]
        if name is None:
            if len(names) != 1:
                listed = ", ".join(names[:10]) or "none"
                raise StudyError(f"{describe(spec)}: name the study with --study (studies: {listed})")
            name = names[0]
        elif name not in names:
            raise StudyNotFound(f"{describe(spec)}: no study named '{name}'")
        study = optuna.load_study(storage=storage, study_name=name)
        store = cls(study=study, spec=str(spec), preset=Preset(config=Config()))
        store.wait_for_plan()
        try:
            store.preset = preset_from_text(study.user_attrs.get("manifest", ""), f"study '{name}'")
        except ConfigError as err:
            raise StudyError(f"study '{name}': its preset cannot be read ({err})") from None
        holder["store"] = store
        return store

    def wait_for_plan(self) -> None:
        """Wait while the process creating the study queues its runs; a study without fcn-tui's
        preset after `FOREIGN_WAIT_S` was made by something else (Optuna itself)."""
        start = last_change = time.monotonic()
        queued = -1
        while not (attrs := self.study.user_attrs).get("planned"):
            now = time.monotonic()
            waited = now - start
            if "manifest" not in attrs and waited > FOREIGN_WAIT_S:
                raise StudyError(f"study '{self.name}' was not made by fcn-tui (it holds no preset); "
                                 "give the name of a study fcn-tui made")
            if (count := len(self.trials())) != queued:
                queued, last_change = count, now
            if waited > PLAN_WAIT_S or now - last_change > PLAN_STALL_S:
                raise StudyError(f"study '{self.name}': its runs were never all queued (the process creating it "
                                 "stopped, or its storage lost the records: a journal cut short?); "
                                 "start it again under another --study name")
            time.sleep(0.5)

    # -- queueing ------------------------------------------------------------------------------

    def enqueue(self, run: int, config: Config | None, params: dict[str, Any] | None = None, **extra: Any) -> None:
        attrs = {"run": run, "status": QUEUED, **extra}
        if config is not None:
            attrs.update(name=config.name, config=config_to_dict(config))
        self.study.enqueue_trial(params or {}, user_attrs=attrs)

    def planned_params(self, config: Config) -> dict[str, Any]:
        return {key: choice_label(config.get(key)) for key, _ in self.preset.sweep}

    def enqueue_plan(self) -> None:
        """Every run of the preset: each grid point, then `trials` search trials (sampled when claimed)."""
        run = 0
        if self.preset.search is None:
            for run, config in enumerate(self.preset.runs(), start=1):
                self.enqueue(run, config, self.planned_params(config))
        else:
            for run in range(1, self.preset.search.trials + 1):
                self.enqueue(run, None)

    def requeue(self, trial: StoredRun | FrozenTrial) -> None:
        """Queue a failed, stopped or dead run again, to continue in its folder where it can."""
        trial = trial if isinstance(trial, StoredRun) else stored_run(trial)
        extra = {"continues": trial.number}
        if trial.run_dir and not _still_there(trial.host, trial.pid):
            extra.update(continue_dir=trial.run_dir, continue_host=trial.host)
        try:
            cfg = config_from_dict(trial.config, f"trial {trial.number}") if isinstance(trial.config, dict) else None
        except ConfigError:
            cfg = None
        if cfg is None:  # a search trial that died before it was sampled: queue a fresh one
            self.enqueue(trial.run, None, continues=trial.number)
            return
        self.enqueue(trial.run, cfg, dict(trial.params), **extra)

    def requeue_beside(self, trial: StoredRun) -> None:
        """Queue a finished run again, in a new folder beside its earlier one (kept as it is)."""
        with contextlib.suppress(ConfigError, TypeError):
            self.enqueue(trial.run, config_from_dict(trial.config, "trial"), dict(trial.params), continues=trial.number)

    def adopt(self, preset: Preset) -> None:
        """`--resume` with this preset: the study's preset from now on."""
        manifest = study_manifest(preset)
        if self.study.user_attrs.get("manifest") != manifest:
            self.study.set_user_attr("manifest", manifest)
        self.preset = preset

    # -- claiming ------------------------------------------------------------------------------

    def trials(self, states: Iterable[TrialState] | None = None) -> list[FrozenTrial]:
        return self.storage.get_all_trials(self.study._study_id, deepcopy=False,
                                           states=tuple(states) if states is not None else None)

    def claim(self) -> StoredRun | None:
        """Move the first WAITING trial to RUNNING, if another worker does not get there first."""
        claimed = self.claim_many()
        return claimed[0] if claimed else None

    def claim_many(self, key: Callable[[StoredRun], Any] = lambda trial: None,
                   size: Callable[[StoredRun], int] = lambda trial: 1, like: Any = ANY_KEY) -> list[StoredRun]:
        """Claim a pack: the first WAITING trial another worker does not get first (with `like`, the
        first whose `key` is `like`), then up to `size(first)` in all of the WAITING trials after it
        whose `key` equals its key. Each trial is moved to RUNNING on its own, which the storage
        grants to one worker only.

        Two `--resume` at the same moment both queue what they found unfinished: the same run
        (and the same earlier attempt) queued twice. Only the first of them is trained; the
        others are dropped, by whichever worker sees them first (every worker sees the same order)."""
        first: dict[tuple[Any, Any], int] = {}
        for trial in self.trials():
            if attr(trial, "status") != DROPPED:
                first.setdefault((attr(trial, "run"), attr(trial, "continues")), trial.number)
        claimed: list[StoredRun] = []
        wanted, limit = like, 1
        for frozen in self.trials((TrialState.WAITING,)):
            if first.get((attr(frozen, "run"), attr(frozen, "continues")), frozen.number) != frozen.number:
                self.drop(frozen._trial_id)
                continue
            trial = stored_run(frozen)
            if (claimed or like is not ANY_KEY) and key(trial) != wanted:
                continue
            try:
                if not self.storage.set_trial_state_values(trial.id, state=TrialState.RUNNING):
                    continue
            except UpdateFinishedTrialError:
                continue
            if not claimed:
                wanted, limit = key(trial), max(1, size(trial))
            claimed.append(stored_run(self.storage.get_trial(trial.id)))
            if len(claimed) >= limit:
                break
        return claimed

    def drop(self, trial_id: int) -> None:
        """Take a queued run out of the study (its preset changed); it is no run of the study any more."""
        with contextlib.suppress(UpdateFinishedTrialError):
            self.storage.set_trial_user_attr(trial_id, "status", DROPPED)
            self.storage.set_trial_state_values(trial_id, state=TrialState.FAIL)

    def fail(self, trial_id: int) -> bool:
        """RUNNING -> FAIL; True for the one caller that made the move."""
        try:
            return bool(self.storage.set_trial_state_values(trial_id, state=TrialState.FAIL))
        except UpdateFinishedTrialError:
            return False

    def reclaim_dead(self) -> int:
        """Fail and re-queue the runs of dead workers: a gone process on this host, a stale heartbeat."""
        count = 0
        for trial in self.trials((TrialState.RUNNING,)):
            if claimant_alive(trial) is False and self.fail(trial._trial_id):
                self.requeue(self.storage.get_trial(trial._trial_id))
                count += 1
        if self.is_rdb:
            before = len(self.trials((TrialState.WAITING,)))
            optuna.storages.fail_stale_trials(self.study)  # re-queues through `requeue`
            count += len(self.trials((TrialState.WAITING,))) - before
        return count

    def busy_elsewhere(self) -> int:
        """Runs another live worker is training (or might be: a host we cannot see into)."""
        return sum(1 for t in self.trials((TrialState.RUNNING,))
                   if claimant_alive(t) is not False)

    @property
    def lost(self) -> str | None:
        """Why the storage was given up (`StorageLost`), or None."""
        backend = getattr(self.storage, "_backend", None)
        return backend.lost if isinstance(backend, PatientRDBStorage) else None

    def still_holds(self, trial_id: int) -> bool:
        """Whether this process's claim on a trial stands: it is RUNNING and names this process.
        False once another worker took the run over (the claim lapsed while this one was paused or
        cut off). True when the storage cannot be asked now: only a clear answer stops a run."""
        backend = getattr(self.storage, "_backend", None)
        try:
            if isinstance(backend, PatientRDBStorage):  # asked once, past Optuna's cache
                trial = optuna.storages.RDBStorage.get_trial(backend, trial_id)
            else:
                trial = self.storage.get_trial(trial_id)
        except Exception:  # noqa: BLE001 - an outage: the outage handling decides, not this check
            return True
        if trial.state != TrialState.RUNNING:
            return False
        pid, host = attr(trial, "pid"), attr(trial, "host")
        return pid in (None, os.getpid()) and host in (None, socket.gethostname())

    def heartbeat(self, trial_id: int) -> Callable[[], None]:
        """Start recording the RDB heartbeat of a claimed trial; returns the function that stops it."""
        if not self.is_rdb:
            return lambda: None
        done = threading.Event()

        def beat() -> None:
            while True:
                with contextlib.suppress(Exception):  # a lost connection: the next beat tries again
                    self.storage.record_heartbeat(trial_id)
                if done.wait(HEARTBEAT_S):
                    return

        thread = threading.Thread(target=beat, name=f"heartbeat-{trial_id}", daemon=True)
        thread.start()
        return done.set

    # -- a claimed run, trained here -------------------------------------------------------------
    # Each write is tried once (`safely`): a lost connection must not end the run, whose folder is
    # its record; `lost` and `still_holds` tell the runner when to stop.

    def _trial(self, trial_id: int) -> optuna.Trial:
        if trial_id not in self._live:
            self._live[trial_id] = optuna.Trial(self.study, trial_id)
        return self._live[trial_id]

    def take(self, claimed: StoredRun, worker: str) -> None:
        """Begin a claimed run here: its sampler (seeded by its number) and the pruner, then who
        trains it, before anything slow: the pid first and the host last, because other workers
        judge a claim with a host by its pid (see `claimant_alive`)."""
        self.study.sampler = make_sampler(self.preset, claimed.number)
        self.study.pruner = make_pruner(self.preset)
        trial = self._live[claimed.id] = optuna.Trial(self.study, claimed.id)
        for key, value in (("pid", os.getpid()), ("worker", worker), ("host", socket.gethostname())):
            safely(lambda k=key, v=value: trial.set_user_attr(k, v))

    def configure(self, trial_id: int, config: Config | None) -> Config:
        """The claimed run's configuration (`suggest`): a new search trial's is sampled now. Raises
        `ConfigError` or `ValueError` when it cannot be made."""
        return suggest(self._trial(trial_id), self.preset, config)

    def mark_running(self, trial_id: int, config: Config) -> None:
        """The run's name, configuration and epochs, its status `running`."""
        trial = self._trial(trial_id)
        for key, value in (("name", config.name), ("config", config_to_dict(config)), ("status", ev.RUNNING),
                           ("epoch", 0), ("epochs", config.train.epochs)):
            safely(lambda k=key, v=value: trial.set_user_attr(k, v))

    def set_run_dir(self, trial_id: int, folder: Path) -> None:
        safely(lambda: self._trial(trial_id).set_user_attr("run_dir", str(folder.absolute())))

    def continued(self, trial_id: int, epochs: int) -> None:
        """The run continues from a checkpoint of `epochs` epochs."""
        trial = self._trial(trial_id)
        for key in ("continued_after", "epoch"):
            safely(lambda k=key: trial.set_user_attr(k, epochs))

    def report_epoch(self, trial_id: int, epoch: int, val_acc: float) -> None:
        trial = self._trial(trial_id)
        # the epoch first: a reader never sees an epoch's value under the epoch before it
        safely(lambda: trial.set_user_attr("epoch", epoch))
        safely(lambda: trial.report(val_acc, epoch))

    def should_prune(self, trial_id: int) -> bool:
        """The pruner's verdict on the epochs reported so far (False when it cannot be asked)."""
        return bool(safely(self._trial(trial_id).should_prune, False))

    def record_finished(self, trial_id: int, record: RunRecord) -> None:
        """A run its folder says finished though the storage never heard it: the folder and its
        epochs recorded, as if they had been reported (`conclude` records its end)."""
        trial = self._trial(trial_id)
        safely(lambda: trial.set_user_attr("run_dir", str(record.path.absolute())))
        for row in record.metrics:
            if isinstance(epoch := row.get("epoch"), (int, float)) and isinstance(row.get("val_acc"), float):
                safely(lambda e=int(epoch), v=row["val_acc"]: trial.report(v, e))
        safely(lambda: trial.set_user_attr("epoch", record.get("epochs_completed")))

    def conclude(self, trial_id: int, status: str, metrics: dict[str, Any]) -> None:
        """Record a run's end: its status and numbers, and the trial's state."""
        trial = self._trial(trial_id)
        safely(lambda: trial.set_user_attr("status", status))
        safely(lambda: trial.set_user_attr("metrics", metrics))
        if status == ev.COMPLETED and isinstance(metrics.get("val_acc"), (int, float)):
            safely(lambda: self.study.tell(trial, metrics["val_acc"]))
        elif status == ev.PRUNED:
            safely(lambda: self.study.tell(trial, state=TrialState.PRUNED))
        else:
            safely(lambda: self.study.tell(trial, state=TrialState.FAIL))
        self._live.pop(trial_id, None)

    # -- reading back --------------------------------------------------------------------------

    def latest(self) -> list[StoredRun]:
        """`latest_runs` in plain values."""
        return [stored_run(trial) for trial in self.latest_runs()]

    def queued(self) -> list[StoredRun]:
        """The runs waiting for a worker, in the order they are claimed."""
        return [stored_run(trial) for trial in self.trials((TrialState.WAITING,))]

    def record_of(self, trial: StoredRun) -> RunRecord:
        """A run as the storage knows it (`record_from_trial`)."""
        return record_from_trial(self.storage.get_trial(trial.id))

    def history(self) -> list[Outcome]:
        """The latest attempt of each run that was claimed, in the order the runs started."""
        trials = [t for t in self.latest_runs() if t.state != TrialState.WAITING]
        trials.sort(key=lambda t: t.datetime_start or t.datetime_complete or 0)
        return [Outcome(run_status(t), t.value,
                        t.intermediate_values[max(t.intermediate_values)] if t.intermediate_values else None)
                for t in trials]

    def completed_params(self) -> list[dict[str, Any]]:
        """The params (swept and searched settings) of each completed run that has any."""
        return [dict(t.params) for t in self.trials() if t.state == TrialState.COMPLETE and t.params]

    def param_importances(self, params: list[str]) -> dict[str, float] | None:
        """How much of the variation in validation accuracy each of `params` explains (Optuna's
        fANOVA, summing to 1), most important first; None when they cannot be told (e.g. a
        setting that was not searched in every run)."""
        try:
            return dict(optuna.importance.get_param_importances(self.study, params=params))
        except (ValueError, RuntimeError):
            return None

    def count_runs(self) -> int:
        """Runs in the study (each counted once, however often it was continued)."""
        return len(self.latest_runs())

    def latest_runs(self) -> list[FrozenTrial]:
        """The latest trial of each run (a continued run's last attempt), in run order."""
        latest: dict[int, FrozenTrial] = {}
        for trial in self.trials():
            run = attr(trial, "run", trial.number + 1)
            if not isinstance(run, int) or attr(trial, "status") == DROPPED:
                continue
            if run not in latest or trial.number > latest[run].number:
                latest[run] = trial
        return [latest[k] for k in sorted(latest)]

    def records(self, local_only: bool = False) -> list[RunRecord]:
        """One RunRecord per run: read from its folder where this host has it, else from the storage."""
        out = []
        for trial in self.latest_runs():
            record = record_from_trial(trial)
            folder = folder_attr(trial)
            if folder and attr(trial, "host") == socket.gethostname() and trial.state.is_finished():
                local = self._local_record(trial._trial_id, Path(folder))
                if local is not None:
                    for key in ("worker", "trial", "epochs", "run"):
                        local.summary.setdefault(key, record.summary.get(key))
                    record = local
            if not local_only or trial.state != TrialState.WAITING:
                out.append(record)
        return out


    def _local_record(self, trial_id: int, folder: Path) -> RunRecord | None:
        """A finished trial's run folder on this host (None: gone, a link, unreadable), read once."""
        if trial_id not in self._finished_folders:
            self._finished_folders[trial_id] = None if folder.is_symlink() else read_run(folder)
        return self._finished_folders[trial_id]


def record_from_trial(trial: FrozenTrial) -> RunRecord:
    """A run as the storage knows it, in the shape every table and export reads."""
    config = None
    with contextlib.suppress(ConfigError, TypeError):
        if isinstance(data := attr(trial, "config"), dict):
            config = config_from_dict(data, f"trial {trial.number}")
    metrics = attr(trial, "metrics") if isinstance(attr(trial, "metrics"), dict) else {}
    run = attr(trial, "run", trial.number + 1)
    summary = {
        **{k: v for k, v in metrics.items() if isinstance(k, str)},
        "name": attr(trial, "name") or (config.name if config else f"trial {trial.number}"),
        "status": run_status(trial),
        "host": attr(trial, "host"),
        "worker": attr(trial, "worker"),
        "trial": trial.number,
        "run": run,  # the study's run number, as in the run folder's name (`003-...`)
        "epochs_completed": attr(trial, "epoch", metrics.get("epochs_completed", 0)),
        "epochs": attr(trial, "epochs"),
        "continued_after": attr(trial, "continued_after"),  # the epochs its checkpoint had
    }
    if "val_acc" not in metrics and trial.intermediate_values:
        last = max(trial.intermediate_values)
        summary.update(val_acc=trial.intermediate_values[last], best_val_acc=max(trial.intermediate_values.values()))
    folder = folder_attr(trial) or f"{run:03d}-trial-{trial.number}"
    epochs = [{"epoch": float(e), "val_acc": v} for e, v in sorted(trial.intermediate_values.items())]
    return RunRecord(path=Path(str(folder)), summary=summary, config=config, metrics=epochs)
