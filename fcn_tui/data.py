"""Fashion-MNIST: locate, verify, download, load into memory, split.

Contract:
- `resolve_data_dir(option)`: the `--data-dir` option, else `$FCN_TUI_DATA`, else a per-user
  cache folder.
- `load_fashion_mnist(dir, download=True)` finds the four IDX files (plain or `.gz`, directly in
  the folder or in torchvision's `FashionMNIST/raw/`), downloads them with torchvision when
  none are there, checks their structure and compares the MD5 of the uncompressed bytes with the
  official release. Any problem raises `DataError` naming the file; a content that is valid
  but not the official release only adds a warning. A file is read no further than its IDX
  header says it holds (at most 60000 28x28 images), so a gzip bomb costs a few bytes, not
  gigabytes.
- `make_split(data, val_fraction, seed, subset)` returns in-memory tensors: a seeded random
  permutation of the training images is split into train and validation; the test set is kept
  apart for the final metrics only.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import io
import os
import re
import socket
import threading
import urllib.request
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import torch

from fcn_tui.errors import DataError
from fcn_tui.fashion import CLASS_NAMES, IMAGE_SIDE, INPUT_FEATURES, NUM_CLASSES

CLASSES = CLASS_NAMES  # the name earlier callers import
FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
OFFICIAL_MD5 = {  # of the uncompressed bytes, as published with the dataset
    "train-images-idx3-ubyte": "f4a8712d7a061bf5bd6d2ca38dc4d50a",
    "train-labels-idx1-ubyte": "9018921c3c673c538a1fc5bad174d6f9",
    "t10k-images-idx3-ubyte": "8181f5470baa50b63fa0f6fddb340f0a",
    "t10k-labels-idx1-ubyte": "15d484375f8d13e6eb1aabb0c3f46965",
}
IMAGES_MAGIC, LABELS_MAGIC = 0x00000803, 0x00000801
HEADER_BYTES = {"images": 16, "labels": 8}  # magic and count, then an image file's rows and columns
MAX_ITEMS = 60000  # the largest Fashion-MNIST file (training set); a header claiming more is refused
MIRROR = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"  # torchvision's, if it names none
CONNECT_TIMEOUT = 5.0  # seconds: a reachable mirror answers in well under one; offline we say so at once
HOW_TO_POINT = (
    "point fcn-tui at a folder holding the four IDX files with --data-dir DIR "
    "or the FCN_TUI_DATA environment variable"
)


def default_data_dir() -> Path:
    """Per-user cache folder (XDG on Linux, ~/Library/Caches on macOS, LOCALAPPDATA on Windows)."""
    if os.name == "nt":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif os.uname().sysname == "Darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "fcn-tui" / "fashion-mnist"


def resolve_data_dir(option: str | Path | None = None) -> Path:
    """The data folder: `--data-dir`, else `$FCN_TUI_DATA`, else the per-user cache."""
    if option:
        return Path(option).expanduser()
    env = os.environ.get("FCN_TUI_DATA")
    if env:
        return Path(env).expanduser()
    return default_data_dir()


@dataclass(frozen=True)
class FashionMNIST:
    train_images: torch.Tensor  # uint8, (60000, 784)
    train_labels: torch.Tensor  # int64, (60000,)
    test_images: torch.Tensor  # uint8, (10000, 784)
    test_labels: torch.Tensor  # int64, (10000,)
    source: Path
    official: bool  # all four files match the official MD5s
    warnings: tuple[str, ...] = ()

    @property
    def verdict(self) -> str:
        return "official Fashion-MNIST" if self.official else "; ".join(self.warnings)


@dataclass(frozen=True)
class Split:
    """In-memory tensors ready for training: images uint8 (N, 784), labels int64 (N,)."""

    train_x: torch.Tensor
    train_y: torch.Tensor
    val_x: torch.Tensor
    val_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor


def _candidates(folder: Path, stem: str) -> list[Path]:
    places = [folder, folder / "FashionMNIST" / "raw"]
    return [place / name for place in places for name in (stem, stem + ".gz")]


def find_files(folder: Path) -> dict[str, Path] | None:
    """The four files in `folder`, or None when none is there. Some but not all is an error."""
    found: dict[str, Path] = {}
    for key, stem in FILES.items():
        for path in _candidates(folder, stem):
            if path.is_file():
                found[key] = path
                break
    if not found:
        return None
    missing = [FILES[k] for k in FILES if k not in found]
    if missing:
        raise DataError(
            f"{folder}: incomplete Fashion-MNIST, missing {', '.join(missing)} (.gz or plain); "
            + HOW_TO_POINT
        )
    return found


def _kind(path: Path) -> str:
    return "images" if "images" in path.name else "labels"


def idx_header(header: bytes, path: Path, kind: str, max_items: int | None = None) -> tuple[int, int]:
    """Check the header of an IDX `kind` file (its length, magic number, count up to `max_items`,
    and 28x28 images) and return how many items it says the file holds and in how many bytes."""
    magic = IMAGES_MAGIC if kind == "images" else LABELS_MAGIC
    if len(header) < HEADER_BYTES[kind]:
        raise DataError(f"{path}: too short for an IDX {kind} file ({len(header)} bytes)")
    found_magic = int.from_bytes(header[0:4], "big")
    if found_magic != magic:
        raise DataError(
            f"{path}: not an IDX {kind} file (magic number 0x{found_magic:08x}, expected 0x{magic:08x})"
        )
    count = int.from_bytes(header[4:8], "big")
    if max_items is not None and count > max_items:
        raise DataError(f"{path}: header says {count} {kind}, more than Fashion-MNIST's {max_items}")
    if kind != "images":
        return count, count
    rows, cols = int.from_bytes(header[8:12], "big"), int.from_bytes(header[12:16], "big")
    if (rows, cols) != (IMAGE_SIDE, IMAGE_SIDE):
        raise DataError(f"{path}: images are {rows}x{cols}, expected {IMAGE_SIDE}x{IMAGE_SIDE}")
    return count, count * rows * cols


def read_bytes(path: Path) -> bytes:
    """The uncompressed content of an IDX file, `.gz` or plain, read no further than its header
    says the file holds (plus one byte, to notice extra data): a file that inflates to gigabytes
    is refused after a few bytes. The header's magic number and sizes are checked first."""
    kind = _kind(path)
    try:
        with (gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")) as f:
            header = f.read(HEADER_BYTES[kind])
            count, expected = idx_header(header, path, kind, MAX_ITEMS)
            payload = f.read(expected + 1)
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise DataError(f"{path}: corrupt or truncated gzip ({err}); delete it and download again") from None
    except OSError as err:
        raise DataError(f"{path}: cannot read ({err.strerror or err})") from None
    if len(payload) > expected:
        raise DataError(
            f"{path}: header says {count} {kind} ({expected} bytes) but the file holds more than that"
        )
    return header + payload


def parse_idx(content: bytes, path: Path, kind: str) -> torch.Tensor:
    """Check an IDX header and return its payload: images (N, 784) uint8 or labels (N,) int64."""
    header_len = HEADER_BYTES[kind]
    count, expected = idx_header(content, path, kind)
    payload = len(content) - header_len
    if payload != expected:
        raise DataError(
            f"{path}: header says {count} {kind} ({expected} bytes) but the file holds {payload} bytes"
        )
    if count == 0:
        raise DataError(f"{path}: holds no {kind}")
    tensor = torch.frombuffer(bytearray(content), dtype=torch.uint8, offset=header_len)
    if kind == "images":
        return tensor.view(count, INPUT_FEATURES)
    if int(tensor.max()) >= NUM_CLASSES:
        bad = int((tensor >= NUM_CLASSES).nonzero()[0])
        raise DataError(f"{path}: label {int(tensor[bad])} at index {bad} is outside 0-{NUM_CLASSES - 1}")
    return tensor.long()


def unreachable(host: str, port: int, timeout: float = CONNECT_TIMEOUT) -> str | None:
    """Why `host` cannot be reached (None when it can), known within `timeout` seconds: the name
    lookup, which a socket timeout does not bound, runs in a thread that is given up on."""
    outcome: list[str | None] = []

    def attempt() -> None:
        try:
            socket.create_connection((host, port), timeout=timeout).close()
            outcome.append(None)
        except OSError as err:
            outcome.append(err.strerror or str(err) or type(err).__name__)

    thread = threading.Thread(target=attempt, name="fcn-tui-mirror-check", daemon=True)
    thread.start()
    thread.join(timeout)
    return outcome[0] if outcome else f"no answer within {timeout:g} s"


def _download_failure(err: Exception) -> str:
    """Say "the download of FILE failed: REASON" from torchvision's message, whose first line
    ("Error downloading FILE:") says nothing and whose last line holds the reason."""
    lines = [line.strip() for line in str(err).splitlines() if line.strip()]
    if not lines:
        return f"the download failed: {type(err).__name__}"
    what = "the download"
    if lines[0].startswith("Error downloading ") and len(lines) > 1:
        what = f"the download of {lines[0].removeprefix('Error downloading ').rstrip(':')}"
    return f"{what} failed: " + re.sub(r"<urlopen error (.*)>", r"\1", lines[-1])


def _missing_dirs(path: Path) -> list[Path]:
    """`path` and those of its parents that do not exist yet, deepest first."""
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def _remove_dirs(created: list[Path]) -> None:
    """Undo a failed download: delete the partial IDX files in the folders it created, then
    those folders, deepest first. Anything else found there is left, and so is its folder."""
    for folder in created:
        try:
            for child in folder.iterdir():
                if child.is_file() and child.name.startswith(tuple(FILES.values())):
                    child.unlink()
            folder.rmdir()
        except OSError:
            return


def download(folder: Path) -> None:
    """Fetch the dataset with torchvision into `folder/FashionMNIST/raw/`. When the mirror cannot
    be reached or the download fails, the folders made for it are removed and `DataError` says why."""
    where = (
        f"Fashion-MNIST not found in {folder} (looked for the four IDX files there and in "
        f"{folder / 'FashionMNIST' / 'raw'})"
    )
    try:
        from torchvision import datasets
    except ImportError as err:
        raise DataError(f"{where} and torchvision, which downloads it, is missing ({err}); " + HOW_TO_POINT) from None
    mirror = urlsplit(getattr(datasets.FashionMNIST, "mirrors", [MIRROR])[0])
    host = mirror.hostname or ""
    # behind an HTTP proxy only the proxy is reachable: let the download (which uses it) tell
    reason = None if urllib.request.getproxies() else unreachable(host, mirror.port or (443 if mirror.scheme == "https" else 80))
    if reason:
        raise DataError(f"{where} and could not reach {host}: {reason}; " + HOW_TO_POINT)
    created = _missing_dirs(folder / "FashionMNIST" / "raw")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with contextlib.redirect_stdout(io.StringIO()):  # torchvision's own messages would break our one line
            for train in (True, False):
                datasets.FashionMNIST(root=str(folder), train=train, download=True)
    except Exception as err:  # noqa: BLE001 - any failure means "not available offline"
        _remove_dirs(created)
        raise DataError(f"{where} and {_download_failure(err)}; " + HOW_TO_POINT) from None


def load_fashion_mnist(folder: str | Path | None = None, download_missing: bool = True) -> FashionMNIST:
    """Locate (or download), verify and load the dataset into memory."""
    folder = resolve_data_dir(folder)
    if folder.exists() and not folder.is_dir():
        raise DataError(f"{folder}: is a file, expected a folder holding the IDX files")
    files = find_files(folder) if folder.is_dir() else None
    if files is None:
        if not download_missing:
            raise DataError(
                f"Fashion-MNIST not found in {folder} (nor in {folder / 'FashionMNIST' / 'raw'}); "
                + HOW_TO_POINT
            )
        download(folder)
        files = find_files(folder)
        if files is None:
            raise DataError(f"{folder}: the download left no IDX files; " + HOW_TO_POINT)
    tensors: dict[str, torch.Tensor] = {}
    warnings: list[str] = []
    for key, path in files.items():
        content = read_bytes(path)
        tensors[key] = parse_idx(content, path, "images" if key.endswith("images") else "labels")
        stem = FILES[key]
        if hashlib.md5(content).hexdigest() != OFFICIAL_MD5[stem]:
            warnings.append(f"{path.name} differs from the official Fashion-MNIST (MD5 mismatch)")
    for split in ("train", "test"):
        n_images, n_labels = len(tensors[f"{split}_images"]), len(tensors[f"{split}_labels"])
        if n_images != n_labels:
            raise DataError(
                f"{files[split + '_images']}: {n_images} images but "
                f"{files[split + '_labels'].name} has {n_labels} labels"
            )
    return FashionMNIST(
        train_images=tensors["train_images"],
        train_labels=tensors["train_labels"],
        test_images=tensors["test_images"],
        test_labels=tensors["test_labels"],
        source=folder,
        official=not warnings,
        warnings=tuple(warnings),
    )


def make_split(data: FashionMNIST, val_fraction: float, seed: int, subset: int = 0) -> Split:
    """Seeded train/validation split of the training images (first `subset` only when > 0)."""
    images, labels = data.train_images, data.train_labels
    if subset:
        images, labels = images[:subset], labels[:subset]
    n = len(images)
    n_val = round(n * val_fraction)
    if n_val < 1 or n - n_val < 1:
        raise DataError(
            f"cannot split {n} training images with val_fraction {val_fraction}: "
            "both train and validation need at least one image"
        )
    generator = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=generator)
    val_idx, train_idx = order[:n_val], order[n_val:]
    return Split(
        train_x=images[train_idx],
        train_y=labels[train_idx],
        val_x=images[val_idx],
        val_y=labels[val_idx],
        test_x=data.test_images,
        test_y=data.test_labels,
    )


def write_idx(folder: Path, images: torch.Tensor, labels: torch.Tensor, prefix: str, gz: bool = True) -> None:
    """Write images (N, 28, 28 or 784, uint8) and labels as IDX files (`prefix` = train or t10k)."""
    folder.mkdir(parents=True, exist_ok=True)
    images = images.to(torch.uint8).reshape(len(images), -1)
    n = len(images)
    image_bytes = (
        IMAGES_MAGIC.to_bytes(4, "big") + n.to_bytes(4, "big")
        + IMAGE_SIDE.to_bytes(4, "big") + IMAGE_SIDE.to_bytes(4, "big")
        + images.numpy().tobytes()
    )
    label_bytes = LABELS_MAGIC.to_bytes(4, "big") + len(labels).to_bytes(4, "big") + labels.to(torch.uint8).numpy().tobytes()
    for stem, content in ((f"{prefix}-images-idx3-ubyte", image_bytes), (f"{prefix}-labels-idx1-ubyte", label_bytes)):
        if gz:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(content, compresslevel=1))
        else:
            (folder / stem).write_bytes(content)
