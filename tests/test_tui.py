"""The terminal app, driven like a user would: keys in, screen and run folders out.

These tests train for real (tiny synthetic data, one hidden layer of 32), so they check the
same run folders `fcn-tui run` writes. Snapshots of the screens live in test_tui_snapshots.py.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fcn_tui.cli import app as cli_app
from fcn_tui.config import load_preset
from fcn_tui.runs import find_runs
from fcn_tui.tui.app import FcnApp
from fcn_tui.tui.dialogs import ConfirmDialog, TableDialog
from tests.helpers import press, rendered, screen_text, settle, type_into, until
from tests.scripted import ScriptedBackend

SIZE = (100, 32)


def tiny_app(tiny_preset: Path, data_dir: Path, out: Path, **overrides) -> FcnApp:
    preset = load_preset(tiny_preset, {"train.epochs": 1, **overrides})
    return FcnApp(preset=preset, out=out, data_dir=data_dir)


def scripted_app(tiny_preset: Path, out: Path) -> FcnApp:
    """For tests of the interface alone: scripted events instead of torch and data."""
    return FcnApp(preset=load_preset(tiny_preset), out=out, backend_factory=ScriptedBackend)


def summaries(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(out.rglob("summary.json"))]


async def test_invalid_value_is_marked_and_disables_start(tiny_preset, tmp_path):
    out = tmp_path / "runs"
    app = scripted_app(tiny_preset, out)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        start = app.query_one("#start")
        assert not start.disabled
        await type_into(pilot, "#f-optim-lr", "-1")
        assert "must be > 0" in screen_text(app, "#e-optim-lr")
        assert start.disabled
        await press(pilot, "ctrl+r")  # the key does not get past the form either
        assert not out.exists()
        await type_into(pilot, "#f-model-hidden", "32,x")
        assert "400,400" in screen_text(app, "#e-model-hidden")
        await type_into(pilot, "#f-model-hidden", "32,16")
        await type_into(pilot, "#f-optim-lr", "0.02")
        assert screen_text(app, "#e-optim-lr") == ""
        assert not start.disabled
        assert app.form.config.optim.lr == 0.02 and app.form.config.model.hidden == (32, 16)
        await type_into(pilot, "#f-model-hidden", "[64, 32]")  # as a preset writes it
        assert screen_text(app, "#e-model-hidden") == "" and app.form.config.model.hidden == (64, 32)


async def test_one_epoch_run_updates_every_view_and_writes_the_run(tiny_preset, synthetic_data_dir, tmp_path):
    out = tmp_path / "runs"
    app = tiny_app(tiny_preset, synthetic_data_dir, out)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        status = await press(pilot, "ctrl+r")
        assert "completed" in status and "tiny" in status
        assert app.loss_chart.epochs == [1] and len(app.loss_chart.batch_y) >= 1
        summary = summaries(out)[0]
        assert summary["status"] == "completed"
        assert app.acc_chart.val_acc == [pytest.approx(100 * summary["val_acc"])]
        assert app.confusion.source == "test" and app.confusion.total == 200  # the test images
        await pilot.press("f3", "v")  # back to the validation matrix
        assert app.confusion.source == "val" and app.confusion.total == 60  # 10% of 600
        await pilot.press("f4")
        table = app.query_one("#runs-table")
        assert table.row_count == 1
        # the preset's values given to load_preset are overrides, which name the run
        assert [str(c) for c in table.get_row_at(0)[1:3]] == ["tiny,train.epochs=1", "completed"]
    run_dir = find_runs(out)[0].path
    assert {p.name for p in run_dir.iterdir()} >= {"config.toml", "metrics.csv", "summary.json", "confusion.csv", "model.pt"}


async def test_stop_mid_run_saves_it_as_stopped(tiny_preset, synthetic_data_dir, tmp_path):
    out = tmp_path / "runs"
    app = tiny_app(tiny_preset, synthetic_data_dir, out, **{"train.epochs": 2000})
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+r")
        await until(pilot, lambda: app.acc_chart.epochs)
        await pilot.press("ctrl+r")  # a second run cannot start while one is going
        assert "stopped" in await press(pilot, "ctrl+x")
        assert len(list(out.iterdir())) == 1
        assert not app.query_one("#start").disabled
    summary = summaries(out)[0]
    assert summary["status"] == "stopped"
    assert 1 <= summary["epochs_completed"] < 2000


async def test_quitting_mid_run_asks_then_saves_the_run_as_stopped(tiny_preset, synthetic_data_dir, tmp_path):
    out = tmp_path / "runs"
    app = tiny_app(tiny_preset, synthetic_data_dir, out, **{"train.epochs": 2000})
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+r")
        await until(pilot, lambda: app.acc_chart.epochs)
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("ctrl+q")  # pressed again: still one question
        await pilot.pause()
        assert len(app.screen_stack) == 2
        await press(pilot, "y")
    assert summaries(out)[0]["status"] == "stopped"


async def test_the_quit_question_is_whole_at_60x20_and_no_toast_covers_its_buttons(tiny_preset, tmp_path):
    app = scripted_app(tiny_preset, tmp_path / "runs")
    async with app.run_test(size=(60, 20)) as pilot:
        await settle(pilot)
        app.running = True  # as while a run trains
        app.notify("the data is ready: starting the run")
        await pilot.press("ctrl+q")
        await pilot.pause()
        assert isinstance(app.screen, ConfirmDialog)
        app.notify("CPU busy: training with 1 thread")  # e.g. the data finished loading just now
        await pilot.pause()
        dialog = app.screen.query_one(".dialog")
        question = " ".join(rendered(dialog.query_one(".dialog-title")).split())
        assert question == "A run is going. Stop it (it is saved as stopped) and quit?"  # wrapped, not cut
        no = app.screen.query_one("#no")
        assert app.screen.region.contains_region(no.region) and str(no.label) == "No (n)"
        assert list(app._notifications) == []  # nothing drawn over the dialog
        await pilot.press("n")
        await pilot.pause()
        assert [n.message for n in app._notifications] == ["CPU busy: training with 1 thread"]  # shown once answered
        app.running = False


HANGUP_SCRIPT = """
import sys, time
from pathlib import Path
from fcn_tui.config import load_preset
from fcn_tui.tui.app import FcnApp

app = FcnApp(preset=load_preset(sys.argv[1], {"train.epochs": 2000}), out=Path(sys.argv[2]),
             data_dir=Path(sys.argv[3]))

async def start_training(pilot):
    deadline = time.monotonic() + 120  # the test reads one line: it must come, whatever happens
    while app.backend is None and time.monotonic() < deadline:
        await pilot.pause(0.05)
    await pilot.press("ctrl+r")
    while not app.acc_chart.epochs and time.monotonic() < deadline:
        await pilot.pause(0.05)
    print("training" if app.acc_chart.epochs else "no epoch finished", flush=True)

app.run(headless=True, auto_pilot=start_training, size=(80, 24))
print("exited", flush=True)
"""


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")
def test_a_closed_ssh_session_saves_the_run_as_stopped(tiny_preset, synthetic_data_dir, tmp_path):
    out = tmp_path / "runs"
    script = tmp_path / "hangup.py"
    script.write_text(HANGUP_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(tiny_preset), str(out), str(synthetic_data_dir)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "training"
        proc.send_signal(signal.SIGHUP)  # what the terminal sends when the SSH connection drops
        stdout, stderr = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, stderr
    assert "exited" in stdout
    summary = summaries(out)[0]
    assert summary["status"] == "stopped" and summary["epochs_completed"] >= 1


async def test_a_run_written_by_the_cli_appears_in_runs(tiny_preset, synthetic_data_dir, tmp_path):
    out = tmp_path / "runs"
    result = CliRunner().invoke(
        cli_app, ["run", str(tiny_preset), "--out", str(out), "--data-dir", str(synthetic_data_dir),
                  "--set", "train.epochs=1"],
    )
    assert result.exit_code == 0, result.output
    app = tiny_app(tiny_preset, synthetic_data_dir, out)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("f4")
        table = app.query_one("#runs-table")
        assert table.row_count == 1
        assert [str(c) for c in table.get_row_at(0)[1:3]] == ["tiny,train.epochs=1", "completed"]
        await pilot.press("space")  # overlay its curves on the charts
        assert app.loss_chart.overlays and app.loss_chart.overlays[0].epochs == [1.0]


async def test_a_sweep_runs_as_a_queue_and_its_table_is_in_runs(tiny_preset, synthetic_data_dir, tmp_path):
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(tiny_preset.read_text() + '\n[sweep]\n"optim.lr" = [0.01, 0.02]\n')
    out = tmp_path / "runs"
    app = FcnApp(preset=load_preset(sweep, {"train.epochs": 1}), out=out, data_dir=synthetic_data_dir)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "2 runs" in screen_text(app, "#sweep-info")
        await press(pilot, "ctrl+r")
        await pilot.press("f4")
        table = app.query_one("#runs-table")
        assert table.row_count == 2
        assert app.runs_view.records[0].path.parent == app.last_sweep
        await pilot.press("c")
        assert isinstance(app.screen, TableDialog)
    assert (app.last_sweep / "results.csv").read_text().count("\n") == 3  # header and two runs


async def test_a_failing_run_shows_its_error(tiny_preset, synthetic_data_dir, tmp_path, monkeypatch):
    import fcn_tui.engine

    def broken(*args, **kwargs):
        raise RuntimeError("optimizer exploded")

    monkeypatch.setattr(fcn_tui.engine, "make_optimizer", broken)
    out = tmp_path / "runs"
    app = tiny_app(tiny_preset, synthetic_data_dir, out)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        status = await press(pilot, "ctrl+r")
        assert "failed" in status and "optimizer exploded" in status
    summary = summaries(out)[0]
    assert summary["status"] == "failed" and "optimizer exploded" in summary["error"]


async def test_a_crash_outside_the_engine_is_shown_and_the_run_marked_failed(tmp_path):
    from fcn_tui.config import Config, Preset

    out = tmp_path / "runs"
    app = FcnApp(preset=Preset(Config().with_values({"train.epochs": 3})), out=out,
                 backend_factory=lambda: ScriptedBackend(fail_at_epoch=2))
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "scripted failure in epoch 2" in await press(pilot, "ctrl+r")
        assert not app.running
    assert summaries(out)[0]["status"] == "failed"


async def test_missing_data_is_a_message_not_a_crash(tiny_preset, tmp_path):
    not_a_folder = tmp_path / "fashion"
    not_a_folder.write_text("")
    app = tiny_app(tiny_preset, not_a_folder, tmp_path / "runs")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "is a file" in screen_text(app, "#data-status")
        assert app.query_one("#start").disabled
        await press(pilot, "ctrl+r")
        assert not (tmp_path / "runs").exists()


async def test_resizing_down_to_60x20_and_back_on_every_tab(tiny_preset, tmp_path):
    app = scripted_app(tiny_preset, tmp_path / "runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press(pilot, "ctrl+r")
        for tab in ("f1", "f2", "f3", "f4"):
            await pilot.press(tab)
            for size in ((60, 20), (40, 12), (80, 24), (160, 50)):
                await pilot.resize_terminal(*size)
                await pilot.pause()
            assert app.is_running
        assert app.query_one("#tabs").active == "runs"


async def test_device_select_lists_only_devices_that_exist(tiny_preset, synthetic_data_dir, tmp_path):
    import torch

    app = tiny_app(tiny_preset, synthetic_data_dir, tmp_path / "runs", **{"train.device": "auto"})
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        options = [value for _, value in app.form.query_one("#f-train-device")._options]
        expected = ["auto", "cpu"] + (["cuda"] if torch.cuda.device_count() == 1 else [])
        assert options[: len(expected)] == expected
        assert ("cuda" in options) == torch.cuda.is_available()


async def test_open_and_save_presets_through_the_dialogs(tiny_preset, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    other = tmp_path / "other.toml"
    other.write_text('name = "wide"\n[model]\nhidden = [64, 64]\ndropout = 0.25\n[optim]\nname = "rmsprop"\n')
    app = scripted_app(tiny_preset, tmp_path / "runs")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+o")
        app.screen.query_one("#path-input").value = ""
        await pilot.press(*"other.toml", "enter")
        await pilot.pause()
        assert app.query_one("#f-model-hidden").value == "64,64"
        assert app.query_one("#row-optim-momentum").display  # rmsprop takes a momentum
        await pilot.press("ctrl+s")
        app.screen.query_one("#path-input").value = ""
        await pilot.press(*"saved.toml", "enter")
        await pilot.pause()
        assert load_preset(tmp_path / "saved.toml").config == app.form.config
        await pilot.press("ctrl+o")
        app.screen.query_one("#path-input").value = ""
        await pilot.press(*"missing.toml", "enter")  # an error is a notification, the form stays
        await pilot.pause()
        assert app.query_one("#f-name").value == "wide"


async def test_export_the_runs_table_to_csv(tiny_preset, synthetic_data_dir, tmp_path):
    out = tmp_path / "runs"
    app = tiny_app(tiny_preset, synthetic_data_dir, out)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await press(pilot, "ctrl+r")
        await pilot.press("f4", "e")
        app.screen.query_one("#path-input").value = str(tmp_path / "table.csv")
        await pilot.press("enter")
        await pilot.pause()
    lines = (tmp_path / "table.csv").read_text().splitlines()
    assert len(lines) == 2 and lines[0].startswith("run_id,name,status")


async def test_the_command_palette_lists_the_actions(tmp_path):
    app = FcnApp(out=tmp_path / "runs", backend_factory=ScriptedBackend)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        titles = {command.title for command in app.get_system_commands(app.screen)}
    assert {"Start training", "Stop training", "Open preset", "Save preset", "Export runs to CSV",
            "Comparison table"} <= titles


def test_opening_the_app_module_does_not_import_torch():
    code = "import sys, fcn_tui.tui.app; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


async def test_ctrl_e_exports_from_the_setup_form_and_dialogs_keep_their_keys(tiny_preset, tmp_path):
    app = scripted_app(tiny_preset, tmp_path / "runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert app.focused.id == "f-name"  # a text field, where ctrl+e also means "end of line"
        await pilot.press("ctrl+e")
        await pilot.pause()
        assert app.screen.query_one("#path-input").value.endswith("runs.csv")
        await press(pilot, "ctrl+r", "ctrl+o")  # app keys do nothing while a dialog is open
        assert not app.running and not (tmp_path / "runs").exists()
        assert len(app.screen_stack) == 2
        await pilot.press("escape")
        assert len(app.screen_stack) == 1


async def test_typing_into_a_field_after_opening_a_preset_replaces_its_value(tiny_preset, tmp_path):
    app = scripted_app(tiny_preset, tmp_path / "runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await type_into(pilot, "#f-train-epochs", "3")
        await pilot.press("f4")
        preset = load_preset(tiny_preset, {"train.epochs": 15})
        app.open_preset(preset)
        await pilot.pause()
        assert app.query_one("#tabs").active == "setup"  # the loaded form is shown
        app.query_one("#f-train-batch-size").focus()
        await pilot.press("shift+tab")  # into epochs, as a user tabs through the form
        await pilot.press("2")
        await pilot.pause()
        assert app.query_one("#f-train-epochs").value == "2"
        assert app.form.config.train.epochs == 2


async def test_a_run_started_from_the_app_is_named_after_what_the_form_changed(tiny_preset, tmp_path):
    """As `fcn-tui run --set` names it: the preset's name and each changed setting; a typed name stays."""
    out = tmp_path / "runs"
    app = scripted_app(tiny_preset, out)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await type_into(pilot, "#f-train-epochs", "1")
        await press(pilot, "ctrl+r")
        await until(pilot, lambda: not app.running)
        await type_into(pilot, "#f-name", "mine")
        await press(pilot, "ctrl+r")
        await until(pilot, lambda: not app.running)
    assert sorted(r.name for r in find_runs(out)) == ["mine", "tiny,train.epochs=1"]


async def test_runs_with_the_same_name_are_told_apart(tiny_preset, tmp_path):
    out = tmp_path / "runs"
    app = scripted_app(tiny_preset, out)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        for _ in range(2):
            await press(pilot, "ctrl+r")
            await until(pilot, lambda: not app.running)
        await settle(pilot)
        await pilot.press("f4")
        assert app.query_one("#runs-table").row_count == 2
        newest = find_runs(out)[-1]
        detail = screen_text(app, "#runs-detail")  # the newest run, highlighted at the top
        assert detail.startswith(newest.run_id) and "2/2 epochs" in detail
        await pilot.press("space", "down", "space")
        labels = [o.label for o in app.loss_chart.overlays]
        assert len(labels) == 2 and len(set(labels)) == 2 and all(lb.startswith("tiny ") for lb in labels)


async def test_the_comparison_table_is_not_cut_at_80_columns(tiny_preset, tmp_path):
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(tiny_preset.read_text() + '\n[sweep]\n"model.dropout" = [0.0, 0.5]\n')
    app = FcnApp(preset=load_preset(sweep), out=tmp_path / "runs", backend_factory=ScriptedBackend)
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        assert screen_text(app, "#e-model-dropout") == "swept: 0.0, 0.5"  # shown at the field
        await press(pilot, "ctrl+r")
        await pilot.press("f4", "c")
        await pilot.pause()
        assert isinstance(app.screen, TableDialog)
        text = rendered(app.screen.query_one("#comparison"))
        assert "model.dropout=0.5" in text and "…" not in text
        scroll = app.screen.query_one("#table-scroll")
        if scroll.max_scroll_x:  # wider than the terminal: the arrows scroll it
            await pilot.press("right")
            assert scroll.scroll_x > 0


@pytest.mark.parametrize("table, finished", [('[sweep]\n"model.dropout" = [0.0, 0.5]', "sweep finished"),
                                              ('[search]\ntrials = 2\n"model.dropout" = [0.0, 0.5]', "search finished")])
async def test_a_finished_study_is_announced_as_the_sweep_or_search_it_was(tiny_preset, tmp_path, table, finished):
    study = tmp_path / "study.toml"
    study.write_text(tiny_preset.read_text() + "\n" + table + "\n")
    app = FcnApp(preset=load_preset(study), out=tmp_path / "runs", backend_factory=ScriptedBackend)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+r")
        await settle(pilot)
        titles = [n.title for n in app._notifications]
    assert finished in titles and len(find_runs(tmp_path / "runs")) == 2


async def test_the_first_epoch_is_visible_on_the_charts(tiny_preset, tmp_path):
    app = scripted_app(tiny_preset, tmp_path / "runs")
    async with app.run_test(size=(80, 24)) as pilot:
        await settle(pilot)
        await press(pilot, "ctrl+r")
        chart = rendered(app.acc_chart)
        legend = screen_text(app, "#chart-legend")
    # a + (train) and an x (val) point from the first epoch on, and a legend that needs no
    # colours, on its own line above the charts
    assert "+ train" in legend and "x val" in legend
    assert "+" in chart and "x" in chart and "train" not in chart


def test_the_status_line_says_when_the_run_is_evaluating():
    from fcn_tui.tui.status import RunState, status_text

    run = RunState()
    run.name, run.epoch, run.epochs, run.step, run.steps = "adam", 1, 3, 211, 211
    run.phase = "validating"  # the last batch of an epoch is done; the validation set is next
    assert "batch 211/211" in str(status_text(run)) and "validating…" in str(status_text(run))
    run.phase = ""
    assert "validating" not in str(status_text(run))
