"""Runs on disk: write one folder per run as its events flow, and read run history back.

A run folder holds
- `config.toml`   the fully resolved configuration (loadable as a preset), written first;
- `metrics.csv`   `epoch,train_loss,train_acc,val_loss,val_acc,lr,epoch_s`, a row appended and
                  flushed (fsync) per epoch;
- `summary.json`  status and final numbers, rewritten atomically (temp file + rename) at the
                  start (status `running`), after every epoch and at the end;
- `confusion.csv` the 10x10 test confusion matrix, class names as header and first column;
- `model.pt`      the trained state_dict.
Every file is readable at any moment, even after SIGKILL. A folder whose summary still says
`running` but whose process is gone reads back as `incomplete`.

`record_run(trainer, run_dir)` wraps a `Trainer`'s event stream: it writes the files and yields
the events on unchanged, so the CLI and the TUI write identical folders. This module imports
torch only to save the model, so reading history stays light.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import socket
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from fcn_tui import events as ev
from fcn_tui.config import Config, ConfigError, config_from_dict, config_to_dict, config_to_toml

METRICS_COLUMNS = ("epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_s")


class RunWriteError(OSError):
    """A run's files could not be written (disk full, permissions); the message names the path."""


def slug(text: str, limit: int = 80) -> str:
    """A file-name-safe version of a run or preset name."""
    cleaned = re.sub(r"[^A-Za-z0-9._,=+-]+", "-", text).strip("-.")
    return (cleaned or "run")[:limit]


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
            raise RunWriteError(f"{parent}: cannot create a run folder ({err.strerror or err})") from None


def new_run_dir(out_root: Path, name: str) -> Path:
    """A fresh folder for one run, named by time and run name."""
    return unique_dir(Path(out_root), f"{timestamp()}-{slug(name)}")


def atomic_write_text(path: Path, text: str) -> None:
    """Write a file so that readers see the old or the new content, never a partial one."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError as err:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        raise RunWriteError(f"{path}: cannot write ({err.strerror or err})") from None


def confusion_csv(matrix: list[list[int]]) -> str:
    from fcn_tui.data import CLASSES  # here, not at the top: data imports torch, history readers must not

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["true\\predicted", *CLASSES])
    for name, row in zip(CLASSES, matrix):
        writer.writerow([name, *row])
    return buf.getvalue()


def _torch_version() -> str:
    try:
        import torch

        return torch.__version__
    except ImportError:  # pragma: no cover - torch is a dependency
        return "unknown"


class RunRecorder:
    """Writes one run's folder from its events. Create it only once the run can start."""

    def __init__(self, run_dir: Path, config: Config) -> None:
        self.run_dir = Path(run_dir)
        self.config = config
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
            raise RunWriteError(f"{self.run_dir}: cannot create the run folder ({err.strerror or err})") from None
        atomic_write_text(self.run_dir / "config.toml", config_to_toml(config))
        self._write_summary()
        self._metrics_path = self.run_dir / "metrics.csv"
        self._append_line(",".join(METRICS_COLUMNS))

    def _write_summary(self) -> None:
        atomic_write_text(self.run_dir / "summary.json", json.dumps(self.summary, indent=2) + "\n")

    def _append_line(self, line: str) -> None:
        try:
            with open(self._metrics_path, "a", encoding="utf-8") as f:
                f.write(line + "\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as err:
            raise RunWriteError(f"{self._metrics_path}: cannot write ({err.strerror or err})") from None

    def record(self, event: ev.Event, model=None) -> None:
        """Write what `event` adds to the folder."""
        if isinstance(event, ev.RunStarted):
            self.summary["device"] = event.device_name if event.device == "cpu" else f"{event.device} ({event.device_name})"
            self._write_summary()
        elif isinstance(event, ev.EpochEnded):
            self._append_line(
                f"{event.epoch},{event.train_loss:.6f},{event.train_acc:.6f},{event.val_loss:.6f},"
                f"{event.val_acc:.6f},{event.lr:.6g},{event.seconds:.3f}"
            )
            best = self.summary["best_val_acc"]
            self.summary.update(
                epochs_completed=event.epoch,
                train_loss=event.train_loss,
                val_loss=event.val_loss,
                val_acc=event.val_acc,
                best_val_acc=event.val_acc if best is None else max(best, event.val_acc),
            )
            self._write_summary()
        elif isinstance(event, ev.RunFinished):
            if event.test_confusion is not None:
                atomic_write_text(self.run_dir / "confusion.csv", confusion_csv(event.test_confusion))
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

    def _save_model(self, model) -> None:
        import torch

        path = self.run_dir / "model.pt"
        tmp = path.with_name(".model.pt.tmp")
        try:
            torch.save({k: v.detach().cpu() for k, v in model.state_dict().items()}, tmp)
            os.replace(tmp, path)
        except (OSError, RuntimeError) as err:
            tmp.unlink(missing_ok=True)
            raise RunWriteError(f"{path}: cannot write ({getattr(err, 'strerror', None) or err})") from None

    def fail(self, status: str, error: str | None) -> None:
        """Best effort: mark the run as ended with `status` after an interruption or error."""
        self.summary.update(status=status, error=error, finished_at=datetime.now().isoformat(timespec="seconds"))
        try:
            self._write_summary()
        except RunWriteError:
            pass


def mark_failed(run_dir: Path, error: str) -> None:
    """Best effort: record in its summary that a run ended on an error outside the engine."""
    path = Path(run_dir) / "summary.json"
    try:
        summary = json.loads(path.read_text(encoding="utf-8"))
        summary.update(status=ev.FAILED, error=error, finished_at=datetime.now().isoformat(timespec="seconds"))
        atomic_write_text(path, json.dumps(summary, indent=2) + "\n")
    except (OSError, ValueError, AttributeError):
        pass


def record_run(trainer, run_dir: Path) -> Iterator[ev.Event]:
    """Run `trainer`, writing its folder, and yield its events on.

    If the consumer stops iterating (or an exception such as KeyboardInterrupt arrives), the
    run is saved as `stopped`; a write error marks it `failed` and raises `RunWriteError`.
    """
    recorder = RunRecorder(run_dir, trainer.config)
    finished = False
    try:
        for event in trainer.events():
            try:
                recorder.record(event, trainer.model)
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
    """A run folder as read back: its summary, config and per-epoch metrics."""

    path: Path
    summary: dict[str, Any]
    config: Config | None
    metrics: list[dict[str, float]] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return self.path.name

    @property
    def name(self) -> str:
        return str(self.summary.get("name") or self.path.name)

    @property
    def status(self) -> str:
        return str(self.summary.get("status") or ev.INCOMPLETE)

    def get(self, key: str, default: Any = None) -> Any:
        return self.summary.get(key, default)


def _process_alive(pid: Any, host: Any) -> bool:
    if host != socket.gethostname() or not isinstance(pid, int):
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def read_metrics(path: Path) -> list[dict[str, float]]:
    """Rows of a metrics.csv as floats; a torn last line (power loss) is skipped."""
    rows = []
    try:
        with open(path, encoding="utf-8", newline="") as f:
            for row in csv.DictReader(f):
                try:
                    rows.append({k: float(row[k]) for k in METRICS_COLUMNS})
                except (TypeError, ValueError, KeyError):
                    continue
    except OSError:
        return []
    return rows


def read_run(run_dir: Path) -> RunRecord | None:
    """One run folder, or None if it is not one (no config.toml and no summary.json)."""
    run_dir = Path(run_dir)
    summary_path, config_path = run_dir / "summary.json", run_dir / "config.toml"
    if not summary_path.is_file() and not config_path.is_file():
        return None
    summary: dict[str, Any] = {}
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        if not isinstance(summary, dict):
            summary = {}
    except (OSError, ValueError):
        summary = {}
    config = None
    try:
        config = config_from_dict(
            summary["config"] if isinstance(summary.get("config"), dict)
            else tomllib.loads(config_path.read_text(encoding="utf-8")),
            str(config_path),
        )
    except (OSError, ValueError, ConfigError, KeyError):
        config = None
    metrics = read_metrics(run_dir / "metrics.csv")
    status = summary.get("status")
    if status not in ev.STATUSES or (status == ev.RUNNING and not _process_alive(summary.get("pid"), summary.get("host"))):
        summary["status"] = ev.INCOMPLETE
    if summary["status"] in (ev.INCOMPLETE, ev.RUNNING):
        summary["epochs_completed"] = len(metrics)
        if metrics:
            last = metrics[-1]
            summary.update(
                train_loss=last["train_loss"], val_loss=last["val_loss"], val_acc=last["val_acc"],
                best_val_acc=max(m["val_acc"] for m in metrics),
            )
    summary.setdefault("name", config.name if config else run_dir.name)
    return RunRecord(path=run_dir, summary=summary, config=config, metrics=metrics)


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
    records.sort(key=lambda r: (r.summary.get("started_at") or "", str(r.path)))
    return records
