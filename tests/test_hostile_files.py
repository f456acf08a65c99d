"""Hostile run folders and output paths: what a damaged, planted or full disk does to every reader
and writer of run folders.

A user's session: runs under `runs/`, one of them damaged (random bytes, a JSON bomb, values of
the wrong type), then `fcn-tui export`, `fcn-tui plot`, `fcn-tui run --resume` and the app's
Runs tab. The damaged run is listed as `unreadable` (or its bad value left out) with a one-line
warning, and never hides or breaks the others. Writes never follow a link planted beside them,
CSV cells never run as spreadsheet formulas, and a full disk leaves the run `failed` saying so.
"""

from __future__ import annotations

import csv
import errno
import json
import os
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from fcn_tui.cli import app
from fcn_tui.config import Config
from fcn_tui.runs import RunRecorder, RunWriteError, find_runs, read_run
from tests.helpers import TINY_PRESET, write_run_folder

runner = CliRunner()
GOOD, BAD = "20260101-000000-good", "20260101-000001-bad"
RANDOM_BYTES = bytes(range(128, 256))  # not UTF-8 anywhere


def history(tmp_path: Path) -> Path:
    """`runs/` with one completed run and one more run folder (the one a test damages)."""
    out = tmp_path / "runs"
    write_run_folder(out / GOOD, Config(name="good"), "completed", val_acc=0.8, epochs=2)
    write_run_folder(out / BAD, Config(name="bad"), "completed", val_acc=0.7, epochs=2)
    return out


def cli(*args: str):
    result = runner.invoke(app, [str(a) for a in args])
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    return result


def read_csv(path: Path) -> list[dict[str, str]]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def summary(run_dir: Path) -> dict:
    return json.loads((run_dir / "summary.json").read_text())


# --- damaged run folders -------------------------------------------------------------------

DAMAGE = {  # file -> content that no version of the program writes
    "metrics-random-bytes": ("metrics.csv", RANDOM_BYTES),
    "config-random-bytes": ("config.toml", RANDOM_BYTES),  # and no summary.json
    "metrics-huge-field": ("metrics.csv", b"epoch," + b"9" * 200_000 + b"\n"),
    "summary-random-bytes": ("summary.json", RANDOM_BYTES),
    "summary-nested-brackets": ("summary.json", b"[" * 100_000 + b"]" * 100_000),
    "summary-not-an-object": ("summary.json", b'["completed", 0.9]'),
    "summary-truncated": ("summary.json", b'{"name": "bad", "status": "compl'),
    "config-huge-integer": ("config.toml", b"[train]\nepochs = " + b"1" * 5000 + b"\n"),
}


def damage(out: Path, kind: str) -> None:
    name, content = DAMAGE[kind]
    (out / BAD / name).write_bytes(content)
    if name == "config.toml":
        (out / BAD / "summary.json").unlink()  # as if the run was killed before its first summary


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_export_lists_a_damaged_run_as_unreadable_and_keeps_the_others(tmp_path, kind):
    out = history(tmp_path)
    damage(out, kind)
    result = cli("export", out, "--csv", tmp_path / "all.csv")
    assert result.exit_code == 0, result.output
    rows = {row["run_id"]: row for row in read_csv(tmp_path / "all.csv")}
    assert rows[GOOD]["status"] == "completed" and float(rows[GOOD]["val_acc"]) == 0.8
    assert rows[BAD]["status"] == "unreadable" and rows[BAD]["val_acc"] == ""
    (warning,) = [line for line in result.stderr.splitlines() if "warning" in line]
    assert warning.startswith(f"fcn-tui: warning: {out / BAD}: unreadable: {DAMAGE[kind][0]}")


@pytest.mark.parametrize("kind", ["metrics-random-bytes", "summary-nested-brackets", "summary-random-bytes"])
def test_plot_skips_a_damaged_run_with_a_warning_and_draws_the_others(tmp_path, kind):
    out = history(tmp_path)
    damage(out, kind)
    result = cli("plot", out, "--out", tmp_path / "figures")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "figures" / "runs" / f"{GOOD}-curves.png").stat().st_size > 1000
    assert not (tmp_path / "figures" / "runs" / f"{BAD}-curves.png").exists()
    assert f"fcn-tui: warning: {out / BAD}: unreadable, skipped: {DAMAGE[kind][0]}" in result.stderr


@pytest.mark.parametrize("content", [b"", b"true\\predicted,a,b\na,1\n", b"true\\predicted,a\na,many\n", RANDOM_BYTES],
                         ids=["empty", "not-square", "not-a-count", "random-bytes"])
def test_a_damaged_confusion_csv_skips_only_its_own_figure(tmp_path, content):
    out = history(tmp_path)
    (out / BAD / "confusion.csv").write_bytes(content)
    result = cli("plot", out, "--out", tmp_path / "figures")
    assert result.exit_code == 0, result.output
    figures = tmp_path / "figures" / "runs"
    assert {p.name for p in figures.iterdir()} == {f"{GOOD}-curves.png", f"{BAD}-curves.png", "loss.png", "val_acc.png"}
    assert f"fcn-tui: warning: {out / BAD}: confusion.csv" in result.stderr
    assert "its confusion figure is skipped" in result.stderr


BAD_VALUES = {  # summary.json key -> a value of the wrong type (json.dumps writes NaN as NaN)
    "wall_s": "abc",
    "best_val_acc": "x",
    "test_acc": float("nan"),
    "epochs_completed": float("inf"),
    "started_at": 5,
}


@pytest.mark.parametrize("key", sorted(BAD_VALUES))
def test_a_summary_value_of_the_wrong_type_is_left_out_by_every_table(tmp_path, key):
    from rich.console import Console

    from fcn_tui.console import Reporter
    from fcn_tui.study import results_markdown
    from fcn_tui.tables import comparison_table

    out = history(tmp_path)
    data = summary(out / BAD)
    data[key] = BAD_VALUES[key]
    (out / BAD / "summary.json").write_text(json.dumps(data))
    records = find_runs(out)
    bad = next(r for r in records if r.run_id == BAD)
    assert bad.status == "completed" and bad.get(key) is None
    assert bad.reason == f"summary.json: {key} = {BAD_VALUES[key]!r} is not {'text' if key == 'started_at' else 'a finite number'}, left out"
    console = Console(width=150, record=True)
    Reporter(console, interactive=False).summary_table(records)  # the end-of-run table
    console.print(comparison_table(records))
    text = console.export_text() + results_markdown(records, "runs")
    assert "good" in text and "bad" in text
    result = cli("export", out, "--csv", tmp_path / "all.csv")
    assert result.exit_code == 0 and f"warning: {out / BAD}: completed: summary.json: {key}" in result.stderr


async def test_the_runs_tab_lists_damaged_runs_sorts_them_and_exports(tmp_path):
    from fcn_tui.tui.app import FcnApp
    from tests.scripted import ScriptedBackend

    out = history(tmp_path)
    damage(out, "metrics-random-bytes")
    for i, (key, value) in enumerate(BAD_VALUES.items()):
        write_run_folder(out / f"20260101-00001{i}-odd", Config(name=f"odd{i}"), "completed", val_acc=0.6, epochs=1)
        data = summary(out / f"20260101-00001{i}-odd")
        (out / f"20260101-00001{i}-odd" / "summary.json").write_text(json.dumps({**data, key: value}))
    app = FcnApp(out=out, backend_factory=ScriptedBackend)
    async with app.run_test(size=(120, 40)) as pilot:
        await app.workers.wait_for_complete()
        await pilot.pause()
        await pilot.press("f4")  # the Runs tab
        table = app.query_one("#runs-table")
        assert table.row_count == 2 + len(BAD_VALUES)
        statuses = {str(table.get_row_at(i)[1]): str(table.get_row_at(i)[2]) for i in range(table.row_count)}
        assert statuses["bad"] == "unreadable" and statuses["good"] == "completed"
        for _ in range(len(app.runs_view.table.columns)):  # every sort column, then newest first again
            await pilot.press("s")
        await pilot.press("r")
        assert table.row_count == 2 + len(BAD_VALUES)
        await pilot.press("ctrl+e")  # export every run to CSV
        app.screen.query_one("#path-input").value = str(tmp_path / "table.csv")
        await pilot.press("enter")
        await pilot.pause()
        assert app.is_running
    rows = {row["run_id"]: row["status"] for row in read_csv(tmp_path / "table.csv")}
    assert rows[BAD] == "unreadable" and rows[GOOD] == "completed" and len(rows) == 2 + len(BAD_VALUES)


def sweep_preset(tmp_path: Path) -> Path:
    path = tmp_path / "study.toml"
    path.write_text(TINY_PRESET.replace("epochs = 2", "epochs = 1") + "\n[sweep]\n'optim.lr' = [0.01, 0.02]\n")
    return path


def test_resume_keeps_a_damaged_run_folder_and_runs_it_again_beside_it(tmp_path, synthetic_data_dir):
    preset, out = sweep_preset(tmp_path), tmp_path / "out"
    assert cli("run", preset, "--data-dir", synthetic_data_dir, "--out", out).exit_code == 0
    (study,) = out.iterdir()
    first = min(p for p in study.iterdir() if p.is_dir())
    (first / "metrics.csv").write_bytes(RANDOM_BYTES)
    result = cli("run", preset, "--data-dir", synthetic_data_dir, "--out", out, "--resume")
    assert result.exit_code == 0, result.output
    assert (first / "metrics.csv").read_bytes() == RANDOM_BYTES  # kept for the user to look at
    statuses = sorted(row["status"] for row in read_csv(study / "results.csv"))
    assert statuses == ["completed", "completed"]  # the damaged one ran again, in a new folder
    assert read_run(first).status == "unreadable"


@pytest.mark.parametrize("epoch", ["nan", "inf", "0"])
def test_export_per_epoch_leaves_out_metric_rows_without_a_real_epoch(tmp_path, epoch):
    out = history(tmp_path)
    with open(out / BAD / "metrics.csv", "a") as f:
        f.write(f"{epoch},0.5,0.8,0.6,0.7,0.001,1.0\n")
    result = cli("export", out, "--csv", tmp_path / "epochs.csv", "--per-epoch")
    assert result.exit_code == 0, result.output
    assert [(r["name"], r["epoch"]) for r in read_csv(tmp_path / "epochs.csv")] == [
        ("good", "1"), ("good", "2"), ("bad", "1"), ("bad", "2")]


# --- links planted where the program writes -----------------------------------------------


def test_a_link_planted_at_the_results_temp_file_is_not_followed_on_resume(tmp_path, synthetic_data_dir):
    preset, out = sweep_preset(tmp_path), tmp_path / "out"
    assert cli("run", preset, "--data-dir", synthetic_data_dir, "--out", out).exit_code == 0
    (study,) = out.iterdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    for name in ("results.csv", "results.md", "sweep.toml"):
        (study / f".{name}.tmp").symlink_to(victim)
    assert cli("run", preset, "--data-dir", synthetic_data_dir, "--out", out, "--resume").exit_code == 0
    assert victim.read_text() == "precious\n"
    assert len(read_csv(study / "results.csv")) == 2


def test_resume_does_not_delete_through_a_run_folder_planted_as_a_link(tmp_path, synthetic_data_dir):
    preset, out = sweep_preset(tmp_path), tmp_path / "out"
    assert cli("run", preset, "--data-dir", synthetic_data_dir, "--out", out).exit_code == 0
    (study,) = out.iterdir()
    first = min(p for p in study.iterdir() if p.is_dir())
    elsewhere = tmp_path / "elsewhere"
    first.rename(elsewhere)
    (elsewhere / "summary.json").write_text(json.dumps({**summary(elsewhere), "status": "stopped"}))
    first.symlink_to(elsewhere, target_is_directory=True)
    result = cli("run", preset, "--data-dir", synthetic_data_dir, "--out", out, "--resume")
    assert result.exit_code == 0, result.output
    assert first.is_symlink() and summary(elsewhere)["status"] == "stopped"  # left alone
    assert sorted(row["status"] for row in read_csv(study / "results.csv")) == ["completed", "completed"]


def test_export_does_not_follow_a_link_planted_at_its_temp_file(tmp_path):
    out = history(tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    (tmp_path / ".all.csv.tmp").symlink_to(victim)
    assert cli("export", out, "--csv", tmp_path / "all.csv").exit_code == 0
    assert victim.read_text() == "precious\n" and len(read_csv(tmp_path / "all.csv")) == 2


def test_plot_replaces_a_link_planted_at_a_figure_instead_of_writing_through_it(tmp_path):
    out = history(tmp_path)
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    figures = tmp_path / "figures" / "runs"
    figures.mkdir(parents=True)
    (figures / f"{GOOD}-curves.png").symlink_to(victim)
    assert cli("plot", out, "--out", tmp_path / "figures").exit_code == 0
    assert victim.read_text() == "precious\n"
    curves = figures / f"{GOOD}-curves.png"
    assert not curves.is_symlink() and curves.read_bytes().startswith(b"\x89PNG")


def test_metrics_are_never_appended_through_a_planted_link(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.csv").symlink_to(victim)
    with pytest.raises(RunWriteError, match="metrics.csv: cannot write \\(a symbolic link is in the way; not followed\\)"):
        RunRecorder(run_dir, Config(name="x"))
    assert victim.read_text() == "precious\n"


# --- CSV formula injection ----------------------------------------------------------------


@pytest.mark.parametrize(("name", "cell"), [
    ('=HYPERLINK("http://evil.example","click")', '\'=HYPERLINK("http://evil.example","click")'),
    ("+1+2", "'+1+2"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\tcmd", "\\tcmd"), ("\r=1", "\\r=1"),  # control characters are read back escaped, as text
])
def test_a_run_name_a_spreadsheet_would_run_is_neutralised_in_export(tmp_path, name, cell):
    out = tmp_path / "runs"
    write_run_folder(out / GOOD, Config(name="good"), "completed", val_acc=0.8, epochs=1)
    data = summary(out / GOOD)
    (out / GOOD / "summary.json").write_text(json.dumps({**data, "name": name, "device": "-cpu", "wall_s": -1.5}))
    assert cli("export", out, "--csv", tmp_path / "all.csv").exit_code == 0
    (row,) = read_csv(tmp_path / "all.csv")
    assert row["name"] == cell and row["device"] == "'-cpu"
    assert row["wall_s"] == "-1.5"  # a number stays a number, sign and all


def test_a_formula_run_name_is_neutralised_in_results_csv(tmp_path):
    from fcn_tui.study import write_results

    out = history(tmp_path)
    data = summary(out / BAD)
    (out / BAD / "summary.json").write_text(json.dumps({**data, "name": '=HYPERLINK("http://evil.example","x")'}))
    csv_path, _ = write_results(out, find_runs(out), "study")
    names = [row["name"] for row in read_csv(csv_path)]
    assert names == ["good", '\'=HYPERLINK("http://evil.example","x")']


# --- a full disk --------------------------------------------------------------------------


@pytest.fixture
def full_disk(monkeypatch):
    """Call `fill()` and from then on every write that needs new space fails with ENOSPC: new
    (temporary) files and appends to metrics.csv; rewriting a file's own blocks still works."""
    real_fsync, state = os.fsync, {"full": False}

    def fsync(fd):
        target = os.readlink(f"/proc/self/fd/{fd}")
        if state["full"] and target.endswith((".tmp", "metrics.csv")):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return lambda: state.update(full=True)


pytestmark_linux = pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="needs /proc (Linux)")


def run_tiny(tmp_path: Path, data_dir: Path):
    preset = tmp_path / "tiny.toml"
    preset.write_text(TINY_PRESET)
    result = cli("run", preset, "--data-dir", data_dir, "--out", tmp_path / "out")
    (run_dir,) = (tmp_path / "out").iterdir()
    return result, run_dir


@pytestmark_linux
def test_the_disk_filling_up_while_saving_the_model_leaves_the_run_failed_saying_disk_full(
        tmp_path, synthetic_data_dir, monkeypatch, full_disk):
    real_save = torch.save

    def save_on_a_full_disk(obj, f, *args, **kwargs):
        if ".model.pt." not in os.readlink(f"/proc/self/fd/{f.fileno()}"):  # earlier checkpoints fit
            return real_save(obj, f, *args, **kwargs)
        full_disk()
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", save_on_a_full_disk)
    result, run_dir = run_tiny(tmp_path, synthetic_data_dir)
    assert result.exit_code == 1
    assert "model.pt: cannot write (disk full" in " ".join(result.output.split())
    data = summary(run_dir)
    assert data["status"] == "failed" and "model.pt: cannot write (disk full" in data["error"]
    assert not (run_dir / "model.pt").exists() and not list(run_dir.glob(".*.tmp"))
    assert read_run(run_dir).status == "failed"


@pytestmark_linux
def test_the_disk_filling_up_between_epochs_leaves_the_run_failed_saying_disk_full(
        tmp_path, synthetic_data_dir, monkeypatch, full_disk):
    real_append = RunRecorder._append_line

    def append(self, line):
        if line.startswith("2,"):  # the second epoch's row
            full_disk()
        return real_append(self, line)

    monkeypatch.setattr(RunRecorder, "_append_line", append)
    result, run_dir = run_tiny(tmp_path, synthetic_data_dir)
    assert result.exit_code == 1
    data = summary(run_dir)
    assert data["status"] == "failed"
    assert data["error"] == f"{run_dir / 'metrics.csv'}: cannot write (disk full: {os.strerror(errno.ENOSPC)})"
    assert data["epochs_completed"] == 1


def test_torch_losing_errno_on_a_full_disk_still_says_disk_full(tmp_path, synthetic_data_dir, monkeypatch):
    """torch's zip writer reports ENOSPC as `unexpected pos 1088 vs 982`; free space tells."""
    class NoSpace:
        f_bavail, f_frsize = 0, 4096

    def save(obj, f, *args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:603] . unexpected pos 1088 vs 982")

    monkeypatch.setattr(torch, "save", save)
    monkeypatch.setattr(os, "statvfs", lambda path: NoSpace())
    result, run_dir = run_tiny(tmp_path, synthetic_data_dir)
    assert result.exit_code == 1
    data = summary(run_dir)
    assert data["status"] == "failed"
    assert data["error"] == f"{run_dir / 'model.pt'}: cannot write (disk full: {os.strerror(errno.ENOSPC)})"


def test_escape_sequences_in_a_summary_never_reach_the_terminal(tmp_path):
    out = history(tmp_path)
    data = summary(out / BAD)
    (out / BAD / "summary.json").write_text(json.dumps({**data, "name": "\x1b]0;pwned\x07bad", "error": "\x1b[2J"}))
    record = read_run(out / BAD)
    assert record.name == "\\x1b]0;pwned\\x07bad" and record.get("error") == "\\x1b[2J"
    result = cli("export", out, "--csv", tmp_path / "all.csv")
    assert result.exit_code == 0 and "\x1b" not in result.output
