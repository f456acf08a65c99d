"""What the runner yields about each run, whether it trains alone or in a pack (`fcn_tui.studies.runner`
re-exports these; `fcn_tui.studies.packs` yields them without importing the runner)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fcn_tui import events as ev


@dataclass(frozen=True)
class RunStarting:
    position: int  # 1-based number of the run in its study (or in the list of single runs)
    total: int
    name: str
    run_dir: Path
    note: str = ""  # e.g. why an earlier attempt could not be continued


@dataclass(frozen=True)
class RunSkipped:
    position: int
    total: int
    name: str
    run_dir: Path


@dataclass(frozen=True)
class Trained:
    """An engine event (`fcn_tui.events`) of the run being trained."""

    event: ev.Event
    position: int
    total: int
    run_dir: Path


@dataclass(frozen=True)
class RunCrashed:
    """A run that could not start (bad data, device or memory: `bad_input`) or broke outside the engine."""

    name: str
    message: str
    run_dir: Path | None = None
    bad_input: bool = False
