"""Hostile input to the study layer: damaged journals, odd storages and presets, and what each
command says about them (one line, exit 2, nothing lost)."""

from __future__ import annotations

from pathlib import Path

import pytest
from optuna.trial import TrialState
from typer.testing import CliRunner

from fcn_tui.cli import app
from fcn_tui.config import load_preset
from fcn_tui.runs import read_run
from fcn_tui.studies import runner
from fcn_tui.studies.store import JOURNAL, StudyStore
from tests.helpers import TINY_PRESET, grid, stop_in_run
from tests.scripted import ScriptedBackend

cli = CliRunner()


def test_resume_after_a_journal_write_was_cut_off_keeps_the_study_readable(tmp_path):
    """A full disk or a power loss cut the last record short; `--resume` writes after it."""
    out = tmp_path / "out"
    study = stop_in_run(grid(tmp_path), out, run=2)  # run 1 completed, run 2 stopped
    journal = study / JOURNAL
    with journal.open("ab") as f:
        f.write(b'{"op_code":8,"worker_id":"w","trial_id":1,"user_attr":{"stat')  # no newline: cut off
    events = list(runner.run_study(load_preset(grid(tmp_path)), ScriptedBackend(), lambda: False,
                                   runner.RunOptions(out=out, resume=True)))
    assert [r.status for r in events[-1].records] == ["completed", "completed"]
    import optuna

    reopened = optuna.load_study(study_name="tiny", storage=optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(journal))))  # Optuna itself reads it too
    assert [t.state.name for t in reopened.trials][:2] == ["COMPLETE", "FAIL"]
    assert StudyStore.open(study).records()[1].status == "completed"


DAMAGE = {
    "a line of garbage": lambda j: j.write_bytes(j.read_bytes() + b"garbage\n" + b'{"op_code":0}\n'),
    "random bytes": lambda j: j.write_bytes(bytes(range(256)) * 8),
    "a record Optuna never writes": lambda j: j.write_bytes(j.read_bytes() + b'{"op_code":99}\n'),
    "a record without its trial": lambda j: j.write_bytes(j.read_bytes() + b'{"op_code":6}\n'),
    "a list": lambda j: j.write_bytes(j.read_bytes() + b"[1, 2]\n"),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_journal_is_one_line_for_every_command(tmp_path, damage):
    out = tmp_path / "out"
    study = stop_in_run(grid(tmp_path), out, run=2)
    DAMAGE[damage](study / JOURNAL)
    kept = (study / JOURNAL).read_bytes()
    for args in (["worker", "--storage", str(study)], ["export", "--storage", str(study), "--csv", str(tmp_path / "a.csv")],
                 ["ui", "--storage", str(study)]):
        result = cli.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert result.stderr.startswith("fcn-tui: error: ") and result.stderr.count("\n") == 1, result.stderr
        assert "damaged" in result.stderr or "not a study journal" in result.stderr
    result = cli.invoke(app, ["plot", str(out), "--out", str(tmp_path / "figures")])
    assert "Traceback" not in result.output and "its journal cannot be read" in result.stderr
    assert (study / JOURNAL).read_bytes() == kept  # reported, never rewritten


def test_a_file_that_is_no_journal_is_never_written_to(tmp_path):
    import sqlite3

    db = tmp_path / "studies.db"
    sqlite3.connect(db).execute("create table t (x)").connection.commit()
    notes = tmp_path / "notes.txt"
    notes.write_bytes(b"my notes, no newline")
    before = {p: p.read_bytes() for p in (db, notes)}
    preset = grid(tmp_path)
    result = cli.invoke(app, ["worker", "--storage", str(db)])
    assert result.exit_code == 2 and "not a study journal; for SQLite give sqlite:///FILE" in result.stderr
    for storage in (db, notes):
        result = cli.invoke(app, ["run", str(preset), "--storage", str(storage), "--out", str(tmp_path / "out")])
        assert result.exit_code == 2 and "not a study journal" in result.stderr, result.output
    assert {p: p.read_bytes() for p in (db, notes)} == before
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("values", ["[0.01, 0.01]", "[0.01, 1e-2]", "[1, 1.0]"])
def test_a_sweep_that_lists_a_value_twice_is_refused(tmp_path, values):
    """Two identical runs: `--resume` told them apart by their settings and so never continued
    the first one if it had stopped."""
    preset = grid(tmp_path)
    preset.write_text(preset.read_text().replace("[0.01, 0.02]", values))
    result = cli.invoke(app, ["run", str(preset), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert result.stderr.startswith("fcn-tui: error: ") and "sweep.optim.lr:" in result.stderr
    assert "listed twice" in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("url", ["sqlite:///", "sqlite:///:memory:", "sqlite:///?cache=shared"])
def test_an_sqlite_url_without_a_file_is_refused(tmp_path, url):
    """SQLite keeps such a database in memory: the study trained, then vanished with the process."""
    result = cli.invoke(app, ["run", str(grid(tmp_path)), "--storage", url, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert result.stderr == f"fcn-tui: error: {url}: name a database file, e.g. sqlite:///study.db\n"
    assert not (tmp_path / "out").exists()


def resume_twice_at_once(preset_path, study: Path) -> None:
    """Two `run --resume` of one study started at the same moment: both read the study before
    either queued anything, then both queue what they found unfinished."""
    preset = load_preset(preset_path)
    first, second = StudyStore.open(study), StudyStore.open(study)
    seen_by_second = second.latest_runs()
    runner.bring_up_to_date(first, preset)
    second.latest_runs = lambda: seen_by_second
    runner.bring_up_to_date(second, preset)


def test_two_resumes_at_once_continue_a_stopped_run_once(tmp_path):
    out = tmp_path / "out"
    study = stop_in_run(grid(tmp_path), out, run=1)  # run 1 stopped, run 2 never started
    resume_twice_at_once(grid(tmp_path), study)
    events = list(runner.work(StudyStore.open(study), study, ScriptedBackend(), lambda: False,
                              runner.RunOptions(out=out)))
    started = sorted(e.name for e in events if isinstance(e, runner.RunStarting))
    assert started == ["optim.lr=0.01", "optim.lr=0.02"]  # before: optim.lr=0.01 twice, in two folders
    assert [r.status for r in StudyStore.open(study).records()] == ["completed", "completed"]


def test_two_resumes_at_once_of_a_grown_search_add_each_trial_once(tmp_path):
    path = tmp_path / "search.toml"
    search = TINY_PRESET + '\n[search]\ntrials = 2\npruner = "none"\n"optim.lr" = { low = 1e-3, high = 0.1 }\n'
    path.write_text(search)
    out = tmp_path / "out"
    list(runner.run_study(load_preset(path), ScriptedBackend(), lambda: False, runner.RunOptions(out=out)))
    (study,) = out.iterdir()
    path.write_text(search.replace("trials = 2", "trials = 3"))
    resume_twice_at_once(path, study)
    events = list(runner.work(StudyStore.open(study), study, ScriptedBackend(), lambda: False,
                              runner.RunOptions(out=out)))
    assert len([e for e in events if isinstance(e, runner.RunStarting)]) == 1
    assert [r.status for r in StudyStore.open(study).records()] == ["completed"] * 3


@pytest.mark.parametrize("searched, message", [
    ('"train.device" = ["cpu", "cuda:7"]', "device 'cuda:7'"),
    ('"model.hidden" = [[32], [60000, 60000, 60000]]', "search model.hidden = [60000, 60000, 60000]: needs about"),
])
def test_a_searched_value_that_cannot_run_is_refused_before_the_study_starts(tmp_path, searched, message):
    """As a sweep's values are: before, the study was created and each such trial failed."""
    preset = tmp_path / "search.toml"
    preset.write_text(TINY_PRESET + f"\n[search]\ntrials = 2\n{searched}\n")
    result = cli.invoke(app, ["run", str(preset), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("fcn-tui: error: ") and message in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_the_summary_names_only_run_folders_that_are_here(tmp_path, synthetic_data_dir):
    """Run 1 of the study was trained on another machine: its folder is there, not here."""
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    preset = grid(tmp_path, epochs=1)
    store, _ = StudyStore.create_or_join(url, "shared", load_preset(preset))
    trial = store.claim()
    for key, value in (("host", "another-machine"), ("pid", 1), ("run_dir", "/elsewhere/001-optim.lr=0.01"),
                       ("status", "completed")):
        store.storage.set_trial_user_attr(trial.id, key, value)
    store.storage.set_trial_state_values(trial.id, state=TrialState.COMPLETE, values=[0.5])
    result = cli.invoke(app, ["run", str(preset), "--storage", url, "--study", "shared", "--out", str(tmp_path / "out"),
                              "--data-dir", str(synthetic_data_dir)])
    assert result.exit_code == 0, result.output
    assert "/elsewhere" not in result.stdout  # before: "written to /elsewhere/001-optim.lr=0.01"
    assert str(tmp_path / "out" / "shared") in result.stdout.replace("\n", "")  # where this machine's runs are
    assert (tmp_path / "out" / "shared" / "002-optim.lr=0.02" / "summary.json").is_file()


@pytest.mark.parametrize("name, message", [
    ("a\nb", "--study: study name 'a\\nb': expected a name of printable text"),
    ("", "--study: study name '': expected a name of printable text"),
    ("x" * 10_000, "10,000 characters, more than 512"),
])
def test_a_study_name_no_storage_keeps_is_refused_up_front(tmp_path, synthetic_data_dir, postgres_url, name, message):
    """PostgreSQL keeps 512 characters of a study name: a longer one ended in a DataError traceback."""
    for args in (["run", str(grid(tmp_path)), "--storage", postgres_url, "--out", str(tmp_path / "out"),
                  "--data-dir", str(synthetic_data_dir)],
                 ["worker", "--storage", postgres_url], ["export", "--storage", postgres_url, "--csv", str(tmp_path / "a.csv")]):
        result = cli.invoke(app, [*args, "--study", name])
        assert result.exit_code == 2
        assert result.stderr.startswith("fcn-tui: error: ") and message in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_a_preset_name_too_long_for_the_storage_is_refused_up_front(tmp_path, synthetic_data_dir, postgres_url):
    preset = grid(tmp_path)
    preset.write_text(preset.read_text().replace('name = "tiny"', f'name = "{"n" * 600}"'))
    result = cli.invoke(app, ["run", str(preset), "--storage", postgres_url, "--out", str(tmp_path / "out"),
                              "--data-dir", str(synthetic_data_dir)])
    assert result.exit_code == 2 and "600 characters, more than 512" in result.stderr, result.output
    assert not (tmp_path / "out").exists()


def test_resume_with_fewer_search_trials_drops_the_queued_ones_past_the_count(tmp_path):
    path = tmp_path / "search.toml"
    search = TINY_PRESET + '\n[search]\ntrials = 4\npruner = "none"\n"optim.lr" = { low = 1e-3, high = 0.1 }\n'
    path.write_text(search)
    study = stop_in_run(path, tmp_path / "out", run=1)  # run 1 stopped, runs 2 to 4 queued
    path.write_text(search.replace("trials = 4", "trials = 2"))
    events = list(runner.run_study(load_preset(path), ScriptedBackend(), lambda: False,
                                   runner.RunOptions(out=tmp_path / "out", resume=True)))
    assert events[0].total == 2
    assert sorted(e.position for e in events if isinstance(e, runner.RunStarting)) == [1, 2]  # before: 1 to 4
    assert [r.status for r in StudyStore.open(study).records()] == ["completed", "completed"]


def test_resuming_a_copy_of_a_study_folder_continues_the_copy_and_leaves_the_original(tmp_path, synthetic_data_dir):
    import shutil
    import threading

    from fcn_tui import events as ev
    from fcn_tui.backend import TorchBackend

    preset = grid(tmp_path, epochs=3)
    stop = threading.Event()
    for event in runner.run_study(load_preset(preset), TorchBackend.load(synthetic_data_dir), stop.is_set,
                                  runner.RunOptions(out=tmp_path / "out")):
        if isinstance(event, runner.Trained) and isinstance(event.event, ev.EpochEnded) and event.position == 1:
            stop.set()  # run 1 stopped after its first epoch, with a checkpoint
    (original,) = (tmp_path / "out").iterdir()
    copy = tmp_path / "try-again" / original.name
    shutil.copytree(original, copy)
    kept = {p: p.read_bytes() for p in original.rglob("*") if p.is_file()}
    result = cli.invoke(app, ["run", str(preset), "--resume", "--out", str(copy.parent), "--data-dir", str(synthetic_data_dir)])
    assert result.exit_code == 0, result.output
    assert "continuing from its checkpoint after epoch 1" in result.stdout
    assert {p: p.read_bytes() for p in original.rglob("*") if p.is_file()} == kept  # before: run 1 trained on in there
    assert read_run(copy / "001-optim.lr=0.01").status == "completed"
    assert len((copy / "001-optim.lr=0.01" / "metrics.csv").read_text().splitlines()) == 1 + 3


def test_a_password_holding_an_at_sign_is_never_shown(tmp_path):
    """`postgresql://fcn:pa@ss@host/db`: the server was looked up as 'ss@host', shown in the error."""
    url = "postgresql://fcn:s3cr@tpw@127.0.0.1:1/fcn"
    for args in (["run", str(grid(tmp_path)), "--storage", url, "--out", str(tmp_path / "out")],
                 ["worker", "--storage", url], ["export", "--storage", url, "--csv", str(tmp_path / "a.csv")]):
        result = cli.invoke(app, args)
        assert result.exit_code == 2
        assert result.stderr == ("fcn-tui: error: postgresql+psycopg://fcn:***@127.0.0.1:1/fcn: its user name or "
                                 "password holds an '@'; write it as %40\n")
    result = cli.invoke(app, ["worker", "--storage", "postgresql://fcn:s3cr%40tpw@127.0.0.1:1/fcn"])
    assert result.exit_code == 2 and "fcn:***@127.0.0.1:1/fcn" in result.stderr and "s3cr" not in result.stderr


@pytest.mark.parametrize("storage", ["{tmp}/studies", "sqlite:///{tmp}/studies.db"])
def test_bad_input_found_after_the_storage_check_leaves_no_storage_file(tmp_path, storage):
    """The dataset is missing: before, the refused run left an empty journal or SQLite database."""
    (tmp_path / "studies").mkdir()
    storage = storage.format(tmp=tmp_path)
    result = cli.invoke(app, ["run", str(grid(tmp_path)), "--storage", storage, "--out", str(tmp_path / "out"),
                              "--data-dir", str(tmp_path / "no-data")])
    assert result.exit_code == 2 and "Fashion-MNIST not found" in result.stderr
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["grid.toml", "studies"]


def test_a_storage_file_that_cannot_be_created_is_refused_up_front(tmp_path):
    for storage in (f"sqlite:///{tmp_path}/missing/studies.db", str(tmp_path / "missing" / "study.journal")):
        result = cli.invoke(app, ["run", str(grid(tmp_path)), "--storage", storage, "--out", str(tmp_path / "out")])
        assert result.exit_code == 2 and "its folder is missing or not writable" in result.stderr, result.output
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("value", [123, ["a"], "", "bad\0path"])
def test_a_run_folder_in_the_journal_that_is_no_path_is_ignored(tmp_path, value):
    """A hand-edited journal: export and --resume read the run from the storage instead."""
    import socket

    out = tmp_path / "out"
    study = stop_in_run(grid(tmp_path), out, run=1)
    store = StudyStore.open(study)
    trial = store.claim()
    for key, attr_value in (("host", socket.gethostname()), ("pid", 2**22 + 7), ("run_dir", value)):
        store.storage.set_trial_user_attr(trial.id, key, attr_value)
    store.storage.set_trial_state_values(trial.id, state=TrialState.FAIL)
    result = cli.invoke(app, ["export", "--storage", str(study), "--csv", str(tmp_path / "a.csv")])
    assert result.exit_code == 0, result.output  # before: TypeError, exit 1
    events = list(runner.run_study(load_preset(grid(tmp_path)), ScriptedBackend(), lambda: False,
                                   runner.RunOptions(out=out, resume=True)))
    assert [r.status for r in events[-1].records] == ["completed", "completed"]


def test_resume_with_workers_never_appends_through_a_link_planted_at_a_worker_log(tmp_path, synthetic_data_dir):
    out = tmp_path / "out"
    study = stop_in_run(grid(tmp_path), out, run=1)
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me\n")
    (study / "worker-1.log").symlink_to(victim)
    result = cli.invoke(app, ["run", str(grid(tmp_path)), "--resume", "--workers", "2", "--out", str(out),
                              "--data-dir", str(synthetic_data_dir)])
    assert result.exit_code == 1
    assert "worker-1.log: cannot write (a symbolic link is in the way; not followed)" in " ".join(result.stdout.split())
    assert victim.read_text() == "keep me\n"  # before: the worker's whole output appended to it
    assert not (study / "worker-2.log").exists()  # no worker started


@pytest.mark.parametrize("target", [JOURNAL, "sweep.toml", "001-optim.lr=0.01/summary.json"])
def test_export_never_writes_its_csv_over_the_study_it_exports(tmp_path, target):
    study = stop_in_run(grid(tmp_path), tmp_path / "out", run=2)
    kept = (study / target).read_bytes()
    result = cli.invoke(app, ["export", "--storage", str(study), "--csv", str(study / target)])
    assert result.exit_code == 2 and "a file fcn-tui keeps a study or a run in" in result.stderr
    assert (study / target).read_bytes() == kept  # before: the study's journal became a CSV table
    assert StudyStore.open(study).records()[0].status == "completed"
