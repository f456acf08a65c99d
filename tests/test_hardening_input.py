"""Bad input to `fcn-tui run`: exit status 2, one clear line on stderr, no traceback, no run folder.

Each case is a user session through the real command (Typer's runner): a broken preset, a bad
`--set`, a damaged dataset, a device that is not there, an output folder that cannot be written.
"""

from __future__ import annotations

import csv
import gzip
import os
from pathlib import Path

import pytest
import torch

from tests.helpers import TINY_PRESET, assert_bad_input, make_synthetic_dataset, run_cli


def run_folders(out: Path) -> list[Path]:
    return sorted(p for p in out.rglob("*") if p.is_dir()) if out.exists() else []


# --- presets ------------------------------------------------------------------------------------

PRESET_CASES = [
    # malformed TOML: the message gives the line and column
    ("[model]\nhidden = [1 2]\n", ["invalid TOML", "line 2, column 13"]),
    ("[model]\nhidden = [1,\n", ["invalid TOML", "end of document, line 3, column 1"]),
    ("[model]\nhiden = [10]\n", ["model.hiden: unknown key (did you mean 'hidden'?)"]),
    ("[optimizer]\nlr = 0.1\n", ["unknown key 'optimizer'", "did you mean 'optim'?"]),
    ("[train]\nepochs = 'ten'\n", ["train.epochs: expected an integer, got string 'ten'"]),
    ("[model]\nbatchnorm = 1\n", ["model.batchnorm: expected true or false"]),
    ("[optim]\nlr = 0\n", ["optim.lr: must be > 0.0, got 0.0"]),
    ("[optim]\nlr = -0.1\n", ["optim.lr: must be > 0.0, got -0.1"]),
    ("[model]\ndropout = 1.0\n", ["model.dropout: must be < 1.0"]),
    ("[model]\nhidden = []\n", ["model.hidden: expected 1 to 10 layers, got 0"]),
    ("[model]\nhidden = [64, 0]\n", ["model.hidden[1]: width must be between 1 and"]),
    ("[train]\nbatch_size = 0\n", ["train.batch_size: must be >= 1, got 0"]),
    ("[optim]\nname = 'adamm'\n", ["optim.name: unknown choice 'adamm'", "valid: sgd, adam, adamw, rmsprop"]),
    ("[model]\nactivation = 'swish'\n", ["valid: relu, tanh, gelu, sigmoid"]),
    ("[sweep]\n'optim.lr' = []\n", ["sweep.optim.lr: empty list"]),
    ("[sweep]\n'optim.lr' = [0.1, -1]\n", ["sweep.optim.lr: must be > 0.0, got -1.0"]),
    ("[sweep]\n" + "".join(f"'{k}' = {list(range(1, 30))}\n" for k in ("train.epochs", "train.seed", "data.subset")),
     ["sweep: 29 x 29 x 29 = 24,389 runs, more than 10,000"]),
]


@pytest.mark.parametrize("text, expected", PRESET_CASES)
def test_a_bad_preset_exits_2_with_one_line_naming_file_and_key(tmp_path, text, expected):
    preset = tmp_path / "bad.toml"
    preset.write_text(text)
    assert_bad_input(run_cli(preset, "--out", tmp_path / "out"), str(preset), *expected)
    assert not (tmp_path / "out").exists()  # nothing is created before the preset is valid


SET_CASES = [
    ("optim.lrr=0.1", ["--set: unknown key 'optim.lrr' (did you mean 'optim.lr'?)"]),
    ("optim.lr", ["--set 'optim.lr': expected KEY=VALUE"]),
    ("train.epochs=ten", ["--set: train.epochs: expected an integer, got string 'ten'"]),
    ("optim.lr=0", ["--set: optim.lr: must be > 0.0"]),
    ("optim.lr=nan", ["--set: optim.lr: expected a finite number"]),
    ("model.dropout=1", ["--set: model.dropout: must be < 1.0"]),
    ("model.hidden=[]", ["--set: model.hidden: expected 1 to 10 layers, got 0"]),
    ("model.hidden=[0]", ["--set: model.hidden[0]: width must be between 1"]),
    ("train.batch_size=0", ["--set: train.batch_size: must be >= 1"]),
    ("optim.name=adamm", ["--set: optim.name: unknown choice 'adamm'", "valid: sgd, adam, adamw, rmsprop"]),
    ("model.hidden=[64,", ["--set: model.hidden: invalid TOML value '[64,': Invalid value"]),  # a list cut short: TOML says where
]


@pytest.mark.parametrize("item, expected", SET_CASES)
def test_a_bad_set_value_exits_2_with_one_line(tiny_preset, tmp_path, item, expected):
    assert_bad_input(run_cli(tiny_preset, "--set", item, "--out", tmp_path / "out"), *expected)


def test_a_bad_device_option_is_named_as_such(tiny_preset, tmp_path):
    assert_bad_input(run_cli(tiny_preset, "--device", "gpu"), "--device: train.device: unknown device 'gpu'",
                     "valid: auto, cpu, cuda, cuda:N, mps")


def test_a_missing_or_unreadable_preset_file_exits_2(tmp_path):
    assert_bad_input(run_cli(tmp_path / "nope.toml"), "nope.toml: no such file")
    assert_bad_input(run_cli(tmp_path), "is a directory, expected a .toml preset")
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\xff\xfe\x00name")
    assert_bad_input(run_cli(binary), "binary.toml: cannot read: not UTF-8 text")


# --- data ---------------------------------------------------------------------------------------

def small_dataset(folder: Path) -> Path:
    return make_synthetic_dataset(folder, n_train=60, n_test=20)


def rewrite_gz(path: Path, mutate) -> None:
    content = bytearray(gzip.decompress(path.read_bytes()))
    mutate(content)
    path.write_bytes(gzip.compress(bytes(content)))


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:60])


def garble(path: Path) -> None:
    path.write_bytes(b"this is an HTML error page, not a gzip file" * 10)


def swap_train_labels_for_fewer(path: Path) -> None:
    other = make_synthetic_dataset(path.parent / "fewer", n_train=50, n_test=20)
    os.replace(other / path.name, path)


DATA_CASES = [
    ("t10k-images-idx3-ubyte.gz", truncate, "corrupt or truncated gzip"),
    ("train-labels-idx1-ubyte.gz", garble, "corrupt or truncated gzip"),
    ("train-images-idx3-ubyte.gz", lambda p: rewrite_gz(p, lambda c: c.__setitem__(slice(0, 4), b"\x00\x00\x08\x01")),
     "not an IDX images file (magic number 0x00000801, expected 0x00000803)"),
    ("t10k-images-idx3-ubyte.gz", lambda p: rewrite_gz(p, lambda c: c.__setitem__(slice(8, 12), (32).to_bytes(4, "big"))),
     "images are 32x28, expected 28x28"),
    ("train-labels-idx1-ubyte.gz", swap_train_labels_for_fewer, "60 images but train-labels-idx1-ubyte.gz has 50 labels"),
    ("t10k-labels-idx1-ubyte.gz", lambda p: rewrite_gz(p, lambda c: c.__setitem__(8 + 3, 10)),
     "label 10 at index 3 is outside 0-9"),
]


@pytest.mark.parametrize("file, damage, expected", DATA_CASES)
def test_a_damaged_dataset_exits_2_naming_the_file_and_leaves_no_run_folder(tiny_preset, tmp_path, file, damage, expected):
    data = small_dataset(tmp_path / "data")
    damage(data / file)
    out = tmp_path / "out"
    line = assert_bad_input(run_cli(tiny_preset, "--data-dir", data, "--out", out), expected)
    assert file in line  # the message names the damaged file
    assert run_folders(out) == []


def test_a_missing_dataset_says_where_it_looked_and_how_to_point_at_a_copy(tiny_preset, tmp_path, monkeypatch):
    import torchvision.datasets

    def offline(*args, **kwargs):
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz: network is unreachable")

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", offline)
    empty, out = tmp_path / "empty", tmp_path / "out"
    empty.mkdir()
    assert_bad_input(
        run_cli(tiny_preset, "--data-dir", empty, "--out", out),
        f"Fashion-MNIST not found in {empty}", str(empty / "FashionMNIST" / "raw"),
        "network is unreachable", "--data-dir DIR", "FCN_TUI_DATA",
    )
    assert run_folders(out) == []


def test_an_incomplete_dataset_lists_the_missing_files(tiny_preset, tmp_path):
    data = small_dataset(tmp_path / "data")
    (data / "t10k-labels-idx1-ubyte.gz").unlink()
    assert_bad_input(run_cli(tiny_preset, "--data-dir", data, "--out", tmp_path / "out"),
                     "incomplete Fashion-MNIST, missing t10k-labels-idx1-ubyte", "--data-dir")


def test_a_split_that_cannot_be_made_is_bad_input_before_any_run_folder(synthetic_data_dir, tmp_path):
    preset = tmp_path / "sweep.toml"
    preset.write_text(TINY_PRESET + "\n[sweep]\n'data.subset' = [600, 1]\n")
    out = tmp_path / "out"
    assert_bad_input(run_cli(preset, "--data-dir", synthetic_data_dir, "--out", out), "cannot split 1 training images")
    assert run_folders(out) == []  # found before the first (valid) run started


# --- device and output folder -------------------------------------------------------------------

@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")
def test_cuda_without_a_gpu_exits_2(tiny_preset, synthetic_data_dir, tmp_path):
    out = tmp_path / "out"
    assert_bad_input(run_cli(tiny_preset, "--device", "cuda", "--data-dir", synthetic_data_dir, "--out", out),
                     "device 'cuda'", "use --device cpu")
    assert run_folders(out) == []


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="this machine has Apple's Metal backend")
def test_mps_elsewhere_exits_2(tiny_preset, synthetic_data_dir, tmp_path):
    out = tmp_path / "out"
    assert_bad_input(run_cli(tiny_preset, "--device", "mps", "--data-dir", synthetic_data_dir, "--out", out),
                     "device 'mps': Apple's Metal backend is not available here")
    assert run_folders(out) == []


def test_an_output_folder_that_cannot_be_created_exits_2(tiny_preset, synthetic_data_dir, tmp_path):
    a_file = tmp_path / "notes.txt"
    a_file.write_text("not a folder")
    # works as root too: nothing can be created below a regular file
    assert_bad_input(run_cli(tiny_preset, "--data-dir", synthetic_data_dir, "--out", a_file / "runs"),
                     f"{a_file / 'runs'}: cannot create the output folder")
    assert_bad_input(run_cli(tiny_preset, "--data-dir", synthetic_data_dir, "--out", a_file),
                     f"{a_file}: cannot create the output folder")
    assert a_file.read_text() == "not a folder"


# --- folder names -------------------------------------------------------------------------------

def test_odd_preset_names_and_runs_in_the_same_second_get_distinct_folders(synthetic_data_dir, tmp_path, monkeypatch):
    monkeypatch.setattr("fcn_tui.runs.timestamp", lambda: "20250101-120000")
    monkeypatch.setattr("fcn_tui.studies.runner.timestamp", lambda: "20250101-120000")
    single = tmp_path / "single.toml"
    single.write_text(TINY_PRESET.replace('name = "tiny"', "name = 'a/b: c*?'").replace("epochs = 2", "epochs = 1"))
    sweep = tmp_path / "sweep.toml"
    sweep.write_text(single.read_text().replace("'a/b: c*?'", "'../..\\\\ sweep <1>'")
                     + "\n[sweep]\n'optim.lr' = [0.01, 0.02]\n")
    out = tmp_path / "out"
    for preset in (single, single, sweep, sweep):
        result = run_cli(preset, "--data-dir", synthetic_data_dir, "--out", out)
        assert result.exit_code == 0, result.stdout + result.stderr
    tops = sorted(p.name for p in out.iterdir())
    assert tops == ["20250101-120000-a-b-c", "20250101-120000-a-b-c-2",
                    "20250101-120000-sweep-1", "20250101-120000-sweep-1-2"]
    for study in tops[2:]:
        runs = sorted(p.name for p in (out / study).iterdir() if p.is_dir())
        assert runs == ["001-optim.lr=0.01", "002-optim.lr=0.02"]
        with open(out / study / "results.csv", newline="") as f:
            assert [row["status"] for row in csv.DictReader(f)] == ["completed", "completed"]
    assert all(p.resolve().is_relative_to(out.resolve()) for p in out.rglob("*"))
