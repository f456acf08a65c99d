"""The preset file picker (ctrl+o, ctrl+s), used like a user would: tree, typed paths, questions.

The tree loads folders in a worker that runs as long as the picker is open, so these tests wait
for what they need to see (`until`) rather than for every worker to finish (`settle`).
"""

from __future__ import annotations

from pathlib import Path

from textual import events

from fcn_tui.config import Config, config_to_toml, load_preset
from fcn_tui.tui.app import FcnApp
from fcn_tui.tui.dialogs import ConfirmDialog
from fcn_tui.tui.picker import FilePicker, PresetTree
from tests.helpers import settle, until
from tests.scripted import ScriptedBackend

SIZE = (80, 24)
WIDE = Config().with_values({"name": "wide", "model.hidden": [64, 64], "optim.schedule": "cosine"})


def folder(tmp_path: Path) -> Path:
    """presets/wide.toml, a text file, a hidden folder and a preset at the top."""
    (tmp_path / "presets").mkdir()
    (tmp_path / "presets" / "wide.toml").write_text(config_to_toml(WIDE))
    (tmp_path / "notes.txt").write_text("not a preset")
    (tmp_path / ".cache").mkdir()
    (tmp_path / "top.toml").write_text(config_to_toml(Config()))
    return tmp_path


def labels(node) -> list[str]:
    return [str(child.label).strip() for child in node.children]


async def open_picker(pilot, key: str) -> PresetTree:
    """Press `key`; the picker, once its tree has listed the top folder."""
    await pilot.press(key)
    await until(pilot, lambda: isinstance(pilot.app.screen, FilePicker))
    tree = pilot.app.screen.query_one(PresetTree)
    await until(pilot, lambda: tree.root.children)
    return tree


def typed(pilot, path: str) -> None:
    """What a user types into the picker's path field (set at once: key by key is slow)."""
    pilot.app.screen.query_one("#path-input").value = path


async def test_open_through_the_tree_save_to_a_typed_path_and_asked_before_replacing(tmp_path, monkeypatch):
    monkeypatch.chdir(folder(tmp_path))
    app = FcnApp(out=tmp_path / "runs", backend_factory=ScriptedBackend)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        # open presets/wide.toml through the tree
        tree = await open_picker(pilot, "ctrl+o")
        assert labels(tree.root) == ["presets", "top.toml"]  # folders and presets only, none hidden
        await pilot.press("tab")  # from the path field to the tree
        assert app.focused is tree
        await pilot.press("down", "enter")  # the presets folder opens...
        presets = tree.root.children[0]
        await until(pilot, lambda: presets.children)
        assert app.screen.query_one("#path-input").value == "presets/"
        await pilot.press("down", "enter")  # ...and wide.toml opens
        await until(pilot, lambda: not isinstance(app.screen, FilePicker))
        assert app.form.config == WIDE and app.query_one("#f-optim-schedule").value == "cosine"

        # save: a typed folder is shown in the tree, not saved over; then a new name in a new folder
        tree = await open_picker(pilot, "ctrl+s")
        assert app.screen.query_one("#path-input").value == "wide.toml"  # named after the run
        typed(pilot, "presets")
        await pilot.press("enter")
        await until(pilot, lambda: labels(tree.root) == ["wide.toml"])
        assert app.screen.query_one("#path-input").value == "presets/wide.toml"
        typed(pilot, "presets/mine/")
        await pilot.press(*"copy", "enter")  # .toml is added
        await until(pilot, lambda: not isinstance(app.screen, FilePicker))
        assert load_preset(tmp_path / "presets" / "mine" / "copy.toml").config == WIDE

        # paths that cannot be: refused with a message, never a traceback
        for bad in ("~nosuchuser/x.toml", "a\0b.toml"):
            await open_picker(pilot, "ctrl+o")
            typed(pilot, bad)
            await pilot.press("enter")
            await until(pilot, lambda: not isinstance(app.screen, FilePicker))
            assert app.is_running and app.form.config == WIDE

        # saving over a preset asks first
        before = (tmp_path / "top.toml").read_text()
        await open_picker(pilot, "ctrl+s")
        typed(pilot, "top.toml")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        assert "top.toml exists" in str(app.screen.query_one(".dialog-title").render())
        await pilot.press("n")  # keep it: back in the picker, to pick another name
        await until(pilot, lambda: isinstance(app.screen, FilePicker))
        assert (tmp_path / "top.toml").read_text() == before
        await pilot.press("enter", "y")  # replace it after all
        await until(pilot, lambda: not isinstance(app.screen, (FilePicker, ConfirmDialog)))
    assert load_preset(tmp_path / "top.toml").config == WIDE


async def test_a_confined_picker_shows_and_accepts_only_the_output_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(folder(tmp_path))
    out = tmp_path / "out"
    (out / "mine").mkdir(parents=True)
    (out / "mine" / "wide.toml").write_text(config_to_toml(WIDE))
    (out / "escape").symlink_to(tmp_path)  # a link out of the folder: not listed, not followed
    (out / "loop").symlink_to(out / "loop")  # a link to itself: not listed
    app = FcnApp(out=out, backend_factory=ScriptedBackend, confine=True)
    messages: list[str] = []
    notify = app.notify
    app.notify = lambda message, **kwargs: (messages.append(message), notify(message, **kwargs))[1]
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        tree = await open_picker(pilot, "ctrl+o")
        assert Path(tree.path) == out.resolve() and labels(tree.root) == ["mine"]
        typed(pilot, "../presets/wide.toml")
        await pilot.press("enter")  # refused, and said so
        await until(pilot, lambda: not isinstance(app.screen, FilePicker))
        assert app.form.config == Config() and "only paths inside the output folder" in messages[-1]
        await open_picker(pilot, "ctrl+s")
        typed(pilot, "escape/saved.toml")
        await pilot.press("enter")
        await until(pilot, lambda: not isinstance(app.screen, FilePicker))
        assert "only paths inside the output folder" in messages[-1]
        await open_picker(pilot, "ctrl+o")
        typed(pilot, "mine/wide.toml")
        await pilot.press("enter")  # inside: opens
        await until(pilot, lambda: app.form.config == WIDE)
    assert not (tmp_path / "saved.toml").exists()


async def test_a_path_typed_the_instant_the_picker_opens_reaches_its_field(tmp_path, monkeypatch):
    """Keys queued behind ctrl+o (a fast typist, a slow link) land in the path field, none lost."""
    monkeypatch.chdir(folder(tmp_path))
    app = FcnApp(out=tmp_path / "runs", backend_factory=ScriptedBackend)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.post_message(events.Key("ctrl+o", None))
        for char in "presets/wide.toml":
            app.post_message(events.Key(char, char))
        await until(pilot, lambda: isinstance(app.screen, FilePicker))
        await until(pilot, lambda: app.screen.query_one("#path-input").value == "presets/wide.toml")
        await pilot.press("enter")
        await until(pilot, lambda: not isinstance(app.screen, FilePicker))
        assert app.form.config == WIDE
