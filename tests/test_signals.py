"""Signals: real `fcn-tui run` processes interrupted after their first epoch, plus the handler alone.

Each subprocess trains a tiny model on synthetic data for up to 10,000 epochs, so it is still
running when the test (having seen the first row of metrics.csv) sends the signal.
"""

from __future__ import annotations

import csv
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
from fcn_tui.runs import read_metrics, read_run
from fcn_tui.signals import StopOnSignals
from tests.helpers import TINY_PRESET

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")

LONG = TINY_PRESET.replace("epochs = 2", "epochs = 10000")
STARTUP_TIMEOUT = 120  # seconds for the first epoch row; the torch import alone takes a few


def _default_signal_handlers() -> None:
    # a test run from a background job would otherwise pass on "SIGINT ignored" to the child
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


class Run:
    """`fcn-tui run PRESET --data-dir DATA --out OUT` in a child process."""

    def __init__(self, tmp_path: Path, data_dir: Path, preset_text: str, *extra: str) -> None:
        self.out = tmp_path / "out"
        preset = tmp_path / "long.toml"
        preset.write_text(preset_text)
        self.stdout_path, self.stderr_path = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        env.pop("FCN_TUI_DATA", None)
        with open(self.stdout_path, "w") as stdout, open(self.stderr_path, "w") as stderr:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "fcn_tui", "run", str(preset), "--data-dir", str(data_dir), "--out", str(self.out),
                 *extra],
                stdout=stdout, stderr=stderr, env=env,
                preexec_fn=_default_signal_handlers,  # noqa: PLW1509 - only resets signal dispositions
            )

    def wait_for_first_epoch(self) -> Path:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            for metrics in self.out.rglob("metrics.csv") if self.out.exists() else ():
                if read_metrics(metrics):
                    return metrics.parent
            assert self.proc.poll() is None, f"exited early: {self.proc.returncode}\n{self.output}"
            time.sleep(0.05)
        self.proc.kill()
        pytest.fail(f"no epoch finished within {STARTUP_TIMEOUT}s\n{self.output}")

    def wait_for(self, text: str) -> None:
        deadline = time.monotonic() + 30
        while text not in self.stderr_path.read_text() and time.monotonic() < deadline and self.proc.poll() is None:
            time.sleep(0.005)

    def finish(self) -> int:
        try:
            return self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"did not exit within 60s of the signal\n{self.output}")

    @property
    def stdout(self) -> str:
        return self.stdout_path.read_text()

    @property
    def stderr(self) -> str:
        return self.stderr_path.read_text()

    @property
    def output(self) -> str:
        return self.stdout + self.stderr


def assert_readable(run_dir: Path) -> None:
    """Every file of the run folder parses: the state SIGKILL or power loss can leave behind."""
    json.loads((run_dir / "summary.json").read_text())
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows and all(row["epoch"].isdigit() for row in rows)
    assert read_run(run_dir).config.train.epochs == 10000


def test_ctrl_c_stops_the_sweep_saving_the_run_and_results_csv_exit_130(synthetic_data_dir, tmp_path):
    run = Run(tmp_path, synthetic_data_dir, LONG + "\n[sweep]\n'optim.lr' = [0.01, 0.02]\n", "--pack", "1")
    run_dir = run.wait_for_first_epoch()
    run.proc.send_signal(signal.SIGINT)
    assert run.finish() == 130, run.output
    assert "SIGINT: stopping after the current batch" in run.stderr
    assert "Traceback" not in run.output
    record = read_run(run_dir)
    assert record.status == "stopped"
    assert 1 <= record.get("epochs_completed") == len(record.metrics) < 10000
    assert record.get("test_acc") is not None and (run_dir / "model.pt").is_file()
    assert_readable(run_dir)
    study = run_dir.parent
    assert sorted(p.name for p in study.iterdir() if p.is_dir()) == [run_dir.name]  # run 2 never started
    with open(study / "results.csv", newline="") as f:
        assert [(r["run_id"], r["status"]) for r in csv.DictReader(f)] == [(run_dir.name, "stopped")]


def test_sigterm_stops_every_run_of_a_pack_each_saved_to_continue(synthetic_data_dir, tmp_path):
    run = Run(tmp_path, synthetic_data_dir, LONG + "\n[sweep]\n'optim.lr' = [0.01, 0.02]\n", "--pack", "2")
    run_dir = run.wait_for_first_epoch()
    run.proc.send_signal(signal.SIGTERM)
    assert run.finish() == 143, run.output
    assert "Traceback" not in run.output
    folders = sorted(p for p in run_dir.parent.iterdir() if p.is_dir())
    assert len(folders) == 2  # both runs trained at once
    for folder in folders:
        record = read_run(folder)
        assert record.status == "stopped" and record.get("epochs_completed") == len(record.metrics)
        # its last epoch's checkpoint, though checkpoints are otherwise written only every 30 s
        assert (folder / "checkpoint.pt").is_file() == (record.get("epochs_completed") >= 1)
    assert_readable(run_dir)


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_sigterm_and_sighup_stop_the_run_like_ctrl_c(synthetic_data_dir, tmp_path, signum, code):
    run = Run(tmp_path, synthetic_data_dir, LONG)
    run_dir = run.wait_for_first_epoch()
    run.proc.send_signal(signum)
    assert run.finish() == code, run.output
    record = read_run(run_dir)
    assert record.status == "stopped" and record.get("epochs_completed") == len(record.metrics) >= 1
    assert "Traceback" not in run.output


def test_a_second_ctrl_c_exits_at_once_leaving_readable_files(synthetic_data_dir, tmp_path):
    run = Run(tmp_path, synthetic_data_dir, LONG)
    run_dir = run.wait_for_first_epoch()
    run.proc.send_signal(signal.SIGINT)
    run.wait_for("stopping after the current batch")  # the first one was handled
    if run.proc.poll() is None:
        run.proc.send_signal(signal.SIGINT)
    assert run.finish() == 130, run.output
    assert "Traceback" not in run.output
    assert_readable(run_dir)
    assert read_run(run_dir).status in ("stopped", "incomplete")  # saved, or cut short mid-save


def test_sigkill_leaves_readable_files_and_export_lists_the_run_as_incomplete(synthetic_data_dir, tmp_path):
    run = Run(tmp_path, synthetic_data_dir, LONG)
    run_dir = run.wait_for_first_epoch()
    time.sleep(0.2)  # somewhere in a later epoch
    run.proc.kill()
    assert run.finish() == -signal.SIGKILL
    assert_readable(run_dir)
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "running"
    epochs = len(read_metrics(run_dir / "metrics.csv"))

    table = tmp_path / "runs.csv"
    result = CliRunner().invoke(app, ["export", str(run.out), "--csv", str(table)])
    assert result.exit_code == 0, result.output
    with open(table, newline="") as f:
        (row,) = csv.DictReader(f)
    assert row["status"] == "incomplete" and int(row["epochs_completed"]) == epochs >= 1
    assert row["run_id"] == run_dir.name

    per_epoch = tmp_path / "epochs.csv"
    assert CliRunner().invoke(app, ["export", str(run.out), "--csv", str(per_epoch), "--per-epoch"]).exit_code == 0
    with open(per_epoch, newline="") as f:
        assert [int(r["epoch"]) for r in csv.DictReader(f)] == list(range(1, epochs + 1))


# --- the handler itself, in this process --------------------------------------------------------


def test_first_signal_sets_the_flag_and_handlers_are_restored_after():
    before = signal.getsignal(signal.SIGTERM)
    with StopOnSignals() as stop:
        assert not stop.is_set() and stop.exit_code is None
        signal.raise_signal(signal.SIGTERM)
        assert stop.is_set() and stop.exit_code == 143
        signal.raise_signal(signal.SIGHUP)  # a later, different signal keeps the first exit code
        assert stop.exit_code == 143
    assert signal.getsignal(signal.SIGTERM) is before


def test_second_ctrl_c_leaves_at_once(monkeypatch):
    exits = []
    monkeypatch.setattr("fcn_tui.signals.os._exit", exits.append)
    with StopOnSignals() as stop:
        signal.raise_signal(signal.SIGINT)
        assert exits == [] and stop.exit_code == 130
        signal.raise_signal(signal.SIGINT)
        assert exits == [130]


@pytest.mark.parametrize("terminal", [True, False])
def test_the_stop_message_starts_a_line_of_its_own_on_a_terminal(monkeypatch, terminal):
    """On a terminal the progress bar's line is cleared first, so the message is not glued onto it."""
    said = []
    monkeypatch.setattr("fcn_tui.signals._isatty", lambda fd: terminal)
    monkeypatch.setattr("fcn_tui.signals._say", lambda line, fd=2: said.append(line))
    with StopOnSignals():
        signal.raise_signal(signal.SIGINT)
    [line] = said
    assert line.startswith("\r\x1b[2Kfcn-tui: SIGINT: stopping" if terminal else "fcn-tui: SIGINT: stopping")


def test_a_signal_ignored_before_the_run_stays_ignored():
    """`nohup fcn-tui run ...` ignores SIGHUP: closing the SSH session must not stop the run."""
    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        with StopOnSignals() as stop:
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            signal.raise_signal(signal.SIGHUP)
            assert not stop.is_set()
    finally:
        signal.signal(signal.SIGHUP, previous)


def test_a_worker_called_in_process_leaves_the_callers_signal_handlers_as_they_were(tmp_path):
    """A worker process ignores stops on its way out; called from Python it must not do that to its caller."""
    from typer.testing import CliRunner

    from fcn_tui.cli import app

    before = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    result = CliRunner().invoke(app, ["worker", "--storage", str(tmp_path / "no-study"), "--wait", "0"])
    assert result.exit_code == 2
    assert {s: signal.getsignal(s) for s in before} == before
