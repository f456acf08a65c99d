"""Comparison tables of a study's runs, for the terminal (Rich).

`comparison_table(records, preset)` renders `study.compare(...)`: a pivot when exactly two
settings vary (first swept key as rows, second as columns, validation / test accuracy in each
cell), otherwise one row per run (or per group of seeds) sorted by validation accuracy. When the
seed is swept, numbers are mean ± std over the seeds. Runs that did not complete show their
status instead of numbers. The same table, as Markdown, goes into `results.md`.

`runs_table(records, preset)` is the app's comparison (`c` in Runs), made to be read at 80x24:
one row per run, the run's name first, then its results (best validation accuracy first), then
only the settings that vary across the compared runs, in short form (`1e-3`, not `0.001`).
"""

from __future__ import annotations

import io
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from fcn_tui import events as ev
from fcn_tui.formatting import STATUS_COLOURS, percent, seconds, short_setting
from fcn_tui.runs import RunRecord
from fcn_tui.study import Comparison, best_line, compare, pivot_table, row_table, subtitle, varying_keys


def _styled(text: str) -> Text:
    """A cell that names a run status (`failed`, `stopped (2)`) in its colour; a completed run's
    cells show numbers, so `completed` is not coloured here."""
    for status, colour in STATUS_COLOURS.items():
        if status != ev.COMPLETED and text.startswith(status):
            return Text(text, style=colour)
    return Text(text)


def render(comparison: Comparison) -> Table:
    """A Rich table for a comparison."""
    caption = "\n".join(part for part in (subtitle(comparison), best_line(comparison)) if part)
    # Text, not str: a preset's name or a swept value is shown as written, never read as markup
    title = Text(comparison.title, style="table.title")
    table = Table(title=title, caption=Text(caption, style="table.caption") if caption else None,
                  min_width=title.cell_len)  # a narrow table (a one-column pivot) never folds its title mid-word
    if comparison.is_pivot:
        header, rows = pivot_table(comparison)
        left = 1
    else:
        header, rows = row_table(comparison)
        left = len(comparison.keys) or 1
    for i, col in enumerate(header):
        table.add_column(Text(col), justify="left" if i < left or col == "status" else "right", no_wrap=i < left)
    for row in rows:
        table.add_row(*(_styled(c) for c in row))
    return table


def comparison_table(records: list[RunRecord], preset=None, title: str | None = None) -> Table:
    """The comparison table of `records` (in plan order) from the preset that produced them."""
    return render(compare(records, preset, title))


NAME_WIDTH = 24  # a sweep's run names repeat its settings, which have their own columns
MIN_NAME = 14  # cut shorter to fit 80 columns, names would no longer tell runs apart
SHORT_KEYS = {"optim.name": "optim", "model.init": "init", "model.dropout": "drop", "model.batchnorm": "bn",
              "train.batch_size": "batch", "train.label_smoothing": "smooth", "optim.weight_decay": "wd",
              "train.val_fraction": "val frac"}  # a column header no wider than its values
RUNS_CAPTION = "accuracies in %"
STATUS_CAPTION = "; a run that did not complete: its status under test"
# final validation accuracy and epochs are left to the diff (`d`): at 80 columns the varying
# settings come right after best val, test and time


def setting_header(key: str) -> str:
    """A dotted key as a short column header: `optim.lr` is `lr`, `optim.name` is `optim`."""
    return SHORT_KEYS.get(key, key.rpartition(".")[2])


def _rank(record: RunRecord) -> tuple:
    best = record.get("best_val_acc")
    return (record.status != ev.COMPLETED, best is None, -(best or 0.0))


def runs_table(records: list[RunRecord], preset=None, width: int | None = None) -> Table:
    """One row per run, best validation accuracy first: name, results, then the varying settings.
    With `width`, the name column is cut (to no less than `MIN_NAME`) so that the table fits."""
    table = _runs_table(records, preset, NAME_WIDTH)
    if width is not None:
        console = Console(width=1000, file=io.StringIO())
        excess = Measurement.get(console, console.options, table).maximum - width
        longest = max((len(r.name) for r in records), default=0)
        if excess > 0 and min(longest, NAME_WIDTH) > MIN_NAME:
            table = _runs_table(records, preset, max(MIN_NAME, min(longest, NAME_WIDTH) - excess))
    return table


def _runs_table(records: list[RunRecord], preset, name_width: int) -> Table:
    keys = varying_keys(records, preset)
    caption = RUNS_CAPTION + (STATUS_CAPTION if any(r.status != ev.COMPLETED for r in records) else "")
    table = Table(box=box.SIMPLE_HEAD, header_style="bold", padding=(0, 1, 0, 0), show_edge=False,
                  caption=Text(caption, style="table.caption"), caption_justify="left")
    table.add_column("run", no_wrap=True, overflow="ellipsis", max_width=name_width)
    for label in ("best val", "test", "time"):
        table.add_column(label, justify="right", no_wrap=True)
    for key in keys:
        table.add_column(Text(setting_header(key), style="italic"), no_wrap=True)
    for record in sorted(records, key=_rank):
        done = record.status == ev.COMPLETED
        test = Text(percent(record.get("test_acc"))) if done else _styled(record.status)
        cells = [Text(record.name), Text(percent(record.get("best_val_acc"))), test, Text(seconds(record.get("wall_s")))]
        cells += [Text(short_setting(record.config.get(k) if record.config else None)) for k in keys]
        table.add_row(*cells)
    return table


def app_comparison(records: list[RunRecord], preset=None, title: str | None = None, width: int | None = None) -> Any:
    """What `c` in the app shows (its title goes above it, outside the scrolling): `runs_table`
    fitted to `width` if it can be, and under it the pivot or the mean ± std over seeds when the
    study has one."""
    comparison = compare(records, preset, title)
    table = runs_table(records, preset, width)
    if not (comparison.is_pivot or comparison.seeds):
        return table
    summary = render(comparison)
    summary.title, summary.min_width = None, None  # the title is above, outside the scrolling
    return Group(table, Text(""), summary)
