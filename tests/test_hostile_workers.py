"""Hostile conditions for workers: a storage that restarts, workers that are paused, stopped or
orphaned, a claim taken over, a device that is not here, a study that is not there yet. Real
processes and signals, a real PostgreSQL server, tiny synthetic data."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fcn_tui.cli import app
from fcn_tui.config import preset_from_text
from fcn_tui.errors import StorageLost, StudyError, StudyNotFound
from fcn_tui.studies import runner, workers
from fcn_tui.studies.store import JOURNAL, StudyStore, claimant_alive, process_paused
from tests.helpers import WAIT_S, fcn_tui, finish
from tests.scripted import ScriptedBackend

cli = CliRunner()


def two_runs(tmp_path: Path, epochs: int, batch_size: int = 4, lrs: str = "0.01, 0.02") -> Path:
    """A sweep of two runs (`optim.lr`); batch size 4 makes an epoch take about 0.3 s here."""
    path = tmp_path / "two.toml"
    path.write_text(f"""
name = "two"
[model]
hidden = [32]
[train]
epochs = {epochs}
batch_size = {batch_size}
device = "cpu"
[sweep]
"optim.lr" = [{lrs}]
""")
    return path


def wait_for(condition, what: str, timeout: float = WAIT_S):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (found := condition()):
            return found
        time.sleep(0.2)
    pytest.fail(f"{what}: not within {timeout}s")


def journal_study(out: Path) -> StudyStore | None:
    studies = list(out.glob(f"*/{JOURNAL}"))
    return StudyStore.open(studies[0].parent) if studies else None


def running_past(store: StudyStore | None, epoch: int, count: int) -> list:
    if store is None:
        return []
    trials = [t for t in store.trials() if t.state.name == "RUNNING" and t.user_attrs.get("epoch", 0) >= epoch
              and t.user_attrs.get("pid")]
    return trials if len(trials) >= count else []


def gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return process_paused(pid) and Path(f"/proc/{pid}/stat").read_bytes().rsplit(b")", 1)[1][1:2] == b"Z"


# --- item 2: a PostgreSQL restart mid-study -------------------------------------------------------


def test_workers_ride_out_a_postgresql_restart_and_record_every_run_once(synthetic_data_dir, tmp_path, postgres_url,
                                                                      postgres_server):
    epochs = 30
    parent = fcn_tui("run", str(two_runs(tmp_path, epochs)), "--storage", postgres_url, "--study", "restart",
                     "--workers", "2", "--out", str(tmp_path / "out"), "--data-dir", str(synthetic_data_dir))

    def both_running():
        try:
            return running_past(StudyStore.open(postgres_url, "restart"), 1, 2)
        except StudyError:
            return []

    wait_for(both_running, "both runs training")
    postgres_server.stop()  # `pg_ctl -m fast stop`: every connection is cut
    time.sleep(3)
    postgres_server.start()
    out = finish(parent)
    assert parent.returncode == 0, out[-3000:]
    assert "StorageInternalError" not in out and "max length" not in out
    store = StudyStore.open(postgres_url, "restart")
    trials = store.trials()
    assert [t.state.name for t in trials] == ["COMPLETE", "COMPLETE"]  # recorded, each trained once
    for trial in trials:
        folder = Path(trial.user_attrs["run_dir"])
        assert len((folder / "metrics.csv").read_text().splitlines()) == 1 + epochs
        assert len(trial.intermediate_values) == epochs  # every epoch reached the storage
    assert not list((tmp_path / "out").glob("*/*-2"))


def test_a_storage_away_longer_than_the_bound_stops_the_run_in_one_line(tmp_path, postgres_url, postgres_server,
                                                                       monkeypatch):
    """The storage gone for longer than `OUTAGE_S`: the run stops as `stopped` (its folder says
    so) and the error says what happened in one line, not SQLAlchemy's words."""
    from fcn_tui.studies import store as study_store

    monkeypatch.setattr(study_store, "OUTAGE_S", 1.0)
    preset = preset_from_text(two_runs(tmp_path, 3).read_text(), "two.toml")
    options = runner.RunOptions(out=tmp_path / "out", storage=postgres_url, study_name="outage-for-good")
    store, folder, _ = runner.open_study(preset, options)
    events = []
    with pytest.raises(StorageLost, match=r"^lost the connection to postgresql\S* for 1.0 s \("):
        for event in runner.work(store, folder, ScriptedBackend(), lambda: False, options):
            events.append(event)
            if isinstance(event, runner.RunStarting):  # the server goes away under the run
                postgres_server.stop()
    postgres_server.start()
    (started,) = [e for e in events if isinstance(e, runner.RunStarting)]
    summary = json.loads((started.run_dir / "summary.json").read_text())
    assert summary["status"] == "stopped"  # saved, to continue with --resume


def test_a_run_whose_folder_says_completed_is_recorded_on_resume_not_trained_again(tmp_path, monkeypatch):
    """The storage never heard that run 1 completed (it was away at that moment): `--resume`
    records the folder's result instead of training the run again in a `-2` folder."""
    preset = preset_from_text(two_runs(tmp_path, 2).read_text(), "two.toml")
    options = runner.RunOptions(out=tmp_path / "out")
    conclude = runner._conclude
    monkeypatch.setattr(runner, "_conclude", lambda *args, **kwargs: None)  # every write of the end lost
    done = []
    for event in runner.run_study(preset, ScriptedBackend(), lambda: bool(done), options):
        if isinstance(event, runner.Trained) and type(event.event).__name__ == "RunFinished":
            done.append(event.run_dir)
    monkeypatch.setattr(runner, "_conclude", conclude)
    store = journal_study(tmp_path / "out")
    (lost,) = [t for t in store.trials() if t.state.name == "RUNNING"]
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    store.storage.set_trial_user_attr(lost._trial_id, "pid", ended.pid)  # its worker is gone
    events = list(runner.run_study(preset, ScriptedBackend(), lambda: False,
                                   runner.RunOptions(out=tmp_path / "out", resume=True)))
    trained = [e.name for e in events if isinstance(e, runner.RunStarting)]
    assert trained == ["optim.lr=0.02"], trained  # run 1 is not trained again
    assert [r.status for r in events[-1].records] == ["completed", "completed"]
    assert events[-1].records[0].path == done[0]
    assert not list(done[0].parent.glob("*-2"))
    assert StudyStore.open(done[0].parent).latest_runs()[0].state.name == "COMPLETE"


# --- item 3: paused workers -----------------------------------------------------------------------


def test_ctrl_c_with_a_paused_worker_ends_in_time_and_resume_finishes(synthetic_data_dir, tmp_path):
    out_dir = tmp_path / "out"
    args = ("run", str(two_runs(tmp_path, 20)), "--workers", "2", "--out", str(out_dir),
            "--data-dir", str(synthetic_data_dir))
    parent = fcn_tui(*args)
    paused = wait_for(lambda: running_past(journal_study(out_dir), 1, 2), "both runs training")[0]
    os.kill(paused.user_attrs["pid"], signal.SIGSTOP)
    try:
        started = time.monotonic()
        parent.send_signal(signal.SIGINT)
        out = finish(parent)
        assert time.monotonic() - started < workers.WORKER_STOP_S, out[-3000:]  # a paused worker is not waited for
        assert parent.returncode == 130, out[-3000:]
        assert gone(paused.user_attrs["pid"])  # killed, not left holding its run
    finally:
        if not gone(paused.user_attrs["pid"]):
            os.kill(paused.user_attrs["pid"], signal.SIGKILL)
    resumed = fcn_tui(*args, "--resume")
    out = finish(resumed)
    assert resumed.returncode == 0, out[-3000:]
    assert [t.state.name for t in journal_study(out_dir).latest_runs()] == ["COMPLETE", "COMPLETE"]


def test_a_claim_held_by_a_paused_process_is_taken_over_in_a_new_folder(tmp_path):
    """`kill -STOP` of a worker, and its parent gone: the run is not waited for forever, and is
    not continued in the folder the paused process would write to again if it were continued."""
    preset = preset_from_text(two_runs(tmp_path, 2).read_text(), "two.toml")
    store, folder, _ = runner.open_study(preset, runner.RunOptions(out=tmp_path / "out"))
    held = store.claim()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        os.kill(sleeper.pid, signal.SIGSTOP)
        wait_for(lambda: process_paused(sleeper.pid), "the process paused", 10)
        for key, value in (("pid", sleeper.pid), ("host", os.uname().nodename), ("run_dir", str(folder / "001-x"))):
            store.storage.set_trial_user_attr(held.id, key, value)
        assert claimant_alive(store.storage.get_trial(held.id)) is False
        assert store.busy_elsewhere() == 0  # nothing to wait for
        assert store.reclaim_dead() == 1
        (again,) = [t for t in store.trials() if t.state.name == "WAITING" and t.user_attrs.get("continues") == 0]
        assert "continue_dir" not in again.user_attrs  # a new folder, not the paused process's
    finally:
        sleeper.kill()
        sleeper.wait()


# --- item 4: fencing ------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["journal", "postgresql"])
def test_a_worker_whose_claim_was_taken_over_stops_at_its_next_epoch(tmp_path, request, kind):
    preset = preset_from_text(two_runs(tmp_path, 6, lrs="0.01").read_text(), "two.toml")
    url = request.getfixturevalue("postgres_url") if kind == "postgresql" else None
    options = runner.RunOptions(out=tmp_path / "out", storage=url, study_name=f"fenced-{tmp_path.name}")
    store, folder, _ = runner.open_study(preset, options)
    events = []
    for event in runner.work(store, folder, ScriptedBackend(), lambda: False, options):
        events.append(event)
        if isinstance(event, runner.Trained) and type(event.event).__name__ == "EpochEnded" and event.event.epoch == 2:
            (trial,) = store.trials()
            assert store.fail(trial._trial_id)  # another worker took it over (its heartbeat looked stale)
            store.requeue(store.storage.get_trial(trial._trial_id))
        if isinstance(event, runner.Trained) and type(event.event).__name__ == "RunFinished":
            break  # the first run's end; the run queued again would be trained next
    taken = [e for e in events if isinstance(e, runner.RunTakenOver)]
    assert len(taken) == 1
    epochs = [e.event.epoch for e in events if isinstance(e, runner.Trained) and type(e.event).__name__ == "EpochEnded"]
    assert max(epochs) <= 4, epochs  # stopped, not trained to the end (6 epochs)
    first = (StudyStore.open(url, options.study_name) if url else journal_study(tmp_path / "out")).trials()[0]
    assert first.state.name == "FAIL"
    assert sorted(first.intermediate_values) == [1, 2]  # nothing reported after the takeover
    assert json.loads((taken[0].run_dir / "summary.json").read_text())["status"] == "stopped"


# --- item 6: a device that is not here ------------------------------------------------------------


@pytest.mark.parametrize("where", ["--device", "preset"])
def test_a_worker_with_a_device_that_is_not_here_claims_nothing(tmp_path, synthetic_data_dir, where):
    text = two_runs(tmp_path, 1).read_text()
    if where == "preset":
        text = text.replace('device = "cpu"', 'device = "cuda:99"')
    _store, folder, _ = runner.open_study(preset_from_text(text, "two.toml"), runner.RunOptions(out=tmp_path / "out"))
    args = ["worker", "--storage", str(folder), "--data-dir", str(synthetic_data_dir)]
    result = cli.invoke(app, [*args, "--device", "cuda:99"] if where == "--device" else args)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("fcn-tui: error: device 'cuda:99'") and result.stderr.count("\n") == 1
    assert {t.state.name for t in StudyStore.open(folder).trials()} == {"WAITING"}  # nothing claimed, nothing failed


# --- item 7: SIGTERM to one worker ----------------------------------------------------------------


def test_sigterm_to_one_worker_leaves_its_run_to_a_live_worker(synthetic_data_dir, tmp_path):
    out_dir = tmp_path / "out"
    parent = fcn_tui("run", str(two_runs(tmp_path, 15)), "--workers", "2", "--out", str(out_dir),
                     "--data-dir", str(synthetic_data_dir), "--pack", "1")  # a run per worker
    victim = wait_for(lambda: running_past(journal_study(out_dir), 2, 2), "both runs training")[0]
    os.kill(victim.user_attrs["pid"], signal.SIGTERM)
    out = finish(parent)
    assert "w1 was stopped by SIGTERM" in out or "w2 was stopped by SIGTERM" in out, out[-3000:]
    latest = journal_study(out_dir).latest_runs()
    if parent.returncode == 0:  # the live worker continued the run from its checkpoint
        assert [t.state.name for t in latest] == ["COMPLETE", "COMPLETE"], out[-3000:]
        continued = next(t for t in latest if t.user_attrs["run"] == victim.user_attrs["run"])
        assert continued.user_attrs["run_dir"] == victim.user_attrs["run_dir"]
    else:  # or the command says which run is left, and does not claim success
        assert parent.returncode == 1, out[-3000:]
        assert "no worker was left to continue it; --resume continues it" in out or (
            "left: 1 run of two did not finish" in out and "(stopped)" in out), out[-3000:]


# --- item 11: the parent killed -------------------------------------------------------------------


def test_sigkill_of_run_with_workers_stops_its_workers_saving_their_runs(synthetic_data_dir, tmp_path):
    out_dir = tmp_path / "out"
    parent = fcn_tui("run", str(two_runs(tmp_path, 60)), "--workers", "2", "--out", str(out_dir),
                     "--data-dir", str(synthetic_data_dir))
    trials = wait_for(lambda: running_past(journal_study(out_dir), 1, 2), "both runs training")
    parent.kill()
    finish(parent)
    pids = [t.user_attrs["pid"] for t in trials]
    try:
        wait_for(lambda: all(gone(pid) for pid in pids), "the workers stopping", 30)
    finally:
        for pid in pids:
            if not gone(pid):
                os.kill(pid, signal.SIGKILL)
    store = journal_study(out_dir)
    assert [t.user_attrs["status"] for t in store.trials()] == ["stopped", "stopped"]
    for trial in store.trials():
        summary = json.loads((Path(trial.user_attrs["run_dir"]) / "summary.json").read_text())
        assert summary["status"] == "stopped" and summary["epochs_completed"] < 60


# --- issue 18: the workers' rough edges -----------------------------------------------------------


def test_a_worker_started_before_its_study_waits_for_it_then_joins(synthetic_data_dir, tmp_path):
    db = f"sqlite:///{tmp_path / 'studies.db'}"
    early = fcn_tui("worker", "--storage", db, "--study", "two", "--wait", "120", "--threads", "1", "--out", str(tmp_path / "w"),
                    "--data-dir", str(synthetic_data_dir))
    first = early.stdout.readline()
    assert "no study here" in first and "waiting up to 120 s" in first, first
    assert not (tmp_path / "studies.db").exists()  # waiting creates nothing
    run = fcn_tui("run", str(two_runs(tmp_path, 3, batch_size=32)), "--storage", db, "--out", str(tmp_path / "r"),
                  "--data-dir", str(synthetic_data_dir))
    out, worker_out = finish(run), first + finish(early)
    assert run.returncode == 0 and early.returncode == 0, (out[-2000:], worker_out[-2000:])
    store = StudyStore.open(db, "two")
    assert [t.state.name for t in store.trials()] == ["COMPLETE", "COMPLETE"]  # each run once, whoever trained it


def test_a_worker_for_a_study_that_is_not_there_gives_up_after_its_wait_and_creates_nothing(tmp_path):
    started = time.monotonic()
    result = cli.invoke(app, ["worker", "--storage", f"sqlite:///{tmp_path / 'new.db'}", "--wait", "1"])
    assert result.exit_code == 2
    assert "no study here" in result.stderr and "(waited 1 s)" in result.stderr
    assert time.monotonic() - started < 10
    assert not (tmp_path / "new.db").exists()
    result = cli.invoke(app, ["worker", "--storage", str(tmp_path), "--wait", "0"])
    assert result.exit_code == 2 and "no study here" in result.stderr and "waiting" not in result.output


def test_a_worker_label_is_printed_without_its_control_characters(tmp_path, synthetic_data_dir):
    preset = preset_from_text(two_runs(tmp_path, 1).read_text(), "two.toml")
    events = list(runner.run_study(preset, ScriptedBackend(), lambda: False, runner.RunOptions(out=tmp_path / "out")))
    result = cli.invoke(app, ["worker", "--storage", str(events[0].folder), "--label", "w\x1b]0;owned\x07",
                              "--data-dir", str(synthetic_data_dir)])
    assert result.exit_code == 0, result.output
    assert "\x1b" not in result.output and "\x07" not in result.output
    assert "worker w?]0;owned?: study two" in result.output


def test_more_workers_than_runs_start_one_per_run(synthetic_data_dir, tmp_path):
    proc = fcn_tui("run", str(two_runs(tmp_path, 1, batch_size=32)), "--workers", "6", "--out", str(tmp_path / "out"),
                   "--data-dir", str(synthetic_data_dir))
    out = finish(proc)
    assert proc.returncode == 0, out[-3000:]
    assert "2 workers" in out and "6 workers" not in out
    (study,) = (tmp_path / "out").iterdir()
    assert sorted(p.name for p in study.glob("worker-*.log")) == ["worker-1.log", "worker-2.log"]


@pytest.mark.parametrize("damage, message", [
    (lambda j: j.unlink(), "the study's journal is gone"),
    (lambda j: j.write_bytes(j.read_bytes() + b"garbage\n" + b'{"op_code":0}\n'), "damaged"),
])
def test_a_journal_damaged_while_in_use_is_said_to_be(tmp_path, damage, message):
    preset = preset_from_text(two_runs(tmp_path, 1).read_text(), "two.toml")
    store, folder, _ = runner.open_study(preset, runner.RunOptions(out=tmp_path / "out"))
    damage(folder / JOURNAL)
    with pytest.raises(StudyError, match=message):
        store.claim()
        store.trials()


def test_resume_after_a_journal_cut_short_says_so_within_seconds(tmp_path, monkeypatch):
    """Cut after the study's preset, before its runs were all queued: not a 2-minute silence."""
    from fcn_tui.studies import store as study_store

    monkeypatch.setattr(study_store, "PLAN_STALL_S", 3, raising=False)  # the default, 10 s, is as bounded
    preset = preset_from_text(two_runs(tmp_path, 1).read_text(), "two.toml")
    _, folder, _ = runner.open_study(preset, runner.RunOptions(out=tmp_path / "out"))
    journal = folder / JOURNAL
    journal.write_bytes(b"".join(journal.read_bytes().splitlines(keepends=True)[:3]))  # study, preset, one run
    started = time.monotonic()
    with pytest.raises(StudyError, match="never all queued"):
        runner.open_study(preset, runner.RunOptions(out=tmp_path / "out", resume=True))
    assert time.monotonic() - started < 20
    with pytest.raises(StudyNotFound):
        StudyStore.open(tmp_path / "nowhere")
