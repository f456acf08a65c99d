"""Small modal dialogs: ask for a file path, confirm quitting, show a comparison or diff table."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.measure import Measurement
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, ScrollableContainer, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static


class PathDialog(ModalScreen[str | None]):
    """Ask for a path; dismisses with the text, or None on escape."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, title: str, default: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Input(self.default, id="path-input", select_on_focus=False)
            yield Label("enter to accept · escape to cancel", classes="dialog-help")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class ConfirmDialog(ModalScreen[bool]):
    """A yes/no question; `y` / `n` (or escape) answer it."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Text(self.question), classes="dialog-title")  # it may quote a path: never markup
            with Horizontal(classes="dialog-buttons"):
                yield Button("Yes (y)", variant="error", id="yes", compact=True)
                yield Button("No (n)", variant="primary", id="no", compact=True)

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class TableDialog(ModalScreen[None]):
    """A Rich renderable (a comparison or diff table) in a scrollable box under its title, which
    stays in view however the table scrolls; escape closes it."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,q,c,d", "close", "Close")]

    def __init__(self, renderable: Any, title: str = "") -> None:
        super().__init__()
        self.renderable = renderable
        self.title_text = title

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog wide"):
            if self.title_text:  # a Label of Text: a run name is never read as markup
                yield Label(Text(self.title_text), id="table-title", classes="dialog-title")
            with ScrollableContainer(id="table-scroll"):  # scrolls both ways on a small terminal
                yield Static(self.renderable, id="comparison")
            yield Label("arrows scroll · escape to close", classes="dialog-help")

    def on_mount(self) -> None:
        # a Rich table shrinks (and cuts its cells) to fit: give it its natural width and let the
        # box scroll sideways when the terminal is narrower
        console = self.app.console
        width = Measurement.get(console, console.options.update_width(400), self.renderable).maximum
        self.query_one("#comparison", Static).styles.width = width
        self.query_one(".dialog").styles.width = width + 4  # border and padding; max-width 100%
        self.query_one("#table-scroll").focus()

    def action_close(self) -> None:
        self.dismiss(None)
