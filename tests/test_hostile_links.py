"""Links planted in an output folder while fcn-tui writes there: never followed, never written through.

A user's session with an attacker beside it: a run folder swapped for a symbolic link mid-run,
hard links planted at `metrics.csv` or a worker's log, a link planted at a study's journal. The
run's files stay in the run's own folder (or the write is refused with one clear line); the file
outside keeps its content.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fcn_tui import events as ev
from fcn_tui.cli import app
from fcn_tui.config import Config, load_preset
from fcn_tui.runs import RunRecorder, RunWriteError, record_run
from tests.helpers import TINY_PRESET

runner = CliRunner()
RUN_FILES = ("summary.json", "metrics.csv", "model.pt", "predictions.npz", "confusion.csv", "config.toml")


def cli(*args):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


# --- 19.9: a run folder replaced by a link mid-run -----------------------------------------


def test_a_run_folder_swapped_for_a_link_mid_run_is_not_written_through(tmp_path, synthetic_data_dir):
    from fcn_tui.backend import TorchBackend

    preset = tmp_path / "tiny.toml"
    preset.write_text(TINY_PRESET.replace("epochs = 2", "epochs = 3"))
    config = load_preset(preset).config
    backend = TorchBackend.load(synthetic_data_dir)
    trainer = backend.trainer(config, backend.split(config), threading.Event().is_set)
    run_dir, moved, outside = tmp_path / "out" / "run", tmp_path / "out" / "run-moved", tmp_path / "outside"
    outside.mkdir()
    for event in record_run(trainer, run_dir):
        if isinstance(event, ev.EpochEnded) and event.epoch == 1:  # the attacker's swap, mid-run
            run_dir.rename(moved)
            run_dir.symlink_to(outside, target_is_directory=True)
    assert list(outside.iterdir()) == []  # nothing written outside: no summary, model, checkpoint
    summary = json.loads((moved / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["epochs_completed"] == 3
    assert all((moved / name).is_file() for name in RUN_FILES)
    assert len((moved / "metrics.csv").read_text().splitlines()) == 4  # header and three epochs


def test_a_run_folder_that_is_a_link_from_the_start_is_refused(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (tmp_path / "run").symlink_to(outside, target_is_directory=True)
    with pytest.raises(RunWriteError, match="run: cannot open the run folder"):
        RunRecorder(tmp_path / "run", Config(name="x"))
    assert list(outside.iterdir()) == []


# --- 19.10: hard links planted at files that are appended to --------------------------------


def test_metrics_are_never_appended_through_a_planted_hard_link(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    os.link(victim, run_dir / "metrics.csv")
    with pytest.raises(RunWriteError, match="metrics.csv: cannot write \\(a hard link is in the way; not appended through\\)"):
        RunRecorder(run_dir, Config(name="x"))
    assert victim.read_text() == "precious\n"


def test_a_hard_link_planted_at_a_worker_log_is_refused_before_any_worker_starts(tmp_path, synthetic_data_dir):
    preset = tmp_path / "w.toml"
    preset.write_text(TINY_PRESET.replace("epochs = 2", "epochs = 1") + '\n[sweep]\n"optim.lr" = [0.01, 0.02]\n')
    out = tmp_path / "out"
    assert cli("run", preset, "--data-dir", synthetic_data_dir, "--out", out).exit_code == 0
    (study,) = out.iterdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    os.link(victim, study / "worker-1.log")
    result = cli("run", preset, "--data-dir", synthetic_data_dir, "--out", out, "--resume", "--workers", "2")
    assert result.exit_code != 0
    assert "worker-1.log: cannot write (a hard link is in the way; not appended through)" in " ".join(result.output.split())
    assert victim.read_text() == "precious\n"


def test_open_append_appends_to_a_file_of_one_link(tmp_path):
    from fcn_tui.runs import open_append

    path = tmp_path / "log.txt"
    path.write_text("one\n")
    with os.fdopen(open_append(path), "a") as f:
        f.write("two\n")
    assert path.read_text() == "one\ntwo\n"


# --- 19.8: a link planted at a study's journal ----------------------------------------------


def sweep_preset(tmp_path: Path) -> Path:
    preset = tmp_path / "grid.toml"
    preset.write_text(TINY_PRESET.replace("epochs = 2", "epochs = 3") + '\n[sweep]\n"optim.lr" = [0.01, 0.02]\n')
    return preset


def test_a_link_planted_at_the_journal_mid_study_is_never_written_through(tmp_path, synthetic_data_dir):
    from fcn_tui.backend import TorchBackend
    from fcn_tui.errors import StudyError
    from fcn_tui.studies import runner as study_runner
    from fcn_tui.studies.store import JOURNAL

    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    out = tmp_path / "out"
    events = study_runner.run_study(load_preset(sweep_preset(tmp_path)), TorchBackend.load(synthetic_data_dir),
                                    threading.Event().is_set, study_runner.RunOptions(out=out))
    with pytest.raises(StudyError, match="study.journal: is a link; a study's journal is never followed"):
        for event in events:
            if isinstance(event, study_runner.Trained) and isinstance(event.event, ev.EpochEnded):
                journal = event.run_dir.parent / JOURNAL
                if not journal.is_symlink():  # the attacker's swap, after the first epoch
                    journal.rename(journal.with_name("moved.journal"))
                    journal.symlink_to(victim)
    assert victim.read_text() == "precious\n"  # before: the study's records were appended to it


def test_resume_of_a_study_whose_journal_is_a_link_is_refused_in_one_line(tmp_path, synthetic_data_dir):
    from fcn_tui.studies.store import JOURNAL

    preset, out = sweep_preset(tmp_path), tmp_path / "out"
    assert cli("run", preset, "--data-dir", synthetic_data_dir, "--out", out, "--set", "train.epochs=1").exit_code == 0
    (study,) = out.iterdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (study / JOURNAL).rename(tmp_path / "moved.journal")
    (study / JOURNAL).symlink_to(victim)
    result = cli("run", preset, "--data-dir", synthetic_data_dir, "--out", out, "--set", "train.epochs=1", "--resume")
    assert result.exit_code == 2
    assert f"{study / JOURNAL}: is a link; a study's journal is never followed through one" in " ".join(result.output.split())
    assert list(out.iterdir()) == [study]  # before: a new study, every run trained again
    assert victim.read_text() == "precious\n"


def test_a_journal_with_another_hard_link_is_never_appended_to(tmp_path, synthetic_data_dir):
    from fcn_tui.studies.store import JOURNAL

    preset, out = sweep_preset(tmp_path), tmp_path / "out"
    assert cli("run", preset, "--data-dir", synthetic_data_dir, "--out", out, "--set", "train.epochs=1").exit_code == 0
    (study,) = out.iterdir()
    os.link(study / JOURNAL, tmp_path / "elsewhere.journal")
    kept = (tmp_path / "elsewhere.journal").read_bytes()
    result = cli("run", preset, "--data-dir", synthetic_data_dir, "--out", out, "--set", "train.epochs=1", "--resume")
    assert result.exit_code == 2 and "has another hard link" in " ".join(result.output.split())
    assert (tmp_path / "elsewhere.journal").read_bytes() == kept
