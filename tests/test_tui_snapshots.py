"""Snapshots of the app's main views at 80x24 and 120x40, fed by a scripted event stream.

`ScriptedBackend` replaces torch and the data with fixed events, so each screen is the same on
every machine. Regenerate with `pytest tests/test_tui_snapshots.py --snapshot-update` and look
at the SVGs before committing them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from textual.widgets import Input

from fcn_tui.config import Config, Preset
from fcn_tui.tui.app import FcnApp
from fcn_tui.tui.sysinfo import MIB, Sample, SystemMonitor
from tests.helpers import SNAPSHOT_SIZES, earlier_runs, settle_for_snapshot
from tests.scripted import ScriptedBackend


@pytest.fixture
def app(tmp_path, monkeypatch) -> FcnApp:
    """The app with an Adam run of three scripted epochs set up, writing to ./runs."""
    monkeypatch.chdir(tmp_path)
    for module in ("fcn_tui.runs", "fcn_tui.studies.runner"):  # Runs shows the run's folder name
        monkeypatch.setattr(f"{module}.timestamp", lambda: "20260101-120000")
    # the system readout of the Train view: the same figures on every machine
    monkeypatch.setattr(SystemMonitor, "read", lambda self, device="": Sample(cpu_percent=97.0, cores=2, rss=412 * MIB))
    config = Config().with_values({"name": "adam-lr0.001", "optim.name": "adam", "optim.lr": 0.001,
                                   "train.epochs": 3})
    return FcnApp(preset=Preset(config), out=Path("runs"), backend_factory=ScriptedBackend)


async def train(pilot) -> None:
    """Start the scripted run (ctrl+r) and wait until it has finished and Runs is reloaded."""
    await settle_for_snapshot(pilot)
    await pilot.press("ctrl+r")
    await settle_for_snapshot(pilot)


@pytest.mark.parametrize("size", SNAPSHOT_SIZES)
def test_setup_view(snap_compare, app, size):
    assert snap_compare(app, terminal_size=size, run_before=settle_for_snapshot)


def test_setup_view_with_invalid_fields(snap_compare, app):
    async def invalid(pilot) -> None:
        await settle_for_snapshot(pilot)
        pilot.app.query_one("#f-optim-lr").value = "0"
        pilot.app.query_one("#f-model-hidden").value = "400,,400"
        await settle_for_snapshot(pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=invalid)


@pytest.mark.parametrize("size", SNAPSHOT_SIZES)
def test_train_view_after_a_run(snap_compare, app, size):
    assert snap_compare(app, terminal_size=size, run_before=train)


@pytest.mark.parametrize("size", SNAPSHOT_SIZES)
def test_confusion_view_after_a_run(snap_compare, app, size):
    assert snap_compare(app, terminal_size=size, run_before=train, press=["f3"])


def test_confusion_view_as_percentages(snap_compare, app):
    assert snap_compare(app, terminal_size=(80, 24), run_before=train, press=["f3", "n", "v"])


@pytest.mark.parametrize("size", SNAPSHOT_SIZES)
def test_runs_view_after_a_run(snap_compare, app, size):
    assert snap_compare(app, terminal_size=size, run_before=train, press=["f4"])


@pytest.mark.parametrize("size", SNAPSHOT_SIZES)
def test_train_view_with_two_overlaid_runs(snap_compare, app, size):
    earlier_runs(Path("runs"), Config().with_values({"name": "earlier-adam", "optim.name": "adam", "optim.lr": 0.01,
                                                     "train.epochs": 3}),
                 Config().with_values({"name": "earlier-sgd", "optim.name": "sgd", "optim.lr": 0.1, "train.epochs": 4}))

    async def overlay(pilot) -> None:
        await train(pilot)  # the form's run: adam, lr 0.001
        await pilot.press("f4", "s")  # Runs, sorted by name: the current run, then the two earlier ones
        await pilot.press("down", "space", "down", "space")  # pick both for the charts
        await pilot.press("f2")  # back to Train: both drawn over the current run, labelled apart
        await settle_for_snapshot(pilot)

    assert snap_compare(app, terminal_size=size, run_before=overlay)


async def show_mistakes(pilot) -> None:
    """The run, then enter on the most confused cell of its test matrix: its images."""
    await train(pilot)
    await pilot.press("f3", "enter")
    await settle_for_snapshot(pilot)


@pytest.mark.parametrize("size", SNAPSHOT_SIZES)
def test_mistakes_gallery(snap_compare, app, size):
    assert snap_compare(app, terminal_size=size, run_before=show_mistakes)


async def show_weights(pilot) -> None:
    """The run with a model of 12 hidden units whose weights are stripes and rings, then w in Runs."""
    import numpy as np
    import torch

    await train(pilot)
    y, x = np.mgrid[0:28, 0:28] / 27.0
    units = [np.cos((k + 1) * np.pi * (x if k % 2 else y)) * (1 if k < 6 else np.hypot(x - 0.5, y - 0.5))
             for k in range(12)]
    first = torch.tensor(np.stack(units).reshape(12, 784), dtype=torch.float32)
    [run_dir] = Path("runs").iterdir()
    torch.save({"0.weight": first, "0.bias": torch.zeros(12)}, run_dir / "model.pt")
    await pilot.press("f4", "w")
    await settle_for_snapshot(pilot)


@pytest.mark.parametrize("size", SNAPSHOT_SIZES)
def test_weights_view(snap_compare, app, size):
    assert snap_compare(app, terminal_size=size, run_before=show_weights)


async def advanced_open(pilot) -> None:
    """The advanced section opened, its schedule list focused (the focus ring shows)."""
    await settle_for_snapshot(pilot)
    pilot.app.query_one("#advanced").collapsed = False
    pilot.app.query_one("#f-optim-schedule").focus()
    await settle_for_snapshot(pilot)


@pytest.mark.parametrize("size", SNAPSHOT_SIZES)
def test_setup_view_with_the_advanced_section_open(snap_compare, app, size):
    assert snap_compare(app, terminal_size=size, run_before=advanced_open)


async def picker_open(pilot) -> None:
    """ctrl+o in a folder of presets, its tree listed."""
    await settle_for_snapshot(pilot)
    work = Path("work")
    (work / "presets" / "archive").mkdir(parents=True)
    for name in ("baseline.toml", "adam.toml"):
        (work / "presets" / name).write_text(f'name = "{name[:-5]}"\n')
    (work / "notes.txt").write_text("not a preset: not listed")
    os.chdir(work)  # the picker starts in the working folder (monkeypatch restores it)
    await pilot.press("ctrl+o")
    tree = pilot.app.screen.query_one("#picker-tree")
    for _ in range(200):
        if tree.root.children:
            break
        await pilot.pause(0.05)
    await pilot.press("tab", "down", "enter")  # into the tree, open presets
    for _ in range(200):
        if tree.root.children[0].children:
            break
        await pilot.pause(0.05)
    await pilot.pause()
    pilot.app.screen.query_one(Input).cursor_blink = False


@pytest.mark.parametrize("size", SNAPSHOT_SIZES)
def test_preset_file_picker(snap_compare, app, size):
    assert snap_compare(app, terminal_size=size, run_before=picker_open)
