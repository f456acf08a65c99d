"""`fcn-tui export`: every run under a folder to one CSV file.

One row per run with the columns of `results.csv` (`study.RESULT_COLUMNS`), or with
`per_epoch=True` one row per run and epoch: run id, name, status, every config key as a dotted
column, then the `metrics.csv` columns. Runs written by the CLI and by the TUI have the same
folders, so both are found; runs that did not finish are included with their status
(`incomplete`, `stopped`, ...); a damaged folder is a row with status `unreadable` and a
warning that gives the reason. Imports no torch.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fcn_tui.errors import KeptFileError, NoRunsError, RunWriteError
from fcn_tui.fileio import atomic_write_text
from fcn_tui.runs import CHECKPOINT, METRICS_COLUMNS, STUDY_MANIFEST, find_runs
from fcn_tui.study import CONFIG_COLUMNS, RESULT_COLUMNS, result_row, results_rows, rows_to_csv

PER_EPOCH_COLUMNS = ("run_id", "name", "status", *CONFIG_COLUMNS, *METRICS_COLUMNS)


RUN_FILES = ("summary.json", "config.toml", "metrics.csv", CHECKPOINT, "model.pt", "predictions.npz", "confusion.csv")


def check_export_target(csv_path: Path) -> None:
    """KeptFileError if `csv_path` is an existing study journal, study manifest or run file: a slip
    of tab completion (in the CLI or the app) must not replace a study or a run with a table."""
    csv_path = Path(csv_path)
    try:
        if not csv_path.exists():
            return
    except (OSError, ValueError):  # a name too long to exist: writing it fails and says so
        return
    from fcn_tui.studies.store import JOURNAL  # optuna: only when the file is there to compare

    if csv_path.name in (JOURNAL, STUDY_MANIFEST, *RUN_FILES):
        raise KeptFileError(f"{csv_path}: a file fcn-tui keeps a study or a run in")


def per_epoch_rows(records) -> list[dict]:
    rows = []
    for record in records:
        head = {k: v for k, v in result_row(record).items() if k in PER_EPOCH_COLUMNS}
        for metrics in record.metrics:
            rows.append({**head, **metrics, "epoch": int(metrics["epoch"])})
    return rows


def export_csv(folder: Path, csv_path: Path, per_epoch: bool = False,
               warn: Callable[[str], None] | None = None, records: list | None = None) -> int:
    """Write the CSV and return the number of data rows; `warn` gets one line per damaged run.
    `records` (a study's runs read from its storage) stand in for the folder's. KeptFileError if
    `csv_path` is a file a study or a run is kept in (`check_export_target`)."""
    check_export_target(csv_path)
    records = find_runs(folder) if records is None else records
    if not records:
        raise NoRunsError(f"{folder}: no runs found (expected run folders with config.toml or summary.json)")
    for record in records:
        if record.problems and warn is not None:
            warn(f"{record.path}: {record.status}: {record.reason}")
    if per_epoch:
        rows = per_epoch_rows(records)
        text = rows_to_csv(rows, PER_EPOCH_COLUMNS)
    else:
        rows = results_rows(records)
        text = rows_to_csv(rows, RESULT_COLUMNS)
    csv_path = Path(csv_path)
    try:
        csv_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise RunWriteError(f"{csv_path}: cannot create its folder ({err.strerror or err})") from None
    atomic_write_text(csv_path, text)
    return len(rows)
