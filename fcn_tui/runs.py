"""Runs on disk: write one folder per run as its events flow, and read run history back.

A run folder holds
- `config.toml`   the fully resolved configuration (loadable as a preset), written first;
- `metrics.csv`   `epoch,train_loss,train_acc,val_loss,val_acc,lr,epoch_s`, a row appended and
                  flushed (fsync) per epoch;
- `summary.json`  status and final numbers, rewritten atomically (temp file + rename) at the
                  start (status `running`), after every epoch and at the end;
- `confusion.csv` the 10x10 test confusion matrix, class names as header and first column
                  (`read_confusion` reads it back);
- `predictions.npz` every test image's true and predicted class and class probabilities
                  (`fcn_tui.predictions`), for the views of the network's mistakes;
- `model.pt`      the trained state_dict;
- `checkpoint.pt` the full training state after a completed epoch (the engine's
                  `Trainer.checkpoint()`), rewritten atomically at most every `CHECKPOINT_EVERY_S`
                  seconds while the run can still be continued, and always when it ends stopped
                  or failed (then at its last completed epoch, which the engine keeps); removed when
                  the run completes, diverges or is pruned.
Every file is readable at any moment, even after SIGKILL. A folder whose summary still says
`running` but whose process is gone reads back as `incomplete`.

Writes never follow a link planted in a run folder: the folder is opened once (`FolderHandle`,
O_NOFOLLOW) and every file is written relative to that handle, so a folder swapped for a link
mid-run is not followed; whole files go to a fresh temporary file (exclusive create, unique
name) renamed into place, and metrics.csv is appended with O_NOFOLLOW, refusing a file with
another hard link (`open_append`). A process training a run holds its claim, a `flock` on
`.run.lock` in the folder (`claim_run_folder`), so two `--resume` never train it twice. A write error (`RunWriteError`, "disk full" when it is) marks the run `failed` with
that reason, on a full disk by overwriting summary.json in place if nothing else fits.

Reading never raises for what is in a folder: a damaged one reads back as status `unreadable`
with its reason, so one bad folder neither hides nor breaks the others (see `RunRecord`).

`record_run(trainer, run_dir)` wraps a `Trainer`'s event stream: it writes the files and yields
the events on unchanged, so the CLI and the TUI write identical folders. This module imports
torch only to save the model, so reading history stays light.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import io
import json
import math
import os
import re
import socket
import time
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from fcn_tui import events as ev
from fcn_tui.config import (
    Config,
    Preset,
    config_from_dict,
    config_to_dict,
    config_to_toml,
    load_preset,
    parse_toml,
)
from fcn_tui.errors import ConfigError, RunBusy, RunWriteError, UnreadableFile
from fcn_tui.fashion import CLASS_NAMES
from fcn_tui.fileio import (  # the file-I/O toolbox: imported from here by earlier callers too
    FILE_MODE,
    O_NOFOLLOW,
    FolderHandle,
    atomic_write,
    atomic_write_text,
    close_quietly,
    open_append,
    overwrite_in_place,
    read_file_text,
    write_error,
)

METRICS_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_s")
try:
    import fcntl  # POSIX: run folders are claimed with flock
except ImportError:  # pragma: no cover - Windows: single runs are not claimed
    fcntl = None


def slug(text: str, limit: int = 80) -> str:
    """A file-name-safe version of a run or preset name (`model.hidden=[16,8]` -> `model.hidden=16,8`)."""
    unbracketed = re.sub(r"[\[\]]", "", text)  # a dash in their place would read as a minus sign
    cleaned = re.sub(r"[^A-Za-z0-9._,=+-]+", "-", unbracketed).strip("-.")
    return (cleaned or "run")[:limit]


def study_folder_name(name: str) -> str:
    """The folder of a study kept in a database (`OUT/<this>/`): its name made file-safe, plus a
    short hash of the exact name where cleaning changed it, so `exp 1` and `exp-1` never share one."""
    cleaned = slug(name)
    if cleaned == name:
        return cleaned
    import hashlib

    return f"{cleaned[:71]}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


def timestamp() -> str:
    return datetime.now().strftime("%Y%m%d-%H%M%S")


def unique_dir(parent: Path, name: str) -> Path:
    """`parent/name`, or `parent/name-2`, ... if taken; created empty."""
    candidate, n = parent / name, 1
    while True:
        try:
            candidate.mkdir(parents=True, exist_ok=False)
            return candidate
        except FileExistsError:
            n += 1
            candidate = parent / f"{name}-{n}"
        except OSError as err:
            raise write_error(parent, err, "cannot create a run folder") from None


def new_run_dir(out_root: Path, name: str) -> Path:
    """A fresh folder for one run, named by time and run name."""
    return unique_dir(Path(out_root), f"{timestamp()}-{slug(name)}")


def confusion_csv(matrix: list[list[int]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["true\\predicted", *CLASS_NAMES])
    for name, row in zip(CLASS_NAMES, matrix):
        writer.writerow([name, *row])
    return buf.getvalue()


def read_confusion(path: Path) -> tuple[list[str], list[list[int]]]:
    """Class names and the matrix (rows true, columns predicted) of a run's confusion.csv;
    UnreadableFile (one line) unless it is a square table of counts under a header."""
    text = read_file_text(path, MAX_SMALL_FILE) or ""
    try:
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as err:
        raise UnreadableFile(f"{path.name} is not a valid CSV file ({err})") from None
    classes = rows[0][1:] if rows else []
    if not classes or len(rows) != len(classes) + 1 or any(len(row) != len(classes) + 1 for row in rows):
        raise UnreadableFile(f"{path.name} is not a square matrix under a header of class names")
    try:
        matrix = [[int(v) for v in row[1:]] for row in rows[1:]]
    except ValueError:
        raise UnreadableFile(f"{path.name} holds a cell that is not a whole number") from None
    if any(v < 0 for row in matrix for v in row):
        raise UnreadableFile(f"{path.name} holds a negative count")
    return classes, matrix


def _torch_version() -> str:
    try:
        import torch

        return torch.__version__
    except ImportError:  # pragma: no cover - torch is a dependency
        return "unknown"


def _reproducibility() -> dict[str, Any]:
    """What decides the last decimals of a CPU run besides the seed: torch's thread count, the
    instruction set its kernels use (`AVX2`, `AVX512`, ...) and the processor (`cpu_model`), which tells
    two machines with the same kernel family apart."""
    import torch

    from fcn_tui.cpu import cpu_model

    return {"threads": torch.get_num_threads(), "cpu_kernels": torch.backends.cpu.get_cpu_capability(), "cpu_model": cpu_model()}


CHECKPOINT = "checkpoint.pt"
CHECKPOINT_EVERY_S = 30.0  # a checkpoint is a write of the whole training state (MBs, fsynced): when
# epochs take milliseconds (packed runs on a GPU) one per epoch bounds the speed; a killed worker
# loses at most this much of a run's training, and a stop always writes its last epoch's
STUDY_MANIFEST = "sweep.toml"  # a study folder's preset, written when the study is created


def is_study_folder(folder: Path) -> bool:
    """Whether `folder` is a study's (a sweep's or a search's): it holds the study's preset."""
    return (Path(folder) / STUDY_MANIFEST).is_file()


def study_preset(folder: Path) -> Preset | None:
    """The preset of the study in `folder` (its `sweep.toml`); None when it has none or it cannot
    be read (the runs are then shown without it)."""
    if not is_study_folder(folder):
        return None
    try:
        return load_preset(Path(folder) / STUDY_MANIFEST)
    except ConfigError:
        return None


def metrics_line(event: ev.EpochEnded) -> str:
    return (
        f"{event.epoch},{event.train_loss:.6f},{event.train_acc:.6f},{event.val_loss:.6f},"
        f"{event.val_acc:.6f},{event.lr:.6g},{event.seconds:.3f}"
    )


def load_torch_file(path: Path) -> tuple[Any, str]:
    """`torch.load` onto the CPU without running any code from the file (`weights_only=True`):
    (the object, "") or (None, the name of the error) for a damaged or foreign file."""
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=True), ""
    except Exception as err:  # noqa: BLE001 - a damaged or foreign file is reported, not fatal
        return None, type(err).__name__


def load_checkpoint(run_dir: Path) -> tuple[dict | None, str]:
    """A run folder's checkpoint, loaded without running any code from the file
    (`weights_only=True`), or None and the reason it cannot be used (also tensors or numbers that
    do not fit its configuration: `checkpoint_check`)."""
    path = Path(run_dir) / CHECKPOINT
    if path.is_symlink() or not path.is_file():
        return None, "no checkpoint"
    state, error = load_torch_file(path)
    if error:
        return None, f"{path.name}: unreadable ({error})"
    if not isinstance(state, dict):
        return None, f"{path.name}: not a checkpoint"
    from fcn_tui.checkpoint_check import checkpoint_problem  # torch, as loading did

    problem = checkpoint_problem(state)
    if problem:
        return None, f"{path.name}: {problem}"
    return state, ""


RUN_LOCK = ".run.lock"  # a run folder's claim: locked while a process trains the run, kept after


def claim_run_folder(run_dir: Path) -> int:
    """Claim `run_dir` for this process: an exclusive `flock` on its lock file (created if missing,
    never through a link), held while the returned descriptor is open. The system releases it when
    its holder ends, even by SIGKILL, so the claim of a dead process is simply taken over; the file
    names the holder (pid and host). RunBusy when another process holds it."""
    path = Path(run_dir) / RUN_LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | O_NOFOLLOW, FILE_MODE)
    except OSError as err:
        raise write_error(path, err, "cannot claim the run") from None
    try:
        if os.fstat(fd).st_nlink > 1:
            raise RunWriteError(f"{path}: cannot claim the run (a hard link is in the way; not written through)")
        try:
            if fcntl is not None:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise RunBusy(f"{run_dir} is being trained by {_lock_holder(fd)}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    except BaseException as err:
        os.close(fd)
        if isinstance(err, OSError) and not isinstance(err, RunWriteError):
            raise write_error(path, err, "cannot claim the run") from None
        raise
    return fd


def _lock_holder(fd: int) -> str:
    """Who holds a lock file, as it says (`pid 123 on host`), shown safely."""
    try:
        text = os.pread(fd, 200, 0).decode("utf-8", "replace").strip()
    except OSError:
        text = ""
    return "".join(c for c in text if c.isprintable())[:120] or "another process"


def release_run_folder(claim: int | None) -> None:
    """Let go of a claim from `claim_run_folder` (the lock file stays: removing it would let two
    processes hold locks on two different files of one name)."""
    if claim is not None:
        close_quietly(claim)


def save_torch(path: Path, obj: Any, folder: FolderHandle | None = None) -> None:
    """`torch.save` atomically (see `atomic_write`); a full disk is reported as such."""
    import torch

    try:
        atomic_write(path, lambda f: torch.save(obj, f), folder)
    except RuntimeError as err:  # torch's zip writer loses errno: "unexpected pos 1088 vs 982"
        full = _disk_full(path.parent)
        raise write_error(path, OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)) if full else OSError(0, str(err))) from None


class RunRecorder:
    """Writes one run's folder from its events. Create it only once the run can start.

    With `continuing=True` the folder is an earlier attempt at the same run: its files are kept
    until `RunStarted` says which epochs the checkpoint holds, and `metrics.csv` is then rewritten
    with exactly those epochs."""

    def __init__(self, run_dir: Path, config: Config, continuing: bool = False,
                 checkpoint_every_s: float | None = None) -> None:
        self.run_dir = Path(run_dir)
        self.config = config
        self.checkpoint_every_s = CHECKPOINT_EVERY_S if checkpoint_every_s is None else checkpoint_every_s
        self._checkpoint_due = time.monotonic() + self.checkpoint_every_s
        self._unsaved: Callable[[], dict] | None = None  # the last epoch's checkpoint, while not on disk
        self.summary: dict[str, Any] = {
            "name": config.name,
            "status": ev.RUNNING,
            "epochs_completed": 0,
            "train_loss": None,
            "val_loss": None,
            "val_acc": None,
            "best_val_acc": None,
            "test_loss": None,
            "test_acc": None,
            "wall_s": 0.0,
            "samples_per_s": 0.0,
            "device": None,
            "torch_version": _torch_version(),
            **_reproducibility(),
            "seed": config.train.seed,
            "config": config_to_dict(config),
            "error": None,
            "started_at": datetime.now().isoformat(timespec="seconds"),
            "finished_at": None,
            "pid": os.getpid(),
            "host": socket.gethostname(),
        }
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise write_error(self.run_dir, err, "cannot create the run folder") from None
        self.folder = FolderHandle(self.run_dir)  # every file below is written through this handle
        atomic_write_text(self.run_dir / "config.toml", config_to_toml(config), self.folder)
        self._write_summary()
        self._metrics_path = self.run_dir / "metrics.csv"
        self.continuing = continuing
        if not continuing:
            self._append_line(",".join(METRICS_COLUMNS))

    def _write_summary(self) -> None:
        atomic_write_text(self.run_dir / "summary.json", json.dumps(self.summary, indent=2) + "\n", self.folder)

    def _append_line(self, line: str) -> None:
        fd = open_append(self._metrics_path, self.folder)  # never through a link planted at metrics.csv
        try:
            with os.fdopen(fd, "a", encoding="utf-8") as f:
                f.write(line + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as err:
            raise write_error(self._metrics_path, err) from None

    def _add_epoch(self, event: ev.EpochEnded) -> None:
        best = self.summary["best_val_acc"]
        self.summary.update(
            epochs_completed=event.epoch,
            train_loss=event.train_loss,
            val_loss=event.val_loss,
            val_acc=event.val_acc,
            best_val_acc=event.val_acc if best is None else max(best, event.val_acc),
        )

    def record(self, event: ev.Event, model=None, checkpoint: Callable[[], dict] | None = None) -> None:
        """Write what `event` adds to the folder; `checkpoint()` gives the state to save after an epoch."""
        if isinstance(event, ev.RunStarted):
            self.summary["device"] = event.device_name if event.device == "cpu" else f"{event.device} ({event.device_name})"
            if self.continuing:
                lines = [",".join(METRICS_COLUMNS), *map(metrics_line, event.previous_epochs)]
                atomic_write_text(self._metrics_path, "\n".join(lines) + "\n", self.folder)
                for previous in event.previous_epochs:
                    self._add_epoch(previous)
                self.summary["resumed_after_epoch"] = len(event.previous_epochs)
            self._write_summary()
        elif isinstance(event, ev.EpochEnded):
            self._append_line(metrics_line(event))
            self._add_epoch(event)
            if checkpoint is not None and event.epoch < event.epochs:
                self._unsaved = checkpoint  # the engine keeps the epoch's state: copied only when written
                if time.monotonic() >= self._checkpoint_due:
                    self.save_checkpoint()
            self._write_summary()
        elif isinstance(event, ev.RunFinished):
            if event.status in (ev.STOPPED, ev.FAILED):  # to be continued from its last epoch
                self.save_checkpoint()
            self._unsaved = None
            if event.status in (ev.COMPLETED, ev.DIVERGED, ev.PRUNED):
                with contextlib.suppress(OSError):  # nothing left to continue: the file was ours
                    os.unlink(CHECKPOINT, dir_fd=self.folder.fd)
            if event.test_confusion is not None:
                atomic_write_text(self.run_dir / "confusion.csv", confusion_csv(event.test_confusion), self.folder)
            if event.test_predictions is not None:
                from fcn_tui.predictions import PREDICTIONS, save_predictions  # numpy: only when a run ends

                save_predictions(self.run_dir / PREDICTIONS, event.test_predictions, self.folder)
            if model is not None and event.status != ev.FAILED:
                self._save_model(model)
            self.summary.update(
                status=event.status,
                epochs_completed=event.epochs_completed,
                train_loss=event.train_loss,
                val_loss=event.val_loss,
                val_acc=event.val_acc,
                best_val_acc=event.best_val_acc,
                test_loss=event.test_loss,
                test_acc=event.test_acc,
                wall_s=round(event.wall_s, 3),
                samples_per_s=round(event.samples_per_s, 1),
                error=event.error,
                finished_at=datetime.now().isoformat(timespec="seconds"),
            )
            self._write_summary()

    def save_checkpoint(self) -> None:
        """Write the last epoch's checkpoint if it is not on disk yet; best effort: an older one
        still resumes exactly (from its own epoch)."""
        if self._unsaved is None:
            return
        with contextlib.suppress(RunWriteError, ValueError):  # ValueError: the engine has no state to give
            save_torch(self.run_dir / CHECKPOINT, self._unsaved(), self.folder)
        self._unsaved = None
        self._checkpoint_due = time.monotonic() + self.checkpoint_every_s

    def _save_model(self, model) -> None:
        save_torch(self.run_dir / "model.pt", {k: v.detach().cpu() for k, v in model.state_dict().items()}, self.folder)

    def fail(self, status: str, error: str | None) -> None:
        """Best effort: mark the run as ended with `status` after an interruption or error.

        If the summary cannot be rewritten (a full disk), a compact one (without the config,
        which config.toml holds) overwrites the old one in place, which needs no new space.
        """
        if status != ev.COMPLETED:
            self.save_checkpoint()
        self.summary.update(status=status, error=error, finished_at=datetime.now().isoformat(timespec="seconds"))
        try:
            self._write_summary()
        except RunWriteError:
            compact = {k: v for k, v in self.summary.items() if k != "config"}
            overwrite_in_place(self.run_dir / "summary.json", json.dumps(compact) + "\n", self.folder)


def _disk_full(folder: Path) -> bool:
    try:
        stat = os.statvfs(folder)
    except (OSError, AttributeError):  # no statvfs on Windows
        return False
    return stat.f_bavail * stat.f_frsize < 1 << 20  # under 1 MiB left: nothing more fits


def mark_failed(run_dir: Path, error: str) -> None:
    """Best effort: record in its summary that a run ended on an error outside the engine."""
    path = Path(run_dir) / "summary.json"
    try:
        folder = FolderHandle(run_dir)  # a folder swapped for a link is left alone
        summary = json.loads(path.read_text(encoding="utf-8"))
        summary.update(status=ev.FAILED, error=error, finished_at=datetime.now().isoformat(timespec="seconds"))
    except (OSError, ValueError, AttributeError, RecursionError):
        return
    try:
        atomic_write_text(path, json.dumps(summary, indent=2) + "\n", folder)
    except RunWriteError:
        overwrite_in_place(path, json.dumps({k: v for k, v in summary.items() if k != "config"}) + "\n", folder)


def record_run(trainer, run_dir: Path, checkpoint_every_s: float | None = None) -> Iterator[ev.Event]:
    """Run `trainer`, writing its folder, and yield its events on.

    If the consumer stops iterating (or an exception such as KeyboardInterrupt arrives), the
    run is saved as `stopped`; a write error marks it `failed` and raises `RunWriteError`.
    """
    recorder = RunRecorder(run_dir, trainer.config, continuing=getattr(trainer, "resume_from", None) is not None,
                           checkpoint_every_s=checkpoint_every_s)
    checkpoint = getattr(trainer, "checkpoint", None)  # scripted trainers in tests have none
    finished = False
    try:
        for event in trainer.events():
            try:
                recorder.record(event, trainer.model, checkpoint)
            except RunWriteError as err:
                recorder.fail(ev.FAILED, str(err))
                finished = True
                raise
            if isinstance(event, ev.RunFinished):
                finished = True
            yield event
    except GeneratorExit:
        if not finished:
            recorder.fail(ev.STOPPED, "interrupted before the run finished")
        raise
    except BaseException as err:
        if not finished:
            status = ev.STOPPED if isinstance(err, KeyboardInterrupt) else ev.FAILED
            recorder.fail(status, f"{type(err).__name__}: {err}".strip(": "))
        raise


# --- reading history -------------------------------------------------------------------------


@dataclass
class RunRecord:
    """A run folder as read back: its summary, config and per-epoch metrics.

    Every reader (export, plot, tables, the app's Runs view, resume) gets this one shape, also
    from a damaged folder: a file that cannot be decoded or parsed gives status `unreadable` with
    the reason in `problems` (and in the summary's `error`), no numbers and no metrics; a summary
    value of the wrong type (`"wall_s": "abc"`, `NaN`) is dropped (None) and noted in `problems`.
    """

    path: Path
    summary: dict[str, Any]
    config: Config | None
    metrics: list[dict[str, float]] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # what was wrong with the folder, for warnings

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def name(self) -> str:
        return str(self.summary.get("name") or self.path.name)

    @property
    def status(self) -> str:
        return str(self.summary.get("status") or ev.INCOMPLETE)

    @property
    def reason(self) -> str | None:
        """Why the folder is `unreadable`, or which values were left out; None for a sound folder."""
        return "; ".join(self.problems) or None

    def get(self, key: str, default: Any = None) -> Any:
        return self.summary.get(key, default)


MAX_SMALL_FILE = 1 << 20  # summary.json and config.toml are a few KB; more is not ours
MAX_METRICS_FILE = 64 << 20  # ~800,000 epochs of metrics
FINITE_KEYS = ("epochs_completed", "val_acc", "best_val_acc", "test_acc", "wall_s", "samples_per_s")
LOSS_KEYS = ("train_loss", "val_loss", "test_loss")  # NaN or inf is a diverged run's honest loss
TEXT_KEYS = ("name", "device", "error", "started_at", "finished_at", "host", "torch_version", "cpu_kernels", "cpu_model")


def _read_summary(path: Path) -> dict[str, Any] | None:
    text = read_file_text(path, MAX_SMALL_FILE)
    if text is None:
        return None
    try:
        summary = json.loads(text)
    except RecursionError:
        raise UnreadableFile(f"{path.name} is nested too deeply") from None
    except ValueError as err:
        raise UnreadableFile(f"{path.name} is not valid JSON ({err})") from None
    if not isinstance(summary, dict):
        raise UnreadableFile(f"{path.name} is not a JSON object")
    return summary


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 30 else text[:29] + "…"


def _sanitise(summary: dict[str, Any]) -> list[str]:
    """Drop summary values of the wrong type in place; one note per value dropped."""
    notes = []
    for key in (*FINITE_KEYS, *LOSS_KEYS):
        value = summary.get(key)
        number = isinstance(value, (int, float)) and not isinstance(value, bool)
        if value is not None and not (number and (key in LOSS_KEYS or math.isfinite(value))):
            notes.append(f"summary.json: {key} = {_short(value)} is not a finite number, left out")
            summary[key] = None
    for key in TEXT_KEYS:
        value = summary.get(key)
        if value is not None and not isinstance(value, str):
            notes.append(f"summary.json: {key} = {_short(value)} is not text, left out")
            summary[key] = None
        elif isinstance(value, str) and not value.isprintable():  # escape sequences would reach the terminal
            summary[key] = "".join(c if c.isprintable() else repr(c)[1:-1] for c in value)
    return notes


def process_alive(pid: Any, host: Any) -> bool | None:
    """Whether process `pid` on `host` runs; None when `host` is another machine (cannot tell)."""
    if host != socket.gethostname():
        return None
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False  # 0 and negative pids name process groups: never probe those
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True
    return process_state(pid) != b"Z"  # a zombie (killed, its parent not yet told) never writes again


def process_state(pid: Any) -> bytes:
    """The state letter of process `pid` here (/proc/PID/stat: R, S, T, Z, ...); b"" when unknown."""
    try:
        with open(f"/proc/{int(pid)}/stat", "rb") as f:
            stat = f.read(4096)
    except (OSError, ValueError, TypeError):
        return b""
    return stat[stat.rfind(b")") + 2:][:1]  # after the command name, which may hold anything


def _process_alive(pid: Any, host: Any) -> bool:
    return process_alive(pid, host) is True


def _metric_rows(text: str) -> list[dict[str, float]]:
    rows = []
    for row in csv.DictReader(io.StringIO(text, newline="")):
        try:
            values = {k: float(row[k]) for k in METRICS_COLUMNS}
        except (TypeError, ValueError, KeyError):
            continue  # a torn last line (power loss)
        if math.isfinite(values["epoch"]) and values["epoch"] >= 1:
            rows.append(values)
    return rows


def _read_metrics_strict(path: Path) -> list[dict[str, float]]:
    text = read_file_text(path, MAX_METRICS_FILE)
    if text is None:
        return []
    try:
        return _metric_rows(text)
    except csv.Error as err:
        raise UnreadableFile(f"{path.name} is not a valid CSV file ({err})") from None


def read_metrics(path: Path) -> list[dict[str, float]]:
    """Rows of a metrics.csv as floats; a torn last line (power loss) or a row without a real
    epoch number (NaN, 0) is skipped, and a file that is not a metrics CSV reads as no rows."""
    try:
        return _read_metrics_strict(Path(path))
    except UnreadableFile:
        return []


def _read_config(summary: dict[str, Any], config_path: Path) -> tuple[Config | None, list[str]]:
    """The run's config: from its summary, else from config.toml (UnreadableFile if that is not TOML)."""
    notes = []
    if isinstance(summary.get("config"), dict):
        try:
            return config_from_dict(summary["config"], str(config_path)), notes
        except (ValueError, TypeError, KeyError, AttributeError, RecursionError, ConfigError) as err:
            notes.append(f"summary.json: config: {err}")
    text = read_file_text(config_path, MAX_SMALL_FILE)
    if text is None:
        return None, notes
    try:
        data = parse_toml(text, config_path.name)
    except ConfigError as err:  # nested too deeply, a number of thousands of digits
        raise UnreadableFile(str(err)) from None
    except tomllib.TOMLDecodeError as err:
        raise UnreadableFile(f"{config_path.name} is not valid TOML ({err})") from None
    try:
        return config_from_dict(data, str(config_path)), notes
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError, ConfigError) as err:
        return None, [*notes, f"{config_path.name}: {err}"]


def _unreadable(run_dir: Path, reason: str, summary: dict[str, Any] | None, config: Config | None) -> RunRecord:
    summary = summary or {}
    name = summary.get("name") if isinstance(summary.get("name"), str) else None
    started = summary.get("started_at") if isinstance(summary.get("started_at"), str) else None
    kept = {"name": name or (config.name if config else run_dir.name), "status": ev.UNREADABLE,
            "error": reason, "started_at": started}
    return RunRecord(path=run_dir, summary=kept, config=config, problems=[reason])


def read_run(run_dir: Path) -> RunRecord | None:
    """One run folder, or None if it is not one (no config.toml and no summary.json).

    Never raises for what is in the folder: see `RunRecord` for damaged ones.
    """
    run_dir = Path(run_dir)
    summary_path, config_path = run_dir / "summary.json", run_dir / "config.toml"
    try:
        if not (summary_path.exists() or summary_path.is_symlink() or config_path.exists() or config_path.is_symlink()):
            return None
    except OSError as err:
        return _unreadable(run_dir, f"cannot read the folder ({err.strerror or err})", None, None)
    summary: dict[str, Any] | None = None
    config = None
    try:
        summary = _read_summary(summary_path)
        config, problems = _read_config(summary or {}, config_path)
        metrics = _read_metrics_strict(run_dir / "metrics.csv")
    except UnreadableFile as err:
        if config is None and summary is None:  # its settings still show, from config.toml
            with contextlib.suppress(UnreadableFile):
                config = _read_config({}, config_path)[0]
        return _unreadable(run_dir, str(err), summary, config)
    summary = summary or {}
    status = summary.get("status")
    if not isinstance(status, str) or status not in ev.STATUSES or (
        status == ev.RUNNING and not _process_alive(summary.get("pid"), summary.get("host"))
    ):
        summary["status"] = ev.INCOMPLETE
    if summary["status"] in (ev.INCOMPLETE, ev.RUNNING):
        summary["epochs_completed"] = len(metrics)
        if metrics:
            last = metrics[-1]
            summary.update(
                train_loss=last["train_loss"], val_loss=last["val_loss"], val_acc=last["val_acc"],
                best_val_acc=max(m["val_acc"] for m in metrics),
            )
    problems += _sanitise(summary)
    if not summary.get("name"):
        summary["name"] = config.name if config else run_dir.name
    return RunRecord(path=run_dir, summary=summary, config=config, metrics=metrics, problems=problems)


def find_runs(root: Path) -> list[RunRecord]:
    """Every run folder under `root` (sweeps included), oldest first by folder name."""
    root = Path(root)
    if not root.is_dir():
        return []
    records = []
    for marker in sorted(set(root.rglob("config.toml")) | set(root.rglob("summary.json"))):
        if marker.name == "summary.json" and (marker.parent / "config.toml").exists():
            continue
        record = read_run(marker.parent)
        if record is not None:
            records.append(record)
    records.sort(key=lambda r: (str(r.summary.get("started_at") or ""), str(r.path)))
    return records
