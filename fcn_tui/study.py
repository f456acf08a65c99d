"""Study results: compare the runs of a sweep, and write `results.csv` and `results.md`.

- `results_rows(records)` gives one row per run with the columns `RESULT_COLUMNS`: run id,
  name, status, every config key as a dotted column, epochs completed, final train/val loss,
  final and best val accuracy, test accuracy, wall seconds, samples/s and device. The same
  columns serve `fcn-tui export`.
- `compare(records, preset)` groups the runs by the settings the sweep varies. When
  `train.seed` is one of them, the runs that differ only in their seed form one group and the
  tables show mean ± sample standard deviation over the seeds. Exactly two other varying keys
  make a pivot (first key as rows, second as columns); otherwise the table has one row per
  group, best validation accuracy first.
- `comparison_markdown(comparison)` is that table as Markdown (Rich rendering: `tables.py`).

Runs that did not complete (diverged, stopped, failed, incomplete, unreadable) show their
status instead of a number. Every CSV text cell that a spreadsheet would run as a formula
(`=HYPERLINK(...)` as a run name) is prefixed with `'`. Imports no torch.
"""

from __future__ import annotations

import csv
import io
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fcn_tui import events as ev
from fcn_tui.config import all_keys
from fcn_tui.fileio import atomic_write_text
from fcn_tui.formatting import name_value, percent, setting_label
from fcn_tui.runs import RunRecord

SUMMARY_COLUMNS = (
    "epochs_completed", "train_loss", "val_loss", "val_acc", "best_val_acc", "test_acc",
    "wall_s", "samples_per_s", "device",
)
CONFIG_COLUMNS = tuple(k for k in all_keys() if k != "name")
RESULT_COLUMNS = ("run_id", "name", "status", *CONFIG_COLUMNS, *SUMMARY_COLUMNS)
SEED_KEY = "train.seed"
PIVOT_CAPTION = "each cell: validation accuracy % / test accuracy %"


def _cell(value: Any) -> Any:
    """A CSV cell: lists and booleans as in run names, numbers kept numbers, None empty."""
    if isinstance(value, (list, tuple, bool)):
        return name_value(value)
    return "" if value is None else value


def result_row(record: RunRecord) -> dict[str, Any]:
    row: dict[str, Any] = {"run_id": record.run_id, "name": record.name, "status": record.status}
    flat = record.config.flat() if record.config else {}
    for key in CONFIG_COLUMNS:
        row[key] = _cell(flat.get(key))
    for key in SUMMARY_COLUMNS:
        row[key] = _cell(record.get(key))
    return row


def results_rows(records: list[RunRecord]) -> list[dict[str, Any]]:
    return [result_row(r) for r in records]


FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")  # what a spreadsheet runs as a formula (OWASP)


def csv_safe(value: Any) -> Any:
    """A text cell a spreadsheet would run as a formula, prefixed with `'` (OWASP's advice);
    numbers, negative ones included, stay numbers. A carriage return in text becomes a newline:
    the csv module leaves a lone CR unquoted, and readers would split the row there."""
    if not isinstance(value, str):
        return value
    if value.startswith(FORMULA_STARTS):
        value = "'" + value
    return value.replace("\r\n", "\n").replace("\r", "\n")


def rows_to_csv(rows: list[dict[str, Any]], columns: tuple[str, ...] = RESULT_COLUMNS) -> str:
    """CSV text of `rows`, formula-like text cells neutralised (`csv_safe`)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows({k: csv_safe(v) for k, v in row.items()} for row in rows)
    return buf.getvalue()


# --- grouping ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stat:
    """Mean and sample standard deviation (n - 1; 0 for a single value) of n values."""

    mean: float
    std: float
    n: int


def mean_std(values: list[float]) -> Stat | None:
    if not values:
        return None
    n = len(values)
    mean = sum(values) / n
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1)) if n > 1 else 0.0
    return Stat(mean, std, n)


@dataclass
class Group:
    """The runs that share every compared setting (several only when seeds are grouped)."""

    settings: dict[str, Any]
    runs: list[RunRecord] = field(default_factory=list)

    @property
    def label(self) -> str:
        if self.settings:
            return ", ".join(f"{k}={setting_label(v)}" for k, v in self.settings.items())
        return self.runs[0].name if len(self.runs) == 1 else "all runs"

    @property
    def completed(self) -> list[RunRecord]:
        return [r for r in self.runs if r.status == ev.COMPLETED]

    @property
    def status(self) -> str:
        """`completed`, the one status of all its runs, or counts such as `2 completed, 1 diverged`."""
        counts = Counter(r.status for r in self.runs)
        if len(counts) == 1:
            return next(iter(counts))
        return ", ".join(f"{n} {status}" for status, n in counts.most_common())

    def stat(self, key: str) -> Stat | None:
        """Mean ± std of a summary number over the completed runs."""
        values = [r.get(key) for r in self.completed]
        return mean_std([float(v) for v in values if isinstance(v, (int, float))])

    def text(self, key: str, scale: float = 100.0, digits: int = 2) -> str:
        """A summary number for a table cell: `89.05`, `89.05 ± 0.21`, or the status if no run completed."""
        stat = self.stat(key)
        if stat is None:
            failed = [r.status for r in self.runs if r.status != ev.COMPLETED]
            return failed[0] if failed else "-"
        out = f"{scale * stat.mean:.{digits}f}"
        if stat.n > 1:
            out += f" ± {scale * stat.std:.{digits}f}"
        if stat.n < len(self.runs):
            out += f" ({stat.n} of {len(self.runs)})"
        return out

    def sort_key(self) -> tuple:
        stat = self.stat("val_acc")
        return (0, -stat.mean) if stat else (1, 0.0)


@dataclass
class Comparison:
    """The runs of a study, grouped by the settings it varies."""

    title: str
    keys: list[str]  # compared settings, in sweep order (the seed excluded when grouped)
    seeds: list[Any]  # the seeds averaged over; empty when the seed is not swept
    groups: list[Group]  # in plan order
    values: dict[str, list[Any]]  # each compared key's values, in sweep order

    @property
    def is_pivot(self) -> bool:
        return len(self.keys) == 2

    def ranked(self) -> list[Group]:
        """Best mean validation accuracy first; groups without a completed run last."""
        return sorted(self.groups, key=Group.sort_key)

    def cell(self, row: Any, col: Any) -> Group | None:
        """The pivot group at (row value, column value)."""
        for group in self.groups:
            if group.settings == {self.keys[0]: row, self.keys[1]: col}:
                return group
        return None


def varying_keys(records: list[RunRecord], preset=None) -> list[str]:
    """The swept keys that take more than one value: from the preset's sweep (in its order), or
    the config keys on which the runs differ."""
    if preset is not None and preset.sweep:
        return [k for k, values in preset.sweep if len(set(map(setting_label, values))) > 1]
    flats = [r.config.flat() for r in records if r.config is not None]
    return [k for k in CONFIG_COLUMNS if len({setting_label(f.get(k)) for f in flats}) > 1]


def compare(records: list[RunRecord], preset=None, title: str | None = None) -> Comparison:
    """Group `records` (in plan order) by the settings that vary; see the module docstring."""
    keys = varying_keys(records, preset)
    seeds: list[Any] = []
    if SEED_KEY in keys:
        keys.remove(SEED_KEY)
        seeds = _values_in_order(records, SEED_KEY, preset)
    values = {k: _values_in_order(records, k, preset) for k in keys}
    groups: list[Group] = []
    by_settings: dict[str, Group] = {}
    for record in records:
        settings = {k: record.config.get(k) if record.config else None for k in keys}
        if not keys and not seeds:
            groups.append(Group(settings, [record]))  # nothing compared: one row per run
            continue
        label = repr([setting_label(v) for v in settings.values()])
        if label not in by_settings:
            by_settings[label] = Group(settings)
            groups.append(by_settings[label])
        by_settings[label].runs.append(record)
    if title is None:
        title = preset.config.name if preset is not None else "Runs"
    return Comparison(title=title, keys=keys, seeds=seeds, groups=groups, values=values)


def _values_in_order(records: list[RunRecord], key: str, preset) -> list[Any]:
    present = [r.config.get(key) for r in records if r.config is not None]
    ordered: list[Any] = []
    if preset is not None:
        ordered = [v for k, vals in preset.sweep if k == key for v in vals]
    for value in present:
        if value not in ordered:
            ordered.append(value)
    return [v for v in ordered if v in present]


# --- Markdown -----------------------------------------------------------------------------


def pivot_cell_text(group: Group | None) -> str:
    if group is None:
        return "-"
    val, test = group.text("val_acc"), group.text("test_acc")
    return val if not group.completed else f"{val} / {test}"


def subtitle(comparison: Comparison) -> str:
    parts = []
    if comparison.is_pivot:
        parts.append(PIVOT_CAPTION)
    if comparison.seeds:
        seeds = ", ".join(setting_label(s) for s in comparison.seeds)
        parts.append(f"mean ± std over seeds {seeds}")
    return "; ".join(parts)


def best_line(comparison: Comparison) -> str:
    """`best: <settings> (validation .. %, test .. %)`, by validation accuracy; empty for one group."""
    ranked = comparison.ranked()
    if len(comparison.groups) < 2 or not ranked[0].completed:
        return ""
    best = ranked[0]
    return f"best: {best.label} (validation {best.text('val_acc')} %, test {best.text('test_acc')} %)"


def row_table(comparison: Comparison) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the one-row-per-group table (also used by the Rich table)."""
    header = list(comparison.keys) or ["run"]
    if comparison.seeds:
        header.append("seeds")
    header += ["status", "val acc %", "best val %", "test acc %", "epochs", "time s"]
    rows = []
    for group in comparison.ranked():
        cells = [setting_label(v) for v in group.settings.values()] or [group.label]
        if comparison.seeds:
            cells.append(str(len(group.runs)))
        epochs = mean_std([float(r.get("epochs_completed") or 0) for r in group.runs])
        wall = mean_std([float(r.get("wall_s") or 0) for r in group.runs])
        cells += [
            group.status, group.text("val_acc"), group.text("best_val_acc"), group.text("test_acc"),
            f"{epochs.mean:g}" if epochs else "0", f"{wall.mean:.1f}" if wall else "0.0",
        ]
        rows.append(cells)
    return header, rows


def pivot_table(comparison: Comparison) -> tuple[list[str], list[list[str]]]:
    """Header and rows of the pivot: first key's values as rows, second key's as columns."""
    row_key, col_key = comparison.keys
    header = [f"{row_key} \\ {col_key}", *(setting_label(c) for c in comparison.values[col_key])]
    rows = []
    for row in comparison.values[row_key]:
        rows.append([setting_label(row), *(pivot_cell_text(comparison.cell(row, col)) for col in comparison.values[col_key])])
    return header, rows


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _md_table(header: list[str], rows: list[list[str]], first_left: int = 1) -> list[str]:
    align = ["---" if i < first_left or name == "status" else "---:" for i, name in enumerate(header)]
    return [_md_row(header), _md_row(align), *(_md_row(r) for r in rows)]


def comparison_markdown(comparison: Comparison) -> str:
    """The comparison table as Markdown: the pivot, or one row per group."""
    lines = []
    if note := subtitle(comparison):
        lines += [f"_{note}_", ""]
    if comparison.is_pivot:
        lines += _md_table(*pivot_table(comparison))
    else:
        header, rows = row_table(comparison)
        lines += _md_table(header, rows, first_left=len(comparison.keys) or 1)
    if best := best_line(comparison):
        lines += ["", best]
    return "\n".join(lines) + "\n"


def runs_markdown(records: list[RunRecord]) -> str:
    """Every run on its own row, in plan order (the detail under the comparison)."""
    header = ["run", "status", "val acc %", "best val %", "test acc %", "epochs", "time s"]
    rows = []
    for r in records:
        done = r.status == ev.COMPLETED
        numbers = [percent(r.get(k)) if done else r.status for k in ("val_acc", "best_val_acc", "test_acc")]
        rows.append([r.name, r.status, *numbers, str(r.get("epochs_completed") or 0), f"{r.get('wall_s') or 0:.1f}"])
    return "\n".join(_md_table(header, rows, first_left=2)) + "\n"


def results_markdown(records: list[RunRecord], title: str, preset=None) -> str:
    comparison = compare(records, preset, title)
    return f"# {title}\n\n{comparison_markdown(comparison)}\n## Runs\n\n{runs_markdown(records)}"


def write_results(folder: Path, records: list[RunRecord], title: str, preset=None) -> tuple[Path, Path]:
    """Write `results.csv` and `results.md` into a study folder (atomically)."""
    csv_path, md_path = Path(folder) / "results.csv", Path(folder) / "results.md"
    atomic_write_text(csv_path, rows_to_csv(results_rows(records)))
    atomic_write_text(md_path, results_markdown(records, title, preset))
    return csv_path, md_path
