"""The Runs tab: every run under the output folder (TUI, headless and sweep runs alike).

A sortable table (`s` next sort column, `r` reverse, or click a header; accuracies sort best
first; left/right scroll a whole column at a time to the columns an 80-column terminal cuts off).
The name column takes what the other main columns leave; a name too long for it is shortened to
what tells it apart (`fit_name`: of a sweep or search name, the settings that vary; of another
name, the end after a start shared with other runs; cut in the middle with `…` if still too long). Settings are written short (`1e-3`).
`/` filters the rows by text (every word must appear in the name, status, folder or a setting
such as `adam`, `lr=1e-3`, `optim.lr=0.001`); escape clears the filter.
The first column marks runs: `●` picked, `~` trained on a data subset, `+` a setting the
columns do not show is not the default (a run can have both); a legend line says so and the
detail line under the table names the highlighted run's folder, epochs, best epoch and those
settings. The history is read again each time the tab is shown and with `g` (runs written by
other processes appear); the highlighted run stays highlighted.
`space` picks runs (their validation curves are overlaid on the charts); `d` shows the two
picked runs side by side (`rundiff.diff_table`); `m` opens the highlighted run's test matrix in
the Confusion view (enter there shows a cell's images), `w` its first-layer weights; `c` the
comparison table of the highlighted run's sweep (or of all runs); `e` exports to CSV. A damaged
run folder is a row with status `unreadable`; the detail line gives the reason.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Input, Static

from fcn_tui.config import Config
from fcn_tui.formatting import percent, seconds, short_setting, status_style
from fcn_tui.rundiff import best_epoch, diff_table
from fcn_tui.runs import STUDY_MANIFEST, RunRecord
from fcn_tui.tui.column_table import ColumnTable

INIT_SHORT = {"random_normal": "normal", "xavier_normal": "xav_norm", "xavier_uniform": "xav_unif",
              "kaiming_normal": "kai_norm", "kaiming_uniform": "kai_unif"}  # keeps the table narrow
MAX_OVERLAYS = 8  # one per colour of the charts' overlay palette; more would be unreadable
MIN_NAME = 10  # a name cut shorter than this no longer tells runs apart
SHARED_MIN = 8  # a start shared with another run's name is dropped only from this length: shorter ones still read
NAME_SEPARATORS = ",-_ "  # a shared start is dropped up to one of these, so no word is split
MARK_WIDTH = 3  # `●`, `~` and `+` side by side
NAME_READABLE = 20  # a name cut to this still reads; shorter, the last columns scroll instead
KEEP_VISIBLE = 6  # columns after the name that must fit beside it: status .. lr
BEST_FIRST = {"best val", "test"}  # columns whose first sort puts the highest value on top
SUBSET_MARK, HIDDEN_MARK, PICK_MARK = "~", "+", "●"
# settings the columns show, or that change where a run trains and not what it learns
SHOWN_KEYS = {"name", "optim.name", "optim.lr", "model.init", "model.dropout", "model.batchnorm", "model.hidden",
              "data.subset", "train.epochs", "train.device", "train.compile", "train.seed"}


def _cfg(record: RunRecord, key: str) -> Any:
    return record.config.get(key) if record.config is not None else None


def _setting(key: str) -> Callable[[RunRecord], str]:
    return lambda r: short_setting(_cfg(r, key)) if r.config else "-"


def _plain(cell: Any) -> Any:
    """A table cell as plain text: a DataTable reads a `str` cell as markup, and run names are user text."""
    return Text(cell) if isinstance(cell, str) else cell


def cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(1, width - 1)] + "…"


def _key(part: str) -> str:
    return part.split("=", 1)[0] if "=" in part else "=" + part  # a part without `=` keys itself


def varying_parts(name: str, names: list[str]) -> list[str]:
    """The comma-separated parts of a sweep or search name (`search,optim.lr=0.01,model.dropout=0.2`)
    that differ among the names made of the same keys; all of them when no other name is."""
    parts = name.split(",")
    keys = [_key(p) for p in parts]
    family = [n.split(",") for n in names if [_key(p) for p in n.split(",")] == keys]
    if len(family) < 2:
        return parts
    kept = [p for i, p in enumerate(parts) if len({f[i] for f in family}) > 1]
    return kept or parts


def short_key(part: str) -> str:
    """`optim.lr=0.01` as `lr=0.01`; a part without `=` unchanged."""
    key, eq, value = part.partition("=")
    return f"{key.rpartition('.')[2]}={value}" if eq else part


def shared_start(name: str, others: list[str], width: int) -> int:
    """How much of `name`'s start to drop: up to a separator inside the start another name shares
    (at least `SHARED_MIN` long), as little as makes the rest fit `width` (`…run-1`, not `…1`)."""
    longest = 0
    for other in others:
        if other == name:
            continue
        n = 0
        while n < min(len(name), len(other)) and name[n] == other[n]:
            n += 1
        longest = max(longest, n)
    cuts = [i + 1 for i, c in enumerate(name[:longest]) if c in NAME_SEPARATORS and SHARED_MIN <= i + 1 < len(name)]
    if not cuts:
        return 0
    return next((cut for cut in cuts if 1 + len(name) - cut <= width), cuts[-1])


def settings_forms(name: str, names: list[str]) -> list[str]:
    """A sweep or search name written ever shorter: whole, the settings that vary among its kind
    (`…optim.lr=0.01,model.dropout=0.2`), their keys by the last part (`…lr=0.01,dropout=0.2`),
    their values alone (`…0.01,0.2`)."""
    parts = varying_parts(name, names)
    dropped = "…" if len(parts) < name.count(",") + 1 else ""
    return [name, *(dropped + ",".join(shown) for shown in
                    (parts, [short_key(p) for p in parts], [p.partition("=")[2] or p for p in parts]))]


def fit_name(name: str, names: list[str], width: int, level: int = 0) -> str:
    """`name` in `width` characters, shortened only as far as needed to fit: a sweep or search
    name by `settings_forms` (at least to form `level`), another name without the start it
    shares with another run's (`…run-2`); what is still too long cut in the middle, keeping its end."""
    if is_settings_name(name):
        forms = settings_forms(name, names)
        return next((form for form in forms[level:] if len(form) <= width), cut_middle(forms[-1], width))
    if len(name) <= width:
        return name
    if start := shared_start(name, names, width):
        name = "…" + name[start:]
    return cut_middle(name, width)


SETTING_PART = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*=[^=]*")


def is_settings_name(name: str) -> bool:
    """A name made of settings (`optim.lr=0.01,model.dropout=0.2`, maybe after a preset's name),
    as sweeps, searches and `--set` write them; not any text that holds an `=`."""
    parts = name.split(",")
    return any(SETTING_PART.fullmatch(p) for p in parts) and all(SETTING_PART.fullmatch(p) or "=" not in p for p in parts)


def fit_names(names: list[str], width: int) -> list[str]:
    """Each name fitted to `width` by `fit_name`, so the parts that tell runs apart stay on screen;
    every settings name shortened alike (`lr=0.1` above `lr=1e-3`, never `optim.lr=0.1`): to the
    form the longest of them needs."""
    level = 0
    for name in names:
        if is_settings_name(name):
            forms = settings_forms(name, names)
            level = max(level, next((i for i, form in enumerate(forms) if len(form) <= width), len(forms) - 1))
    return [fit_name(name, names, width, level) for name in names]


def cut_middle(text: str, width: int) -> str:
    """`text` in `width` characters, cut in the middle (`search,train…dropout=0.272`): the end of
    a name often tells it from its neighbours, so it is kept."""
    if len(text) <= width:
        return text
    if width < 3:
        return text[:width]
    tail = (width - 1) // 2
    return text[: width - 1 - tail] + "…" + text[len(text) - tail:]


STUDY_FOLDER = re.compile(r"\d{4}(\d{2})(\d{2})-(\d{2})(\d{2})\d{2}-(.+)")  # `timestamp()-slug` of a study folder


def study_label(record: RunRecord) -> str | None:
    """The study a run belongs to, by its folder (`grid 12-04 20:04`: the study's name and when it
    started, so two studies of one grid are told apart); None for a run of its own."""
    folder = record.path.parent
    if not (folder / STUDY_MANIFEST).is_file():
        return None
    match = STUDY_FOLDER.fullmatch(folder.name)
    if not match:
        return folder.name  # a study kept in a database: its folder is its name
    month, day, hour, minute, name = match.groups()
    return f"{name} {month}-{day} {hour}:{minute}"


# (label, display, sort key); the sort key puts missing values last. The name is cut in `refill`.
COLUMNS: list[tuple[str, Callable[[RunRecord], Any], Callable[[RunRecord], Any]]] = [
    ("name", lambda r: r.name, lambda r: r.name),
    ("status", lambda r: Text(r.status, style=status_style(r.status)), lambda r: r.status),
    ("best val", lambda r: percent(r.get("best_val_acc")), lambda r: r.get("best_val_acc")),
    ("test", lambda r: percent(r.get("test_acc")), lambda r: r.get("test_acc")),
    ("time", lambda r: seconds(r.get("wall_s")), lambda r: r.get("wall_s")),
    ("optim", lambda r: _cfg(r, "optim.name") or "-", lambda r: _cfg(r, "optim.name")),
    ("lr", _setting("optim.lr"), lambda r: _cfg(r, "optim.lr")),
    ("epochs", _setting("train.epochs"), lambda r: _cfg(r, "train.epochs")),
    ("study", lambda r: study_label(r) or "-", lambda r: study_label(r)),
    ("init", lambda r: INIT_SHORT.get(_cfg(r, "model.init"), _cfg(r, "model.init") or "-"), lambda r: _cfg(r, "model.init")),
    ("drop", _setting("model.dropout"), lambda r: _cfg(r, "model.dropout")),
    ("bn", _setting("model.batchnorm"), lambda r: _cfg(r, "model.batchnorm")),
    ("hidden", _setting("model.hidden"), lambda r: _cfg(r, "model.hidden")),
]


def hidden_settings(records: list[RunRecord]) -> dict[str, list[tuple[str, Any]]]:
    """For each run (by path), the settings the columns do not show whose value is not the
    default (`Config()`, the baseline): what else makes the run what it is."""
    defaults = Config().flat()
    return {
        str(r.path): [(key, value) for key, value in r.config.flat().items()
                      if key not in SHOWN_KEYS and key in defaults and value != defaults[key]]
        for r in records if r.config is not None
    }


def search_text(record: RunRecord) -> str:
    """What `/` matches against: name, status, folder, and every setting as `key=value` (long
    and short key, TOML-ish and short value), all lower case."""
    parts = [record.name, record.status, record.run_id]
    if record.config is not None:
        for key, value in record.config.flat().items():
            short = key.rpartition(".")[2]
            parts += [str(value), short_setting(value), f"{key}={value}", f"{key}={short_setting(value)}",
                      f"{short}={value}", f"{short}={short_setting(value)}"]
    return " ".join(parts).lower()


class RunsView(Vertical):
    """The history table, its filter, legend, detail and help lines."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("space", "toggle_pick", "Pick"),
        Binding("d", "diff", "Diff"),
        Binding("slash", "filter", "Filter"),
        Binding("s", "sort_next", "Sort"),
        Binding("r", "sort_reverse", "Reverse", show=False),
        Binding("m", "app.run_mistakes", "Mistakes"),
        Binding("w", "app.run_weights", "Weights"),
        Binding("c", "app.compare", "Compare"),
        Binding("e", "app.export", "Export CSV", show=False),
        Binding("g", "app.reload_runs", "Reload"),  # runs written by other processes
        Binding("escape", "clear_filter", "Clear filter", show=False),
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
        self.filter_text = ""
        self.hidden: dict[str, list[tuple[str, Any]]] = {}
        self._search: dict[str, str] = {}
        self._width = 0  # the terminal width the name column was fitted to
        self._loaded = False  # a history was shown (an unchanged one is not shown again)

    def compose(self) -> ComposeResult:
        yield ColumnTable(id="runs-table", cursor_type="row", zebra_stripes=True)
        yield Input(placeholder="filter: words in a name, setting (lr=1e-3) or status", id="runs-filter",
                    compact=True, select_on_focus=False)
        yield Static("", id="runs-legend")
        yield Static("", id="runs-detail")
        yield Static("space pick · d diff · / find · s/r sort · ←→ cols · c table · e CSV · g reload",  # 78: fits 80
                     id="runs-help")

    @property
    def table(self) -> DataTable:
        return self.query_one("#runs-table", DataTable)

    def set_records(self, records: list[RunRecord], keep_top: bool = False) -> bool:
        """Show `records` (as `find_runs` gives them), keeping the sort, filter, picks and the
        highlighted run; with `keep_top` (the app started a run) the top row keeps the cursor, so
        a new run there (newest first) is highlighted. True when a run was new."""
        if self._loaded and list(records) == self.records:
            return False  # read again, unchanged: the table, its cursor and scroll stay as they are
        self._loaded = True
        known = {str(r.path) for r in self.records}
        new = any(str(r.path) not in known for r in records)
        self.records = list(records)
        known = {str(r.path): r for r in self.records}
        self.picked = {k: known[k] for k in self.picked if k in known}
        self.hidden = hidden_settings(self.records)
        self._search = {str(r.path): search_text(r) for r in self.records}
        self.refill(keep_top=keep_top)
        return new

    def matches(self, record: RunRecord) -> bool:
        words = self.filter_text.lower().split()
        haystack = self._search.get(str(record.path), "")
        return all(word in haystack for word in words)

    def ordered(self) -> list[RunRecord]:
        """The rows as shown: filtered, then sorted (newest first when no column is chosen)."""
        records = [r for r in self.records if self.matches(r)]
        if self.sort_column is None:
            rows = list(reversed(records))
            return rows[::-1] if self.reverse else rows
        sort_key = COLUMNS[self.sort_column][2]

        def key(record: RunRecord) -> tuple:
            value = sort_key(record)
            return (value is None, value if value is not None else 0)

        present = [r for r in records if sort_key(r) is not None]
        missing = [r for r in records if sort_key(r) is None]
        present.sort(key=key, reverse=self.reverse)
        return present + missing

    def mark(self, record: RunRecord) -> Text:
        key = str(record.path)
        text = Text(PICK_MARK if key in self.picked else " ", style="bold magenta")
        if record.config is not None and record.config.data.subset:
            text.append(SUBSET_MARK, style="bold yellow")
        if self.hidden.get(key):
            text.append(HIDDEN_MARK, style="bold cyan")
        return text

    def column_widths(self, rows: list[tuple[Any, ...]]) -> list[int]:
        """Each column's width: its widest cell or label (and sort arrow). The name takes what
        the other columns leave on this terminal, or if that would cut it short, what the next
        `KEEP_VISIBLE` columns leave. Set here rather than left to the DataTable, whose
        automatic widths lag a refill made while typing a filter."""
        widths = [
            max([len(label) + 1, *(_plain(row[i]).cell_len for row in rows)])
            for i, (label, _, _) in enumerate(COLUMNS)
        ]
        # the pane's padding (2), the vertical scrollbar (2), the mark column (3 + 2) and the name's padding (2)
        free = self.app.size.width - 2 - 2 - (MARK_WIDTH + 2) - 2
        room = free - sum(2 + w for w in widths[1:])
        if room < min(widths[0], NAME_READABLE):
            room = free - sum(2 + w for w in widths[1 : 1 + KEEP_VISIBLE])
        widths[0] = max(MIN_NAME, min(widths[0], room))
        return widths

    def refill(self, keep_top: bool = True) -> None:
        """Fill the table again. The highlighted run stays highlighted, except that with
        `keep_top` (a new sort or filter, a run the app started) the top row keeps the cursor: the
        best run after a sort, the newest run in the default order."""
        table = self.table
        current = None
        if table.row_count and (table.cursor_row > 0 or not keep_top):
            try:
                current = table.coordinate_to_cell_key((table.cursor_row, 0)).row_key.value
            except Exception:  # noqa: BLE001 - an empty or changing table has no cursor row
                current = None
        scroll_x = table.scroll_x  # clearing the table scrolls it back to the left: put back below
        records = self.ordered()
        rows = [tuple(display(r) for _, display, _ in COLUMNS) for r in records]
        widths = self.column_widths(rows)
        names = fit_names([row[0] for row in rows], widths[0])
        self._width = self.app.size.width
        table.clear(columns=True)  # columns too: a column keeps its widest cell's width otherwise
        table.add_column("", key="pick", width=MARK_WIDTH)
        for i, (label, _, _) in enumerate(COLUMNS):
            arrow = ("▼" if self.reverse else "▲") if self.sort_column == i else ""
            table.add_column(Text(label + arrow), key=str(i), width=widths[i])
        for record, row, name in zip(records, rows, names):
            cells = (_plain(name), *(_plain(c) for c in row[1:]))
            table.add_row(self.mark(record), *cells, key=str(record.path))
        if current is not None:
            with contextlib.suppress(Exception):  # the row is gone
                table.move_cursor(row=table.get_row_index(current), scroll=False)
        if scroll_x:
            self.call_after_refresh(table.scroll_to, x=scroll_x, animate=False)
        self.show_legend(records)
        self.show_detail()

    def on_resize(self, event: events.Resize) -> None:
        if self.app.size.width != self._width and self.records:
            self.refill()  # the name column takes what the new width leaves

    def show_legend(self, shown: list[RunRecord]) -> None:
        """The filter's count, the meaning of the marks shown, and what `d` does (what applies)."""
        parts = []
        if self.filter_text:
            parts.append(f"filter {self.filter_text!r}: {len(shown)} of {len(self.records)} runs")
        marks = [str(self.mark(r)) for r in shown]
        if any(SUBSET_MARK in m for m in marks):
            parts.append(f"{SUBSET_MARK} data subset")
        if any(HIDDEN_MARK in m for m in marks):
            parts.append(f"{HIDDEN_MARK} other settings not default (below)")
        if len(self.picked) == 2:
            parts.append("d: diff of the 2 picked")
        legend = self.query_one("#runs-legend", Static)
        legend.update(Text(" · ".join(parts)))
        legend.display = bool(parts)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self.show_detail()

    def show_detail(self) -> None:
        """About the highlighted run: its folder, epochs, best epoch and what the columns leave out."""
        record = self.highlighted()
        detail = self.query_one("#runs-detail", Static)
        if record is None:
            if not self.records:
                detail.update("no runs yet in the output folder")
            else:
                detail.update("no run matches the filter (escape clears it)" if self.filter_text else "")
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
        best = best_epoch(record)
        if best is not None:
            parts.append(f"best val at epoch {best[0]}")
        if record.config is not None:
            if record.config.data.subset:
                parts.append(f"{SUBSET_MARK} subset of {record.config.data.subset} images")
            extra = self.hidden.get(str(record.path), [])
            if extra:
                parts.append(f"{HIDDEN_MARK} " + ", ".join(f"{k.rpartition('.')[2]} {short_setting(v)}"
                                                           for k, v in extra))
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
            self.notify(f"at most {MAX_OVERLAYS} runs can be picked", severity="warning")
            return
        else:
            self.picked[key] = record
            if not record.metrics:  # still good for the diff (d)
                self.notify(f"{record.name}: no finished epoch to draw on the charts", markup=False)
        self.refill()
        self.post_message(self.Picked([r for r in self.picked.values() if r.metrics]))

    def action_diff(self) -> None:
        """The two picked runs side by side (or the one picked and the highlighted one)."""
        from fcn_tui.tui.dialogs import TableDialog

        runs = list(self.picked.values())
        highlighted = self.highlighted()
        if len(runs) == 1 and highlighted is not None and highlighted is not runs[0]:
            runs.append(highlighted)
        if len(runs) != 2:
            picked = f"{len(runs)} runs are picked; " if len(runs) > 2 else ""
            self.notify(f"{picked}pick two runs with space, then press d to compare them", severity="warning")
            return
        a, b = runs
        names = (a.name, b.name) if a.name != b.name else (a.run_id, b.run_id)
        self.app.push_screen(TableDialog(diff_table(a, b, names), title=f"{names[0]}  vs  {names[1]}"))

    def action_filter(self) -> None:
        field = self.query_one("#runs-filter", Input)
        field.display = True
        field.focus()

    def action_clear_filter(self) -> None:
        field = self.query_one("#runs-filter", Input)
        if not field.display and not self.filter_text:
            return
        field.value = ""
        field.display = False
        self.filter_text = ""
        self.refill()
        self.table.focus()

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        if event.value != self.filter_text:
            self.filter_text = event.value
            self.refill()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        if not event.value.strip():
            self.action_clear_filter()
        else:
            self.table.focus()  # the filter stays; the arrows move through what it left

    def action_sort_next(self) -> None:
        self.sort_column = 0 if self.sort_column is None else self.sort_column + 1
        if self.sort_column >= len(COLUMNS):
            self.sort_column = None
            self.reverse = False
        else:
            self.reverse = COLUMNS[self.sort_column][0] in BEST_FIRST
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
            self.sort_column, self.reverse = column, COLUMNS[column][0] in BEST_FIRST
        self.refill()
