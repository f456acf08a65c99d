"""The Setup form, driven from the keyboard: every preset setting has a field, and focus shows.

Scripted events stand in for torch and the data (as in test_tui_snapshots), so these tests are
fast and still check the run folder the app writes.
"""

from __future__ import annotations

from pathlib import Path

from textual.color import Color
from textual.widgets import Collapsible, Input, Label, Select, Switch

from fcn_tui.config import Config, Preset, all_keys, config_to_toml, load_preset
from fcn_tui.runs import find_runs
from fcn_tui.tui.app import FcnApp
from fcn_tui.tui.form import FIELDS, field_id
from tests.helpers import press, rendered, screen_text, settle, type_into
from tests.scripted import ScriptedBackend

SIZE = (80, 24)  # the smallest terminal the app is made for

# every advanced setting away from its default
ADVANCED_VALUES = {
    "optim.schedule": "onecycle", "train.label_smoothing": 0.05, "data.augment": "flip+shift",
    "data.normalize": True, "model.init_std": 0.01, "train.val_fraction": 0.2, "data.subset": 1000,
    "train.amp": True, "train.compile": True,
}


def scripted(out: Path, config: Config | None = None) -> FcnApp:
    preset = Preset(config or Config().with_values({"train.epochs": 1, "train.device": "cpu"}))
    return FcnApp(preset=preset, out=out, backend_factory=ScriptedBackend)


def test_every_setting_of_a_preset_has_a_field():
    assert sorted(FIELDS) == sorted(all_keys())


async def test_a_preset_fills_every_field_and_saving_writes_them_all_back(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = Config().with_values({"name": "every", **ADVANCED_VALUES})
    (tmp_path / "every.toml").write_text(config_to_toml(config))
    app = scripted(tmp_path / "runs")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        advanced = app.query_one("#advanced", Collapsible)
        assert advanced.collapsed  # out of the way until asked for
        await pilot.press("ctrl+o")  # the picker: a path typed into its field, enter
        app.screen.query_one("#path-input", Input).value = "every.toml"
        await pilot.press("enter")
        for key, value in ADVANCED_VALUES.items():
            widget = app.query_one("#" + field_id(key))
            assert widget.value == (value if isinstance(widget, (Select, Switch)) else str(value)), key
        assert app.form.config == config
        # collapsed, the section's title names what differs from the defaults
        title = str(advanced.query_one("CollapsibleTitle").render())
        assert "schedule onecycle" in title and "augmentation flip+shift" in title
        await pilot.press("ctrl+s")
        app.screen.query_one("#path-input", Input).value = "copy.toml"
        await pilot.press("enter")
    assert load_preset(tmp_path / "copy.toml").config == config


async def test_the_preset_the_app_starts_with_fills_the_advanced_fields_mounted_after_the_first_paint(tmp_path):
    config = Config().with_values({"name": "every", **ADVANCED_VALUES})
    app = scripted(tmp_path / "runs", config)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert app.query_one("#f-optim-schedule").value == "onecycle"
        assert app.query_one("#f-data-subset").value == "1000" and app.query_one("#f-train-amp").value
        assert app.form.config == config


async def test_the_advanced_title_keeps_naming_its_settings_while_an_everyday_field_is_invalid(tmp_path):
    app = scripted(tmp_path / "runs")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await type_into(pilot, "#f-data-subset", "6000")
        title = lambda: str(app.query_one("#advanced", Collapsible).query_one("CollapsibleTitle").render())
        assert "subset 6000" in title()
        await type_into(pilot, "#f-train-epochs", "0")  # invalid: out of range
        assert app.query_one("#form").config is None
        assert "subset 6000" in title() and "invalid" not in title()  # the invalid field is not an advanced one


async def test_label_smoothing_and_a_cosine_schedule_set_in_the_form_reach_the_run(tmp_path):
    out = tmp_path / "runs"
    app = scripted(out)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.query_one("#f-train-device").focus()  # the last everyday field
        await pilot.press("tab")  # next: the advanced section's title
        assert type(app.focused).__name__ == "CollapsibleTitle"
        await pilot.press("enter")  # opens it
        await pilot.press("tab")  # the schedule list
        assert app.focused.id == "f-optim-schedule"
        await pilot.press("enter", "down", "enter")  # none -> cosine
        assert app.focused.value == "cosine"
        await pilot.press("tab", "ctrl+a", "ctrl+k", "1")  # label smoothing 1: out of range, named
        assert "must be < 1.0" in screen_text(app, "#e-train-label-smoothing")
        await pilot.press("shift+tab", "shift+tab", "enter")  # back on the title: close the section
        advanced = app.query_one("#advanced", Collapsible)
        title = str(advanced.query_one("CollapsibleTitle").render())
        assert advanced.collapsed and "1 invalid" in title and "schedule cosine" in title  # the valid one still named
        await pilot.press("ctrl+r")  # refused: the section opens on the field to correct
        assert not advanced.collapsed and app.focused.id == "f-train-label-smoothing"
        assert not out.exists()
        await press(pilot, "ctrl+a", "ctrl+k", *"0.1", "ctrl+r")
    [run] = find_runs(out)
    config = load_preset(run.path / "config.toml").config
    assert config.optim.schedule == "cosine" and config.train.label_smoothing == 0.1
    assert run.get("status") == "completed"


def face(widget) -> Color:
    """The background colour a field shows (a Select shows its current-value box)."""
    shown = widget.query_one("SelectCurrent") if isinstance(widget, Select) else widget
    return shown.background_colors[1]


def distance(a: Color, b: Color) -> int:
    return sum(abs(x - y) for x, y in zip(a.rgb, b.rgb))


# one field of each kind in each section: the ring is drawn per kind of widget
RING_FIELDS = ("optim.lr", "model.activation", "model.batchnorm", "model.init_std", "data.augment", "train.amp")


async def test_every_kind_of_field_shows_a_focus_ring(tmp_path):
    app = scripted(tmp_path / "runs")
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.query_one("#advanced", Collapsible).collapsed = False
        app.query_one("#start").focus()
        await pilot.pause()
        widgets = {key: app.query_one("#" + field_id(key)) for key in RING_FIELDS}
        blurred = {key: (face(w), w.parent.query_one(Label).styles.color) for key, w in widgets.items()}
        for key, widget in widgets.items():
            widget.focus()
            await pilot.pause()
            label = widget.parent.query_one(Label)
            # a ring, not a shade: the old Select went from grey 234 to 235 (a distance of 3)
            assert distance(face(widget), blurred[key][0]) > 60, key
            assert label.styles.color != blurred[key][1] and label.styles.text_style.bold, key


async def test_the_device_shows_its_whole_value_at_80x24_with_the_advanced_section_open(tmp_path):
    app = FcnApp(preset=Preset(Config()), out=tmp_path / "runs", backend_factory=ScriptedBackend)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.query_one("#advanced", Collapsible).collapsed = False  # the form scrolls: a scrollbar takes 2 columns
        await pilot.pause()
        await settle(pilot)
        device = app.query_one("#" + field_id("train.device"), Select)
        label = next(str(text) for text, value in device._options if value == device.value)
        assert device.value == "auto" and label in rendered(device.query_one("SelectCurrent #label"))
