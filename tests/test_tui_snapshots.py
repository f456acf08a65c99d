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
from fcn_tui.tui.scripted import ScriptedBackend

SIZES = [(80, 24), (120, 40)]


@pytest.fixture
def app(tmp_path, monkeypatch) -> FcnApp:
    """The app with an Adam run of three scripted epochs set up, writing to ./runs."""
    monkeypatch.chdir(tmp_path)
    for module in ("fcn_tui.runs", "fcn_tui.queue"):  # Runs shows the run's folder name
        monkeypatch.setattr(f"{module}.timestamp", lambda: "20260101-120000")
    config = Config().with_values({"name": "adam-lr0.001", "optim.name": "adam", "optim.lr": 0.001,
                                   "train.epochs": 3})
    return FcnApp(preset=Preset(config), out=Path("runs"), backend_factory=ScriptedBackend)


async def settle(pilot) -> None:
    for _ in range(4):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
    for field in pilot.app.query(Input):
        field.cursor_blink = False  # a blinking cursor would make screenshots differ


async def train(pilot) -> None:
    """Start the scripted run (ctrl+r) and wait until it has finished and Runs is reloaded."""
    await settle(pilot)
    await pilot.press("ctrl+r")
    await settle(pilot)


@pytest.mark.parametrize("size", SIZES)
def test_setup_view(snap_compare, app, size):
    assert snap_compare(app, terminal_size=size, run_before=settle)


def test_setup_view_with_invalid_fields(snap_compare, app):
    async def invalid(pilot) -> None:
        await settle(pilot)
        pilot.app.query_one("#f-optim-lr").value = "0"
        pilot.app.query_one("#f-model-hidden").value = "400,,400"
        await settle(pilot)

    assert snap_compare(app, terminal_size=(80, 24), run_before=invalid)


@pytest.mark.parametrize("size", SIZES)
def test_train_view_after_a_run(snap_compare, app, size):
    assert snap_compare(app, terminal_size=size, run_before=train)


@pytest.mark.parametrize("size", SIZES)
def test_confusion_view_after_a_run(snap_compare, app, size):
    assert snap_compare(app, terminal_size=size, run_before=train, press=["f3"])


def test_confusion_view_as_percentages(snap_compare, app):
    assert snap_compare(app, terminal_size=(80, 24), run_before=train, press=["f3", "n", "v"])


@pytest.mark.parametrize("size", SIZES)
def test_runs_view_after_a_run(snap_compare, app, size):
    assert snap_compare(app, terminal_size=size, run_before=train, press=["f4"])


async def advanced_open(pilot) -> None:
    """The advanced section opened, its schedule list focused (the focus ring shows)."""
    await settle(pilot)
    pilot.app.query_one("#advanced").collapsed = False
    pilot.app.query_one("#f-optim-schedule").focus()
    await settle(pilot)


@pytest.mark.parametrize("size", SIZES)
def test_setup_view_with_the_advanced_section_open(snap_compare, app, size):
    assert snap_compare(app, terminal_size=size, run_before=advanced_open)


async def picker_open(pilot) -> None:
    """ctrl+o in a folder of presets, its tree listed."""
    await settle(pilot)
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


@pytest.mark.parametrize("size", SIZES)
def test_preset_file_picker(snap_compare, app, size):
    assert snap_compare(app, terminal_size=size, run_before=picker_open)
