"""`fcn-tui export`: one CSV row per run found under a folder, or per run and epoch."""

import csv

from typer.testing import CliRunner

from fcn_tui.cli import app
from fcn_tui.config import Config
from fcn_tui.export import PER_EPOCH_COLUMNS
from fcn_tui.study import RESULT_COLUMNS
from tests.helpers import EXPECTED_HEADER, dead_pid, write_run_folder

runner = CliRunner()


def read_csv(path):
    with open(path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        return header, [dict(zip(header, row)) for row in reader]


CLI_RUN = "tiny,model.hidden=[8],train.epochs=1"  # the preset's name and what --set changed


def make_history(tmp_path, tiny_preset, synthetic_data_dir):
    """A finished CLI run, a run folder like the TUI leaves one, and an interrupted run."""
    out = tmp_path / "runs"
    result = runner.invoke(app, ["run", str(tiny_preset), "--data-dir", str(synthetic_data_dir), "--out", str(out),
                                 "--set", "model.hidden=[8]", "--set", "train.epochs=1"])
    assert result.exit_code == 0, result.output
    write_run_folder(out / "20260101-000000-from-the-tui", Config(name="from-the-tui"), "stopped", val_acc=0.5, epochs=3)
    write_run_folder(out / "20260101-000001-cut", Config(name="cut"), "running", val_acc=0.4, epochs=2, pid=dead_pid())
    return out


def test_export_writes_one_row_per_run_including_unfinished_ones(tmp_path, tiny_preset, synthetic_data_dir):
    out = make_history(tmp_path, tiny_preset, synthetic_data_dir)
    result = runner.invoke(app, ["export", str(out), "--csv", str(tmp_path / "all.csv")])
    assert result.exit_code == 0, result.output
    assert f"wrote 3 rows to {tmp_path / 'all.csv'}" in result.output
    header, rows = read_csv(tmp_path / "all.csv")
    assert header == EXPECTED_HEADER == list(RESULT_COLUMNS)
    by_name = {r["name"]: r for r in rows}
    cli_run = by_name[CLI_RUN]
    assert cli_run["status"] == "completed" and float(cli_run["test_acc"]) > 0.5
    assert cli_run["model.hidden"] == "[8]" and cli_run["optim.name"] == "adam"
    assert by_name["from-the-tui"]["status"] == "stopped" and by_name["from-the-tui"]["epochs_completed"] == "3"
    assert by_name["cut"]["status"] == "incomplete" and by_name["cut"]["epochs_completed"] == "2"


def test_export_per_epoch_writes_one_row_per_run_and_epoch(tmp_path, tiny_preset, synthetic_data_dir):
    out = make_history(tmp_path, tiny_preset, synthetic_data_dir)
    result = runner.invoke(app, ["export", str(out), "--csv", str(tmp_path / "epochs.csv"), "--per-epoch"])
    assert result.exit_code == 0, result.output
    header, rows = read_csv(tmp_path / "epochs.csv")
    assert header == list(PER_EPOCH_COLUMNS)
    assert header[:3] == ["run_id", "name", "status"] and header[-7:] == [
        "epoch", "train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_s"]
    assert [(r["name"], r["epoch"]) for r in rows] == [
        ("from-the-tui", "1"), ("from-the-tui", "2"), ("from-the-tui", "3"), ("cut", "1"), ("cut", "2"), (CLI_RUN, "1"),
    ]  # oldest first: the fabricated folders carry no start time


def test_export_of_a_folder_without_runs_is_one_clear_error(tmp_path):
    result = runner.invoke(app, ["export", str(tmp_path), "--csv", str(tmp_path / "x.csv")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"fcn-tui: error: {tmp_path}: no runs found (expected run folders with config.toml or summary.json)"]
    assert not (tmp_path / "x.csv").exists()


def test_export_to_an_unwritable_place_is_one_clear_line(tmp_path):
    from typer.testing import CliRunner

    from fcn_tui.cli import app

    run_dir = tmp_path / "runs" / "20260101-000000-x"
    run_dir.mkdir(parents=True)
    (run_dir / "config.toml").write_text('name = "x"\n')
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    result = CliRunner().invoke(app, ["export", str(tmp_path / "runs"), "--csv", str(blocker / "out.csv")])
    assert result.exit_code == 2
    assert result.output.strip() == f"fcn-tui: error: {blocker / 'out.csv'}: cannot create its folder (File exists)"
