"""Study results: one row per run, written as `results.csv` and `results.md`.

`results_rows(records)` gives, per run: run id, name, status, every config key as a dotted
column, epochs completed, final train/val loss, final and best val accuracy, test accuracy, wall
seconds, samples/s and device. The same columns serve `fcn-tui export`. Imports no torch.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from fcn_tui.config import all_keys
from fcn_tui.runs import RunRecord, atomic_write_text

SUMMARY_COLUMNS = (
    "epochs_completed", "train_loss", "val_loss", "val_acc", "best_val_acc", "test_acc",
    "wall_s", "samples_per_s", "device",
)
CONFIG_COLUMNS = tuple(k for k in all_keys() if k != "name")
RESULT_COLUMNS = ("run_id", "name", "status", *CONFIG_COLUMNS, *SUMMARY_COLUMNS)


def _cell(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(str(v) for v in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
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


def rows_to_csv(rows: list[dict[str, Any]], columns: tuple[str, ...] = RESULT_COLUMNS) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n", extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return buf.getvalue()


def percent(value: Any) -> str:
    return f"{100 * value:.2f}" if isinstance(value, (int, float)) else "-"


def results_markdown(records: list[RunRecord], title: str) -> str:
    """A Markdown table, one row per run, best validation accuracy first."""
    lines = [f"# {title}", "", "| run | status | val acc % | best val acc % | test acc % | epochs | time s |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in sorted(records, key=lambda r: -(r.get("val_acc") or -1)):
        lines.append(
            f"| {r.name} | {r.status} | {percent(r.get('val_acc'))} | {percent(r.get('best_val_acc'))} "
            f"| {percent(r.get('test_acc'))} | {r.get('epochs_completed') or 0} | {r.get('wall_s') or 0:.1f} |"
        )
    return "\n".join(lines) + "\n"


def write_results(folder: Path, records: list[RunRecord], title: str) -> tuple[Path, Path]:
    """Write `results.csv` and `results.md` into a study folder (atomically)."""
    csv_path, md_path = Path(folder) / "results.csv", Path(folder) / "results.md"
    atomic_write_text(csv_path, rows_to_csv(results_rows(records)))
    atomic_write_text(md_path, results_markdown(records, title))
    return csv_path, md_path
