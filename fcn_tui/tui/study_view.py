"""The Study tab: every run of a study, live, whichever process or machine trains it.

The study is the one given (`fcn-tui ui --storage URL|STUDY_FOLDER [--study NAME]`), else the
newest study folder under OUT (looked for again at each refresh, so a study started in another
terminal, e.g. `fcn-tui run PRESET --workers 4`, appears by itself). Once a second, while the
tab is shown, a thread worker reads the study's runs from its storage (`StudyStore.records`) and
posts them; the table shows each run's status, worker, epoch, validation accuracy and the swept
or searched settings. The chart below follows the highlighted run: its validation accuracy per
epoch from the storage (so a run on another machine draws too) and, where its folder is on
this machine, its train and validation loss from `metrics.csv`. Nothing is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.message import Message
from textual.widgets import DataTable, Static
from textual_plotext import PlotextPlot

REFRESH_S = 1.0  # the storage is read once a second, and only while the tab is shown
STATUS_STYLE = {"running": "bold green", "completed": "", "pruned": "yellow", "stopped": "yellow",
                "failed": "red", "incomplete": "red", "diverged": "red", "queued": "dim"}


class StudyRows(Message):
    """What the thread worker read: the study's name and place, and its runs."""

    def __init__(self, title: str, records: list, keys: list[str], error: str | None = None) -> None:
        super().__init__()
        self.title = title
        self.records = records
        self.keys = keys
        self.error = error


def short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(map(str, value)) + "]"
    return str(value)


class StudyChart(PlotextPlot):
    """Validation accuracy (and, for a local run, losses) of the highlighted run, per epoch."""

    shown: str | None = None  # the name of the run drawn

    def show_run(self, record: Any) -> None:
        self.shown = None if record is None else record.name
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        if record is None:
            plt.title("highlight a run to see its curves")
            self.refresh()
            return
        plt.title(f"{record.name} · {record.status}")
        epochs = [m["epoch"] for m in record.metrics]
        if epochs:
            plt.plot(epochs, [100 * m["val_acc"] for m in record.metrics], label="val acc %", color="orange", marker="x")
            if all("train_acc" in m for m in record.metrics):  # the run's folder is on this machine
                plt.plot(epochs, [100 * m["train_acc"] for m in record.metrics], label="train acc %", color="cyan",
                         marker="+")
        plt.xlabel("epoch")
        self.refresh()


class StudyView(Vertical):
    """The Study tab's content: a title line, the runs table, the highlighted run's chart."""

    BINDINGS: ClassVar[list[BindingType]] = [Binding("r", "refresh_now", "Refresh")]

    def __init__(self, out: Path, spec: str | None = None, name: str | None = None, id: str | None = None) -> None:
        super().__init__(id=id)
        self.out = Path(out)
        self.spec = spec
        self.study_name = name
        self.records: list = []
        self.selected: str | None = None  # the highlighted run's folder name
        self._store: Any = None  # the open study, kept between refreshes (thread worker only)
        self._loading: Any = None  # the read under way, if any

    def compose(self) -> ComposeResult:
        yield Static("looking for a study…", id="study-title")
        yield DataTable(id="study-table", cursor_type="row", zebra_stripes=True)
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
        from fcn_tui.runs import read_metrics
        from fcn_tui.study_store import StudyError, StudyStore, describe

        spec = self.spec
        if spec is None:
            from fcn_tui.runner import newest_study_folder_any

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
        self.post_message(StudyRows(f"study {store.name} · {describe(spec)} · {len(records)} runs: {summary}", records, keys))

    def on_study_rows(self, message: StudyRows) -> None:
        message.stop()
        self.query_one("#study-title", Static).update(Text(message.title))
        table = self.query_one("#study-table", DataTable)
        self.records = message.records
        columns = ["run", "status", "worker", "epoch", "val acc %", "best val %", *message.keys]
        if [str(c.label) for c in table.columns.values()] != columns:
            table.clear(columns=True)
            table.add_columns(*columns)
        row = table.cursor_row
        table.clear()
        for r in message.records:
            acc, best = r.get("val_acc"), r.get("best_val_acc")
            epochs = r.get("epochs") or (r.config.train.epochs if r.config else "?")
            table.add_row(
                Text(r.name[:40]), Text(r.status, style=STATUS_STYLE.get(r.status, "")),
                Text(str(r.get("worker") or r.get("host") or "-")),
                f"{r.get('epochs_completed') or 0}/{epochs}",
                f"{100 * acc:.2f}" if isinstance(acc, (int, float)) else "-",
                f"{100 * best:.2f}" if isinstance(best, (int, float)) else "-",
                *(Text(short(r.config.get(k))) if r.config else Text("-") for k in message.keys),
                key=str(r.path),
            )
        if message.records:
            table.move_cursor(row=min(row, len(message.records) - 1))
        self._show_highlighted()

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()
        self._show_highlighted()

    def _show_highlighted(self) -> None:
        table = self.query_one("#study-table", DataTable)
        record = self.records[table.cursor_row] if 0 <= table.cursor_row < len(self.records) else None
        self.query_one("#study-chart", StudyChart).show_run(record)
