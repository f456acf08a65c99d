"""The app's export (ctrl+e) refuses what `fcn-tui export` refuses and asks before replacing a file.

A user's session: a study and its runs under `out/`, the app opened on `out/`, ctrl+e and a path
typed by a slip of tab completion (the study's journal, its `sweep.toml`, a run's files): the
export is refused with one line and the study still resumes. Another existing file is replaced
only after a yes.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input
from textual.widgets._toast import Toast
from typer.testing import CliRunner

from fcn_tui.cli import app as cli_app
from fcn_tui.config import load_preset
from fcn_tui.studies.store import JOURNAL, StudyStore
from fcn_tui.tui.app import FcnApp
from fcn_tui.tui.dialogs import ConfirmDialog
from tests.helpers import TINY_PRESET, press, settle, until
from tests.scripted import ScriptedBackend

SIZE = (100, 32)


def toasts(app: FcnApp) -> str:
    """The notifications on screen, as one line (a long path wraps them)."""
    return " ".join(" ".join(str(toast.render()) for toast in app.screen.query(Toast)).split())


@pytest.fixture
def study_out(tmp_path, synthetic_data_dir) -> Path:
    """`out/` holding one finished study of two runs (a journal, `sweep.toml`, two run folders)."""
    preset = tmp_path / "grid.toml"
    preset.write_text(TINY_PRESET.replace("epochs = 2", "epochs = 1") + '\n[sweep]\n"optim.lr" = [0.01, 0.02]\n')
    out = tmp_path / "out"
    result = CliRunner().invoke(cli_app, ["run", str(preset), "--data-dir", str(synthetic_data_dir), "--out", str(out)])
    assert result.exit_code == 0, result.output
    return out


def app_on(out: Path, tmp_path: Path) -> FcnApp:
    preset = tmp_path / "tiny.toml"
    preset.write_text(TINY_PRESET)
    return FcnApp(preset=load_preset(preset), out=out, backend_factory=ScriptedBackend)


async def export_to(pilot, path: str) -> None:
    await press(pilot, "ctrl+e")  # the export dialog, its path field focused
    pilot.app.screen.query_one("#path-input", Input).value = path
    await press(pilot, "enter")


async def test_export_from_the_app_never_replaces_a_study_or_its_runs(study_out, tmp_path):
    (study,) = study_out.iterdir()
    run = min(p for p in study.iterdir() if p.is_dir())
    targets = [study / JOURNAL, study / "sweep.toml", *(run / name for name in ("summary.json", "metrics.csv", "model.pt"))]
    kept = {path: path.read_bytes() for path in targets}
    app = app_on(study_out, tmp_path)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        for path in targets:
            app.clear_notifications()
            await export_to(pilot, str(path))
            await until(pilot, lambda: "a file fcn-tui keeps a study or a run in" in toasts(app))
            assert not isinstance(app.screen, ConfirmDialog)  # refused outright, not offered
    assert {path: path.read_bytes() for path in targets} == kept  # before: the journal became a CSV table
    assert [r.status for r in StudyStore.open(study).records()] == ["completed", "completed"]


async def test_export_from_the_app_asks_before_replacing_another_file(study_out, tmp_path):
    notes = tmp_path / "notes.csv"
    notes.write_text("my own table\n")
    app = app_on(study_out, tmp_path)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        await export_to(pilot, str(notes))
        assert isinstance(app.screen, ConfirmDialog)  # "notes.csv exists. Replace it?"
        await press(pilot, "n")
        assert notes.read_text() == "my own table\n"  # no: left as it was
        await export_to(pilot, str(notes))
        await press(pilot, "y")
        await until(pilot, lambda: "wrote 2 rows" in toasts(app))
    assert notes.read_text().startswith("run_id,name,status")
