"""Where a single run's folder goes, and what `--resume` does with it (`fcn_tui.studies.runner.run_single`).

A preset without `[sweep]` or `[search]` is one run, written to `OUT/<time>-<name>/`. With
`resume=True`, a run already `completed` with the same configuration directly under OUT is
skipped; a `stopped`, `incomplete` or `failed` one that left a usable checkpoint continues in
its own folder from its last epoch; otherwise the run starts in a new folder. A preset that is a
run folder's own `config.toml` (`run OUT/RUN/config.toml --resume --out OUT`) is that run:
skipped if it completed, else continued, whatever other runs of its configuration did. A run
that a live process is training (its folder's claim, `runs.claim_run_folder`) is not trained a
second time: the runner says who holds it. Nothing is
deleted: an earlier attempt without a checkpoint, a damaged (`unreadable`) run folder, a link or
a folder that is not a run stays as it is beside the new one. Studies (sweeps and searches) are
planned in their storage instead (`fcn_tui.studies.runner`, `fcn_tui.studies.store`). Imports no torch.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from fcn_tui import events as ev
from fcn_tui.config import Config, Preset, config_to_dict
from fcn_tui.runs import (
    CHECKPOINT,
    RunRecord,
    find_runs,
    load_checkpoint,
    new_run_dir,
)


@dataclass
class PlannedRun:
    config: Config
    group: PlannedGroup
    skip: bool = False  # already completed (resume)
    run_dir: Path | None = None  # set when the run starts
    continue_dir: Path | None = None  # resume: an unfinished earlier attempt that left a checkpoint

    def checkpoint(self, device_type: str) -> tuple[dict | None, str]:
        """The state to continue from on a `device_type` device (resume), or None and why the
        run starts from epoch 1."""
        if self.continue_dir is None:
            return None, ""
        from fcn_tui.engine import CheckpointError, check_checkpoint  # torch: only when training

        state, reason = load_checkpoint(self.continue_dir)
        if state is not None:
            try:
                check_checkpoint(state, self.config, device_type)
                return state, ""
            except CheckpointError as err:
                reason = str(err)
        self.continue_dir = None
        return None, reason

    def make_dir(self) -> Path:
        """This run's folder: the earlier attempt it continues, else a new one (nothing is removed)."""
        self.run_dir = self.continue_dir or new_run_dir(self.group.out_root, self.config.name)
        return self.run_dir


@dataclass
class PlannedGroup:
    preset: Preset
    out_root: Path
    runs: list[PlannedRun] = field(default_factory=list)


def _config_key(config: Config) -> str:
    return json.dumps(config_to_dict(config), sort_keys=True)


def _by_config(records: list[RunRecord], statuses: tuple[str, ...]) -> dict[str, Path]:
    """The folder of the newest run with each configuration among runs in `statuses`."""
    found = {}
    for record in records:  # oldest first: a newer attempt wins
        if record.status in statuses and record.config is not None and not record.path.is_symlink():
            found[_config_key(record.config)] = record.path
    return found


UNFINISHED = (ev.STOPPED, ev.INCOMPLETE, ev.FAILED)


def _own_run(preset: Preset, earlier: list[RunRecord]) -> RunRecord | None:
    """The run folder under OUT whose own `config.toml` the preset was read from, if any."""
    source = Path(preset.source)
    if source.name != "config.toml":
        return None
    for record in earlier:
        if record.config is not None and not record.path.is_symlink() and (
                os.path.realpath(record.path) == os.path.realpath(source.parent)):
            return record
    return None


def _continue_own(run: PlannedRun, record: RunRecord) -> None:
    """Plan `run` as the resumption of its own folder `record`: skipped when it completed,
    continued when it can be (a checkpoint, or another process training it: its claim decides)."""
    if record.status == ev.COMPLETED:
        run.skip, run.run_dir = True, record.path
    elif record.status == ev.RUNNING or (record.status in UNFINISHED and (record.path / CHECKPOINT).is_file()):
        run.continue_dir = record.path


def plan(presets: list[Preset], out_root: Path, resume: bool = False) -> list[PlannedGroup]:
    groups = []
    for preset in presets:
        group = PlannedGroup(preset=preset, out_root=Path(out_root))
        earlier: list[RunRecord] = []
        if resume:
            earlier = [r for r in find_runs(group.out_root) if r.path.parent == group.out_root]
        done = _by_config(earlier, (ev.COMPLETED,))
        unfinished = _by_config([r for r in earlier if (r.path / CHECKPOINT).is_file()], UNFINISHED)
        busy = _by_config(earlier, (ev.RUNNING,))  # a live process on this machine trains it now
        own = _own_run(preset, earlier)
        for config in preset.runs():
            key = _config_key(config)
            run = PlannedRun(config=config, group=group)
            if own is not None and _config_key(own.config) == key:
                _continue_own(run, own)
            elif key in done:
                run.skip, run.run_dir = True, done[key]
            elif key in busy:  # continued only if its claim is free: the runner says who holds it
                run.continue_dir = busy.pop(key)
            elif key in unfinished:
                run.continue_dir = unfinished.pop(key)
            group.runs.append(run)
        groups.append(group)
    return groups
