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
