"""The study benchmark: on tiny synthetic data it trains a study packed and one run at a time, and
reports both wall times, their ratio and how far the two tables are apart."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_study.py"


def test_smoke_run_times_a_study_packed_and_alone(synthetic_data_dir):
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--presets", "dropout", "batchnorm", "--epochs", "1", "--device", "cpu", "--set", "model.hidden=[16]",
         "--data-dir", str(synthetic_data_dir), "--json"],
        check=False, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout)
    assert results["runs"] == 4 and results["same_runs"] and results["statuses_agree"]
    walls = results["wall_s"]
    assert set(walls) == {"pack_1", "pack_auto"} and all(w > 0 for w in walls.values())
    assert abs(results["speedup"] - walls["pack_1"] / walls["pack_auto"]) <= 0.02  # of the unrounded times
    assert results["settings"]["presets"] == ["dropout", "batchnorm"]
    assert 0 <= results["max_val_acc_diff"] <= 0.05  # within rounding: the same runs, packed

    spec = importlib.util.spec_from_file_location("bench_study", SCRIPT)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    text = bench.table(results)
    assert "4 runs" in text and "pack auto" in text and "largest val acc difference" in text
    assert "median test acc difference" in text


def test_compare_amp_times_the_study_in_fp32_and_in_bf16(synthetic_data_dir):
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--presets", "dropout", "--epochs", "1", "--device", "cpu", "--set", "model.hidden=[16]",
         "--compare", "amp", "--pack", "1", "--threads", "1", "--data-dir", str(synthetic_data_dir), "--json"],
        check=False, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = json.loads(proc.stdout)
    assert results["runs"] == 2 and results["same_runs"] and results["statuses_agree"]
    assert list(results["wall_s"]) == ["pack_1_fp32", "pack_1_bf16"]  # the reference first
    assert results["settings"]["compare"] == "amp" and results["settings"]["threads"] == 1
    assert results["max_val_acc_diff"] is not None and results["max_val_acc_diff"] <= 1
    assert 0 <= results["median_val_acc_diff"] <= results["max_val_acc_diff"]
