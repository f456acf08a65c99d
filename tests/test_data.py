"""The loader on small IDX files written by the tests: layouts, checks, verdict, split."""

import gzip
import os

import pytest
import torch

from fcn_tui.data import DataError, load_fashion_mnist, make_split, resolve_data_dir
from tests.helpers import make_synthetic_dataset


def test_loads_gz_files_and_reports_they_are_not_the_official_release(synthetic_data_dir):
    data = load_fashion_mnist(synthetic_data_dir, download_missing=False)
    assert data.train_images.shape == (600, 784) and data.train_images.dtype == torch.uint8
    assert data.test_labels.shape == (200,) and int(data.test_labels.max()) <= 9
    assert not data.official
    assert "differs from the official Fashion-MNIST" in data.verdict


def test_loads_plain_files_in_torchvision_layout(tmp_path):
    make_synthetic_dataset(tmp_path / "FashionMNIST" / "raw", gz=False)
    data = load_fashion_mnist(tmp_path, download_missing=False)
    assert len(data.train_images) == 600


def test_data_dir_option_beats_environment_beats_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("FCN_TUI_DATA", str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "opt") == tmp_path / "opt"
    assert resolve_data_dir(None) == tmp_path / "env"
    monkeypatch.delenv("FCN_TUI_DATA")
    assert resolve_data_dir(None).parts[-2:] == ("fcn-tui", "fashion-mnist")


def test_missing_dataset_says_where_it_looked(tmp_path):
    with pytest.raises(DataError) as err:
        load_fashion_mnist(tmp_path, download_missing=False)
    assert str(tmp_path) in str(err.value) and "--data-dir" in str(err.value)


def _rewrite(path, mutate):
    content = bytearray(gzip.decompress(path.read_bytes()))
    mutate(content)
    path.write_bytes(gzip.compress(bytes(content)))


@pytest.mark.parametrize(
    "file, mutate, message",
    [
        ("train-images-idx3-ubyte.gz", lambda c: c.__setitem__(slice(0, 4), b"\x00\x00\x08\x01"), "magic number"),
        ("train-images-idx3-ubyte.gz", lambda c: c.__setitem__(slice(8, 12), (27).to_bytes(4, "big")), "27x28"),
        ("train-labels-idx1-ubyte.gz", lambda c: c.__setitem__(8, 12), "label 12 at index 0 is outside 0-9"),
        ("t10k-labels-idx1-ubyte.gz", lambda c: c.__delitem__(slice(-5, None)), "header says 200 labels"),
    ],
)
def test_structural_problems_name_the_file(tmp_path, file, mutate, message):
    make_synthetic_dataset(tmp_path)
    _rewrite(tmp_path / file, mutate)
    with pytest.raises(DataError) as err:
        load_fashion_mnist(tmp_path, download_missing=False)
    assert file in str(err.value) and message in str(err.value)


def test_image_and_label_counts_must_agree(tmp_path):
    make_synthetic_dataset(tmp_path)
    other = make_synthetic_dataset(tmp_path / "other", n_train=500)
    os.replace(other / "train-labels-idx1-ubyte.gz", tmp_path / "train-labels-idx1-ubyte.gz")
    with pytest.raises(DataError, match="600 images but train-labels-idx1-ubyte.gz has 500 labels"):
        load_fashion_mnist(tmp_path, download_missing=False)


def test_truncated_gzip_is_reported(tmp_path):
    make_synthetic_dataset(tmp_path)
    path = tmp_path / "t10k-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz: corrupt or truncated gzip"):
        load_fashion_mnist(tmp_path, download_missing=False)


def test_split_is_seeded_disjoint_and_covers_the_training_set(synthetic_data_dir):
    data = load_fashion_mnist(synthetic_data_dir, download_missing=False)
    a, b = make_split(data, 0.1, seed=3), make_split(data, 0.1, seed=3)
    c = make_split(data, 0.1, seed=4)
    assert (len(a.train_x), len(a.val_x)) == (540, 60)
    assert torch.equal(a.val_x, b.val_x) and not torch.equal(a.val_x, c.val_x)
    rows = {tuple(r.tolist()) for r in torch.cat([a.train_x, a.val_x])}
    assert rows == {tuple(r.tolist()) for r in data.train_images}
    assert torch.equal(a.test_x, data.test_images)


def test_subset_uses_only_the_first_images(synthetic_data_dir):
    data = load_fashion_mnist(synthetic_data_dir, download_missing=False)
    split = make_split(data, 0.5, seed=0, subset=100)
    assert len(split.train_x) + len(split.val_x) == 100
    first = {tuple(r.tolist()) for r in data.train_images[:100]}
    assert {tuple(r.tolist()) for r in split.train_x} <= first
