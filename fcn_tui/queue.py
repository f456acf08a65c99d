"""Plan the runs of one or more presets, where their folders go, and which `--resume` skips.

A preset without a sweep is one run, written to `OUT/<time>-<name>/`. A preset with a
`[sweep]` is a study: `OUT/<time>-<name>/` holds `sweep.toml` (the preset as given), one run
folder per run (`001-<run name>`, ...), `results.csv` and `results.md`.

With `resume=True`, a sweep reuses the newest study folder of the same preset name under OUT,
and any run already `completed` with the same configuration (there, or for a single-run
preset directly under OUT) is skipped; the others run again. A run folder that cannot be read
back (`unreadable`) is kept as it is and the run goes to a new folder beside it.

Shared by the CLI and the TUI, so both lay out runs the same way. Imports no torch.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from fcn_tui import events as ev
from fcn_tui.config import Config, Preset, config_to_dict, config_to_toml, format_value
from fcn_tui.runs import (
    RunRecord,
    RunWriteError,
    atomic_write_text,
    find_runs,
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

    def make_dir(self) -> Path:
        """Create this run's folder (on resume, an unfinished earlier attempt is cleared and reused)."""
        if self.group.is_sweep:
            sweep_dir = self.group.ensure_dir()
            name = f"{self.index:03d}-{slug(self.config.name)}"
            path = sweep_dir / name
            earlier = read_run(path) if path.exists() and not path.is_symlink() else None
            if path.is_symlink() or (earlier is not None and earlier.status in (ev.COMPLETED, ev.RUNNING, ev.UNREADABLE)):
                path = unique_dir(sweep_dir, name)  # completed (other config), running or damaged: keep it
            else:
                try:
                    if path.exists():
                        shutil.rmtree(path)  # an earlier, unfinished attempt at this same run
                    path.mkdir(parents=True)
                except OSError as err:
                    raise RunWriteError(f"{path}: cannot create the run folder ({err.strerror or err})") from None
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


def _completed_configs(records: list[RunRecord]) -> dict[str, Path]:
    done = {}
    for record in records:
        if record.status == ev.COMPLETED and record.config is not None:
            done[json.dumps(config_to_dict(record.config), sort_keys=True)] = record.path
    return done


def plan(presets: list[Preset], out_root: Path, resume: bool = False) -> list[PlannedGroup]:
    groups = []
    for preset in presets:
        group = PlannedGroup(preset=preset, out_root=Path(out_root))
        done: dict[str, Path] = {}
        if resume:
            if preset.is_sweep:
                group.sweep_dir = _newest_study(group.out_root, preset.config.name)
                if group.sweep_dir is not None:
                    done = _completed_configs(find_runs(group.sweep_dir))
            else:
                top_level = [r for r in find_runs(group.out_root) if r.path.parent == group.out_root]
                done = _completed_configs(top_level)
        for index, config in enumerate(preset.runs(), start=1):
            key = json.dumps(config_to_dict(config), sort_keys=True)
            run = PlannedRun(config=config, index=index, group=group, skip=key in done)
            if run.skip:
                run.run_dir = done[key]
            group.runs.append(run)
        groups.append(group)
    return groups
