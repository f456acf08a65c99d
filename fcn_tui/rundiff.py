"""Two runs side by side: the settings on which they differ, their best epoch, their final numbers.

- `short_number(x)` writes a setting's number so that it stays readable in a narrow column:
  `1e-3`, `3e-4`, `2.5e-5`, `0.05`, `0.9`, `6000` (never `0.00`).
- `short_setting(value)` is any config value that way (`adam`, `yes`, `400,400`).
  (Both live in `fcn_tui.formatting`; they are imported here for the diff table.)
- `best_epoch(record)` is the epoch of the best validation accuracy (the first one on a tie).
- `settings_diff(a, b)` lists `(key, value in a, value in b)` for every key that differs.
- `diff_table(a, b)` is all of it as one Rich table: results first, then the differing settings.

User text (run names) goes into `Text` cells, never read as markup. Imports neither torch nor
textual, so the CLI could print the same table.
"""

from __future__ import annotations

import math
from typing import Any

from rich.table import Table
from rich.text import Text

from fcn_tui.formatting import loss_text, percent, seconds, short_setting
from fcn_tui.runs import RunRecord

NAME_WIDTH = 30  # two columns of this and the labels fit an 80-column terminal


def best_epoch(record: RunRecord) -> tuple[int, float] | None:
    """(epoch, validation accuracy) of the run's best epoch in metrics.csv; None without epochs."""
    best: tuple[int, float] | None = None
    for row in record.metrics:
        acc = row.get("val_acc")
        if isinstance(acc, float) and math.isfinite(acc) and (best is None or acc > best[1]):
            best = (int(row.get("epoch", 0)), acc)
    return best


def settings_diff(a: RunRecord, b: RunRecord) -> list[tuple[str, Any, Any]]:
    """`(dotted key, a's value, b's value)` for each setting that differs, in config order.
    A run without a readable config differs on nothing that can be shown."""
    if a.config is None or b.config is None:
        return []
    flat_a, flat_b = a.config.flat(), b.config.flat()
    return [(k, flat_a[k], flat_b.get(k)) for k in flat_a if flat_a[k] != flat_b.get(k)]


def _best(record: RunRecord) -> str:
    best = best_epoch(record)
    return f"epoch {best[0]} ({percent(best[1])})" if best else "-"


def _epochs(record: RunRecord) -> str:
    done = record.get("epochs_completed")
    total = record.config.train.epochs if record.config is not None else None
    if done is None:
        return "-"
    return f"{done:g}/{total}" if total else f"{done:g}"


# (label, cell of one run): the final numbers, in the order a researcher reads them
RESULT_ROWS = [
    ("status", lambda r: r.status),
    ("best val acc %", lambda r: percent(r.get("best_val_acc"))),
    ("best val epoch", _best),
    ("val acc %", lambda r: percent(r.get("val_acc"))),
    ("test acc %", lambda r: percent(r.get("test_acc"))),
    ("train loss", lambda r: loss_text(r.get("train_loss"))),
    ("val loss", lambda r: loss_text(r.get("val_loss"))),
    ("epochs", _epochs),
    ("wall time", lambda r: seconds(r.get("wall_s"))),
]


def diff_table(a: RunRecord, b: RunRecord, names: tuple[str, str] | None = None) -> Table:
    """Results of `a` and `b` side by side, then only the settings on which they differ.
    `names` heads the two columns (default: the run names)."""
    left_name, right_name = names or (a.name, b.name)
    table = Table(show_header=True, header_style="bold", box=None, padding=(0, 1))
    table.add_column("", style="dim", no_wrap=True)
    table.add_column(Text(left_name), no_wrap=True, overflow="ellipsis", max_width=NAME_WIDTH)
    table.add_column(Text(right_name), no_wrap=True, overflow="ellipsis", max_width=NAME_WIDTH)
    for label, cell in RESULT_ROWS:
        left, right = cell(a), cell(b)
        style = "bold" if left != right else ""
        table.add_row(label, Text(left, style=style), Text(right, style=style))
    diff = settings_diff(a, b)
    table.add_section()
    if a.config is None or b.config is None:
        table.add_row(Text("settings", style="bold"), Text("unreadable config.toml", style="red"), "")
    elif not diff:
        table.add_row(Text("settings", style="bold"), Text("the same settings"), "")
    else:
        table.add_row(Text("settings that differ", style="bold"), "", "")
        for key, left, right in diff:
            table.add_row(key, Text(short_setting(left)), Text(short_setting(right)))
    return table
