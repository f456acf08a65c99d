"""Packs: a worker claims several compatible queued runs at once and trains them together, and each
is still a run of its own: its folder, its trial, its events; a member that ends leaves the pack
without touching the others; a stop saves every member resumable; checkpoints are written by time."""

from __future__ import annotations

import json
import math
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fcn_tui import events as ev
from fcn_tui.backend import TorchBackend
from fcn_tui.cli import app
from fcn_tui.config import load_preset
from fcn_tui.runs import CHECKPOINT, read_metrics, read_run
from fcn_tui.studies import runner
from fcn_tui.studies.store import StudyStore
from tests.helpers import TINY_PRESET

ROOT = Path(__file__).resolve().parents[1]
cli = CliRunner()
SMALL = ["--set", "model.hidden=[16]", "--set", "train.epochs=1", "--set", "train.batch_size=64",
         "--set", "train.device='cpu'"]


def grid(tmp_path: Path, sweep: str, epochs: int = 2) -> Path:
    path = tmp_path / "grid.toml"
    path.write_text(TINY_PRESET.replace("epochs = 2", f"epochs = {epochs}") + "\n[sweep]\n" + sweep)
    return path


def study_events(preset: Path, data: Path, out: Path, stop: threading.Event | None = None, **options):
    stop = stop or threading.Event()
    backend = TorchBackend.load(data)
    return runner.run_study(load_preset(preset), backend, stop.is_set, runner.RunOptions(out=out, **options))


def finals(study: Path) -> dict[str, tuple]:
    """Each run's final numbers, by name."""
    out = {}
    for summary in study.glob("*/summary.json"):
        s = json.loads(summary.read_text())
        out[s["name"]] = (s["status"], s["epochs_completed"], s["val_acc"], s["test_acc"], s["train_loss"])
    return out


def test_pack_12_trains_the_optimizer_grid_as_one_pack_with_12_folders_and_12_trials(synthetic_data_dir, tmp_path):
    result = cli.invoke(app, ["run", str(ROOT / "presets" / "optimizers.toml"), *SMALL, "--pack", "12",
                              "--data-dir", str(synthetic_data_dir), "--out", str(tmp_path / "packed")])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    starts = [i for i, line in enumerate(lines) if re.match(r"run \d+ of 12: ", line)]
    ends = [i for i, line in enumerate(lines) if re.match(r"  run \d+: completed: ", line)]
    assert len(starts) == 12 and len(ends) == 12
    assert max(starts) < min(ends)  # all twelve began before any ended: one pack
    assert "  run 7: epoch   1/1" in result.output  # each line says whose it is
    (study,) = (tmp_path / "packed").iterdir()
    store = StudyStore.open(study)
    trials = store.trials()
    assert len(trials) == 12 and {t.state.name for t in trials} == {"COMPLETE"}
    folders = {Path(t.user_attrs["run_dir"]) for t in trials}
    assert len(folders) == 12 and all(read_run(f).status == "completed" for f in folders)
    for trial in trials:  # each trial reported its own run's epochs
        assert trial.intermediate_values[1] == pytest.approx(read_run(Path(trial.user_attrs["run_dir"])).get("val_acc"))

    # --pack 1: one run after the other, as without packing, to the same numbers
    result = cli.invoke(app, ["run", str(ROOT / "presets" / "optimizers.toml"), *SMALL, "--pack", "1",
                              "--data-dir", str(synthetic_data_dir), "--out", str(tmp_path / "alone")])
    assert result.exit_code == 0, result.output
    assert "  run 1:" not in result.output  # one run at a time: no run tags, as before packs
    events = [line for line in result.output.splitlines() if re.match(r"run \d+ of 12: |  completed: ", line)]
    assert events[::2] == [line for line in events if line.startswith("run ")] and len(events) == 24
    (alone,) = (tmp_path / "alone").iterdir()
    packed, single = finals(study), finals(alone)
    assert packed.keys() == single.keys()
    for name, (status, epochs, val, test, _) in single.items():
        assert packed[name][:2] == (status, epochs)
        assert packed[name][2] == pytest.approx(val, abs=0.02) and packed[name][3] == pytest.approx(test, abs=0.02)


def test_a_diverging_member_leaves_the_pack_and_the_others_keep_their_numbers(synthetic_data_dir, tmp_path):
    preset = tmp_path / "lr.toml"
    preset.write_text('name = "lr"\n[model]\nhidden = [64, 64, 64]\ninit = "random_normal"\ninit_std = 10.0\n'
                      '[optim]\nname = "sgd"\n[train]\nepochs = 3\nbatch_size = 32\ndevice = "cpu"\n'
                      "[sweep]\n'optim.lr' = [0.01, 100.0]\n'model.init' = ['default', 'random_normal']\n")
    list(study_events(preset, synthetic_data_dir, tmp_path / "packed", pack=4))
    list(study_events(preset, synthetic_data_dir, tmp_path / "alone", pack=1))
    (packed,) = (tmp_path / "packed").iterdir()
    (alone,) = (tmp_path / "alone").iterdir()
    a, b = finals(packed), finals(alone)
    diverged = [name for name, row in a.items() if row[0] == "diverged"]
    assert "optim.lr=100.0,model.init=random_normal" in diverged and len(a) == 4
    for name in a.keys() - set(diverged):  # no NaN leaked into a neighbour: its numbers are its own
        assert a[name][:2] == b[name][:2] and math.isfinite(a[name][4])
        assert a[name][2:4] == pytest.approx(b[name][2:4], abs=0.02)  # float32: packed GEMMs round apart
        assert a[name][4] == pytest.approx(b[name][4], rel=1e-2)


def test_a_run_that_ends_hands_its_slot_to_the_next_queued_run(synthetic_data_dir, tmp_path):
    # four runs, packed in twos: the two 1-epoch runs end first, and the two 3-epoch runs take their slots
    preset = grid(tmp_path, "'train.epochs' = [1, 3]\n'optim.lr' = [0.01, 0.02]\n", epochs=3)
    seen = list(study_events(preset, synthetic_data_dir, tmp_path / "packed", pack=2))
    starting = [i for i, e in enumerate(seen) if isinstance(e, runner.RunStarting)]
    finished = [i for i, e in enumerate(seen) if isinstance(e, runner.Trained) and isinstance(e.event, ev.RunFinished)]
    assert len(starting) == len(finished) == 4
    assert starting[2] < finished[1] and starting[3] < finished[2]  # each joined the pack as a slot freed
    list(study_events(preset, synthetic_data_dir, tmp_path / "alone", pack=1))
    (packed,) = (tmp_path / "packed").iterdir()
    (alone,) = (tmp_path / "alone").iterdir()
    a, b = finals(packed), finals(alone)
    assert a.keys() == b.keys() and len(a) == 4
    for name, row in b.items():  # the same runs, to the same numbers
        assert a[name][:2] == row[:2] and row[0] == "completed"
        assert a[name][2:4] == pytest.approx(row[2:4], abs=0.02)
    trials = StudyStore.open(packed).trials()
    assert sorted(t.state.name for t in trials) == ["COMPLETE"] * 4


def test_one_member_pruned_leaves_the_pack_the_others_finish(synthetic_data_dir, tmp_path, monkeypatch):
    import optuna

    preset = tmp_path / "search.toml"
    preset.write_text(TINY_PRESET.replace("epochs = 2", "epochs = 3")
                      + '\n[search]\ntrials = 3\npruner = "median"\n"optim.lr" = { low = 0.001, high = 0.05, log = true }\n')
    monkeypatch.setattr(optuna.Trial, "should_prune", lambda trial: trial.number == 1)
    seen = list(study_events(preset, synthetic_data_dir, tmp_path / "out", pack=3))
    starting = [i for i, e in enumerate(seen) if isinstance(e, runner.RunStarting)]
    finished = [i for i, e in enumerate(seen) if isinstance(e, runner.Trained) and isinstance(e.event, ev.RunFinished)]
    assert len(starting) == 3 and max(starting) < min(finished)  # one pack of three
    (study,) = (tmp_path / "out").iterdir()
    trials = {t.number: t for t in StudyStore.open(study).trials()}
    assert [trials[n].state.name for n in range(3)] == ["COMPLETE", "PRUNED", "COMPLETE"]
    pruned = read_run(Path(trials[1].user_attrs["run_dir"]))
    assert pruned.status == "pruned" and pruned.get("epochs_completed") == 1 and pruned.get("test_acc") is None
    assert not (pruned.path / CHECKPOINT).exists()
    for n in (0, 2):
        assert read_run(Path(trials[n].user_attrs["run_dir"])).get("epochs_completed") == 3
    params = [trials[n].params["optim.lr"] for n in range(3)]
    assert len(set(params)) == 3  # asked for together, sampled apart


def test_a_stopped_pack_saves_every_member_and_resume_continues_each_exactly(synthetic_data_dir, tmp_path):
    preset = grid(tmp_path, "'optim.lr' = [0.01, 0.02, 0.03]\n", epochs=3)
    stop = threading.Event()
    ended = 0
    for event in study_events(preset, synthetic_data_dir, tmp_path / "out", stop, pack=3):
        if isinstance(event, runner.Trained) and isinstance(event.event, ev.EpochEnded):
            ended += 1
            if ended == 3:  # Ctrl-C once each member has its first epoch
                stop.set()
    (study,) = (tmp_path / "out").iterdir()
    for folder in [p for p in study.iterdir() if p.is_dir()]:
        assert read_run(folder).status == "stopped"
        assert (folder / CHECKPOINT).is_file()  # written at the stop, though 30 s had not passed
    result = cli.invoke(app, ["run", str(preset), "--data-dir", str(synthetic_data_dir), "--out", str(tmp_path / "out"),
                              "--resume", "--pack", "3"])
    assert result.exit_code == 0, result.output
    assert result.output.count("continuing from its checkpoint after epoch 1") == 3
    list(study_events(preset, synthetic_data_dir, tmp_path / "whole", pack=3))
    (whole,) = (tmp_path / "whole").iterdir()
    assert finals(study) == finals(whole)  # as if never stopped
    for folder in [p for p in study.iterdir() if p.is_dir()]:
        assert len(read_metrics(folder / "metrics.csv")) == 3 and read_run(folder).get("resumed_after_epoch") == 1


def test_checkpoints_are_written_by_time_not_after_every_epoch(synthetic_data_dir, tmp_path, monkeypatch):
    from fcn_tui import runs

    written = []
    real_save = runs.save_torch
    monkeypatch.setattr(runs, "save_torch", lambda path, *args: (written.append(path.name), real_save(path, *args)))
    preset = grid(tmp_path, "'optim.lr' = [0.01, 0.02]\n", epochs=4)
    list(study_events(preset, synthetic_data_dir, tmp_path / "slow", pack=2))  # the default: 30 s
    assert CHECKPOINT not in written
    list(study_events(preset, synthetic_data_dir, tmp_path / "each", pack=2, checkpoint_every_s=0))
    assert written.count(CHECKPOINT) == 2 * 3  # after epochs 1-3 of each run (none is left after the last)


def test_two_worker_processes_packing_on_one_journal_train_each_run_once(synthetic_data_dir, tmp_path):
    preset = grid(tmp_path, "'optim.name' = ['sgd', 'adam']\n'optim.lr' = [0.01, 0.03, 0.1]\n", epochs=2)
    done = subprocess.run([sys.executable, "-m", "fcn_tui", "run", str(preset), "--workers", "2", "--pack", "2",
                           "--out", str(tmp_path / "out"), "--data-dir", str(synthetic_data_dir)],
                          capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (study,) = (tmp_path / "out").iterdir()
    trials = StudyStore.open(study).trials()
    assert len(trials) == 6 and {t.state.name for t in trials} == {"COMPLETE"}
    assert sorted(t.user_attrs["run"] for t in trials) == [1, 2, 3, 4, 5, 6]
    folders = {Path(t.user_attrs["run_dir"]) for t in trials}
    assert len(folders) == 6
    for folder in folders:  # one header and one line per epoch: nobody trained it twice
        assert len((folder / "metrics.csv").read_text().splitlines()) == 3
    logs = " ".join(p.read_text() for p in study.glob("worker-*.log"))
    assert re.search(r"  run \d: epoch", logs)  # the workers trained packs


def test_a_claim_takes_only_compatible_queued_runs_each_once(tmp_path):
    preset = load_preset(grid(tmp_path, "'model.hidden' = [[8], [16]]\n'optim.lr' = [0.01, 0.02, 0.03]\n"))
    store, _ = StudyStore.create_or_join(tmp_path, "mixed", preset)
    other = StudyStore.open(tmp_path)
    key = lambda trial: tuple(trial.config["model"]["hidden"])
    first = store.claim_many(key, lambda trial: 2)
    second = other.claim_many(key, lambda trial: 5)
    third = store.claim_many(key, lambda trial: 5)
    assert [len(first), len(second), len(third)] == [2, 1, 3]  # the second stops where hidden changes
    taken = [t.number for t in first + second + third]
    assert sorted(taken) == list(range(6))  # every run claimed once
    assert {key(t) for t in third} == {(16,)} and {key(t) for t in first + second} == {(8,)}
    assert store.claim_many(key, lambda trial: 5) == []


@pytest.mark.parametrize("value", ["0", "many", "-2", "2000"])
def test_a_bad_pack_is_one_line_exit_2(tiny_preset, tmp_path, value):
    result = cli.invoke(app, ["run", str(tiny_preset), "--pack", value, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert "--pack: expected auto or a number of runs" in result.output
    assert not (tmp_path / "out").exists()


def test_a_sweep_started_from_the_app_packs_and_its_training_tab_shows_one_run_at_a_time(
        synthetic_data_dir, tmp_path, monkeypatch):
    from fcn_tui.tui.messages import TrainEvent
    from fcn_tui.tui.training import run_queue

    sizes = []
    real = runner.train_packs

    def spy(runs, *args, **kwargs):
        sizes.append(len(runs))
        yield from real(runs, *args, **kwargs)

    monkeypatch.setattr(runner, "train_packs", spy)
    monkeypatch.setattr("fcn_tui.memory.CPU_PACK", 4)  # `auto` packs here as it does on a GPU
    posted = []
    preset = load_preset(grid(tmp_path, "'optim.lr' = [0.01, 0.02, 0.03]\n", epochs=2))
    run_queue([preset], tmp_path / "runs", TorchBackend.load(synthetic_data_dir), threading.Event(), posted.append)
    assert sizes == [3]  # the app's sweep is one pack, as `fcn-tui run`'s
    shown = [(m.position, type(m.event).__name__) for m in posted if isinstance(m, TrainEvent)]
    positions = [p for p, _ in shown]
    assert positions == sorted(positions) and set(positions) == {1, 2, 3}  # each run whole, then the next
    for position in (1, 2, 3):
        kinds = [kind for p, kind in shown if p == position]
        assert kinds[0] == "RunStarted" and kinds[-1] == "RunFinished" and kinds.count("EpochEnded") == 2


def test_the_runs_of_a_killed_worker_not_yet_reaped_continue_in_their_own_folders():
    """An idle worker that packs notices a killed worker at once, while it is still a zombie (its
    parent, `run --workers`, reaps it within a second): its runs still continue where they were."""
    import socket
    import time

    from fcn_tui.runs import process_alive, process_state
    from fcn_tui.studies.store import _still_there

    dead = subprocess.Popen(["true"])
    alive = subprocess.Popen(["sleep", "30"])
    try:
        deadline = time.monotonic() + 10
        while process_state(dead.pid) != b"Z" and time.monotonic() < deadline:
            time.sleep(0.01)
        host = socket.gethostname()
        assert not _still_there(host, dead.pid)
        assert process_alive(dead.pid, host) is False  # its run folder reads as cut off, so it is continued there
        assert _still_there(host, alive.pid)
    finally:
        alive.kill()
        alive.wait()
        dead.wait()
