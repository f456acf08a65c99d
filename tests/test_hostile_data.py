"""Hostile data and hostile sizes: gzip bombs, runs that would not fit in memory, a dataset that
cannot be downloaded. Each is refused early, with one line, and leaves nothing behind."""

from __future__ import annotations

import gzip
import time
import tracemalloc
from pathlib import Path

import pytest

from fcn_tui.data import LABELS_MAGIC, DataError, load_fashion_mnist
from fcn_tui.data import unreachable as real_unreachable  # conftest fakes it for every test: keep the real one
from tests.helpers import make_synthetic_dataset

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


def test_the_app_refuses_the_same_run_before_it_starts(synthetic_data_dir, tmp_path):
    import threading

    from fcn_tui.config import Config, Preset
    from fcn_tui.tui.backend import TorchBackend
    from fcn_tui.tui.messages import QueueDone, RunError
    from fcn_tui.tui.training import run_queue

    backend = TorchBackend.load(synthetic_data_dir)
    config = Config(name="huge").with_values({"model.hidden": [50000] * 10, "train.device": "cpu"})
    posted = []
    run_queue([Preset(config=config)], tmp_path / "runs", backend, threading.Event(), posted.append)
    [error, done] = posted
    assert isinstance(error, RunError) and isinstance(done, QueueDone)
    assert error.name == "huge" and error.error.startswith("needs about 25")
    assert "GiB available" in error.error and "model.hidden" in error.error
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())


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


def test_the_baseline_estimate_is_mostly_its_data_and_below_a_gigabyte():
    from fcn_tui.config import Config
    from fcn_tui.memory import dataset_sizes, estimate

    config = Config()  # two layers of 400, plain SGD, batches of 256
    need = estimate(config, *dataset_sizes(config))
    assert dataset_sizes(config) == (54000, 16000)
    assert 70000 * 784 * 4 <= need.data < 70000 * 784 * 5  # float32 copies of every image
    assert 478_410 * 4 * 3 == need.parameters  # weights, gradients, the step's temporary
    assert need.activations < 100 * 2**20
    assert 400 * 2**20 < need.total < 640 * 2**20  # with PyTorch's own 192 MiB
    adam = Config().with_values({"optim.name": "adam"})
    assert estimate(adam, 54000, 16000).parameters == 478_410 * 4 * 5


# --- a dataset that cannot be downloaded ---------------------------------------------------------


def urlopen_offline(*args, **kwargs):
    """What urllib raises on a machine without a network route."""
    import urllib.error

    raise urllib.error.URLError(OSError(101, "Network is unreachable"))


def test_offline_the_check_of_the_mirror_names_the_host_and_the_reason_within_seconds(tmp_path, monkeypatch):
    import socket

    import torchvision.datasets

    def no_route(address, *args, **kwargs):
        raise OSError(101, "Network is unreachable")

    monkeypatch.setattr("fcn_tui.data.unreachable", real_unreachable)
    monkeypatch.setattr(socket, "create_connection", no_route)
    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", lambda *a, **k: pytest.fail("tried to download"))
    started = time.perf_counter()
    with pytest.raises(DataError) as err:
        load_fashion_mnist(tmp_path / "data")
    assert time.perf_counter() - started < 5
    message = str(err.value)
    assert "could not reach fashion-mnist.s3-website.eu-central-1.amazonaws.com: Network is unreachable;" in message
    assert "--data-dir DIR" in message and "FCN_TUI_DATA" in message and "\n" not in message
    assert not (tmp_path / "data").exists()


def test_a_mirror_that_does_not_answer_in_time_is_given_up_on(monkeypatch):
    import socket
    import threading

    release = threading.Event()

    def no_answer(*args, **kwargs):
        release.wait(30)  # a name lookup or connect that hangs, until the test is over
        raise OSError("no answer")

    monkeypatch.setattr(socket, "create_connection", no_answer)
    started = time.perf_counter()
    try:
        assert real_unreachable("mirror.example", 80, timeout=0.2) == "no answer within 0.2 s"
        assert time.perf_counter() - started < 2
    finally:
        release.set()


def test_a_failed_download_gives_its_reason_and_removes_the_folders_it_made(tiny_preset, tmp_path, monkeypatch):
    import urllib.request

    from typer.testing import CliRunner

    from fcn_tui.cli import app

    monkeypatch.setattr(urllib.request, "urlopen", urlopen_offline)  # torchvision's own download fails
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("kept")
    typo = mine / "a" / "b" / "c"
    result = CliRunner().invoke(app, ["run", str(tiny_preset), "--data-dir", str(typo), "--out", str(tmp_path / "runs")])
    assert result.exit_code == 2, result.output
    [line] = result.stderr.splitlines()
    assert f"Fashion-MNIST not found in {typo}" in line
    assert "and the download of train-images-idx3-ubyte.gz failed: [Errno 101] Network is unreachable;" in line
    assert "--data-dir DIR" in line
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt"]  # a/b/c/FashionMNIST/raw is gone, the rest kept
