"""`fcn-tui run ... --resume`: completed runs with the same configuration are skipped, the others
run again, and no completed result is ever deleted."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fcn_tui.cli import app
from fcn_tui.runs import read_run
from tests.conftest import TINY_PRESET

runner = CliRunner()


@pytest.fixture
def sweep(tmp_path) -> Path:
    path = tmp_path / "sweep.toml"
    path.write_text(TINY_PRESET.replace("epochs = 2", "epochs = 1") + "\n[sweep]\n'optim.lr' = [0.01, 0.02, 0.03]\n")
    return path


def run(preset: Path, data: Path, out: Path, *extra: str):
    result = runner.invoke(app, ["run", str(preset), "--data-dir", str(data), "--out", str(out), *extra])
    assert result.exit_code == 0, result.stdout + result.stderr
    return result


def statuses(study: Path) -> list[tuple[str, str]]:
    with open(study / "results.csv", newline="") as f:
        return [(row["run_id"], row["status"]) for row in csv.DictReader(f)]


def test_resume_skips_completed_runs_and_reruns_the_others(sweep, synthetic_data_dir, tmp_path):
    out = tmp_path / "out"
    run(sweep, synthetic_data_dir, out)
    (study,) = out.iterdir()
    first, second, third = sorted(p for p in study.iterdir() if p.is_dir())
    # run 2 was stopped by Ctrl-C; run 3 was killed while running (its process is gone)
    for run_dir, status in ((second, "stopped"), (third, "running")):
        summary = json.loads((run_dir / "summary.json").read_text())
        summary.update(status=status, pid=2**22 + 1)
        (run_dir / "summary.json").write_text(json.dumps(summary))
    assert read_run(third).status == "incomplete"
    kept = (first / "summary.json").read_bytes(), (first / "model.pt").stat().st_mtime_ns

    result = run(sweep, synthetic_data_dir, out, "--resume")

    assert sorted(out.iterdir()) == [study]  # the same study folder, no new one
    assert "optim.lr=0.01: already completed" in " ".join(result.stdout.split())
    assert ((first / "summary.json").read_bytes(), (first / "model.pt").stat().st_mtime_ns) == kept
    assert statuses(study) == [(first.name, "completed"), (second.name, "completed"), (third.name, "completed")]
    assert sorted(p for p in study.iterdir() if p.is_dir()) == [first, second, third]


def test_resume_with_a_changed_configuration_is_a_new_study_and_keeps_the_old_one(sweep, synthetic_data_dir, tmp_path):
    out = tmp_path / "out"
    run(sweep, synthetic_data_dir, out)
    (study,) = out.iterdir()
    old = {p.name: p.read_bytes() for p in study.rglob("*") if p.is_file()}

    result = run(sweep, synthetic_data_dir, out, "--resume", "--set", "train.batch_size=64")

    assert "already completed" not in result.stdout
    (new_study,) = set(out.iterdir()) - {study}
    assert new_study.name.endswith("tiny,train.batch_size=64")  # named after what --set changed
    rows = statuses(new_study)
    assert [status for _, status in rows] == ["completed"] * 3
    assert {read_run(new_study / run_id).config.train.batch_size for run_id, _ in rows} == {64}
    assert {p.name: p.read_bytes() for p in study.rglob("*") if p.is_file()} == old  # untouched


def test_resume_of_a_single_run_preset_skips_it_when_completed(tiny_preset, synthetic_data_dir, tmp_path):
    out = tmp_path / "out"
    run(tiny_preset, synthetic_data_dir, out, "--set", "train.epochs=1")
    before = sorted(out.iterdir())
    result = run(tiny_preset, synthetic_data_dir, out, "--set", "train.epochs=1", "--resume")
    assert "already completed" in result.stdout
    assert sorted(out.iterdir()) == before
    run(tiny_preset, synthetic_data_dir, out, "--set", "train.epochs=1", "--set", "optim.lr=0.02", "--resume")
    assert len(list(out.iterdir())) == 2  # a different configuration is a new run
