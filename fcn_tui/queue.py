"""Where a single run's folder goes, and what `--resume` does with it (`fcn_tui.runner.run_single`).

A preset without `[sweep]` or `[search]` is one run, written to `OUT/<time>-<name>/`. With
`resume=True`, a run already `completed` with the same configuration directly under OUT is
skipped; a `stopped`, `incomplete` or `failed` one that left a usable checkpoint continues in
its own folder from its last epoch; otherwise the run starts in a new folder. Nothing is
deleted: an earlier attempt without a checkpoint, a damaged (`unreadable`) run folder, a link or
a folder that is not a run stays as it is beside the new one. Studies (sweeps and searches) are
planned in their storage instead (`fcn_tui.runner`, `fcn_tui.study_store`). Imports no torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from fcn_tui import events as ev
from fcn_tui.config import Config, Preset, config_to_dict, preset_to_toml
from fcn_tui.runs import (
    CHECKPOINT,
    RunRecord,
    atomic_write_text,
    find_runs,
    load_checkpoint,
    new_run_dir,
    read_run,
    slug,
    timestamp,
    unique_dir,
)

SWEEP_MANIFEST = "sweep.toml"


@dataclass
class PlannedRun:
    config: Config
    index: int  # 1-based position within its preset
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
        if self.continue_dir is not None:
            path = self.continue_dir
        elif self.group.is_sweep:
            path = unique_dir(self.group.ensure_dir(), f"{self.index:03d}-{slug(self.config.name)}")
        else:
            path = new_run_dir(self.group.out_root, self.config.name)
        self.run_dir = path
        return path


@dataclass
class PlannedGroup:
    preset: Preset
    out_root: Path
    sweep_dir: Path | None = None
    runs: list[PlannedRun] = field(default_factory=list)

    @property
    def is_sweep(self) -> bool:
        return self.preset.is_sweep

    @property
    def name(self) -> str:
        return self.preset.config.name

    def ensure_dir(self) -> Path:
        """The study folder, created with its manifest on first use."""
        if self.sweep_dir is None:
            self.sweep_dir = unique_dir(self.out_root, f"{timestamp()}-{slug(self.name)}")
        if not (self.sweep_dir / SWEEP_MANIFEST).exists():
            atomic_write_text(self.sweep_dir / SWEEP_MANIFEST, sweep_manifest(self.preset))
        return self.sweep_dir

    def records(self) -> list[RunRecord]:
        """The runs of this group that have a folder, in plan order."""
        out = []
        for run in self.runs:
            if run.run_dir is not None and (record := read_run(run.run_dir)) is not None:
                out.append(record)
        return out


def sweep_manifest(preset: Preset) -> str:
    """The preset as TOML (`fcn_tui.config.preset_to_toml`)."""
    return preset_to_toml(preset)


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


def plan(presets: list[Preset], out_root: Path, resume: bool = False) -> list[PlannedGroup]:
    groups = []
    for preset in presets:
        group = PlannedGroup(preset=preset, out_root=Path(out_root))
        earlier: list[RunRecord] = []
        if resume:
            earlier = [r for r in find_runs(group.out_root) if r.path.parent == group.out_root]
        done = _by_config(earlier, (ev.COMPLETED,))
        unfinished = _by_config([r for r in earlier if (r.path / CHECKPOINT).is_file()], UNFINISHED)
        for index, config in enumerate(preset.runs(), start=1):
            key = _config_key(config)
            run = PlannedRun(config=config, index=index, group=group, skip=key in done)
            if run.skip:
                run.run_dir = done[key]
            elif key in unfinished:
                run.continue_dir = unfinished.pop(key)
            group.runs.append(run)
        groups.append(group)
    return groups
