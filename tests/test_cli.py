"""`fcn-tui run` through Typer's runner: exit codes, the run folder and its files."""

import csv
import json

from typer.testing import CliRunner

from fcn_tui.cli import app
from fcn_tui.config import load_preset
from fcn_tui.cpu import cpu_model
from fcn_tui.data import CLASSES
from tests.helpers import run_cli

runner = CliRunner()
SUMMARY_KEYS = {"name", "status", "epochs_completed", "train_loss", "val_loss", "val_acc", "best_val_acc",
                "test_loss", "test_acc", "wall_s", "samples_per_s", "device", "torch_version", "threads", "cpu_kernels", "cpu_model", "seed", "config"}


def test_run_writes_a_complete_run_folder(tiny_preset, synthetic_data_dir, tmp_path):
    out = tmp_path / "runs"
    result = run_cli(tiny_preset, "--data-dir", synthetic_data_dir, "--out", out, "--set", "model.hidden=[16,8]")
    assert result.exit_code == 0, result.output
    [run_dir] = list(out.iterdir())
    assert run_dir.name.endswith("-tiny,model.hidden=16,8")  # named after what --set changed
    assert {p.name for p in run_dir.iterdir()} == {"config.toml", "metrics.csv", "summary.json", "confusion.csv", "model.pt",
                                                  "predictions.npz"}

    config = load_preset(run_dir / "config.toml").config  # loadable as a preset
    assert config.model.hidden == (16, 8) and config.optim.name == "adam"

    with open(run_dir / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == ["epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_s"]
    assert [r["epoch"] for r in rows] == ["1", "2"]

    summary = json.loads((run_dir / "summary.json").read_text())
    assert SUMMARY_KEYS <= set(summary)
    assert summary["status"] == "completed" and summary["epochs_completed"] == 2
    assert summary["threads"] == 1 and summary["cpu_kernels"] in ("DEFAULT", "VSX", "Z VECTOR", "NO AVX", "AVX2", "AVX512", "SVE256")
    assert summary["cpu_model"] == cpu_model() and summary["cpu_model"] not in ("", "unknown")  # tells two machines apart
    assert 0.9 < summary["test_acc"] <= 1.0
    assert summary["val_acc"] == float(rows[-1]["val_acc"]) or abs(summary["val_acc"] - float(rows[-1]["val_acc"])) < 1e-6

    with open(run_dir / "confusion.csv") as f:
        matrix = list(csv.reader(f))
    assert matrix[0][1:] == list(CLASSES)
    assert [r[0] for r in matrix[1:]] == list(CLASSES)
    assert sum(int(c) for r in matrix[1:] for c in r[1:]) == 200

    assert "test acc" in result.output and str(run_dir) in result.output.replace("\n", "")


def test_bad_preset_exits_2_with_one_line_and_no_traceback(tmp_path, synthetic_data_dir):
    bad = tmp_path / "bad.toml"
    bad.write_text("[optim]\nlr = 0\n")
    result = run_cli(bad, "--data-dir", synthetic_data_dir, "--out", tmp_path / "runs")
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"fcn-tui: error: {bad}: optim.lr: must be > 0.0, got 0.0"]
    assert not (tmp_path / "runs").exists()


def test_bad_set_value_exits_2(tiny_preset, synthetic_data_dir, tmp_path):
    result = run_cli(tiny_preset, "--set", "model.activation=swish", "--data-dir", synthetic_data_dir)
    assert result.exit_code == 2
    assert "model.activation: unknown choice 'swish'" in result.output
    assert "Traceback" not in result.output


def test_missing_data_exits_2_and_leaves_no_run_folder(tiny_preset, tmp_path, monkeypatch):
    monkeypatch.setattr("fcn_tui.data.download", lambda folder: (_ for _ in ()).throw(
        __import__("fcn_tui.data", fromlist=["DataError"]).DataError(f"Fashion-MNIST not found in {folder}")))
    out = tmp_path / "runs"
    result = run_cli(tiny_preset, "--data-dir", tmp_path / "empty", "--out", out)
    assert result.exit_code == 2
    assert "Fashion-MNIST not found" in result.output
    assert not out.exists()  # not even the output folder: the run never started


def test_unavailable_device_exits_2(tiny_preset, synthetic_data_dir, tmp_path):
    import torch

    if torch.cuda.is_available():
        return
    result = run_cli(tiny_preset, "--device", "cuda", "--data-dir", synthetic_data_dir, "--out", tmp_path)
    assert result.exit_code == 2
    assert "no CUDA" in result.output


def test_help_lists_the_commands():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    for command in ("run", "ui", "export"):
        assert command in result.output


def test_a_one_epoch_run_on_one_thread_is_told_in_the_singular(tiny_preset, synthetic_data_dir, tmp_path):
    result = run_cli(tiny_preset, "--set", "train.epochs=1", "--threads", "1", "--data-dir", synthetic_data_dir,
                     "--out", tmp_path / "runs")
    assert result.exit_code == 0, result.output
    assert "device CPU (1 thread);" in result.output
    assert "1 epoch in " in result.output and "1 epochs" not in result.output


def test_a_run_stopped_before_its_first_epoch_shows_no_empty_accuracy():
    import io

    from rich.console import Console

    from fcn_tui import events as ev
    from fcn_tui.console import Reporter

    console = Console(file=io.StringIO(), width=80)
    reporter = Reporter(console, interactive=False)
    reporter.handle(ev.RunFinished(status="stopped", epochs_completed=0, train_loss=None, val_loss=None, val_acc=None,
                                   best_val_acc=None, test_loss=0.9, test_acc=0.1, test_confusion=None, wall_s=0.4,
                                   samples_per_s=0.0))
    assert console.file.getvalue().splitlines() == ["  stopped: test acc 10.00%, 0 epochs in 0.4s"]


def test_commands_without_a_preset_say_what_their_study_defaults_to():
    for command in ("worker", "export", "ui"):
        result = runner.invoke(app, [command, "--help"], terminal_width=200)
        assert "preset's name" not in result.output, command
        assert "(default: its only study)" in result.output, command
    assert "(default: the preset's name)" in runner.invoke(app, ["run", "--help"], terminal_width=200).output


SWEEP = """
name = "tiny-sweep"
[model]
hidden = [16]
[train]
epochs = 1
batch_size = 32
device = "cpu"
[sweep]
"optim.lr" = [0.01, 0.03]
"""


def test_a_study_names_its_folder_once_and_not_each_run_after_the_table(synthetic_data_dir, tmp_path):
    (tmp_path / "sweep.toml").write_text(SWEEP)
    (tmp_path / "one.toml").write_text(SWEEP.replace("tiny-sweep", "one").split("[sweep]")[0])
    result = run_cli(tmp_path / "sweep.toml", tmp_path / "one.toml", "--data-dir", synthetic_data_dir,
                     "--out", tmp_path / "runs")
    assert result.exit_code == 0, result.output
    (study,) = (tmp_path / "runs").glob("*-tiny-sweep")
    assert f"study tiny-sweep: created, 2 runs, in {study}\n" in result.output  # not `in X (X)`
    assert f"results: {study / 'results.csv'} and results.md" in result.output
    written = [line for line in result.output.splitlines() if "written to" in line]
    assert len(written) == 1 and written[0].startswith("one: written to ")  # the single run only


def test_workers_for_a_single_run_are_explained(tiny_preset, synthetic_data_dir, tmp_path):
    result = run_cli(tiny_preset, "--workers", "2", "--set", "train.epochs=1", "--data-dir", synthetic_data_dir,
                     "--out", tmp_path / "runs")
    assert result.exit_code == 0, result.output
    assert "--workers 2: a single run trains in one process" in result.output.splitlines()


def test_at_80_columns_lines_break_between_words_and_the_summary_gives_the_name_room(tmp_path):
    import io

    from rich.console import Console

    from fcn_tui import events as ev
    from fcn_tui.console import Reporter
    from fcn_tui.runs import RunRecord

    console = Console(file=io.StringIO(), width=80, force_terminal=False)
    reporter = Reporter(console, interactive=True)  # as on a terminal, without a live progress bar
    reporter.print("  device CPU (2 threads); 48,000 train / 12,000 val / 10,000 test images; 211 batches per epoch")
    reporter.handle(ev.EpochEnded(epoch=1, epochs=15, train_loss=0.5123, train_acc=0.8211, val_loss=0.4321,
                                  val_acc=0.8456, lr=0.001, seconds=0.9, samples_per_s=5028.4))
    name = "baseline,train.epochs=2,data.subset=5000"
    record = RunRecord(path=tmp_path / name, config=None, summary={
        "name": name, "status": "completed", "epochs_completed": 2, "val_acc": 0.8123, "best_val_acc": 0.8123,
        "test_acc": 0.8011, "wall_s": 12.3})
    reporter.summary_table([record])
    lines = console.file.getvalue().splitlines()
    assert all(len(line) <= 80 for line in lines), lines
    text = "\n".join(lines)
    for number in ("48,000", "12,000", "10,000", "211", "84.56%", "5,028"):  # wrapped between words, not inside one
        assert any(number in line for line in lines), (number, lines)
    assert "test %" in text and "test acc %" not in text
    assert any(line.startswith(name[:30]) for line in lines), lines  # the name, not a 10-character sliver


def test_seeds_train_every_run_once_per_seed_and_the_table_shows_mean_and_std(tiny_preset, synthetic_data_dir, tmp_path):
    out = tmp_path / "runs"
    result = run_cli(tiny_preset, "--data-dir", synthetic_data_dir, "--out", out, "--seeds", "0,1,2",
                     "--set", "train.epochs=1")
    assert result.exit_code == 0, result.output
    [study] = [p for p in out.iterdir() if p.is_dir()]
    seeds = sorted(json.loads((d / "summary.json").read_text())["seed"] for d in study.iterdir() if d.is_dir())
    assert seeds == [0, 1, 2]
    assert "mean ± std over seeds 0, 1, 2" in result.output


def test_seeds_that_are_not_numbers_or_repeat_are_refused(tiny_preset, tmp_path):
    for seeds, expected in (("0,x", "--seeds: expected whole numbers"), ("1,1", "--seeds: a seed is listed twice"),
                            ("-1", "--seeds: train.seed")):
        result = run_cli(tiny_preset, "--out", tmp_path / "runs", "--seeds", seeds)
        assert result.exit_code == 2 and expected in result.output, result.output
    assert not (tmp_path / "runs").exists()
