"""The Study tab: every run of a study, live, whichever process or machine trains it.

The study is the one given (`fcn-tui ui --storage URL|STUDY_FOLDER [--study NAME]`), else the
newest study folder under OUT (looked for again at each refresh, so a study started in another
terminal, e.g. `fcn-tui run PRESET --workers 4`, appears by itself). Once a second, while the
tab is shown, a thread worker reads the study's runs from its storage (`StudyStore.records`) and
posts them; the table shows each run's number, status, worker, epoch, validation accuracy and
the swept or searched settings written short (`4.17e-4`, `0.272`); the run's name only when there
are no such settings (they already tell the runs apart, and a name is often as long as a line).
left/right scroll by whole columns, and a refresh keeps the scroll and the highlighted run. The
line above the chart names the highlighted run (number, settings, status) and says what each
marker means; the chart (`charts.RunChart`: whole-epoch ticks, no legend over the data) shows
its validation accuracy per epoch from the storage (so a run on another machine draws too)
and, where its folder is on this machine, its train accuracy from `metrics.csv`. Nothing is
written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.coordinate import Coordinate
from textual.message import Message
from textual.widgets import DataTable, Static

from fcn_tui.formatting import percent, short_setting, status_style
from fcn_tui.tui.charts import BEST, TRAIN, VAL, Curve, RunChart, best_index
from fcn_tui.tui.column_table import ColumnTable
from fcn_tui.tui.overlays import SHORT_KEYS, setting_label
from fcn_tui.tui.runs_view import cut, cut_middle

REFRESH_S = 1.0  # the storage is read once a second, and only while the tab is shown
LABELS = {"optim.name": "optim", "model.activation": "act"}  # where SHORT_KEYS shows a value alone
MAX_TITLE_NAME = 32  # a study's name is cut to this in the title line: its counts must stay on screen


class StudyRows(Message):
    """What the thread worker read: the study's name and place, and its runs."""

    def __init__(self, title: str, records: list, keys: list[str], error: str | None = None) -> None:
        super().__init__()
        self.title = title
        self.records = records
        self.keys = keys
        self.error = error


def key_label(key: str) -> str:
    """A setting's column label: `lr` for `optim.lr`, `optim` for `optim.name`."""
    return LABELS.get(key) or SHORT_KEYS.get(key) or key.rpartition(".")[2]


def run_label(record: Any, keys: list[str]) -> str:
    """The run's number and, when the study sweeps or searches settings, its values of them
    (`#3 adam lr=1.12e-3 drop=0.261`); else its name."""
    number = record.get("run")
    head = f"#{number} " if number is not None else ""
    if keys and record.config is not None:
        return head + setting_label(record, keys)
    return head + record.name


class StudyChart(RunChart):
    """Validation accuracy (and, for a local run, train accuracy) of the highlighted run, per epoch."""

    title = ""  # the line above the chart names the run: a plotext title drops what does not fit

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.shown: str | None = None  # the name of the run drawn
        self.epochs: list[int] = []
        self.train_acc: list[float] = []
        self.val_acc: list[float] = []

    def show_run(self, record: Any) -> None:
        self.shown = None if record is None else record.name
        metrics = [] if record is None else record.metrics
        self.epochs = [m["epoch"] for m in metrics]
        self.val_acc = [100 * m["val_acc"] for m in metrics]
        local = metrics and all("train_acc" in m for m in metrics)  # the run's folder is on this machine
        self.train_acc = [100 * m["train_acc"] for m in metrics] if local else []
        self.best = best_index(self.val_acc)
        planned = record.get("epochs") if record is not None else None
        self.x_max = float(max([1, *self.epochs, *([planned] if isinstance(planned, int) else [])]))
        self.replot()

    def curves(self) -> list[Curve]:
        curves = [Curve(self.epochs, self.val_acc, VAL[0], VAL[2])]
        if self.train_acc:
            curves.insert(0, Curve(self.epochs, self.train_acc, TRAIN[0], TRAIN[2]))
        if self.best is not None and self.best < len(self.epochs):
            curves.append(Curve([self.epochs[self.best]], [self.val_acc[self.best]], BEST[0], BEST[2], line=None))
        return curves

    def legend(self) -> Text:
        """What each marker means, for the curves drawn."""
        parts = [Text.assemble((VAL[2], f"bold {VAL[1]}"), " val acc %")]
        if self.train_acc:
            parts.insert(0, Text.assemble((TRAIN[2], f"bold {TRAIN[1]}"), " train acc %"))
        if self.best is not None and self.best < len(self.epochs):
            parts.append(Text.assemble((BEST[2], f"bold {BEST[1]}"), f" best epoch {self.epochs[self.best]:g}"))
        return Text("  ").join(parts)


class StudyView(Vertical):
    """The Study tab's content: a title line, the runs table, the highlighted run's chart."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("r", "refresh_now", "Refresh")]

    def __init__(self, out: Path, spec: str | None = None, name: str | None = None, id: str | None = None) -> None:
        super().__init__(id=id)
        self.out = Path(out)
        self.spec = spec
        self.study_name = name
        self.records: list = []
        self.selected: str | None = None  # the highlighted run's folder (its row key)
        self.keys: list[str] = []  # the swept or searched settings, one column each
        self._store: Any = None  # the open study, kept between refreshes (thread worker only)
        self._loading: Any = None  # the read under way, if any

    def compose(self) -> ComposeResult:
        yield Static("looking for a study…", id="study-title")
        yield ColumnTable(id="study-table", cursor_type="row", zebra_stripes=True)
        yield Static("", id="study-run")
        yield StudyChart(id="study-chart")

    def on_mount(self) -> None:
        self.set_interval(REFRESH_S, self._tick)

    def _tick(self) -> None:
        if self.display and self.is_on_screen:  # redraw only while visible
            self.action_refresh_now()

    def action_refresh_now(self) -> None:
        if self._loading is None or self._loading.is_finished:  # never cancel a read under way
            self._loading = self.load()

    @work(thread=True, exit_on_error=False, group="study", description="read the study")
    def load(self) -> None:
        from fcn_tui.errors import StudyError
        from fcn_tui.runs import read_metrics
        from fcn_tui.studies.store import StudyStore, describe

        spec = self.spec
        if spec is None:
            from fcn_tui.studies.runner import newest_study_folder_any

            folder = newest_study_folder_any(self.out)
            if folder is None:
                self.post_message(StudyRows(f"no study under {self.out} yet: a preset with [sweep] or [search] makes one "
                                            "(fcn-tui run PRESET --workers N, or ctrl+r here)", [], []))
                return
            spec = str(folder)
        try:
            store = self._store
            if store is None or store.spec != spec:  # the journal is read once, then only what it gains
                store = self._store = StudyStore.open(spec, self.study_name)
            records = store.records()
        except (StudyError, OSError, ValueError) as err:
            self.post_message(StudyRows(f"study: {err}", [], [], error=str(err)))
            return
        for record in records:  # live curves: the folder's metrics while it trains
            if not record.metrics and record.path.is_dir():
                record.metrics = read_metrics(record.path / "metrics.csv")
        keys = [k for k, _ in store.preset.sweep] + [p.key for p in (store.preset.search.params if store.preset.search else ())]
        counts: dict[str, int] = {}
        for r in records:
            counts[r.status] = counts.get(r.status, 0) + 1
        summary = ", ".join(f"{n} {s}" for s, n in sorted(counts.items()))
        title = f"study {cut_middle(store.name, MAX_TITLE_NAME)} · {len(records)} runs: {summary} · {describe(spec)}"
        self.post_message(StudyRows(title, records, keys))

    def on_study_rows(self, message: StudyRows) -> None:
        message.stop()
        # one line: what does not fit ends in `…`, never in a dangling separator
        title = self.query_one("#study-title", Static)
        title.update(Text(cut(message.title, title.content_region.width or self.app.size.width - 2)))
        table = self.query_one("#study-table", DataTable)
        self.records = message.records
        self.keys = message.keys
        columns = ["run", "status", "worker", "epoch", "val %", "best %", *map(key_label, message.keys)]
        if not message.keys:  # no settings tell the runs apart: their names do
            columns.append("name")
        rows = [(str(r.path), self.cells(r, message.keys)) for r in message.records]
        if [str(c.label) for c in table.columns.values()] != columns:
            table.clear(columns=True)
            table.add_columns(*columns)
        if [row.key.value for row in table.ordered_rows] == [key for key, _ in rows]:
            for i, (_, cells) in enumerate(rows):  # in place: the scroll and the cursor stay
                for j, (old, new) in enumerate(zip(table.get_row_at(i), cells)):
                    if old != new:
                        table.update_cell_at(Coordinate(i, j), new)
        else:
            current = self.selected
            scroll_x = table.scroll_x
            table.clear()  # (this scrolls back to the left: put back below)
            for key, cells in rows:
                table.add_row(*cells, key=key)
            keys = [key for key, _ in rows]
            if rows:
                table.move_cursor(row=keys.index(current) if current in keys else min(table.cursor_row, len(rows) - 1),
                                  scroll=False)
            if scroll_x:
                self.call_after_refresh(table.scroll_to, x=scroll_x, animate=False)
        self._show_highlighted()

    @staticmethod
    def cells(r: Any, keys: list[str]) -> list[Text]:
        acc, best = r.get("val_acc"), r.get("best_val_acc")
        epochs = r.get("epochs") or (r.config.train.epochs if r.config else "?")
        cells = [
            Text(str(r.get("run") or "-")), Text(r.status, style=status_style(r.status)),
            Text(str(r.get("worker") or r.get("host") or "-")),
            Text(f"{r.get('epochs_completed') or 0}/{epochs}"),
            Text(percent(acc)),
            Text(percent(best)),
            *(Text(short_setting(r.config.get(k))) if r.config else Text("-") for k in keys),
        ]
        if not keys:
            cells.append(Text(r.name))
        return cells

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._show_highlighted()

    def _show_highlighted(self) -> None:
        table = self.query_one("#study-table", DataTable)
        record = self.records[table.cursor_row] if 0 <= table.cursor_row < len(self.records) else None
        self.selected = None if record is None else str(record.path)
        chart = self.query_one("#study-chart", StudyChart)
        chart.show_run(record)
        line = self.query_one("#study-run", Static)
        if record is None:
            line.update("highlight a run to see its curves")
            return
        text = Text(f"{run_label(record, self.keys)} · {record.status}")  # user text: never markup
        legend = chart.legend()
        one_line = len(text) + 2 + len(legend) <= (line.content_region.width or self.app.size.width - 2)
        text.append("  " if one_line else "\n")  # the legend on a line of its own when both do not fit
        text.append_text(legend)
        line.update(text)
