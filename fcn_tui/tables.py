"""Comparison tables of a study's runs, for the terminal (Rich).

`comparison_table(records, preset)` shows one row per run sorted by validation accuracy.
Runs that did not complete show their status instead of numbers.
"""

from __future__ import annotations

from rich.table import Table

from fcn_tui import events as ev
from fcn_tui.runs import RunRecord
from fcn_tui.study import percent


def comparison_table(records: list[RunRecord], preset=None) -> Table:
    title = preset.config.name if preset is not None else "Runs"
    table = Table(title=title)
    for col in ("run", "val acc %", "best val %", "test acc %", "time s"):
        table.add_column(col, justify="left" if col == "run" else "right")
    ranked = sorted(records, key=lambda r: -(r.get("val_acc") or -1) if r.status == ev.COMPLETED else 1)
    for r in ranked:
        if r.status == ev.COMPLETED:
            cells = [percent(r.get("val_acc")), percent(r.get("best_val_acc")), percent(r.get("test_acc"))]
        else:
            cells = [r.status] * 3
        table.add_row(r.name, *cells, f"{r.get('wall_s') or 0:.1f}")
    return table
