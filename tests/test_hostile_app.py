"""The terminal app under hostile conditions: markup in names, absurd numbers, a closed terminal.

Pilot sessions check what the user sees (field errors, the runs table, where the focus goes);
real `fcn-tui ui` processes on a pseudo-terminal check what a dropped SSH session and SIGTERM do:
the app exits within a bounded time, the run is saved as `stopped`, and the exit status says why.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import pytest
from textual.widgets import Input
from textual.widgets._toast import Toast
from typer.testing import CliRunner

from fcn_tui.cli import app as cli_app
from fcn_tui.config import load_preset
from fcn_tui.tui.app import FcnApp
from fcn_tui.tui.dialogs import TableDialog
from tests.helpers import TINY_PRESET, damaged_history, press, screen_text, settle, type_into, until
from tests.scripted import ScriptedBackend

SIZE = (100, 32)
NUMBER_FIELDS = ("#f-model-dropout", "#f-train-seed", "#f-optim-lr", "#f-optim-momentum",
                 "#f-optim-weight-decay", "#f-train-epochs", "#f-train-batch-size", "#f-model-hidden")
HOSTILE_NAME = "[/x] [bold]not bold[/bold] [link=file:///etc]"


def toasts(app: FcnApp) -> str:
    return "\n".join(str(toast.render()) for toast in app.screen.query(Toast))


def scripted_app(out: Path, preset: Path, **values) -> FcnApp:
    return FcnApp(preset=load_preset(preset, values), out=out, backend_factory=ScriptedBackend)


# --- user text is never markup ------------------------------------------------------------


async def test_a_run_named_like_markup_trains_and_the_app_opens_again(tiny_preset, tmp_path):
    out = tmp_path / "runs"
    app = scripted_app(out, tiny_preset)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await type_into(pilot, "#f-name", HOSTILE_NAME)
        status = await press(pilot, "ctrl+r")  # the run starts, trains and lands in the Runs table
        assert HOSTILE_NAME in status
        assert "completed" in status
    assert app.exit_status == 0
    assert json.loads(next(out.rglob("summary.json")).read_text())["name"] == HOSTILE_NAME

    again = scripted_app(out, tiny_preset)  # the same output folder: the app starts every time
    async with again.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("f4")  # Runs: the name is shown as written
        table = again.query_one("#runs-table")
        assert str(table.get_row_at(0)[1]).startswith("[/x] [bold]not bold")
        await pilot.press("c")  # the comparison table, titled and filled with the name
        await pilot.pause()
        assert isinstance(again.screen, TableDialog)
        await pilot.press("escape")
        await pilot.press("space")  # overlaid on the charts, under its name
        await pilot.pause()
        assert again.loss_chart.overlays[0].label.startswith("[/x]")
    assert again.exit_status == 0


async def test_a_preset_whose_path_looks_like_markup_opens_and_is_named_as_written(tiny_preset, tmp_path):
    odd = tmp_path / "[" / "x] [bold]" / "p.toml"  # its path reads `.../[/x] [bold]/p.toml`
    odd.parent.mkdir(parents=True)
    odd.write_text(TINY_PRESET.replace('name = "tiny"', 'name = "[/y]"'))
    app = scripted_app(tmp_path / "runs", tiny_preset)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+o")  # the open dialog: type the path, enter
        await pilot.pause()
        dialog_input = app.screen.query_one("#path-input", Input)
        dialog_input.value = str(odd)
        await pilot.press("enter")
        await pilot.pause()
        assert f"opened {odd}" in toasts(app)  # the notification names the file as written
        assert app.query_one("#f-name", Input).value == "[/y]"
    assert app.exit_status == 0


async def test_markup_typed_into_a_field_is_quoted_in_its_error(tiny_preset, tmp_path):
    app = scripted_app(tmp_path / "runs", tiny_preset)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await type_into(pilot, "#f-optim-lr", "[/x]")
        assert "[/x]" in screen_text(app, "#e-optim-lr")
        assert app.query_one("#start").disabled
    assert app.exit_status == 0


# --- absurd numbers are field errors --------------------------------------------------------


@pytest.mark.parametrize("selector", NUMBER_FIELDS)
async def test_5000_digits_pasted_into_a_number_field_is_a_field_error(selector, tiny_preset, tmp_path):
    app = scripted_app(tmp_path / "runs", tiny_preset, **{"optim.name": "sgd"})  # momentum shown
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        field = app.query_one(selector, Input)
        field.focus()
        field.value = ""
        field.insert_text_at_cursor("9" * 5000)  # what a paste does
        await settle(pilot)  # the field's change, then the form's message to the app
        error = screen_text(app, "#e-" + selector[3:])
        assert error and len(error) < 200  # one short line under the field
        assert app.query_one("#start").disabled
        await press(pilot, "ctrl+r")  # nothing starts
        assert not app.running
    assert app.exit_status == 0
    assert not (tmp_path / "runs").exists()


async def test_ctrl_r_on_an_invalid_form_focuses_the_first_invalid_field(tiny_preset, tmp_path):
    app = scripted_app(tmp_path / "runs", tiny_preset)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await type_into(pilot, "#f-train-epochs", "0")  # right column
        await type_into(pilot, "#f-model-dropout", "2")  # left column: shown first
        app.query_one("#f-name").focus()
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert app.focused is app.query_one("#f-model-dropout")
        await pilot.press("backspace", "0", ".", "1")  # the correction lands in dropout
        await pilot.pause()
        assert app.query_one("#f-name", Input).value == "tiny"
        assert screen_text(app, "#e-model-dropout") == ""
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert app.focused is app.query_one("#f-train-epochs")


async def test_ctrl_r_while_the_data_loads_starts_the_run_once_it_is_ready(tiny_preset, tmp_path):
    out = tmp_path / "runs"
    release = threading.Event()

    def slow_backend() -> ScriptedBackend:
        release.wait(30)  # the data "loads" until the test lets it
        return ScriptedBackend()

    app = FcnApp(preset=load_preset(tiny_preset), out=out, backend_factory=slow_backend)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        await pilot.pause()
        assert app.backend is None
        await pilot.press("ctrl+r")
        await until(pilot, lambda: "starts as soon as it is ready" in toasts(app))
        assert not app.running
        release.set()
        await settle(pilot)
        assert "completed" in screen_text(app, "#run-status")
    assert json.loads(next(out.rglob("summary.json")).read_text())["status"] == "completed"


# --- a crash is a failure exit --------------------------------------------------------------


def test_an_unhandled_error_in_the_app_exits_non_zero(tmp_path, monkeypatch):
    def broken_mount(self) -> None:
        raise RuntimeError("a bug in the app")

    run = FcnApp.run
    monkeypatch.setattr(FcnApp, "on_mount", broken_mount)
    monkeypatch.setattr(FcnApp, "run", lambda self: run(self, headless=True, size=(80, 24)))
    result = CliRunner().invoke(cli_app, ["ui", "--out", str(tmp_path / "runs")])
    assert result.exit_code == 1


# --- a closed terminal, SIGTERM: real processes on a pseudo-terminal ---------------------------

STARTUP_S = 180  # torch import and data load on a busy 2-core machine
EXIT_S = 30  # the app gives itself 10 s; the rest is slack for a loaded machine


class TerminalApp:
    """`fcn-tui ui PRESET --out OUT --data-dir DATA` in a new session whose controlling terminal is
    a pseudo-terminal; a thread reads the screen output so the app never blocks on a full pty."""

    def __init__(self, tmp_path: Path, data_dir: Path) -> None:
        self.out = tmp_path / "runs"
        preset = tmp_path / "long.toml"
        preset.write_text(TINY_PRESET.replace("epochs = 2", "epochs = 10000"))
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 32, 100, 0, 0))
        env = {**os.environ, "OMP_NUM_THREADS": "1", "TERM": "xterm-256color"}
        env.pop("FCN_TUI_DATA", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fcn_tui", "ui", str(preset), "--out", str(self.out), "--data-dir", str(data_dir)],
            stdin=slave, stdout=slave, stderr=slave, env=env, start_new_session=True,
            preexec_fn=_take_terminal,  # noqa: PLW1509 - a session and its terminal, nothing more
        )
        os.close(slave)
        self.head, self.tail = bytearray(), bytearray()  # the first and the latest screen output
        self._reading = True
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while self._reading:
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if ready:
                try:
                    data = os.read(self.master, 65536)
                except OSError:
                    return
                if not data:
                    return
                if len(self.head) < 1 << 20:
                    self.head += data
                self.tail += data
                del self.tail[:-65536]

    def summary(self) -> dict | None:
        for path in self.out.rglob("summary.json") if self.out.exists() else ():
            with contextlib.suppress(OSError, ValueError):
                return json.loads(path.read_text())
        return None

    def start_training(self) -> None:
        """Press ctrl+r (once the first screen is up) and wait until the run is on disk as running."""
        deadline = time.monotonic() + STARTUP_S
        while b"Setup" not in self.head:
            assert self.proc.poll() is None and time.monotonic() < deadline, "the app never drew its screen"
            time.sleep(0.1)
        pressed = 0.0
        while (summary := self.summary()) is None or summary["status"] != "running":
            assert self.proc.poll() is None and time.monotonic() < deadline, "the run never started"
            if summary is None and time.monotonic() - pressed > 5:
                os.write(self.master, b"\x12")  # ctrl+r (again, in case the first came too early)
                pressed = time.monotonic()
            time.sleep(0.1)

    def hang_up(self) -> None:
        """What a dropped SSH session does: the terminal's other end closes."""
        self._reading = False
        self._reader.join()
        os.close(self.master)
        self.master = -1

    def wait(self, seconds: float) -> int | None:
        """The exit status, or None if the app is still running after `seconds`."""
        try:
            code = self.proc.wait(timeout=seconds)
        except subprocess.TimeoutExpired:
            return None
        if self.master >= 0:
            self._reader.join(10)  # the reader reads the rest of the output, then end-of-file
        return code

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reading = False
        if self.master >= 0:
            self._reader.join()
            os.close(self.master)


def _take_terminal() -> None:
    """In the child: the pty on stdin becomes the session's controlling terminal, and the signals
    have their default dispositions (a test run from a background job ignores some)."""
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


@pytest.fixture
def terminal_app(tmp_path, synthetic_data_dir):
    running = TerminalApp(tmp_path, synthetic_data_dir)
    yield running
    running.close()


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX terminals")
def test_a_closed_terminal_mid_run_ends_the_app_and_saves_the_run(terminal_app):
    terminal_app.start_training()
    started = time.monotonic()
    terminal_app.hang_up()
    code = terminal_app.wait(EXIT_S)
    assert code is not None, f"still running {EXIT_S}s after the terminal closed"
    assert code == 128 + signal.SIGHUP
    assert time.monotonic() - started < EXIT_S
    assert terminal_app.summary()["status"] == "stopped"


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_mid_run_ends_the_app_and_saves_the_run(terminal_app):
    terminal_app.start_training()
    terminal_app.proc.send_signal(signal.SIGTERM)
    code = terminal_app.wait(EXIT_S)
    assert code is not None, f"still running {EXIT_S}s after SIGTERM"
    assert code == 128 + signal.SIGTERM
    assert terminal_app.summary()["status"] == "stopped"
    assert b"\x1b[?1049l" in terminal_app.tail  # the terminal was given back (alternate screen left)


# --- damaged run folders in the Runs view -----------------------------------------------------


async def test_damaged_run_folders_are_listed_and_every_runs_action_still_works(tiny_preset, tmp_path):
    out = tmp_path / "runs"
    damaged_history(out)
    app = scripted_app(out, tiny_preset)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("f4")
        table = app.query_one("#runs-table")
        assert table.row_count == 4  # none hidden
        statuses = {str(table.get_row_at(i)[1]): str(table.get_row_at(i)[2]) for i in range(4)}
        assert statuses["good"] == "completed" and statuses["bytes"] == "unreadable"
        for _ in range(8):  # every sort column, both ways
            await pilot.press("s")
            await pilot.press("r")
        await press(pilot, "c")  # the comparison table
        assert isinstance(app.screen, TableDialog)
        await pilot.press("escape")
        await press(pilot, "ctrl+e")  # export through the dialog
        field = app.screen.query_one("#path-input", Input)
        field.value = str(tmp_path / "all.csv")
        await press(pilot, "enter")
        assert app.is_running
    assert app.exit_status == 0
    rows = (tmp_path / "all.csv").read_text().splitlines()
    assert len(rows) == 5 and any(",unreadable," in row for row in rows)


async def test_ctrl_x_while_the_data_loads_cancels_a_start_asked_for_a_moment_before(tiny_preset, tmp_path):
    """Before: ctrl+x said "no run is going" and the run started, in full, once the data was there."""
    out = tmp_path / "runs"
    loaded = threading.Event()

    def slow_data() -> ScriptedBackend:
        loaded.wait(30)  # the data is still loading until the test lets it finish
        return ScriptedBackend()

    app = FcnApp(preset=load_preset(tiny_preset), out=out, backend_factory=slow_data)
    messages: list[str] = []
    notify = app.notify
    app.notify = lambda message, **kwargs: (messages.append(message), notify(message, **kwargs))[1]
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        await pilot.press("ctrl+r")  # the data is loading: the run waits for it
        await pilot.pause()
        assert any("training starts as soon as it is ready" in m for m in messages), messages
        await pilot.press("ctrl+x")  # changed my mind
        await pilot.pause()
        loaded.set()
        await settle(pilot)
        await until(pilot, lambda: app.backend is not None)
        await settle(pilot)
        assert not app.running
        assert any("the start is cancelled" in m for m in messages), messages
        assert not any("no run is going" in m or "starting the run" in m for m in messages), messages
        await press(pilot, "ctrl+r")  # a start now trains as usual
        await until(pilot, lambda: not app.running)
    assert [json.loads(p.read_text())["status"] for p in out.rglob("summary.json")] == ["completed"]
