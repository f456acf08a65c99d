"""`fcn-tui export`: every run under a folder to one CSV file.

One row per run with the columns of `results.csv`, or with `per_epoch=True` one row per run
and epoch (run id, name, status, then the metrics.csv columns). Imports no torch.
"""

from __future__ import annotations

from pathlib import Path

from fcn_tui.runs import METRICS_COLUMNS, atomic_write_text, find_runs
from fcn_tui.study import RESULT_COLUMNS, results_rows, rows_to_csv

PER_EPOCH_COLUMNS = ("run_id", "name", "status", *METRICS_COLUMNS)


def export_csv(folder: Path, csv_path: Path, per_epoch: bool = False) -> int:
    """Write the CSV and return the number of data rows."""
    records = find_runs(folder)
    if per_epoch:
        rows = [
            {"run_id": r.run_id, "name": r.name, "status": r.status, **m}
            for r in records
            for m in r.metrics
        ]
        for row in rows:
            row["epoch"] = int(row["epoch"])
        text = rows_to_csv(rows, PER_EPOCH_COLUMNS)
    else:
        rows = results_rows(records)
        text = rows_to_csv(rows, RESULT_COLUMNS)
    csv_path = Path(csv_path)
    if csv_path.parent != Path("."):
        csv_path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(csv_path, text)
    return len(rows)
