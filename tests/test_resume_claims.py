"""`--resume` of one stopped single run: its own config.toml continues it, two resumes at once never
train it twice, and a hand-made checkpoint that cannot continue it starts a new folder with a note.

A user's session: `fcn-tui run tiny.toml` stopped after its first epoch (a checkpoint is left),
then `fcn-tui run OUT/RUN/config.toml --resume --out OUT`, once, twice at once, or after someone
edited its checkpoint.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from fcn_tui import events as ev
from fcn_tui.cli import app
from fcn_tui.config import load_preset
from fcn_tui.runs import CHECKPOINT, read_metrics, read_run
from fcn_tui.studies import runner
from tests.helpers import TINY_PRESET

cli = CliRunner()
START_S = 120  # a child's torch import and data load, on a busy machine
LONG = TINY_PRESET.replace("epochs = 2", "epochs = 10000")  # still training when the second resume comes


def run(*args):
    result = cli.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output, result.output
    return result


def stopped_run(preset: Path, data_dir: Path, out: Path) -> Path:
    """A single run stopped (as by Ctrl-C) during its second epoch: `stopped`, with a checkpoint."""
    from fcn_tui.backend import TorchBackend

    stop = threading.Event()
    run_dir = None
    options = runner.RunOptions(out=out)
    for event in runner.run_single(load_preset(preset), 1, 1, TorchBackend.load(data_dir), stop.is_set, options):
        if isinstance(event, runner.Trained) and isinstance(event.event, ev.EpochEnded):
            stop.set()
            run_dir = event.run_dir
    assert read_run(run_dir).status == "stopped" and (run_dir / CHECKPOINT).is_file()
    return run_dir


@pytest.fixture
def preset(tmp_path) -> Path:
    path = tmp_path / "tiny.toml"
    path.write_text(TINY_PRESET.replace("epochs = 2", "epochs = 3"))
    return path


# --- 18.5: a run's own config.toml continues that run --------------------------------------


def test_resuming_a_runs_own_config_continues_it_although_a_twin_completed(preset, synthetic_data_dir, tmp_path):
    out = tmp_path / "out"
    assert run("run", preset, "--data-dir", synthetic_data_dir, "--out", out).exit_code == 0  # the twin
    stopped = stopped_run(preset, synthetic_data_dir, out)

    result = run("run", stopped / "config.toml", "--resume", "--data-dir", synthetic_data_dir, "--out", out)

    assert result.exit_code == 0, result.output
    assert "continuing from its checkpoint after epoch 1" in " ".join(result.stdout.split())
    assert "already completed" not in result.stdout  # before: the twin was named, this run stayed stopped
    assert read_run(stopped).status == "completed" and read_run(stopped).get("epochs_completed") == 3
    assert len(list(out.iterdir())) == 2  # the twin and this run: no new folder


def test_resuming_the_preset_still_skips_a_configuration_that_completed(preset, synthetic_data_dir, tmp_path):
    out = tmp_path / "out"
    assert run("run", preset, "--data-dir", synthetic_data_dir, "--out", out).exit_code == 0
    stopped = stopped_run(preset, synthetic_data_dir, out)
    result = run("run", preset, "--resume", "--data-dir", synthetic_data_dir, "--out", out)
    assert result.exit_code == 0 and "already completed" in result.stdout
    assert read_run(stopped).status == "stopped"


# --- 19.5: two resumes at once --------------------------------------------------------------


def _default_signal_handlers() -> None:
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def resume_process(target: Path, data_dir: Path, out: Path, log: Path) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with open(log, "w") as f:
        return subprocess.Popen(
            [sys.executable, "-m", "fcn_tui", "run", str(target), "--resume", "--data-dir", str(data_dir), "--out", str(out)],
            stdout=f, stderr=subprocess.STDOUT, env=env, preexec_fn=_default_signal_handlers)  # noqa: PLW1509


def wait_until(condition, what: str, proc: subprocess.Popen) -> None:
    deadline = time.monotonic() + START_S
    while not condition():
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            pytest.fail(f"{what}: not within {START_S}s (exit {proc.poll()})")
        time.sleep(0.05)


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX locks and signals")
def test_a_second_resume_of_a_run_being_continued_says_who_trains_it_and_trains_nothing(synthetic_data_dir, tmp_path):
    preset = tmp_path / "long.toml"
    preset.write_text(LONG)
    out = tmp_path / "out"
    stopped = stopped_run(preset, synthetic_data_dir, out)
    first = resume_process(stopped / "config.toml", synthetic_data_dir, out, tmp_path / "first.txt")
    try:
        wait_until(lambda: len(read_metrics(stopped / "metrics.csv")) >= 3, "the first resume trains", first)
        targets = {"own": stopped / "config.toml", "preset": preset}  # the run's own config, and its preset
        seconds = {k: resume_process(t, synthetic_data_dir, out, tmp_path / f"{k}.txt") for k, t in targets.items()}
        for kind, second in seconds.items():
            assert second.wait(timeout=START_S) == 1, kind
            said = " ".join((tmp_path / f"{kind}.txt").read_text().split())
            assert f"is being trained by pid {first.pid} on" in said and "not started twice" in said, said
        assert first.poll() is None  # the first goes on undisturbed
        assert list(out.iterdir()) == [stopped]  # before: a second one trained it again in a new folder
    finally:
        first.send_signal(signal.SIGINT)
        first.wait(timeout=60)
    assert read_run(stopped).status == "stopped" and (stopped / CHECKPOINT).is_file()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX locks")
def test_two_resumes_started_at_the_same_moment_train_the_run_once(synthetic_data_dir, tmp_path):
    preset = tmp_path / "thirty.toml"
    preset.write_text(TINY_PRESET.replace("epochs = 2", "epochs = 30"))
    out = tmp_path / "out"
    stopped = stopped_run(preset, synthetic_data_dir, out)
    both = [resume_process(stopped / "config.toml", synthetic_data_dir, out, tmp_path / f"{i}.txt") for i in (1, 2)]
    codes = sorted(p.wait(timeout=START_S) for p in both)
    assert codes in ([0, 0], [0, 1])  # 1: "not started twice"; 0 twice: the second found it completed
    assert list(out.iterdir()) == [stopped]  # no second folder trained from epoch 1
    assert read_run(stopped).status == "completed"
    assert [int(row["epoch"]) for row in read_metrics(stopped / "metrics.csv")] == list(range(1, 31))


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX locks and signals")
def test_the_claim_of_a_process_that_is_gone_is_taken_over(synthetic_data_dir, tmp_path):
    from fcn_tui.runs import RunBusy, claim_run_folder, release_run_folder

    preset = tmp_path / "long.toml"
    preset.write_text(LONG)
    out = tmp_path / "out"
    stopped = stopped_run(preset, synthetic_data_dir, out)
    killed = resume_process(stopped / "config.toml", synthetic_data_dir, out, tmp_path / "killed.txt")
    wait_until(lambda: len(read_metrics(stopped / "metrics.csv")) >= 3, "the resume trains", killed)
    with pytest.raises(RunBusy, match=f"is being trained by pid {killed.pid} on"):
        claim_run_folder(stopped)  # held while it lives
    killed.kill()  # SIGKILL: no chance to let go of anything
    killed.wait(timeout=60)
    release_run_folder(claim_run_folder(stopped))  # taken over at once: no stale lock to clear by hand
    assert read_run(stopped).status == "incomplete"  # and `--resume` continues it from its checkpoint


# --- 19.17: a checkpoint that fits its configuration's name but not its tensors ----------------


def _wrong_shape(state):
    state["model"]["0.weight"] = torch.zeros(32, 700)


def _float_generator(state):
    state["generator"] = state["generator"].float()


def _infinite_wall(state):
    state["wall_s"] = float("inf")


@pytest.mark.parametrize("damage", [_wrong_shape, _float_generator, _infinite_wall])
def test_a_hand_made_checkpoint_that_cannot_continue_starts_a_new_folder_with_a_note(
        preset, synthetic_data_dir, tmp_path, damage):
    out = tmp_path / "out"
    stopped = stopped_run(preset, synthetic_data_dir, out)
    state = torch.load(stopped / CHECKPOINT, weights_only=True)
    damage(state)
    torch.save(state, stopped / CHECKPOINT)

    for _ in range(2):  # and again: never a failure on every --resume
        result = run("run", stopped / "config.toml", "--resume", "--data-dir", synthetic_data_dir, "--out", out)
        assert result.exit_code == 0, result.output
        assert "cannot continue the earlier attempt (checkpoint.pt: its" in " ".join(result.stdout.split())
        new = max(p for p in out.iterdir() if p != stopped)
        assert read_run(new).status == "completed"
        assert isinstance(read_run(new).get("wall_s"), float) and read_run(new).problems == []
    assert read_run(stopped).status == "stopped"  # the earlier attempt is left as it was
