"""Comparison tables of a study's runs, for the terminal (Rich).

`comparison_table(records, preset)` renders `study.compare(...)`: a pivot when exactly two
settings vary (first swept key as rows, second as columns, validation / test accuracy in each
cell), otherwise one row per run (or per group of seeds) sorted by validation accuracy. When the
seed is swept, numbers are mean ± std over the seeds. Runs that did not complete show their
status instead of numbers. The same table, as Markdown, goes into `results.md`.
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text

from fcn_tui import events as ev
from fcn_tui.runs import RunRecord
from fcn_tui.study import Comparison, compare, pivot_table, row_table, subtitle

STATUS_STYLES = {ev.DIVERGED: "red", ev.FAILED: "red", ev.UNREADABLE: "red", ev.STOPPED: "yellow",
                 ev.INCOMPLETE: "yellow"}


def _styled(text: str) -> Text:
    for status, style in STATUS_STYLES.items():
        if text.startswith(status):
            return Text(text, style=style)
    return Text(text)


def render(comparison: Comparison) -> Table:
    """A Rich table for a comparison."""
    caption = subtitle(comparison)
    # Text, not str: a preset's name or a swept value is shown as written, never read as markup
    table = Table(title=Text(comparison.title, style="table.title"),
                  caption=Text(caption, style="table.caption") if caption else None)
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
