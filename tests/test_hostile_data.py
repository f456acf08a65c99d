"""Hostile data and hostile sizes: gzip bombs, runs that would not fit in memory, a dataset that
cannot be downloaded. Each is refused early, with one line, and leaves nothing behind."""

from __future__ import annotations

import gzip
import time
import tracemalloc
from pathlib import Path

import pytest

from fcn_tui.data import LABELS_MAGIC, DataError, load_fashion_mnist
from tests.conftest import make_synthetic_dataset

INFLATED = 100 * 2**20  # what each bomb inflates to; the loader must never hold it


def write_bomb(path: Path, header: bytes) -> None:
    """A small .gz file holding `header` then INFLATED bytes of zeros (about 100 KB on disk)."""
    zeros = bytes(2**20)
    with gzip.open(path, "wb", compresslevel=9) as f:
        f.write(header)
        for _ in range(INFLATED // len(zeros)):
            f.write(zeros)


@pytest.mark.parametrize(
    "header, message",
    [
        (LABELS_MAGIC.to_bytes(4, "big") + (200).to_bytes(4, "big"),
         "header says 200 labels (200 bytes) but the file holds more than that"),
        (LABELS_MAGIC.to_bytes(4, "big") + (4_000_000_000).to_bytes(4, "big"),
         "header says 4000000000 labels, more than Fashion-MNIST's 60000"),
        (b"\x1f\x8b\x08\x00" + bytes(4), "not an IDX labels file (magic number 0x1f8b0800, expected 0x00000801)"),
    ],
    ids=["valid-header-then-zeros", "header-claims-too-many", "bad-magic"],
)
def test_a_gzip_bomb_is_refused_from_its_header_without_inflating_it(tmp_path, header, message):
    make_synthetic_dataset(tmp_path)
    bomb = tmp_path / "t10k-labels-idx1-ubyte.gz"
    write_bomb(bomb, header)
    assert bomb.stat().st_size < 1_000_000
    tracemalloc.start()
    started = time.perf_counter()
    try:
        with pytest.raises(DataError) as err:
            load_fashion_mnist(tmp_path, download_missing=False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 * 2**20, f"peak {peak / 2**20:.0f} MiB while reading a {INFLATED / 2**20:.0f} MiB bomb"
    assert time.perf_counter() - started < 5
    assert str(err.value) == f"{bomb}: {message}"


# --- runs that would not fit in memory -----------------------------------------------------------

HUGE = "[model]\nhidden = [50000, 50000, 50000, 50000, 50000, 50000, 50000, 50000, 50000, 50000]\n"


def test_a_model_too_big_for_memory_exits_2_at_once_and_creates_no_run(tmp_path, synthetic_data_dir):
    from typer.testing import CliRunner

    from fcn_tui.cli import app

    preset = tmp_path / "huge.toml"
    preset.write_text('name = "huge"\n' + HUGE + '[train]\ndevice = "cpu"\n')
    out = tmp_path / "runs"
    started = time.perf_counter()
    result = CliRunner().invoke(app, ["run", str(preset), "--data-dir", str(synthetic_data_dir), "--out", str(out)])
    assert result.exit_code == 2, (result.exit_code, result.output)
    assert time.perf_counter() - started < 10
    [line] = result.stderr.splitlines()
    # 22.5 billion parameters: 84 GiB of weights, as much again of gradients and of the step's temporary
    assert line.startswith("fcn-tui: error: huge: needs about 25")
    assert "GiB of memory" in line and "GiB available" in line and "model.hidden" in line
    assert "Traceback" not in result.output
    assert not out.exists() or not any(out.iterdir())


def test_the_app_refuses_the_same_run_before_it_starts(synthetic_data_dir):
    from fcn_tui.config import Config
    from fcn_tui.memory import MemoryCheckError
    from fcn_tui.tui.backend import TorchBackend

    backend = TorchBackend.load(synthetic_data_dir)
    config = Config(name="huge").with_values({"model.hidden": [50000] * 10, "train.device": "cpu"})
    with pytest.raises(MemoryCheckError, match=r"^huge: needs about .* GiB of memory .* GiB available"):
        backend.trainer(config, backend.split(config), lambda: False)


@pytest.mark.parametrize("values", [
    {}, {"model.hidden": [7, 3, 5], "model.batchnorm": True}, {"model.hidden": [1024, 1024], "model.dropout": 0.5},
])
def test_the_parameter_count_of_the_estimate_is_the_real_models(values):
    from fcn_tui.config import Config
    from fcn_tui.memory import count_parameters
    from fcn_tui.model import build_mlp

    config = Config().with_values(values)
    model = build_mlp(config.model)
    assert count_parameters(config.model) == sum(p.numel() for p in model.parameters())


def test_the_baseline_estimate_is_mostly_its_data_and_far_below_a_gigabyte():
    from fcn_tui.config import Config
    from fcn_tui.memory import dataset_sizes, estimate

    config = Config()  # two layers of 400, plain SGD, batches of 256
    need = estimate(config, *dataset_sizes(config))
    assert dataset_sizes(config) == (54000, 16000)
    assert 70000 * 784 * 4 <= need.data < 70000 * 784 * 5  # float32 copies of every image
    assert 478_410 * 4 * 3 == need.parameters  # weights, gradients, the step's temporary
    assert need.activations < 100 * 2**20
    assert 200 * 2**20 < need.total < 400 * 2**20
    adam = Config().with_values({"optim.name": "adam"})
    assert estimate(adam, 54000, 16000).parameters == 478_410 * 4 * 5
