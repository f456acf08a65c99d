"""Training on a busy CPU: OpenMP waits passively, the thread count comes from the free cores,
the console says so, and `--threads` still decides."""

import json
import os
import subprocess
import sys

import pytest
import torch
from typer.testing import CliRunner

from fcn_tui import cpu
from fcn_tui.cli import app

runner = CliRunner()
REAL_BUSY_CORES = cpu.busy_cores  # taken before conftest's fixture replaces it with an idle machine
WAIT_POLICY_CHILD = "import os, fcn_tui.cli, torch; print(os.environ.get('OMP_WAIT_POLICY'))"


def child_env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    return {**env, **extra}


def test_fcn_tui_leaves_openmps_wait_policy_alone():
    """Spinning waits are the fastest on an idle machine (passive ones cost 37 % there); a busy
    one is handled by the thread count instead."""
    ours = subprocess.run([sys.executable, "-c", WAIT_POLICY_CHILD], env=child_env(), capture_output=True, text=True, check=True)
    assert ours.stdout.strip() == "None"


@pytest.mark.parametrize(("cores", "busy", "default", "threads"), [
    (2, 0.1, 2, 2),  # idle: torch's own choice
    (2, 1.0, 2, 1),  # one hog: the free core
    (2, 1.6, 2, 1),
    (2, 3.0, 2, 1),  # more busy than cores: still one thread
    (16, 4.2, 8, 8),  # torch's choice (physical cores) fits in the free ones
    (16, 12.0, 8, 4),
])
def test_threads_are_the_free_cores_never_more_than_torchs_choice(cores, busy, default, threads):
    choice = cpu.choose_threads(cores, busy, default)
    assert choice.threads == threads
    assert (choice.note() is None) == (threads == default)


def test_busy_cores_counts_cpu_time_over_the_sample(monkeypatch):
    times = iter([(1000, 4000), (1150, 4200)])  # 150 of 200 jiffies busy on 2 CPUs
    monkeypatch.setattr(cpu, "_cpu_times", lambda: next(times))
    monkeypatch.setattr(cpu.os, "cpu_count", lambda: 2)
    assert REAL_BUSY_CORES(0.01) == pytest.approx(1.5)


def test_busy_cores_reads_this_machines_counters():
    assert 0.0 <= REAL_BUSY_CORES(0.05) <= (os.cpu_count() or 1) + 0.01


@pytest.fixture
def two_threads(monkeypatch):
    monkeypatch.delenv("OMP_NUM_THREADS")  # the thread count is fcn-tui's to choose here
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def run(tiny_preset, synthetic_data_dir, out, *extra):
    result = runner.invoke(app, ["run", str(tiny_preset), "--data-dir", str(synthetic_data_dir), "--out", str(out),
                                 "--set", "train.epochs=1", *extra])
    assert result.exit_code == 0, result.output
    [summary] = out.glob("*/summary.json")
    return result.output, json.loads(summary.read_text())


def test_a_run_on_a_busy_cpu_trains_on_the_free_core_and_says_so(monkeypatch, two_threads, tiny_preset, synthetic_data_dir, tmp_path):
    monkeypatch.setattr(cpu, "busy_cores", lambda *a, **k: 1.0)
    monkeypatch.setattr(cpu, "usable_cores", lambda: 2)
    output, summary = run(tiny_preset, synthetic_data_dir, tmp_path / "runs")
    assert "CPU busy: other processes use 1.0 of 2 cores; training with 1 thread instead of 2 (--threads N to choose)" in output
    assert summary["threads"] == 1


def test_threads_option_overrides_the_choice(monkeypatch, two_threads, tiny_preset, synthetic_data_dir, tmp_path):
    monkeypatch.setattr(cpu, "busy_cores", lambda *a, **k: 2.0)
    monkeypatch.setattr(cpu, "usable_cores", lambda: 2)
    output, summary = run(tiny_preset, synthetic_data_dir, tmp_path / "runs", "--threads", "2")
    assert "CPU busy" not in output
    assert summary["threads"] == 2


def test_an_idle_cpu_keeps_torchs_thread_count_without_a_word(two_threads, tiny_preset, synthetic_data_dir, tmp_path):
    output, summary = run(tiny_preset, synthetic_data_dir, tmp_path / "runs")
    assert "CPU busy" not in output
    assert summary["threads"] == 2


def test_cpu_model_names_the_processor(monkeypatch, tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: GenuineIntel\nmodel name\t: Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz\n")
    monkeypatch.setattr(cpu, "CPUINFO", info)
    cpu.cpu_model.cache_clear()
    try:
        assert cpu.cpu_model() == "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz"
        monkeypatch.setattr(cpu, "CPUINFO", tmp_path / "absent")
        cpu.cpu_model.cache_clear()
        assert cpu.cpu_model()  # the architecture, never empty
    finally:
        cpu.cpu_model.cache_clear()


def test_a_thread_count_set_in_the_environment_is_kept_without_looking_at_the_load(monkeypatch, two_threads,
                                                                               tiny_preset, synthetic_data_dir, tmp_path):
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # as a batch system sets it
    monkeypatch.setattr(cpu, "busy_cores", lambda *a, **k: 1.0)
    monkeypatch.setattr(cpu, "usable_cores", lambda: 2)
    output, summary = run(tiny_preset, synthetic_data_dir, tmp_path / "runs")
    assert "CPU busy" not in output
    assert summary["threads"] == 2
