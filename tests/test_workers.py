"""Studies trained by several worker processes, on the journal file and on a real PostgreSQL
server: every run trained exactly once, a killed worker's run continued from its checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from fcn_tui.studies.store import StudyStore
from tests.helpers import WAIT_S, fcn_tui, finish

GRID = """
name = "grid"
[model]
hidden = [32]
[train]
epochs = {epochs}
batch_size = 32
device = "cpu"
[sweep]
"optim.name" = ["sgd", "adam"]
"optim.lr" = [0.01, 0.03, 0.1]
"""
def assert_each_run_trained_once(store: StudyStore, epochs: int) -> None:
    trials = store.trials()
    assert len(trials) == 6, [t.user_attrs.get("name") for t in trials]  # no duplicate, no extra trial
    assert sorted(t.user_attrs["run"] for t in trials) == [1, 2, 3, 4, 5, 6]
    assert {t.state.name for t in trials} == {"COMPLETE"}
    folders = [Path(t.user_attrs["run_dir"]) for t in trials]
    assert len(set(folders)) == 6
    for folder in folders:  # one header and one line per epoch: nobody trained it twice
        assert len((folder / "metrics.csv").read_text().splitlines()) == 1 + epochs
    assert len({t.user_attrs["name"] for t in trials}) == 6


def test_three_workers_share_a_six_run_grid_on_the_journal(synthetic_data_dir, tmp_path):
    (tmp_path / "grid.toml").write_text(GRID.format(epochs=2))
    proc = fcn_tui("run", str(tmp_path / "grid.toml"), "--workers", "3", "--out", str(tmp_path / "out"),
                   "--data-dir", str(synthetic_data_dir))
    out = finish(proc)
    assert proc.returncode == 0, out[-3000:]
    assert "3 workers" in out
    (study,) = (tmp_path / "out").iterdir()
    store = StudyStore.open(study)
    assert_each_run_trained_once(store, epochs=2)
    workers = {t.user_attrs["worker"] for t in store.trials()}
    assert workers <= {"w1", "w2", "w3"}
    assert len((study / "results.csv").read_text().splitlines()) == 7
    assert sorted(p.name for p in study.glob("worker-*.log")) == ["worker-1.log", "worker-2.log", "worker-3.log"]


def test_three_processes_joining_one_postgresql_study_at_once(synthetic_data_dir, tmp_path, postgres_url):
    (tmp_path / "grid.toml").write_text(GRID.format(epochs=2))
    args = ("run", str(tmp_path / "grid.toml"), "--storage", postgres_url, "--study", "same-instant",
            "--data-dir", str(synthetic_data_dir))
    procs = [fcn_tui(*args, "--out", str(tmp_path / f"machine{i}")) for i in range(3)]  # three "machines"
    outs = [finish(p) for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], "\n".join(o[-1500:] for o in outs)
    assert sum("created" in o.split("study same-instant:")[1][:20] for o in outs) == 1  # one made it, two joined
    store = StudyStore.open(postgres_url, "same-instant")
    assert_each_run_trained_once(store, epochs=2)
    exported = tmp_path / "all.csv"
    done = subprocess.run([sys.executable, "-m", "fcn_tui", "export", "--storage", postgres_url,
                           "--study", "same-instant", "--csv", str(exported)],
                          check=False, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rows = exported.read_text().splitlines()
    assert len(rows) == 7 and all(",completed," in row for row in rows[1:])


def _running_trial_past_epoch(store: StudyStore, epoch: int):
    for trial in store.trials():
        if trial.state.name == "RUNNING" and trial.user_attrs.get("epoch", 0) >= epoch:
            return trial
    return None


def test_a_killed_worker_s_run_continues_from_its_checkpoint_with_the_same_metrics(synthetic_data_dir, tmp_path):
    (tmp_path / "grid.toml").write_text(GRID.replace('"optim.lr" = [0.01, 0.03, 0.1]', '"optim.lr" = [0.03]')
                                        .format(epochs=12))
    out_dir = tmp_path / "out"
    parent = fcn_tui("run", str(tmp_path / "grid.toml"), "--workers", "2", "--out", str(out_dir),
                     "--data-dir", str(synthetic_data_dir), "--checkpoint-every", "0")  # on disk at each epoch
    deadline = time.monotonic() + WAIT_S
    victim = None
    while victim is None and time.monotonic() < deadline and parent.poll() is None:
        time.sleep(0.2)
        studies = list(out_dir.glob("*/study.journal"))
        if studies:
            victim = _running_trial_past_epoch(StudyStore.open(studies[0].parent), 3)
    assert victim is not None, "no run reached epoch 3 while the study ran"
    os.kill(victim.user_attrs["pid"], signal.SIGKILL)
    out = finish(parent)
    assert parent.returncode == 0, out[-3000:]
    assert "killed" in out or "signal" in out  # the lost worker is reported
    store = StudyStore.open(out_dir.glob("*/study.journal").__next__().parent)
    attempts = [t for t in store.trials() if t.user_attrs["run"] == victim.user_attrs["run"]]
    assert [t.state.name for t in attempts] == ["FAIL", "COMPLETE"]
    folder = Path(attempts[1].user_attrs["run_dir"])
    assert folder == Path(victim.user_attrs["run_dir"])  # continued in its own folder
    import json

    summary = json.loads((folder / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["resumed_after_epoch"] >= 3
    assert len((folder / "metrics.csv").read_text().splitlines()) == 13

    # the same run, uninterrupted, with the workers' one thread
    import torch

    from fcn_tui.config import config_from_dict
    from fcn_tui.data import load_fashion_mnist, make_split
    from fcn_tui.engine import Trainer

    config = config_from_dict(attempts[1].user_attrs["config"], "trial")
    threads = torch.get_num_threads()
    torch.set_num_threads(summary["threads"])
    try:
        data = load_fashion_mnist(synthetic_data_dir)
        split = make_split(data, config.train.val_fraction, config.train.seed, config.data.subset)
        final = list(Trainer(config, split).events())[-1]
    finally:
        torch.set_num_threads(threads)
    assert (summary["val_acc"], summary["test_acc"], summary["train_loss"]) == (
        final.val_acc, final.test_acc, final.train_loss)


def _epochs_in_folders(study_dirs: list[Path]) -> int:
    """The most epochs any run folder of the study has written to its metrics.csv (cheap to read
    while workers train, unlike the journal)."""
    lines = [len(m.read_text().splitlines()) - 1 for d in study_dirs for m in d.glob("*/metrics.csv")]
    return max(lines, default=0)


def test_ctrl_c_stops_every_worker_and_resume_finishes_the_study(synthetic_data_dir, tmp_path):
    # 40 short epochs: a stop sent once a run has finished its first lands long before it ends,
    # however loaded the machine
    (tmp_path / "grid.toml").write_text(GRID.format(epochs=40))
    out_dir = tmp_path / "out"
    args = ("run", str(tmp_path / "grid.toml"), "--workers", "2", "--out", str(out_dir),
            "--data-dir", str(synthetic_data_dir))
    parent = fcn_tui(*args)
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline and parent.poll() is None and _epochs_in_folders(list(out_dir.glob("*"))) < 1:
        time.sleep(0.05)
    parent.send_signal(signal.SIGINT)
    out = finish(parent)
    assert parent.returncode == 130, out[-3000:]
    (study,) = out_dir.iterdir()
    store = StudyStore.open(study)
    statuses = [t.user_attrs.get("status") for t in store.trials() if t.state.name != "WAITING"]
    assert "stopped" in statuses and "running" not in statuses  # every worker saved its run
    from fcn_tui.runs import read_run

    stopped = {r.name: r.get("epochs_completed") for r in map(read_run, study.glob("*/")) if r.status == "stopped"}
    assert any(stopped.values()), stopped  # at least one stopped after an epoch: it has a checkpoint

    resumed = fcn_tui(*args, "--resume")
    out = finish(resumed)
    assert resumed.returncode == 0, out[-3000:]
    store = StudyStore.open(study)
    latest = store.latest_runs()
    assert len(latest) == 6 and {t.state.name for t in latest} == {"COMPLETE"}
    continued = {r.name: r.get("resumed_after_epoch") for r in (read_run(Path(t.user_attrs["run_dir"])) for t in latest)}
    for name, epochs in stopped.items():  # each stopped run went on from its checkpoint, if it had one
        assert continued[name] == (epochs or None), (name, stopped, continued)
    import re  # the console says so too, not only the workers' logs

    assert re.search(r"^  \[w\d\] .*: continu(ing|ed) after epoch \d+", out, re.MULTILINE), out[-3000:]


def test_a_run_whose_heartbeat_stopped_on_postgresql_is_taken_over(tmp_path, postgres_url):
    """A machine that lost its network: its run's heartbeat is an hour old, so the next worker
    fails that trial (exactly once) and trains the run again."""
    import psycopg

    from fcn_tui.config import preset_from_text
    from fcn_tui.studies import runner
    from tests.scripted import ScriptedBackend

    preset = preset_from_text(GRID.format(epochs=2), "grid.toml")
    options = runner.RunOptions(out=tmp_path / "out", storage=postgres_url, study_name="lost-machine")
    store, folder, _ = runner.open_study(preset, options)
    lost = store.claim()
    store.storage.set_trial_user_attr(lost.id, "host", "a-machine-that-lost-its-network")
    store.storage.record_heartbeat(lost.id)
    with psycopg.connect(postgres_url) as db:
        db.execute("UPDATE trial_heartbeats SET heartbeat = heartbeat - interval '1 hour' WHERE trial_id = %s",
                   (lost.id,))
    events = list(runner.work(store, folder, ScriptedBackend(), lambda: False, options))
    trained = [e.name for e in events if isinstance(e, runner.RunStarting)]
    assert len(trained) == 6 and len(set(trained)) == 6
    again = StudyStore.open(postgres_url, "lost-machine")
    attempts = [t for t in again.trials() if t.user_attrs["run"] == lost.run]
    assert [t.state.name for t in attempts] == ["FAIL", "COMPLETE"]
    assert [t.state.name for t in again.latest_runs()] == ["COMPLETE"] * 6


def test_workers_take_the_devices_in_turn_with_their_share_of_the_threads(tmp_path):
    from types import SimpleNamespace

    from fcn_tui.studies import runner, workers

    store = SimpleNamespace(spec=str(tmp_path / "study"), name="grid")
    plan = workers.WorkerPlan(count=4, devices=["cuda:0", "cuda:1"], threads=4)
    commands = [workers.worker_command(store, runner.RunOptions(out=tmp_path), plan, i) for i in range(4)]
    devices = [c[c.index("--device") + 1] for c in commands]
    assert devices == ["cuda:0", "cuda:1", "cuda:0", "cuda:1"]  # a 2-GPU box, 4 workers: 2 per GPU
    assert {c[c.index("--threads") + 1] for c in commands} == {"4"}
    assert [c[c.index("--label") + 1] for c in commands] == ["w1", "w2", "w3", "w4"]
    plain = workers.worker_command(store, runner.RunOptions(out=tmp_path), workers.WorkerPlan(count=2), 0)
    assert "--device" not in plain  # no devices given: each run's own train.device


def _read_until(proc: subprocess.Popen, done, seen: list[str]) -> None:
    """Read the command's lines into `seen` until `done(seen)` holds (or the command ends)."""
    deadline = time.monotonic() + WAIT_S
    while not done(seen) and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            return
        seen.append(line)


def test_ctrl_c_after_the_last_run_stops_the_workers_without_calling_them_killed(synthetic_data_dir, tmp_path):
    (tmp_path / "grid.toml").write_text(GRID.format(epochs=1))
    out_dir = tmp_path / "out"
    parent = fcn_tui("run", str(tmp_path / "grid.toml"), "--workers", "2", "--out", str(out_dir),
                     "--data-dir", str(synthetic_data_dir))
    seen: list[str] = []
    _read_until(parent, lambda lines: sum("completed, epoch 1/1" in x for x in lines) == 6, seen)
    parent.send_signal(signal.SIGINT)  # the workers are ending, or about to
    out = "".join(seen) + finish(parent)
    assert parent.returncode == 130, out[-3000:]
    assert "killed" not in out and "warning" not in out, out[-3000:]
    assert "epoch 0/1, val acc" not in out  # a value is never shown under the epoch before its own

    # a worker joining the finished study says so, and a stop on its way out is no kill
    (study,) = out_dir.iterdir()
    late = fcn_tui("worker", "--storage", str(study), "--data-dir", str(synthetic_data_dir))
    seen = []
    _read_until(late, lambda lines: any("nothing left to train" in x for x in lines), seen)
    for _ in range(3):
        with __import__("contextlib").suppress(ProcessLookupError):
            late.send_signal(signal.SIGINT)
        time.sleep(0.05)
    out = "".join(seen) + finish(late)
    assert late.returncode in (0, 130), out
    assert "nothing left to train: 6 runs done" in out and "Traceback" not in out
    assert out.splitlines()[0] == f"worker here: study grid in {study}"  # the folder, said once


def test_resume_with_workers_shows_only_the_runs_it_trains(synthetic_data_dir, tmp_path):
    preset = GRID.format(epochs=1).replace('"optim.name" = ["sgd", "adam"]\n', "")  # three runs
    (tmp_path / "grid.toml").write_text(preset)
    out_dir = tmp_path / "out"
    args = ("run", str(tmp_path / "grid.toml"), "--workers", "2", "--out", str(out_dir),
            "--data-dir", str(synthetic_data_dir))
    first = fcn_tui(*args)
    out = finish(first)
    assert first.returncode == 0, out[-3000:]
    (tmp_path / "grid.toml").write_text(preset + '"train.seed" = [0, 1]\n')  # seed 0: the same three runs
    again = fcn_tui(*args, "--resume")
    out = finish(again)
    assert again.returncode == 0, out[-3000:]
    assert out.count(": already completed in 00") == 3  # the runs done before, named once each, by folder name
    progress = [line for line in out.splitlines() if line.startswith("  [w")]
    assert progress and all("train.seed=1" in line for line in progress), progress


def test_a_search_with_workers_shows_no_run_before_it_is_sampled(synthetic_data_dir, tmp_path):
    (tmp_path / "search.toml").write_text(GRID.format(epochs=1).split("[sweep]")[0] + """
[search]
trials = 3
"optim.lr" = { low = 0.001, high = 0.1, log = true }
""")
    proc = fcn_tui("run", str(tmp_path / "search.toml"), "--workers", "2", "--out", str(tmp_path / "out"),
                   "--data-dir", str(synthetic_data_dir))
    out = finish(proc)
    assert proc.returncode == 0, out[-3000:]
    progress = [line for line in out.splitlines() if line.startswith("  [w")]
    assert sum("completed, epoch 1/1" in line for line in progress) == 3
    assert not [line for line in progress if "/?" in line or "] trial " in line], progress


def test_a_worker_s_progress_line_agrees_with_its_epoch():
    from fcn_tui.console import progress_line
    from fcn_tui.runs import RunRecord

    def record(status, epoch, values, **extra):
        return RunRecord(path=Path("001-run"), summary={"name": "run", "status": status, "epochs_completed": epoch,
                                                         "epochs": 2, **extra}, config=None,
                         metrics=[{"epoch": float(e), "val_acc": v} for e, v in values.items()])

    assert progress_line(record("running", 0, {})) == "starting"
    assert progress_line(record("running", 1, {})) is None  # its value is not written yet
    assert progress_line(record("running", 1, {1: 0.636})) == "running, epoch 1/2, val acc 63.60%"
    assert progress_line(record("running", 1, {}, continued_after=1)) == "continuing after epoch 1"
    assert progress_line(record("running", 2, {2: 0.7}, continued_after=1), first=True) is None  # the last: told at its end
    assert progress_line(record("completed", 2, {2: 0.7}, continued_after=1, val_acc=0.7), first=True) == (
        "continued after epoch 1: completed, epoch 2/2, val acc 70.00%")  # its start came and went between looks
    finished = record("completed", 2, {1: 0.6, 2: 0.7}, val_acc=0.7)
    assert progress_line(finished) == "completed, epoch 2/2, val acc 70.00%"
    unsampled = RunRecord(path=Path("001-trial-0"), summary={"name": "trial 0", "status": "running", "epochs": None},
                          config=None)
    assert progress_line(unsampled) is None


def test_every_worker_run_gets_a_starting_line_and_no_running_line_at_its_last_epoch():
    """Progress read from the storage every few seconds misses short states: a run first seen
    finished still gets its starting line; `running, epoch 1/1` just before `completed` is not said."""
    import io

    from rich.console import Console

    from fcn_tui.console import Reporter, StudyPresenter
    from fcn_tui.runs import RunRecord
    from fcn_tui.studies import runner

    def record(name, status, epoch, worker="w1"):
        return RunRecord(path=Path(f"00{name}-run"), summary={"name": f"run{name}", "status": status, "epochs_completed": epoch,
                                                              "epochs": 1, "worker": worker, "val_acc": 0.5}, config=None,
                         metrics=[{"epoch": 1.0, "val_acc": 0.5}] if epoch else [])

    out = io.StringIO()
    present = StudyPresenter(Reporter(Console(file=out, width=120), interactive=False))
    present.show(runner.WorkersProgress(name="grid", workers_alive=2, records=[record(1, "running", 0), record(2, "completed", 1, "w2")]))
    present.show(runner.WorkersProgress(name="grid", workers_alive=2, records=[record(1, "running", 1), record(2, "completed", 1, "w2")]))
    present.show(runner.WorkersProgress(name="grid", workers_alive=2, records=[record(1, "completed", 1), record(2, "completed", 1, "w2")]))
    present.show(runner.Waiting(running=1))
    assert out.getvalue().splitlines() == [
        "  [w1] run1: starting",
        "  [w2] run2: starting",
        "  [w2] run2: completed, epoch 1/1, val acc 50.00%",
        "  [w1] run1: completed, epoch 1/1, val acc 50.00%",
        "  no run left to claim; waiting for 1 run of other workers",
    ]
