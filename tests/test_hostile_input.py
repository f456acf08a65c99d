"""Hostile input to the command line: each case is bad input (exit 2, one `fcn-tui: error:` line,
no traceback, nothing created) or odd input that must work as typed.

Presets nested 1,000 deep, numbers of thousands of digits, a `--set` value that runs on into
further lines, Rich markup in a name, Typer's own usage errors, and the most natural sweep of
an MLP (`model.hidden`). Every case goes through the real command (Typer's runner).
"""

from __future__ import annotations

import subprocess
import sys
from typing import ClassVar

import pytest
import torch
from typer.testing import CliRunner

from fcn_tui.cli import app
from fcn_tui.config import Config, load_preset, parse_overrides
from tests.helpers import TINY_PRESET, assert_bad_input, run_cli

runner = CliRunner()
ONE_EPOCH = TINY_PRESET.replace("epochs = 2", "epochs = 1").replace("hidden = [32]", "hidden = [8]")


def nested(depth: int, open_: str = "[", close: str = "]", inner: str = "") -> str:
    return open_ * depth + inner + close * depth


# --- presets nested too deeply or holding huge numbers: run, ui (and ctrl+o, --resume: load_preset) ---

HOSTILE_PRESETS = [
    ("a = " + nested(1000) + "\n", "invalid TOML: arrays or tables nested too deeply"),
    ("name = " + nested(1000) + "\n", "invalid TOML: arrays or tables nested too deeply"),
    ("a = " + nested(1000, "{b=", "}", "1") + "\n", "invalid TOML: arrays or tables nested too deeply"),
    ("[sweep]\n'model.hidden' = " + nested(1000) + "\n", "invalid TOML: arrays or tables nested too deeply"),
    ("[train]\nepochs = " + "9" * 5000 + "\n", "invalid TOML: a number with too many digits"),
    ("[train]\nseed = " + "1" * 5000 + "\n", "invalid TOML: a number with too many digits"),
    ("[optim]\nlr = " + "9" * 400 + "\n", "optim.lr: number too large, got 999"),
    ("[sweep]\n'optim.lr' = [0.1, " + "9" * 400 + "]\n", "sweep.optim.lr: number too large"),
]


@pytest.mark.parametrize("command", ["run", "ui"])
@pytest.mark.parametrize("text, expected", HOSTILE_PRESETS, ids=[f"preset{i}" for i in range(len(HOSTILE_PRESETS))])
def test_a_preset_nested_too_deeply_or_with_huge_numbers_is_bad_input(tmp_path, monkeypatch, command, text, expected):
    monkeypatch.setattr("fcn_tui.tui.app.FcnApp.run", lambda self: pytest.fail("the app opened"))
    preset = tmp_path / "hostile.toml"
    preset.write_text(text)
    result = runner.invoke(app, [command, str(preset), "--out", str(tmp_path / "out")])
    line = assert_bad_input(result, f"{preset}: ", expected)
    assert len(line) < 300  # the value is shortened, not printed with its 5,000 digits
    assert not (tmp_path / "out").exists()


def test_the_apps_open_dialog_and_resume_read_hostile_presets_as_config_errors(tmp_path):
    from fcn_tui.config import ConfigError

    preset = tmp_path / "deep.toml"
    preset.write_text("a = " + nested(1500) + "\n")
    with pytest.raises(ConfigError, match="nested too deeply"):  # what ctrl+o and --resume call
        load_preset(preset)


SET_CASES = [
    ("model.hidden=" + "[" * 1500, "--set: model.hidden: invalid TOML: arrays or tables nested too deeply"),
    ("model.hidden=" + nested(1500), "--set: model.hidden: invalid TOML: arrays or tables nested too deeply"),
    ("name=" + nested(1000), "--set: name: invalid TOML: arrays or tables nested too deeply"),
    ("optim.lr=" + "9" * 400, "--set: optim.lr: number too large"),
    ("train.epochs=" + "9" * 5000, "--set: train.epochs: invalid TOML: a number with too many digits"),
    ("train.seed=" + "7" * 5000, "--set: train.seed: invalid TOML: a number with too many digits"),
    ("optim.lr=0.1\n[train]\nepochs=1", "--set: optim.lr: expected one value"),
    ("train.epochs=1\noptim.lr=0.5", "--set: train.epochs: expected one value"),
]


@pytest.mark.parametrize("item, expected", SET_CASES, ids=[f"set{i}" for i in range(len(SET_CASES))])
def test_a_set_value_nested_huge_or_spanning_lines_is_bad_input(tiny_preset, tmp_path, item, expected):
    line = assert_bad_input(run_cli(tiny_preset, "--set", item, "--out", tmp_path / "out"), expected)
    assert len(line) < 300
    assert not (tmp_path / "out").exists()


def test_a_set_value_spanning_lines_no_longer_trains_the_preset_silently():
    # it used to keep `0.1` and drop the rest: 15 epochs on all the data instead of 1
    with pytest.raises(ValueError, match="expected one value"):
        parse_overrides(["optim.lr=0.1\n[train]\nepochs=1"])


# --- sweeping the architecture -------------------------------------------------------------------

def test_sweeping_model_hidden_runs_every_architecture_and_resumes(synthetic_data_dir, tmp_path):
    preset = tmp_path / "widths.toml"
    preset.write_text(ONE_EPOCH + "\n[sweep]\n'model.hidden' = [[16], [16, 8]]\n")
    assert [c.model.hidden for c in load_preset(preset).runs()] == [(16,), (16, 8)]
    out = tmp_path / "out"
    result = run_cli(preset, "--data-dir", synthetic_data_dir, "--out", out)
    assert result.exit_code == 0, result.output
    [study] = out.iterdir()
    runs = sorted(p.name for p in study.iterdir() if p.is_dir())
    assert runs == ["001-model.hidden=16", "002-model.hidden=16,8"]
    assert load_preset(study / runs[1] / "config.toml").config.model.hidden == (16, 8)
    again = run_cli(preset, "--data-dir", synthetic_data_dir, "--out", out, "--resume")  # reads sweep.toml back
    assert again.exit_code == 0, again.output
    assert again.stdout.count("already completed") == 2


# --- Rich markup in names is shown as typed --------------------------------------------------------

@pytest.mark.parametrize("name", ["[/x]", "[bold red]loud[/]", ":smile: [link=file:///etc]x"])
def test_markup_in_a_run_name_is_printed_as_typed(synthetic_data_dir, tmp_path, name):
    preset = tmp_path / "p.toml"
    preset.write_text(ONE_EPOCH)
    result = run_cli(preset, "--set", f"name={name!r}", "--data-dir", synthetic_data_dir, "--out", tmp_path / "out")
    assert result.exit_code == 0, (result.output, result.exception)
    assert f"run: {name}\n" in result.stdout
    assert f"{name}: written to" in result.stdout


def test_markup_in_a_sweep_name_is_printed_as_typed_in_the_comparison_table(synthetic_data_dir, tmp_path):
    preset = tmp_path / "p.toml"
    preset.write_text(ONE_EPOCH.replace('name = "tiny"', "name = '[/study]'") + "\n[sweep]\n'optim.lr' = [0.01, 0.02]\n")
    result = run_cli(preset, "--data-dir", synthetic_data_dir, "--out", tmp_path / "out")
    assert result.exit_code == 0, (result.output, result.exception)
    assert "[/study]" in result.stdout


# --- nothing is created for a run that never starts ----------------------------------------------

@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has Apple's Metal backend")
def test_an_unavailable_device_creates_no_output_folder(tiny_preset, synthetic_data_dir, tmp_path):
    out = tmp_path / "out"
    assert_bad_input(run_cli(tiny_preset, "--device", "mps", "--data-dir", synthetic_data_dir, "--out", out), "mps")
    assert not out.exists()


def test_a_split_that_cannot_be_made_creates_no_output_folder(tiny_preset, synthetic_data_dir, tmp_path):
    out = tmp_path / "a" / "b"
    assert_bad_input(run_cli(tiny_preset, "--set", "data.subset=1", "--data-dir", synthetic_data_dir, "--out", out),
                     "cannot split 1 training images")
    assert not (tmp_path / "a").exists()


# --- Typer's own errors are the same one line -----------------------------------------------------

def invoke(*args) -> object:
    return runner.invoke(app, [str(a) for a in args])


def test_typers_usage_errors_are_one_line_exit_2(tmp_path):
    assert_bad_input(invoke("run"), "missing argument 'PRESET.toml'", "--help")
    assert_bad_input(invoke("run", tmp_path / "p.toml", "--bogus"), "no such option: --bogus")
    assert_bad_input(invoke("export", tmp_path), "missing option '--csv'")
    assert_bad_input(invoke("rnu"), "no such command 'rnu'", "Did you mean 'run'?")
    assert_bad_input(invoke("plot", tmp_path, "--out"), "option '--out' requires an argument")


@pytest.mark.parametrize("command", [["plot"], ["export", "--csv", "x.csv"]], ids=["plot", "export"])
def test_a_file_given_for_the_folder_of_runs_is_named_a_file(tmp_path, command):
    a_file = tmp_path / "results.csv"
    a_file.write_text("run,status\n")
    assert_bad_input(invoke(command[0], a_file, *command[1:]), f"{a_file}: is a file, expected a folder of runs")


def test_the_installed_command_prints_usage_errors_as_one_line():
    proc = subprocess.run([sys.executable, "-m", "fcn_tui", "run", "--device"], check=False,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr.splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith("fcn-tui: error: option '--device' requires an argument")


# --- ui's options work without the word `ui` -----------------------------------------------------

class FakeApp:
    """Stands in for the terminal app: records what it was opened with."""

    opened: ClassVar[list[dict]] = []
    exit_status = 0

    def __init__(self, **kwargs) -> None:
        FakeApp.opened.append(kwargs)

    def run(self) -> None:
        pass


@pytest.mark.parametrize("args", [[], ["ui"]], ids=["no command", "ui"])
def test_options_without_a_command_are_uis(tmp_path, monkeypatch, args):
    monkeypatch.setattr("fcn_tui.tui.app.FcnApp", FakeApp)
    FakeApp.opened = []
    result = invoke(*args, "--out", tmp_path / "mine", "--set", "optim.name=adam", "--data-dir", tmp_path)
    assert result.exit_code == 0, (result.output, result.exception)
    [opened] = FakeApp.opened
    assert opened["out"] == tmp_path / "mine" and opened["data_dir"] == tmp_path
    assert opened["preset"].config.optim.name == "adam"
    assert opened["preset"].config.name == "baseline,optim.name=adam"


# --- a run with overrides is told apart from the preset's own --------------------------------------

@pytest.mark.parametrize("sets, folder", [
    (["optim.name=sgd", "model.batchnorm=true"], "-tiny,optim.name=sgd,model.batchnorm=true"),
    (["optim.name=adam"], "-tiny"),  # the preset's own value: nothing changed
    (["name=mine", "optim.name=sgd"], "-mine"),  # an explicit name wins
])
def test_a_run_with_overrides_is_named_after_them(synthetic_data_dir, tmp_path, sets, folder):
    preset = tmp_path / "tiny.toml"
    preset.write_text(ONE_EPOCH)
    out = tmp_path / "out"
    result = run_cli(preset, *(a for s in sets for a in ("--set", s)), "--data-dir", synthetic_data_dir, "--out", out)
    assert result.exit_code == 0, (result.output, result.exception)
    [run_dir] = out.iterdir()
    assert run_dir.name.endswith(folder), run_dir.name
    assert load_preset(run_dir / "config.toml").config.name == run_dir.name.split("-", 2)[2]


def test_the_device_alone_does_not_rename_a_run():
    assert Config().with_overrides({"train.device": "cpu"}).name == "baseline"


# --- preset files that are not files, sweeps of a million values, impossible combinations ------


def no_data(tmp_path) -> str:
    """A file given as the data folder: a command that should have been refused stops there (exit 2,
    a data error) instead of downloading or training."""
    path = tmp_path / "not-data"
    path.touch()
    return str(path)


@pytest.mark.parametrize("command", ["run", "ui"])
def test_a_fifo_or_a_device_as_the_preset_is_refused_at_once(tmp_path, monkeypatch, command):
    """Before: a FIFO blocked `run` for ever; /dev/zero ended in a MemoryError traceback."""
    import os
    import time

    monkeypatch.setattr("fcn_tui.tui.app.FcnApp.run", lambda self: pytest.fail("the app opened"))
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * (5 << 20) + "\n")  # a regular file, but 5 MiB: not a preset
    for path, reason in ((fifo, "not a regular file"), ("/dev/zero", "not a regular file"),
                         (big, "larger than 4 MiB")):
        started = time.monotonic()
        result = runner.invoke(app, [command, str(path), "--out", str(tmp_path / "out")])
        assert_bad_input(result, f"{path}: cannot read: {reason}")
        assert time.monotonic() - started < 10
    assert not (tmp_path / "out").exists()


def test_a_sweep_of_a_million_values_is_refused_quickly(tmp_path):
    """Before: the "listed twice" check compared every value with every other (no answer in 120 s).
    Its file (7 MB) is refused by its size; the same text given whole is refused by its count,
    before any value is checked."""
    import time

    from fcn_tui.config import ConfigError, preset_from_text

    text = TINY_PRESET + "\n[sweep]\n'train.seed' = [" + ", ".join(map(str, range(1_000_000))) + "]\n"
    preset = tmp_path / "huge.toml"
    preset.write_text(text)
    started = time.monotonic()
    assert_bad_input(run_cli(preset, "--data-dir", no_data(tmp_path)), f"{preset}: cannot read: larger than 4 MiB")
    assert time.monotonic() - started < 10
    started = time.monotonic()
    with pytest.raises(ConfigError, match="sweep: 1000000 = 1,000,000 runs, more than 10,000"):
        preset_from_text(text, "huge.toml")
    assert time.monotonic() - started < 30  # parsing the TOML is most of it


def test_duplicates_in_a_large_sweep_are_found_in_linear_time():
    from fcn_tui.config import ConfigError, preset_from_text

    seeds = list(range(10_000))
    text = TINY_PRESET + "\n[sweep]\n'train.seed' = " + str(seeds[:-1] + [0]) + "\n"  # 10,000 values, one twice
    with pytest.raises(ConfigError, match=r"sweep\.train\.seed: 0 is listed twice"):
        preset_from_text(text, "p.toml")


BATCH_OF_ONE = [
    ("[model]\nbatchnorm = true\n[train]\nbatch_size = 1\n", "model.batchnorm = true with train.batch_size = 1"),
    ("[model]\nbatchnorm = true\n[sweep]\n'train.batch_size' = [1, 64]\n",
     "model.batchnorm = true with sweep.train.batch_size = 1"),
    ("[train]\nbatch_size = 1\n[sweep]\n'model.batchnorm' = [false, true]\n",
     "sweep.model.batchnorm = true with train.batch_size = 1"),
    ("[sweep]\n'model.batchnorm' = [false, true]\n'train.batch_size' = [1, 64]\n",
     "sweep.model.batchnorm = true with sweep.train.batch_size = 1"),
    ("[model]\nbatchnorm = true\n[search]\n'train.batch_size' = [1, 64]\n",
     "model.batchnorm = true with search.train.batch_size = 1"),
    ("[model]\nbatchnorm = true\n[search]\n'train.batch_size' = { low = 1, high = 64 }\n",
     "model.batchnorm = true with search.train.batch_size = 1"),
    ("[search]\n'model.batchnorm' = [true, false]\n'train.batch_size' = [1, 64]\n",
     "search.model.batchnorm = true with search.train.batch_size = 1"),
    ("[sweep]\n'model.batchnorm' = [true, false]\n[search]\n'train.batch_size' = [1, 64]\n",
     "sweep.model.batchnorm = true with search.train.batch_size = 1"),
]


@pytest.mark.parametrize("text, expected", BATCH_OF_ONE, ids=[f"case{i}" for i in range(len(BATCH_OF_ONE))])
def test_batchnorm_with_batches_of_one_is_refused_before_anything_starts(tmp_path, text, expected):
    """Before: the run (or the sweep's or search's run with both) failed at epoch 1."""
    preset = tmp_path / "bn.toml"
    preset.write_text('name = "bn"\n' + text)
    line = assert_bad_input(run_cli(preset, "--out", str(tmp_path / "out"), "--data-dir", no_data(tmp_path)), expected,
                            "BatchNorm cannot train on batches of one sample")
    assert "train.batch_size >= 2 or model.batchnorm = false" in line
    assert not (tmp_path / "out").exists()


def test_batchnorm_with_batches_of_one_from_set_is_refused_too(tiny_preset, tmp_path):
    assert_bad_input(run_cli(tiny_preset, "--data-dir", no_data(tmp_path), "--set", "model.batchnorm=true", "--set", "train.batch_size=1"),
                     "model.batchnorm = true with train.batch_size = 1")
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(TINY_PRESET + "\n[sweep]\n'model.batchnorm' = [false, true]\n")
    assert_bad_input(run_cli(sweep, "--data-dir", no_data(tmp_path), "--set", "train.batch_size=1"),
                     "sweep.model.batchnorm = true with train.batch_size = 1")


def test_an_empty_device_option_is_refused_like_an_empty_device_setting(tiny_preset, tmp_path):
    """Before: `--device ''` silently meant `auto` while `--set train.device=""` was refused."""
    assert_bad_input(run_cli(tiny_preset, "--data-dir", no_data(tmp_path), "--set", 'train.device=""'), "train.device: unknown device ''")
    assert_bad_input(run_cli(tiny_preset, "--data-dir", no_data(tmp_path), "--device", ""), "--device: train.device: unknown device ''")
    assert_bad_input(run_cli(tiny_preset, "--data-dir", no_data(tmp_path), "--devices", ""), "--devices: train.device: unknown device ''")
    result = runner.invoke(app, ["worker", "--storage", str(tmp_path / "none"), "--device", "", "--data-dir", str(no_data(tmp_path))])
    assert_bad_input(result, "--devices: train.device: unknown device ''")
    assert not (tmp_path / "runs").exists()


def test_a_search_refuses_a_choice_listed_twice_as_a_sweep_does(tmp_path):
    preset = tmp_path / "search.toml"
    preset.write_text(TINY_PRESET + "\n[search]\ntrials = 2\n'optim.name' = ['adam', 'adam']\n")
    assert_bad_input(run_cli(preset, "--data-dir", no_data(tmp_path)), "search.optim.name: 'adam' is listed twice")
    preset.write_text(TINY_PRESET + "\n[sweep]\n'optim.name' = ['adam', 'adam']\n")
    assert_bad_input(run_cli(preset, "--data-dir", no_data(tmp_path)), "sweep.optim.name: 'adam' is listed twice")
    preset.write_text(TINY_PRESET + "\n[search]\n'optim.lr' = [0.1, 0.10]\n'optim.name' = ['sgd', 'adam']\n")
    assert_bad_input(run_cli(preset, "--data-dir", no_data(tmp_path)), "search.optim.lr: 0.1 is listed twice")


def test_a_one_point_search_is_refused(tmp_path):
    """Before: a search whose every setting had one choice trained that configuration again and again.
    (Each refused command here is given a file for a data folder: one taken would stop there.)"""
    preset = tmp_path / "search.toml"
    preset.write_text(TINY_PRESET + "\n[search]\ntrials = 3\n'optim.name' = ['sgd']\n'optim.lr' = [0.1]\n")
    assert_bad_input(run_cli(preset, "--out", str(tmp_path / "out"), "--data-dir", no_data(tmp_path)),
                     "search: one choice for every setting and no range: nothing to search")
    assert not (tmp_path / "out").exists()
    # one choice beside a real one is a fixed value: that search runs
    preset.write_text(TINY_PRESET + "\n[search]\ntrials = 3\n'optim.name' = ['sgd']\n'optim.lr' = [0.1, 0.2]\n")
    assert load_preset(preset).search is not None
