"""`fcn-tui run ... --resume`: completed runs with the same configuration are skipped, stopped or
interrupted ones continue from their checkpoint, the others run again, and nothing is deleted."""

from __future__ import annotations

import csv
import json
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fcn_tui.cli import app
from fcn_tui.runs import read_metrics, read_run
from tests.helpers import TINY_PRESET

runner = CliRunner()


@pytest.fixture
def sweep(tmp_path) -> Path:
    path = tmp_path / "sweep.toml"
    path.write_text(TINY_PRESET.replace("epochs = 2", "epochs = 1") + "\n[sweep]\n'optim.lr' = [0.01, 0.02, 0.03]\n")
    return path


def run(preset: Path, data: Path, out: Path, *extra: str):
    result = runner.invoke(app, ["run", str(preset), "--data-dir", str(data), "--out", str(out), *extra])
    assert result.exit_code == 0, result.stdout + result.stderr
    return result


def statuses(study: Path) -> list[tuple[str, str]]:
    with open(study / "results.csv", newline="") as f:
        return [(row["run_id"], row["status"]) for row in csv.DictReader(f)]


def test_resume_skips_completed_runs_continues_stopped_ones_and_takes_over_dead_ones(sweep, synthetic_data_dir, tmp_path):
    from fcn_tui import events as ev
    from fcn_tui.backend import TorchBackend
    from fcn_tui.config import load_preset
    from fcn_tui.studies import runner as study_runner
    from fcn_tui.studies.store import StudyStore

    sweep.write_text(sweep.read_text().replace("epochs = 1", "epochs = 3"))
    out = tmp_path / "out"
    stop = threading.Event()
    backend = TorchBackend.load(synthetic_data_dir)
    options = study_runner.RunOptions(out=out, pack=1)  # one run at a time: run 3 is still queued at the stop
    for event in study_runner.run_study(load_preset(sweep), backend, stop.is_set, options):
        if isinstance(event, study_runner.Trained) and isinstance(event.event, ev.EpochEnded) and event.position == 2:
            stop.set()  # Ctrl-C during run 2: it stops after its first epoch, run 3 stays queued
    (study,) = out.iterdir()
    store = StudyStore.open(study)
    dead = store.claim()  # run 3, claimed by a worker that then died
    store.storage.set_trial_user_attr(dead.id, "host", socket.gethostname())
    store.storage.set_trial_user_attr(dead.id, "pid", 2**22 + 1)
    first, second = sorted(p for p in study.iterdir() if p.is_dir())
    assert (read_run(first).status, read_run(second).status) == ("completed", "stopped")
    kept = (first / "summary.json").read_bytes(), (first / "model.pt").stat().st_mtime_ns

    result = run(sweep, synthetic_data_dir, out, "--resume")

    assert sorted(out.iterdir()) == [study]  # the same study folder, no new one
    assert "optim.lr=0.01: already completed" in " ".join(result.stdout.split())
    assert "continuing from its checkpoint after epoch 1" in result.stdout
    assert ((first / "summary.json").read_bytes(), (first / "model.pt").stat().st_mtime_ns) == kept
    third = study / "003-optim.lr=0.03"
    assert statuses(study) == [(first.name, "completed"), (second.name, "completed"), (third.name, "completed")]
    assert read_run(second).get("resumed_after_epoch") == 1  # continued in its own folder
    assert sorted(p for p in study.iterdir() if p.is_dir()) == [first, second, third]


def test_resume_with_a_changed_configuration_is_a_new_study_and_keeps_the_old_one(sweep, synthetic_data_dir, tmp_path):
    out = tmp_path / "out"
    run(sweep, synthetic_data_dir, out)
    (study,) = out.iterdir()
    old = {p.name: p.read_bytes() for p in study.rglob("*") if p.is_file()}

    result = run(sweep, synthetic_data_dir, out, "--resume", "--set", "train.batch_size=64")

    assert "already completed" not in result.stdout
    (new_study,) = set(out.iterdir()) - {study}
    assert new_study.name.endswith("tiny,train.batch_size=64")  # named after what --set changed
    rows = statuses(new_study)
    assert [status for _, status in rows] == ["completed"] * 3
    assert {read_run(new_study / run_id).config.train.batch_size for run_id, _ in rows} == {64}
    assert {p.name: p.read_bytes() for p in study.rglob("*") if p.is_file()} == old  # untouched


def test_resume_of_a_single_run_preset_skips_it_when_completed(tiny_preset, synthetic_data_dir, tmp_path):
    out = tmp_path / "out"
    run(tiny_preset, synthetic_data_dir, out, "--set", "train.epochs=1")
    before = sorted(out.iterdir())
    result = run(tiny_preset, synthetic_data_dir, out, "--set", "train.epochs=1", "--resume")
    assert "already completed" in result.stdout
    assert sorted(out.iterdir()) == before
    run(tiny_preset, synthetic_data_dir, out, "--set", "train.epochs=1", "--set", "optim.lr=0.02", "--resume")
    assert len(list(out.iterdir())) == 2  # a different configuration is a new run


def interrupt_after_epochs(out: Path, epochs: int) -> threading.Thread:
    """Ctrl-C to this process once a run under `out` has `epochs` rows in its metrics.csv."""

    def watch() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if any(len(read_metrics(m)) >= epochs for m in out.rglob("metrics.csv")):
                os.kill(os.getpid(), signal.SIGINT)
                return
            time.sleep(0.001)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def without_timings(run_dir: Path) -> tuple:
    summary = json.loads((run_dir / "summary.json").read_text())
    numbers = {k: summary[k] for k in ("status", "epochs_completed", "train_loss", "val_loss", "val_acc",
                                       "best_val_acc", "test_loss", "test_acc")}
    rows = [{k: v for k, v in row.items() if k != "epoch_s"} for row in read_metrics(run_dir / "metrics.csv")]
    return numbers, rows, (run_dir / "confusion.csv").read_text()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
@pytest.mark.parametrize("resume_with", ["the preset", "the run's config.toml"])
def test_a_stopped_run_continues_from_its_last_epoch_and_ends_as_if_never_stopped(
        synthetic_data_dir, tmp_path, resume_with):
    preset = tmp_path / "long.toml"  # dropout, momentum and a schedule: every kind of state matters
    preset.write_text(
        TINY_PRESET.replace("epochs = 2", "epochs = 40")
        .replace("hidden = [32]", "hidden = [32]\ndropout = 0.2")
        .replace("[optim]", "[optim]\nschedule = 'cosine'")
    )
    reference = tmp_path / "reference"
    run(preset, synthetic_data_dir, reference)
    (reference_run,) = reference.iterdir()

    out = tmp_path / "out"
    watcher = interrupt_after_epochs(out, 3)
    stopped = runner.invoke(app, ["run", str(preset), "--data-dir", str(synthetic_data_dir), "--out", str(out)])
    watcher.join()
    assert stopped.exit_code == 130, stopped.output
    (run_dir,) = out.iterdir()
    first = read_run(run_dir)
    assert first.status == "stopped" and 3 <= first.get("epochs_completed") < 40
    assert (run_dir / "checkpoint.pt").is_file()

    again = preset if resume_with == "the preset" else run_dir / "config.toml"
    result = run(again, synthetic_data_dir, out, "--resume")

    assert f"continuing from its checkpoint after epoch {first.get('epochs_completed')}" in result.stdout
    assert list(out.iterdir()) == [run_dir]  # the same folder, nothing else
    assert without_timings(run_dir) == without_timings(reference_run)
    assert not (run_dir / "checkpoint.pt").exists()  # completed: nothing left to continue


def test_resume_leaves_a_folder_that_is_not_a_run_alone(sweep, synthetic_data_dir, tmp_path):
    out = tmp_path / "out"
    run(sweep, synthetic_data_dir, out)
    (study,) = out.iterdir()
    second = sorted(p for p in study.iterdir() if p.is_dir())[1]
    summary = json.loads((second / "summary.json").read_text())
    for name in [p.name for p in second.iterdir()]:
        (second / name).unlink()
    (second / "notes.txt").write_text("my notes\n")  # the user's own folder now, with a run's name
    summary_status = summary["status"]
    assert summary_status == "completed"

    run(sweep, synthetic_data_dir, out, "--resume")

    assert [p.name for p in second.iterdir()] == ["notes.txt"]
    assert (second / "notes.txt").read_text() == "my notes\n"
    assert [status for _, status in statuses(study)] == ["completed"] * 3
