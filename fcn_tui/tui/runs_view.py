"""The Runs tab: every run under the output folder (TUI, headless and sweep runs alike).

A sortable table (`s` next sort column, `r` reverse, or click a header; left/right scroll to the
columns an 80-column terminal cuts off); a line under it names the highlighted run's folder and
model; `space` picks runs whose validation curves are overlaid on the charts; `m` opens the
highlighted run's test matrix in the Confusion view (enter there shows a cell's images), `w` its
first-layer weights; `c` shows the
comparison table of the highlighted run's sweep (or of all runs); `e` exports the table to CSV.
A damaged run folder is a row with status `unreadable`; the detail line gives the reason.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Static
from textual.widgets.data_table import ColumnKey

from fcn_tui.runs import RunRecord

STATUS_STYLE = {"completed": "green", "running": "cyan", "stopped": "yellow", "incomplete": "yellow",
                "diverged": "red", "failed": "red", "unreadable": "red"}
INIT_SHORT = {"random_normal": "normal", "xavier_normal": "xav_norm", "xavier_uniform": "xav_unif",
              "kaiming_normal": "kai_norm", "kaiming_uniform": "kai_unif"}  # keeps the table narrow
MAX_OVERLAYS = 6  # more curves than this are unreadable on a terminal chart


def _cfg(record: RunRecord, key: str) -> Any:
    return record.config.get(key) if record.config is not None else None


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _percent(value: Any) -> str:
    return f"{100 * value:.2f}" if _number(value) else "-"


def _seconds(value: Any) -> str:
    if not _number(value):
        return "-"
    minutes, seconds = divmod(round(value), 60)
    return f"{minutes}m{seconds:02d}s" if minutes else f"{value:.1f}s"


def _plain(cell: Any) -> Any:
    """A table cell as plain text: a DataTable reads a `str` cell as markup, and run names are user text."""
    return Text(cell) if isinstance(cell, str) else cell


def _short_name(record: RunRecord) -> str:
    name = record.name
    return name if len(name) <= 24 else name[:23] + "…"


# (label, display, sort key); the sort key puts missing values last
COLUMNS: list[tuple[str, Callable[[RunRecord], Any], Callable[[RunRecord], Any]]] = [
    ("name", _short_name, lambda r: r.name),
    ("status", lambda r: Text(r.status, style=STATUS_STYLE.get(r.status, "")), lambda r: r.status),
    ("best val", lambda r: _percent(r.get("best_val_acc")), lambda r: r.get("best_val_acc")),
    ("test", lambda r: _percent(r.get("test_acc")), lambda r: r.get("test_acc")),
    ("time", lambda r: _seconds(r.get("wall_s")), lambda r: r.get("wall_s")),
    ("optim", lambda r: _cfg(r, "optim.name") or "-", lambda r: _cfg(r, "optim.name")),
    ("lr", lambda r: f"{_cfg(r, 'optim.lr'):g}" if r.config else "-", lambda r: _cfg(r, "optim.lr")),
    ("init", lambda r: INIT_SHORT.get(_cfg(r, "model.init"), _cfg(r, "model.init") or "-"), lambda r: _cfg(r, "model.init")),
    ("drop", lambda r: f"{_cfg(r, 'model.dropout'):g}" if r.config else "-", lambda r: _cfg(r, "model.dropout")),
    ("bn", lambda r: ("yes" if _cfg(r, "model.batchnorm") else "no") if r.config else "-",
     lambda r: _cfg(r, "model.batchnorm")),
    ("hidden", lambda r: ",".join(map(str, _cfg(r, "model.hidden"))) if r.config else "-",
     lambda r: _cfg(r, "model.hidden")),
]


class RunsView(Vertical):
    """The history table and its help line."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "toggle_pick", "Overlay"),
        Binding("s", "sort_next", "Sort"),
        Binding("r", "sort_reverse", "Reverse"),
        Binding("m", "app.run_mistakes", "Mistakes", show=False),  # the help line names them: the footer keeps e
        Binding("w", "app.run_weights", "Weights", show=False),
        Binding("c", "app.compare", "Compare"),
        Binding("e", "app.export", "Export CSV"),
    ]

    class Picked(Message):
        """The runs picked for the chart overlay changed."""

        def __init__(self, records: list[RunRecord]) -> None:
            super().__init__()
            self.records = records

    def __init__(self, root: Path | None = None, id: str | None = None) -> None:
        """`root` is the output folder: the detail line names run folders relative to it."""
        super().__init__(id=id)
        self.root = root
        self.records: list[RunRecord] = []
        self.picked: dict[str, RunRecord] = {}
        self.sort_column: int | None = None  # None: newest first
        self.reverse = False

    def compose(self) -> ComposeResult:
        table = DataTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        table.add_column("", key="pick", width=1)
        for i, (label, _, _) in enumerate(COLUMNS):
            table.add_column(label, key=str(i))
        yield table
        yield Static("", id="runs-detail")
        yield Static("space overlay · s/r sort · ←/→ cols · m mistakes · w weights · c compare",
                     id="runs-help")

    @property
    def table(self) -> DataTable:
        return self.query_one("#runs-table", DataTable)

    def set_records(self, records: list[RunRecord]) -> None:
        """Show `records` (as `find_runs` gives them), keeping the sort, picks and cursor."""
        self.records = list(records)
        known = {str(r.path): r for r in self.records}
        self.picked = {k: known[k] for k in self.picked if k in known}
        self.refill()

    def ordered(self) -> list[RunRecord]:
        if self.sort_column is None:
            rows = list(reversed(self.records))
            return rows[::-1] if self.reverse else rows
        sort_key = COLUMNS[self.sort_column][2]

        def key(record: RunRecord) -> tuple:
            value = sort_key(record)
            return (value is None, value if value is not None else 0)

        present = [r for r in self.records if sort_key(r) is not None]
        missing = [r for r in self.records if sort_key(r) is None]
        present.sort(key=key, reverse=self.reverse)
        return present + missing

    def refill(self) -> None:
        table = self.table
        current = None  # the highlighted run stays highlighted, except at the top: there a new run
        if table.row_count and table.cursor_row > 0:  # (newest first) takes the cursor
            try:
                current = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
            except Exception:  # noqa: BLE001 - an empty or changing table has no cursor row
                current = None
        table.clear()
        for record in self.ordered():
            key = str(record.path)
            mark = Text("●", style="bold magenta") if key in self.picked else ""
            table.add_row(mark, *(_plain(display(record)) for _, display, _ in COLUMNS), key=key)
        for i, (label, _, _) in enumerate(COLUMNS):
            arrow = ("▼" if self.reverse else "▲") if self.sort_column == i else ""
            table.columns[ColumnKey(str(i))].label = Text(label + arrow)
        if current is not None:
            with contextlib.suppress(Exception):  # the row is gone
                table.move_cursor(row=table.get_row_index(current))
        self.show_detail()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self.show_detail()

    def show_detail(self) -> None:
        """One line about the highlighted run: its folder, epochs and what the table cuts off at 80."""
        record = self.highlighted()
        detail = self.query_one("#runs-detail", Static)
        if record is None:
            detail.update("no runs yet in the output folder" if not self.records else "")
            return
        epochs = record.get("epochs_completed")
        total = _cfg(record, "train.epochs")
        try:
            folder = str(record.path.relative_to(self.root)) if self.root is not None else record.run_id
        except ValueError:
            folder = str(record.path)
        parts = [folder]  # its name starts with the date and time the run started
        if epochs is not None:
            parts.append(f"{epochs}/{total} epochs" if total else f"{epochs} epochs")
        if record.config is not None:
            hidden = ",".join(map(str, _cfg(record, "model.hidden")))
            parts.append(f"hidden {hidden} · {_cfg(record, 'model.activation')} · bn "
                         f"{'yes' if _cfg(record, 'model.batchnorm') else 'no'}")
        if record.get("error"):
            parts.append(f"error: {record.get('error')}")
        detail.update(Text(" · ".join(parts)))

    def highlighted(self) -> RunRecord | None:
        table = self.table
        if not table.row_count:
            return None
        key = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
        return next((r for r in self.records if str(r.path) == key), None)

    def action_toggle_pick(self) -> None:
        record = self.highlighted()
        if record is None:
            return
        key = str(record.path)
        if key in self.picked:
            del self.picked[key]
        elif len(self.picked) >= MAX_OVERLAYS:
            self.notify(f"at most {MAX_OVERLAYS} runs can be overlaid", severity="warning")
            return
        elif not record.metrics:
            self.notify(f"{record.name}: no finished epoch to draw", severity="warning", markup=False)
            return
        else:
            self.picked[key] = record
        self.refill()
        self.post_message(self.Picked(list(self.picked.values())))

    def action_sort_next(self) -> None:
        self.sort_column = 0 if self.sort_column is None else self.sort_column + 1
        if self.sort_column >= len(COLUMNS):
            self.sort_column = None
        self.refill()

    def action_sort_reverse(self) -> None:
        self.reverse = not self.reverse
        self.refill()

    def on_data_table_header_selected(self, event: DataTable.HeaderSelected) -> None:
        event.stop()
        if event.column_key.value == "pick":
            return
        column = int(event.column_key.value)
        if self.sort_column == column:
            self.reverse = not self.reverse
        else:
            self.sort_column, self.reverse = column, column in (2, 3)  # accuracies: best first
        self.refill()
