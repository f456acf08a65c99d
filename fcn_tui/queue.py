"""Plan the runs of one or more presets, where their folders go, and which `--resume` skips.

A preset without a sweep is one run, written to `OUT/<time>-<name>/`. A preset with a
`[sweep]` is a study: `OUT/<time>-<name>/` holds `sweep.toml` (the preset as given), one run
folder per run (`001-<run name>`, ...), `results.csv` and `results.md`.

With `resume=True`, a sweep reuses the newest study folder of the same preset name under OUT,
and any run already `completed` with the same configuration (there, or for a single-run
preset directly under OUT) is skipped. A `stopped`, `incomplete` or `failed` run of the same
configuration that left a usable checkpoint continues in its own folder from its last epoch;
the others run again in a new folder. Nothing is deleted: an earlier attempt without a
checkpoint, a damaged (`unreadable`) run folder, a link or a folder that is not a run stays as
it is beside the new one.

Shared by the CLI and the TUI, so both lay out runs the same way. Imports no torch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from fcn_tui import events as ev
from fcn_tui.config import Config, Preset, config_to_dict, config_to_toml, format_value
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
    """The preset as TOML: its base config plus its `[sweep]` table."""
    text = config_to_toml(preset.config)
    if preset.sweep:
        text += "\n[sweep]\n" + "".join(
            f'"{key}" = {format_value(list(values))}\n' for key, values in preset.sweep
        )
    return text


def _newest_study(out_root: Path, name: str) -> Path | None:
    if not out_root.is_dir():
        return None
    import tomllib

    candidates = []
    for manifest in out_root.glob(f"*/{SWEEP_MANIFEST}"):
        try:
            if tomllib.loads(manifest.read_text(encoding="utf-8")).get("name") == name:
                candidates.append(manifest.parent)
        except (OSError, ValueError, RecursionError):  # not a manifest we wrote: not this study
            continue
    return max(candidates, default=None, key=lambda p: p.name)


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
            if preset.is_sweep:
                group.sweep_dir = _newest_study(group.out_root, preset.config.name)
                if group.sweep_dir is not None:
                    earlier = find_runs(group.sweep_dir)
            else:
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
