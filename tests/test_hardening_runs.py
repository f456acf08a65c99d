"""Runs that go wrong keep what they have: divergence, an exception in one run, a full disk.

Each test runs a small sweep through the real `fcn-tui run` (Typer's runner) on synthetic data
and checks exit status, run statuses, what is kept on disk and that the sweep went on.
"""

from __future__ import annotations

import csv
import errno
import json
import os
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from fcn_tui import engine, runs
from fcn_tui.cli import app
from fcn_tui.runs import RunRecorder, read_metrics, read_run
from tests.helpers import TINY_PRESET

runner = CliRunner()


def sweep_preset(tmp_path: Path, sweep: str, base: str = TINY_PRESET) -> Path:
    path = tmp_path / "study.toml"
    path.write_text(base + "\n[sweep]\n" + sweep)
    return path


def run_study(preset: Path, data_dir: Path, out: Path, *extra: str):
    result = runner.invoke(app, ["run", str(preset), "--data-dir", str(data_dir), "--out", str(out), *extra])
    assert "Traceback" not in result.stdout + result.stderr
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


def study_runs(out: Path) -> tuple[Path, list[Path]]:
    (study,) = [p for p in out.iterdir() if p.is_dir()]
    return study, sorted(p for p in study.iterdir() if p.is_dir())


def results(study: Path) -> list[dict[str, str]]:
    with open(study / "results.csv", newline="") as f:
        return list(csv.DictReader(f))


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


DIVERGING = """
name = "lr"

[model]
hidden = [64, 64, 64]
init = "random_normal"
init_std = 10.0

[optim]
name = "sgd"

[train]
epochs = 2
batch_size = 32
device = "cpu"
"""


def test_a_huge_learning_rate_diverges_and_the_sweep_goes_on_with_exit_0(synthetic_data_dir, tmp_path):
    preset = sweep_preset(tmp_path, "'optim.lr' = [100.0, 0.001]\n'model.init' = ['random_normal', 'default']\n",
                          DIVERGING)
    result = run_study(preset, synthetic_data_dir, tmp_path / "out")
    assert result.exit_code == 0, result.stdout
    study, runs = study_runs(tmp_path / "out")
    statuses = {row["name"]: row["status"] for row in results(study)}
    assert statuses["optim.lr=100.0,model.init=random_normal"] == "diverged"
    assert statuses["optim.lr=0.001,model.init=default"] == "completed"
    assert len(statuses) == 4  # every run of the sweep ran
    diverged = summary(runs[0])
    assert diverged["status"] == "diverged" and diverged["test_acc"] is None
    assert diverged["epochs_completed"] == len(read_metrics(runs[0] / "metrics.csv"))
    assert "diverged" in result.stdout


def test_a_diverging_run_keeps_the_epochs_it_finished(synthetic_data_dir, tmp_path, monkeypatch):
    """The loss turns NaN in epoch 3 (as with an lr that blows up late): epochs 1-2 stay on disk."""
    real_loss = engine.nn.CrossEntropyLoss
    steps_per_epoch = 17  # 540 training images in batches of 32

    class LateNaNLoss(real_loss):
        calls = 0

        def forward(self, logits, target):
            LateNaNLoss.calls += 1
            loss = super().forward(logits, target)
            return loss * float("nan") if LateNaNLoss.calls > 2 * steps_per_epoch else loss

    monkeypatch.setattr(engine.nn, "CrossEntropyLoss", LateNaNLoss)
    preset = sweep_preset(tmp_path, "'optim.lr' = [0.01]\n", TINY_PRESET.replace("epochs = 2", "epochs = 5"))
    result = run_study(preset, synthetic_data_dir, tmp_path / "out")
    assert result.exit_code == 0
    _, (run_dir,) = study_runs(tmp_path / "out")
    record = read_run(run_dir)
    assert record.status == "diverged"
    assert [m["epoch"] for m in record.metrics] == [1.0, 2.0]
    assert record.get("epochs_completed") == 2 and record.get("val_acc") > 0.5


def test_an_exception_in_one_run_marks_it_failed_and_the_sweep_goes_on_with_exit_1(synthetic_data_dir, tmp_path, monkeypatch):
    real_build = engine.build_mlp
    calls = []

    def out_of_memory_once(config):
        calls.append(config)
        if len(calls) == 1:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return real_build(config)

    monkeypatch.setattr(engine, "build_mlp", out_of_memory_once)
    preset = sweep_preset(tmp_path, "'optim.lr' = [0.01, 0.02]\n")
    result = run_study(preset, synthetic_data_dir, tmp_path / "out")
    assert result.exit_code == 1
    study, (first, second) = study_runs(tmp_path / "out")
    failed = summary(first)
    assert failed["status"] == "failed"
    assert failed["error"] == "OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 GiB"
    assert not (first / "model.pt").exists()
    assert summary(second)["status"] == "completed" and (second / "model.pt").exists()
    assert [row["status"] for row in results(study)] == ["failed", "completed"]
    assert "CUDA out of memory" in result.stdout


def test_an_unexpected_error_outside_the_engine_fails_that_run_only(synthetic_data_dir, tmp_path, monkeypatch):
    """Even a bug in the reporting code ends as a failed run and exit 1, not a traceback."""
    from fcn_tui.console import Reporter

    real_handle = Reporter.handle
    seen = []

    def broken_once(self, event, **kwargs):
        seen.append(event)
        if len(seen) == 1:
            raise ValueError("cannot format this number")
        return real_handle(self, event, **kwargs)

    monkeypatch.setattr(Reporter, "handle", broken_once)
    preset = sweep_preset(tmp_path, "'optim.lr' = [0.01, 0.02]\n")
    result = run_study(preset, synthetic_data_dir, tmp_path / "out")
    assert result.exit_code == 1
    assert "ValueError: cannot format this number" in result.stdout
    _, (first, second) = study_runs(tmp_path / "out")
    assert summary(first)["status"] == "failed"
    assert summary(first)["error"] == "ValueError: cannot format this number"
    assert summary(second)["status"] == "completed"


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full (Linux)")
def test_a_full_disk_marks_the_run_failed_with_a_clear_error(synthetic_data_dir, tmp_path, monkeypatch):
    """The first run's metrics go to /dev/full, which fails every write with ENOSPC."""
    real_append = RunRecorder._append_line
    first_recorder = []

    def append_to_full_disk(self, line):
        first_recorder.append(first_recorder[0] if first_recorder else self)
        if self is first_recorder[0] and line[0].isdigit():
            self._metrics_path = Path("/dev/full")
        return real_append(self, line)

    monkeypatch.setattr(RunRecorder, "_append_line", append_to_full_disk)
    real_open = runs.open_append  # /dev/full is outside the run folder's handle: opened by its path
    monkeypatch.setattr(runs, "open_append", lambda path, folder=None: real_open(
        path, None if path == Path("/dev/full") else folder))
    preset = sweep_preset(tmp_path, "'optim.lr' = [0.01, 0.02]\n")
    result = run_study(preset, synthetic_data_dir, tmp_path / "out")
    assert result.exit_code == 1
    assert f"error: /dev/full: cannot write (disk full: {os.strerror(errno.ENOSPC)})" in " ".join(result.stdout.split())
    study, (first, second) = study_runs(tmp_path / "out")
    failed = summary(first)
    assert failed["status"] == "failed" and "No space left on device" in failed["error"]
    assert summary(second)["status"] == "completed"
    assert [row["status"] for row in results(study)] == ["failed", "completed"]


def test_a_run_folder_that_cannot_be_created_is_a_clear_error(synthetic_data_dir, tmp_path, monkeypatch):
    out = tmp_path / "out"
    real_mkdir = Path.mkdir

    def full_below_out(self, *args, **kwargs):
        if self != out and self.is_relative_to(out):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", full_below_out)
    result = run_study(sweep_preset(tmp_path, "'optim.lr' = [0.01, 0.02]\n"), synthetic_data_dir, out)
    assert result.exit_code == 1
    assert "cannot create a run folder (disk full: No space left on device)" in " ".join(result.stdout.split())
    assert list(out.iterdir()) == []


def test_a_failed_run_lets_go_of_its_model_and_data_before_the_next_run(synthetic_data_dir, monkeypatch):
    """On a GPU this is what frees its memory for the rest of the sweep; here we watch the model."""
    import gc
    import weakref

    from fcn_tui.config import Config
    from fcn_tui.data import load_fashion_mnist, make_split

    split = make_split(load_fashion_mnist(synthetic_data_dir, download_missing=False), 0.1, 0)
    models = []
    real_build = engine.build_mlp

    def tracked(config):
        model = real_build(config)
        models.append(weakref.ref(model))
        return model

    real_step = torch.optim.Adam.step
    steps = []

    def out_of_memory_on_step_3(self, *args, **kwargs):
        steps.append(1)
        if len(steps) == 3:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real_step(self, *args, **kwargs)

    monkeypatch.setattr(engine, "build_mlp", tracked)
    monkeypatch.setattr(torch.optim.Adam, "step", out_of_memory_on_step_3)
    config = Config().with_values({"model.hidden": [32], "optim.name": "adam", "train.device": "cpu"})
    trainer = engine.Trainer(config, split, progress_every=1)
    stream = trainer.events()
    finished = next(e for e in stream if type(e).__name__ == "RunFinished")  # the stream stays open
    gc.collect()
    assert finished.status == "failed" and finished.error == "OutOfMemoryError: CUDA out of memory"
    assert len(models) == 1 and models[0]() is None
    assert trainer.model is None
