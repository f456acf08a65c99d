"""Helpers the test modules share: plain functions, classes and constants (fixtures are in
conftest.py, the scripted backend in scripted.py, the Runs view's synthetic history in
runs_history.py). A test module imports from these helper modules only, never from another test
module (`tests/test_import_graph.py` checks it).

- synthetic data: `synthetic_images`, `make_synthetic_dataset`, `TINY_PRESET`;
- the command line: `run_cli`, `assert_bad_input`; real processes: `fcn_tui`, `finish`, `WAIT_S`;
- run folders and studies: `write_run_folder`, `dead_pid`, `damaged_history`, `EXPECTED_HEADER`,
  `grid`, `stop_in_run`, `earlier_runs`;
- the app through Textual's pilot: `settle`, `until`, `press` (keys in, what a widget shows out),
  `screen_text`, `rendered`, `type_into`; for snapshots `settle_for_snapshot`, `SNAPSHOT_SIZES`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from dataclasses import replace
from pathlib import Path
from unittest import mock

import pytest
import torch
from typer.testing import CliRunner

from fcn_tui import events as ev
from fcn_tui.cli import app as cli_app
from fcn_tui.config import Config, Preset, config_to_toml, load_preset
from fcn_tui.data import write_idx
from tests.scripted import ScriptedBackend, ScriptedTrainer

# --- synthetic data ------------------------------------------------------------------------------


def synthetic_images(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """`n` noisy 28x28 uint8 images whose class (0-9) decides which band of rows is bright."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    labels = labels[torch.randperm(n, generator=g)]
    images = torch.randint(0, 60, (n, 28, 28), generator=g, dtype=torch.int64)
    for cls in range(10):
        rows = slice(2 + 2 * cls, 5 + 2 * cls)
        images[labels == cls, rows, :] += 150
    return images.clamp(0, 255).to(torch.uint8), labels


def make_synthetic_dataset(folder: Path, n_train: int = 600, n_test: int = 200, gz: bool = True) -> Path:
    train_x, train_y = synthetic_images(n_train, seed=1)
    test_x, test_y = synthetic_images(n_test, seed=2)
    write_idx(folder, train_x, train_y, "train", gz=gz)
    write_idx(folder, test_x, test_y, "t10k", gz=gz)
    return folder


TINY_PRESET = """
name = "tiny"

[model]
hidden = [32]

[optim]
name = "adam"
lr = 0.01

[train]
epochs = 2
batch_size = 32
device = "cpu"
"""

# --- the command line ----------------------------------------------------------------------------


def run_cli(*args):
    """`fcn-tui run ARGS` through Typer's runner (arguments may be paths or numbers)."""
    return CliRunner().invoke(cli_app, ["run", *map(str, args)])


def assert_bad_input(result, *expected: str) -> str:
    """Exit 2, exactly one `fcn-tui: error:` line on stderr holding `expected`, no traceback."""
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr, result.exception)
    assert isinstance(result.exception, SystemExit)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("fcn-tui: error: "), result.stderr
    assert "Traceback" not in result.stdout + result.stderr
    for text in expected:
        assert text in lines[0], (text, lines[0])
    return lines[0]


WAIT_S = 240  # generous: six tiny runs take seconds, but CI machines are slow and shared


def fcn_tui(*args: str, **kwargs) -> subprocess.Popen:
    """`python -m fcn_tui ARGS` as a real process, stdout and stderr in one text pipe."""
    return subprocess.Popen([sys.executable, "-m", "fcn_tui", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, **kwargs)


def finish(proc: subprocess.Popen) -> str:
    """What `proc` printed, once it has ended (killed, and the test failed, after `WAIT_S`)."""
    try:
        out, _ = proc.communicate(timeout=WAIT_S)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
        pytest.fail(f"fcn-tui did not finish in {WAIT_S}s:\n{out[-3000:]}")
    return out


# --- run folders and studies ---------------------------------------------------------------------

# The columns of results.csv the issue asks for, spelled out: a change to RESULT_COLUMNS must be deliberate.
EXPECTED_HEADER = [
    "run_id", "name", "status",
    "model.hidden", "model.activation", "model.dropout", "model.batchnorm", "model.init", "model.init_std",
    "optim.name", "optim.lr", "optim.momentum", "optim.weight_decay", "optim.schedule",
    "train.epochs", "train.batch_size", "train.seed", "train.val_fraction", "train.device",
    "train.label_smoothing", "train.amp", "train.compile",
    "data.normalize", "data.subset", "data.augment",
    "epochs_completed", "train_loss", "val_loss", "val_acc", "best_val_acc", "test_acc",
    "wall_s", "samples_per_s", "device",
]


def dead_pid() -> int:
    """The id of a process that has ended (and been reaped)."""
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    os.waitpid(pid, 0)
    return pid


def write_run_folder(folder, config, status, val_acc=None, epochs=0, pid=None):
    """A run folder as the recorder leaves it, optionally interrupted (status `running`)."""
    folder.mkdir(parents=True)
    (folder / "config.toml").write_text(config_to_toml(config))
    lines = ["epoch,train_loss,train_acc,val_loss,val_acc,lr,epoch_s"]
    lines += [f"{e},0.5,0.8,0.6,{val_acc},0.001,1.0" for e in range(1, epochs + 1)]
    (folder / "metrics.csv").write_text("\n".join(lines) + "\n")
    summary = {"name": config.name, "status": status, "epochs_completed": epochs, "val_acc": val_acc,
               "best_val_acc": val_acc, "test_acc": val_acc, "wall_s": 5.0, "pid": pid, "host": os.uname().nodename}
    (folder / "summary.json").write_text(json.dumps(summary))


def damaged_history(out: Path) -> None:
    """One sound run and three damaged ones, as a hostile tester left them."""
    write_run_folder(out / "20260101-000000-good", Config(name="good"), "completed", val_acc=0.8, epochs=2)
    for name, change in (("bytes", None), ("best-x", {"best_val_acc": "x"}), ("wall-nan", {"wall_s": float("nan")})):
        folder = out / f"20260101-00000{len(name)}-{name}"
        write_run_folder(folder, Config(name=name), "completed", val_acc=0.7, epochs=2)
        if change is None:
            (folder / "metrics.csv").write_bytes(bytes(range(128, 256)))
        else:
            summary = json.loads((folder / "summary.json").read_text())
            (folder / "summary.json").write_text(json.dumps({**summary, **change}))  # NaN is written as NaN


def grid(tmp_path: Path, epochs: int = 3) -> Path:
    """A preset of two runs (`optim.lr` 0.01 and 0.02) of the tiny network, `epochs` each."""
    path = tmp_path / "grid.toml"
    path.write_text(TINY_PRESET.replace("epochs = 2", f"epochs = {epochs}") + "\n[sweep]\n'optim.lr' = [0.01, 0.02]\n")
    return path


def stop_in_run(preset_path: Path, out: Path, run: int) -> Path:
    """Train the study with the scripted engine and stop it during run `run`."""
    from fcn_tui.studies import runner

    stop = threading.Event()
    for event in runner.run_study(load_preset(preset_path), ScriptedBackend(), stop.is_set, runner.RunOptions(out=out)):
        if isinstance(event, runner.Trained) and isinstance(event.event, ev.EpochEnded) and event.position == run:
            stop.set()
    (study,) = [p for p in out.iterdir() if not p.is_symlink()]
    return study


class LrTrainer(ScriptedTrainer):
    """The script, with curves that depend on the learning rate (so overlaid runs differ)."""

    def events(self):
        factor = 1 + 10 * self.config.optim.lr
        for event in super().events():
            if isinstance(event, ev.EpochEnded):
                event = replace(event, val_loss=event.val_loss * factor, val_acc=event.val_acc / factor)
            yield event


class LrBackend(ScriptedBackend):
    def trainer(self, config, split, should_stop):
        return LrTrainer(config, should_stop, None)


def earlier_runs(out: Path, *configs: Config) -> None:
    """Runs in `out` as the app or `fcn-tui run` would have written them, stamped a year ago: the
    Runs tab lists the newest first, and a run trained in the same second would tie with them."""
    from fcn_tui.tui.training import run_queue

    with mock.patch("fcn_tui.runs.timestamp", lambda: "20250101-120000"):
        run_queue([Preset(c) for c in configs], out, LrBackend(), threading.Event(), lambda message: None)


# --- the app, driven through Textual's pilot -----------------------------------------------------

SNAPSHOT_SIZES = [(80, 24), (120, 40)]  # the smallest terminal the app is made for, and a roomy one


async def settle(pilot) -> None:
    """Let every worker finish and every message it posted be handled."""
    for _ in range(4):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


async def settle_for_snapshot(pilot) -> None:
    """`settle`, then draw what the twice-a-second timer would draw next (a loaded machine may not
    have run it yet) and stop the cursors blinking, so that a screenshot is the same every time."""
    from textual.widgets import Input

    await settle(pilot)
    pilot.app.redraw()
    await pilot.pause()
    for field in pilot.app.query(Input):
        field.cursor_blink = False


async def until(pilot, condition, tries: int = 400) -> None:
    """Wait (in steps of 50 ms, 20 s at most by default) until `condition()` holds."""
    for _ in range(tries):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError("the app never reached the expected state")


def screen_text(app, selector: str) -> str:
    """The text of the widget `selector`, as it renders it."""
    return str(app.query_one(selector).render())


async def press(pilot, *keys: str, read: str = "#run-status") -> str:
    """Press `keys` as a user would, let the app settle, and return what the widget `read` shows
    (the Train view's status line unless told otherwise)."""
    await pilot.press(*keys)
    await settle(pilot)
    return screen_text(pilot.app, read)


def rendered(widget) -> str:
    """The text a widget draws on the screen, line by line."""
    from textual.geometry import Region

    lines = widget.render_lines(Region(0, 0, widget.size.width, widget.size.height))
    return "\n".join(line.text for line in lines)


async def type_into(pilot, selector: str, text: str) -> None:
    """Focus a field, clear it and type `text` key by key."""
    field = pilot.app.query_one(selector)
    field.focus()
    await pilot.pause()
    field.action_end()
    for _ in range(len(field.value)):
        await pilot.press("backspace")
    await pilot.press(*text)
    await pilot.pause()
