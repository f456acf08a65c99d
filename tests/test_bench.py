"""The training benchmark: its floor counts the right FLOPs, its tutorial baseline reads the
same images as fcn-tui, its app figure trains from inside the app, and a smoke run on tiny data
reports every figure."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from fcn_tui.config import Config
from fcn_tui.data import load_fashion_mnist, make_split
from fcn_tui.model import build_mlp, training_flops_per_sample

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_train.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("bench_train", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("hidden", [[400, 400], [32], [64, 48, 16]])
def test_training_flops_match_pytorchs_own_count_of_a_training_step(hidden):
    cfg = Config().with_values({"model.hidden": hidden}).model
    model = build_mlp(cfg)
    x, y = torch.rand(8, 784), torch.randint(0, 10, (8,))  # the input needs no gradient
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(model(x), y).backward()
    assert counter.get_total_flops() == 8 * training_flops_per_sample(cfg)


def test_baseline_needs_2_2_megaflops_per_training_sample():
    # 784x400: forward + weight gradient; 400x400 and 400x10: forward + both gradients
    assert training_flops_per_sample(Config().model) == 2 * (784 * 400 * 2 + 400 * 400 * 3 + 400 * 10 * 3)


def test_tutorial_baseline_reads_the_same_images_as_fcn_tui(bench, synthetic_data_dir, tmp_path):
    from torchvision import datasets

    root = bench.torchvision_root(synthetic_data_dir, tmp_path)
    ours = load_fashion_mnist(synthetic_data_dir, download_missing=False)
    for train, images, labels in ((True, ours.train_images, ours.train_labels), (False, ours.test_images, ours.test_labels)):
        theirs = datasets.FashionMNIST(str(root), train=train, download=False)
        assert torch.equal(theirs.data.reshape(len(theirs), 784), images)
        assert torch.equal(theirs.targets, labels)
    assert not list(synthetic_data_dir.glob("FashionMNIST")), "the data folder is left untouched"


@pytest.mark.parametrize("batch", [64, 256])
def test_steps_option_shortens_the_training_split_to_that_many_batches(bench, batch):
    data = blank_dataset(60000)
    subset = bench.subset_for(7, batch, 0.1, len(data.train_images))
    split = make_split(data, 0.1, 0, subset)
    assert 7 * batch <= len(split.train_x) < 8 * batch
    assert bench.subset_for(None, batch, 0.1, 60000) == 0  # whole epochs use every image
    assert bench.subset_for(50, batch, 0.1, 600) == 0  # tiny data: all of it


def blank_dataset(n: int):
    from fcn_tui.data import FashionMNIST

    empty = torch.zeros(n, 784, dtype=torch.uint8)
    return FashionMNIST(empty, torch.zeros(n, dtype=torch.int64), empty[:10], torch.zeros(10, dtype=torch.int64), Path("."), True)


def test_gemm_timing_is_per_training_step(bench):
    seconds = bench.gemm_seconds_per_step((32,), 16, torch.device("cpu"), min_s=0.01)
    assert 0 < seconds < 1


@pytest.fixture(scope="module")
def smoke_results(synthetic_data_dir) -> dict:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--no-tui", "--json", "--device", "cpu", "--data-dir", str(synthetic_data_dir)],
        check=False, capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_smoke_run_measures_every_figure_on_tiny_data(smoke_results):
    figures = smoke_results["figures"]
    for name in ("help_s", "data_load_s"):
        assert figures[name] > 0, name
    for name in ("gemm_gflops", "floor_samples_per_s", "engine_samples_per_s", "tutorial_samples_per_s"):
        assert set(figures[name]) == {"64", "256"}
        assert all(value > 0 for value in figures[name].values()), name
    assert figures["help_imports"] == []  # `fcn-tui --help` loads no torch
    assert smoke_results["settings"]["official_data"] is False  # synthetic, and it says so
    assert smoke_results["settings"]["steps"] == 5
    assert smoke_results["device"] == "cpu"
    ratios = smoke_results["ratios"]
    assert ratios["engine_vs_tutorial_64"] == pytest.approx(figures["engine_samples_per_s"]["64"] / figures["tutorial_samples_per_s"]["64"])
    assert ratios["engine_vs_floor_256"] == pytest.approx(figures["engine_samples_per_s"]["256"] / figures["floor_samples_per_s"]["256"])
    assert ratios["tui_vs_headless_256"] is None and figures["tui_samples_per_s"] is None
    assert smoke_results["notes"]["tui_samples_per_s"].startswith("n/a")
    targets = smoke_results["targets"]
    assert targets["help_imports_no_torch"]["met"] is True
    assert targets["help_s"]["target"] == "<= 0.6"
    assert targets["engine_vs_tutorial_64"]["met"] == (ratios["engine_vs_tutorial_64"] >= 2.5)


def test_table_shows_machine_figures_ratios_and_targets(bench, smoke_results):
    text = bench.table(smoke_results)
    machine = smoke_results["machine"]
    assert f"torch {machine['torch']}" in text and f"{machine['cores']} cores" in text
    assert "NOT the official Fashion-MNIST" in text
    engine = smoke_results["figures"]["engine_samples_per_s"]
    row = next(line for line in text.splitlines() if line.startswith("engine_samples_per_s"))
    assert row.split()[1:] == [f"{engine['64']:,.0f}", f"{engine['256']:,.0f}"]
    assert "engine / tutorial @64" in text and ">= 2.5x" in text
    assert "tui_samples_per_s: n/a: skipped (--no-tui)" in text


def test_app_figure_trains_the_same_run_from_inside_the_app(bench, synthetic_data_dir):
    config = bench.baseline_config(256, 1, 0, "cpu", False, False)
    samples_per_s = bench.tui_samples_per_s(config, synthetic_data_dir)
    assert samples_per_s > 0


def test_busy_mode_alternates_idle_and_busy_and_reports_each_ones_ratio(bench, monkeypatch, tmp_path):
    """`--busy`: per repetition every mode idle, then every mode beside a running hog; the ratio
    is busy / idle of the medians and the target is the default's (fake runs, no training)."""
    speeds = {("default", False): 50_000, ("default", True): 40_000, ("old", False): 60_000, ("old", True): 3_000}
    calls = []

    def fake_child(mode, data_dir, steps):
        hogging = any(p.poll() is None for p in started)
        calls.append((mode, hogging))
        note = "CPU busy: ..." if mode == "default" and hogging else None
        return {"samples_per_s": speeds[mode, hogging], "threads": 1 if note else 2, "note": note}

    started = []
    real_popen = subprocess.Popen
    monkeypatch.setattr(bench.subprocess, "Popen", lambda *a, **k: started.append(real_popen(*a, **k)) or started[-1])
    monkeypatch.setattr(bench, "busy_child", fake_child)
    monkeypatch.setattr(bench.time, "sleep", lambda s: None)
    results = bench.run_busy(bench.parse_args(["--busy", "--reps", "2", "--data-dir", str(tmp_path)]))
    assert calls == [("default", False), ("old", False), ("default", True), ("old", True)] * 2
    assert all(p.poll() is not None for p in started)  # every hog ended
    assert results["ratios"] == {"default": 0.8, "old": 0.05}
    assert results["target"]["met"] is True
    table = bench.busy_table(results)
    assert "default (fcn_tui.cpu)" in table and "0.80x" in table and "0.05x" in table and "console: CPU busy" in table
