"""The CUDA path of the engine: the whole split lives on the GPU, no host sync per training step,
bf16 autocast (`train.amp`) and `torch.compile` (`train.compile`) train as well as fp32, and the
benchmark runs there. Skipped where no CUDA GPU is present."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

from fcn_tui import events as ev
from fcn_tui.config import Config
from fcn_tui.data import Split
from fcn_tui.engine import Trainer, cuda_available
from tests.helpers import synthetic_images

pytestmark = pytest.mark.skipif(not cuda_available(), reason="needs a CUDA GPU")

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_train.py"
SMALL = {"model.hidden": [64], "optim.name": "adam", "optim.lr": 0.01, "train.epochs": 2,
         "train.batch_size": 256, "train.device": "cuda"}


def gpu_split(n_train: int, n_val: int = 1000, n_test: int = 1000) -> Split:
    """Synthetic learnable images, as uint8 (N, 784) on the host like the real loader's."""
    x, y = synthetic_images(n_train + n_val, seed=1)
    test_x, test_y = synthetic_images(n_test, seed=2)
    x = x.reshape(len(x), 784)
    return Split(x[:n_train], y[:n_train], x[n_train:], y[n_train:], test_x.reshape(n_test, 784), test_y)


def train(values: dict, split: Split, **kw) -> tuple[Trainer, list]:
    trainer = Trainer(Config().with_values({**SMALL, **values}), split, **kw)
    return trainer, list(trainer.events())


def test_cuda_run_learns_with_the_whole_split_in_gpu_memory():
    split = gpu_split(20000)
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    trainer = Trainer(Config().with_values(SMALL), split)
    in_use = None
    events = []
    for event in trainer.events():
        if isinstance(event, ev.BatchProgress) and in_use is None:
            in_use = torch.cuda.memory_allocated() - before
        events.append(event)
    started, finished = events[0], events[-1]
    assert started.device.startswith("cuda") and started.device_name == torch.cuda.get_device_name()
    assert finished.status == ev.COMPLETED and finished.test_acc > 0.9
    assert in_use >= 20000 * 784 * 4  # the training images as float32, on the GPU
    assert all(p.device.type == "cuda" for p in trainer.model.parameters())


def count_syncs(values: dict, split: Split) -> int:
    """Synchronising CUDA calls made during one run, as reported by PyTorch's sync debug mode."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            _, events = train(values, split)
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert events[-1].status == ev.COMPLETED
    return sum("synchroniz" in str(w.message) for w in caught)


def test_host_syncs_do_not_grow_with_the_number_of_steps():
    # one epoch of 20 steps against one of 80: the engine reads the loss once per 10 steps
    # (PROGRESS_EVERY), so 60 more steps may add at most 6 reads, not 60
    values = {"train.epochs": 1, "train.batch_size": 64}
    count_syncs(values, gpu_split(64 * 20))  # warm-up: one-time syncs (allocator, cuBLAS) out of the way
    short = count_syncs(values, gpu_split(64 * 20))
    long = count_syncs(values, gpu_split(64 * 80))
    assert short > 0  # the counter sees the syncs there are (loss reads, evaluation)
    assert long - short <= 7


def test_bf16_autocast_trains_as_well_as_fp32():
    split = gpu_split(10000)
    trainer, events = train({"train.amp": True, "train.epochs": 1}, split, progress_every=1)
    _, fp32 = train({"train.epochs": 1}, split)
    assert events[-1].status == ev.COMPLETED
    assert events[-1].test_acc > 0.9 and abs(events[-1].test_acc - fp32[-1].test_acc) < 0.05
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # master weights stay fp32


def test_bf16_autocast_runs_the_layers_in_bfloat16(monkeypatch):
    from fcn_tui import pack

    dtypes = set()
    real = pack.stacked_linear
    monkeypatch.setattr(pack, "stacked_linear", lambda *args: dtypes.add(real(*args).dtype) or real(*args))
    train({"train.amp": True, "train.epochs": 1}, gpu_split(4096), progress_every=1)
    assert torch.bfloat16 in dtypes


def test_compiled_model_trains_to_the_same_accuracy():
    split = gpu_split(10000)
    _, events = train({"train.compile": True, "train.epochs": 1}, split)
    _, eager = train({"train.epochs": 1}, split)
    assert events[-1].status == ev.COMPLETED, events[-1].error
    assert events[-1].test_acc > 0.9 and abs(events[-1].test_acc - eager[-1].test_acc) < 0.05


def test_benchmark_runs_on_the_gpu(synthetic_data_dir):
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--tiny", "--no-tui", "--json", "--device", "cuda", "--amp",
         "--data-dir", str(synthetic_data_dir)],
        check=False, capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    results = json.loads(proc.stdout)
    assert results["device"].startswith("cuda")
    assert results["machine"]["gpu"] == torch.cuda.get_device_name()
    assert results["settings"]["amp"] is True
    assert all(v > 0 for v in results["figures"]["engine_samples_per_s"].values())
    assert all(v > 0 for v in results["figures"]["gemm_gflops"].values())


def test_a_pack_trains_every_member_on_the_gpu_as_it_would_alone():
    from fcn_tui.engine import Member, PackTrainer

    split = gpu_split(10000)
    configs = [Config().with_values({**SMALL, "train.epochs": 1, **v}) for v in
               ({}, {"optim.name": "sgd", "optim.lr": 0.1, "optim.momentum": 0.9}, {"model.dropout": 0.2, "data.augment": "flip"})]
    pack = PackTrainer([Member(c) for c in configs], split)
    finished = {i: e for i, e in pack.events() if isinstance(e, ev.RunFinished)}
    for i, config in enumerate(configs):
        _, lone = train({**{k: config.get(k) for k in ("optim.name", "optim.lr", "optim.momentum", "model.dropout",
                                                        "data.augment")}, "train.epochs": 1}, split)
        assert finished[i].status == ev.COMPLETED and finished[i].test_acc > 0.9
        assert abs(finished[i].test_acc - lone[-1].test_acc) < 0.02
