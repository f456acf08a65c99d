"""Snapshots of the Runs tab with six runs (`runs_history.history`) and of its comparison table,
at 80x24 and 120x40, and of the diff of two runs at 80x24 (a dialog of the same size at 120x40).
Regenerate with `--snapshot-update` and look at the SVGs before committing them.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fcn_tui.tui.app import FcnApp
from tests.helpers import SNAPSHOT_SIZES, settle_for_snapshot
from tests.runs_history import history
from tests.scripted import ScriptedBackend


@pytest.fixture
def app(tmp_path, monkeypatch) -> FcnApp:
    """The app on a history of six runs in ./runs (a relative path: the same on every machine)."""
    monkeypatch.chdir(tmp_path)
    history(Path("runs"))
    return FcnApp(out=Path("runs"), backend_factory=ScriptedBackend)


@pytest.mark.parametrize("size", SNAPSHOT_SIZES)
def test_runs_view_with_several_runs(snap_compare, app, size):
    # F4: the Runs tab; down to the run trained on a subset, whose detail line says so
    assert snap_compare(app, terminal_size=size, run_before=settle_for_snapshot, press=["f4", "down", "down"])


def test_runs_view_diff_of_two_picked_runs(snap_compare, app):
    # sort by best val (best first), pick the two best, diff them
    keys = ["f4", "s", "s", "s", "space", "down", "space", "d"]
    assert snap_compare(app, terminal_size=(80, 24), run_before=settle_for_snapshot, press=keys)


@pytest.mark.parametrize("size", SNAPSHOT_SIZES)
def test_runs_view_comparison_table(snap_compare, app, size):
    assert snap_compare(app, terminal_size=size, run_before=settle_for_snapshot, press=["f4", "c"])
