"""The preset file picker behind ctrl+o and ctrl+s: a folder tree of `.toml` files and a path field.

Contract:
- `FilePicker(title, resolve, base, mode, default)` dismisses with the chosen file as a `Path`,
  or None (escape, or a path that `resolve` refused: it has told the user why).
- The path field has the focus and takes a path typed directly; tab reaches the tree, where
  enter opens a folder or picks a file. Enter on a folder's path shows that folder in the tree.
- Every path, typed or picked, goes through `resolve` (the app's `user_path`), so a confined app
  (`fcn-tui serve`) accepts nothing outside its folder; when `confine_to` is given the tree
  neither starts outside it nor lists entries (such as symlinks) that lead out of it.
- Save mode adds `.toml` to a name without a suffix and asks before replacing an existing file.
The picker only chooses; the app reads or writes the file (atomically).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import DirectoryTree, Input, Label

from fcn_tui.tui.dialogs import ConfirmDialog

SUFFIX = ".toml"  # presets are TOML; run folders' config.toml files open too


def exists(path: Path) -> bool:
    try:
        return path.exists() or path.is_symlink()  # a dangling link is replaced too: ask
    except (OSError, ValueError):  # a name too long for the file system: writing it fails and says so
        return False


def inside(path: Path, folder: Path) -> bool:
    try:
        return path.resolve().is_relative_to(folder)
    except (OSError, RuntimeError):  # a loop of links leads nowhere
        return False


class PresetTree(DirectoryTree):
    """Folders and `.toml` files, hidden entries left out; inside `confine_to` only, when given."""

    ICON_NODE = "▸ "  # plain characters: emoji widths differ from terminal to terminal
    ICON_NODE_EXPANDED = "▾ "
    ICON_FILE = "  "

    def __init__(self, path: Path, confine_to: Path | None = None, id: str | None = None) -> None:
        super().__init__(path, id=id)
        self.confine_to = confine_to

    def filter_paths(self, paths: Iterable[Path]) -> Iterable[Path]:
        """Runs in the tree's loading thread: a stat per entry, never on the UI thread."""
        for path in paths:
            if path.name.startswith("."):
                continue
            if self.confine_to is not None and not inside(path, self.confine_to):
                continue  # a link that leads out of the allowed folder
            if self._safe_is_dir(path) or path.suffix.lower() == SUFFIX:
                yield path


class FilePicker(ModalScreen[Path | None]):
    """Pick a preset file through the tree or by typing its path; see the module docstring."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(
        self,
        title: str,
        resolve: Callable[[str], Path | None],
        base: Path,
        mode: str = "open",
        default: str = "",
        confine_to: Path | None = None,
    ) -> None:
        """`base`: the folder relative paths start from (shown in the tree); `mode`: open or save."""
        super().__init__()
        self.title_text = title
        self.resolve = resolve
        self.base = base.resolve()
        self.mode = mode
        self.default = default
        self.confine_to = confine_to

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog picker"):
            yield Label(Text(self.title_text), classes="dialog-title")
            yield Input(self.default, id="path-input", select_on_focus=False,
                        placeholder="a path, or tab to pick one below")
            yield PresetTree(self.base, confine_to=self.confine_to, id="picker-tree")
            action = "opens" if self.mode == "open" else "saves"
            yield Label(f"enter {action} · tab to the tree · escape cancels", classes="dialog-help")  # fits 60 columns

    def on_mount(self) -> None:
        self.query_one("#path-input", Input).focus()

    def shown(self, path: Path) -> str:
        """A path as the field shows it: relative to `base` when inside it."""
        try:
            return str(path.relative_to(self.base))
        except ValueError:
            return str(path)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.choose(event.value.strip())

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        event.stop()
        field = self.query_one("#path-input", Input)
        field.value = self.shown(event.path)
        self.choose(field.value)

    def on_directory_tree_directory_selected(self, event: DirectoryTree.DirectorySelected) -> None:
        """A folder picked in the tree: the field points into it (keeping the file name to save)."""
        event.stop()
        value = self.query_one("#path-input", Input).value
        self.point_into(event.path, "" if value.endswith("/") else Path(value).name)

    def point_into(self, folder: Path, name: str) -> None:
        """The field becomes `folder/`, plus the file `name` when saving."""
        field = self.query_one("#path-input", Input)
        name = name if self.mode == "save" else ""
        shown = self.shown(folder)
        field.value = ("" if shown == "." else shown + "/") + name
        field.cursor_position = len(field.value)

    def choose(self, text: str) -> None:
        if not text:
            return
        target = self.resolve(text)
        if target is None:  # refused: `resolve` said why
            self.dismiss(None)
            return
        if PresetTree._safe_is_dir(target):
            self.query_one("#picker-tree", PresetTree).path = target
            self.point_into(target, Path(self.default).name)  # the folder's own name is no file name
            return
        if self.mode == "save" and not target.suffix:
            target = target.with_name(target.name + SUFFIX)
        if self.mode == "save" and exists(target):
            def replace(yes: bool | None) -> None:
                if yes:
                    self.dismiss(target)
                else:
                    self.query_one("#path-input", Input).focus()

            self.app.push_screen(ConfirmDialog(f"{self.shown(target)} exists. Replace it?"), replace)
            return
        self.dismiss(target)

    def action_cancel(self) -> None:
        self.dismiss(None)
