"""A run's test predictions, `predictions.npz`: written with the run, read back without trusting it.

- `save_predictions(path, predictions)` writes numpy's compressed archive of three arrays:
  `true` and `predicted` uint8 (N,) and `probs` float16 (N, 10), one row per test image in
  test-set order (about 200 KB for the 10,000 test images), atomically (`fileio.atomic_write`).
- `read_predictions(run_dir)` returns `(Predictions, "")` or `(None, reason)` and never raises for
  what the folder holds: every member's header (dtype, shape, size) is checked before its data is
  read, the arrays load with `allow_pickle=False`, and labels and probabilities must be in range.
- `cell_images(predictions, true, predicted)` are the test images of one confusion-matrix cell,
  most confident first; `check_test_set` says whether predictions belong to a loaded test set.
numpy only: no torch, no UI.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

from fcn_tui.events import Predictions
from fcn_tui.fashion import NUM_CLASSES
from fcn_tui.fileio import FolderHandle, atomic_write

PREDICTIONS = "predictions.npz"
MAX_IMAGES = 70000  # the whole of Fashion-MNIST; a file claiming more is not ours
MAX_FILE = 64 << 20  # the 10,000 test images take ~200 KB; more is not ours
NO_PREDICTIONS = f"this run has no {PREDICTIONS} (runs made before it was saved, or failed ones, have none)"
MEMBERS = {"true": ("|u1", 1), "predicted": ("|u1", 1), "probs": ("<f2", 2)}  # name: (dtype, dimensions)


def save_predictions(path: Path, predictions: Predictions, folder: FolderHandle | None = None) -> None:
    """Write `predictions` to `path` (compressed npz, uint8 labels, float16 probabilities), through
    `folder`'s handle when given (`fileio.FolderHandle`)."""
    import numpy as np

    arrays = {
        "true": np.asarray(predictions.true, dtype=np.uint8),
        "predicted": np.asarray(predictions.predicted, dtype=np.uint8),
        "probs": np.asarray(predictions.probs, dtype=np.float16),
    }
    atomic_write(Path(path), lambda f: np.savez_compressed(f, **arrays), folder)


def _check_headers(path: Path) -> None:
    """ValueError unless each member is a .npy array of the expected dtype and a sane shape,
    its declared size matching its data: read before numpy allocates anything."""
    import numpy as np

    with zipfile.ZipFile(path) as archive:
        names = set(archive.namelist())
        for name, (dtype, ndim) in MEMBERS.items():
            if f"{name}.npy" not in names:
                raise ValueError(f"it holds no {name!r} array")
            info = archive.getinfo(f"{name}.npy")
            with archive.open(info) as f:
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, found = np.lib.format.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, fortran, found = np.lib.format.read_array_header_2_0(f)
                else:
                    raise ValueError(f"{name!r} is in npy format {version}")
                if found.str != dtype or fortran:
                    raise ValueError(f"{name!r} is {found.str}, not {dtype}")
                if len(shape) != ndim or not 0 < shape[0] <= MAX_IMAGES or (ndim == 2 and shape[1] != NUM_CLASSES):
                    raise ValueError(f"{name!r} has shape {shape}")
                if info.file_size != f.tell() + int(np.prod(shape)) * found.itemsize:
                    raise ValueError(f"{name!r} is truncated or padded")


def read_predictions(run_dir: Path) -> tuple[Predictions | None, str]:
    """The predictions saved in `run_dir`, or None and one line saying why they cannot be used."""
    path = Path(run_dir) / PREDICTIONS
    try:
        if path.is_symlink():
            return None, f"{PREDICTIONS} is a symbolic link; not followed"
        if not path.exists():
            return None, NO_PREDICTIONS
        if not path.is_file():
            return None, f"{PREDICTIONS} is not a regular file"
        if path.stat().st_size > MAX_FILE:
            return None, f"{PREDICTIONS} is larger than {MAX_FILE >> 20} MiB"
    except OSError as err:
        return None, f"{PREDICTIONS}: cannot read ({err.strerror or err})"
    import numpy as np

    try:
        _check_headers(path)
        with np.load(path, allow_pickle=False) as archive:
            true, predicted, probs = (archive[name] for name in MEMBERS)
    except ValueError as err:
        return None, f"{PREDICTIONS} is damaged or not ours ({err})"
    except (OSError, EOFError, KeyError, zipfile.BadZipFile, MemoryError, RuntimeError) as err:
        return None, f"{PREDICTIONS} is damaged or not ours ({type(err).__name__})"
    if not len(true) == len(predicted) == len(probs):
        return None, f"{PREDICTIONS} is damaged: its arrays differ in length"
    if true.max() >= NUM_CLASSES or predicted.max() >= NUM_CLASSES:
        return None, f"{PREDICTIONS} is damaged: a label is not a class 0-{NUM_CLASSES - 1}"
    if not np.isfinite(probs).all() or probs.min() < 0 or probs.max() > 1.001:
        return None, f"{PREDICTIONS} is damaged: a probability is not in [0, 1]"
    return Predictions(true=true, predicted=predicted, probs=probs), ""


def check_test_set(predictions: Predictions, labels: Any) -> str:
    """"" when `predictions` were made on the test set whose labels are `labels`, else why not."""
    import numpy as np

    labels = np.asarray(labels)
    if len(labels) != len(predictions.true):
        return (f"the run's predictions cover {len(predictions.true):,} test images but the loaded test "
                f"set has {len(labels):,}: it was trained on other data")
    if not np.array_equal(labels.astype(np.int64), predictions.true.astype(np.int64)):
        return "the run's predictions do not match the loaded test set's labels: it was trained on other data"
    return ""


def cell_images(predictions: Predictions, true: int, predicted: int) -> tuple[Any, Any]:
    """Indices into the test set of the images of class `true` predicted as `predicted`, and the
    probability given to `predicted`, most confident first (ties by index)."""
    import numpy as np

    index = np.flatnonzero((predictions.true == true) & (predictions.predicted == predicted))
    confidence = predictions.probs[index, predicted].astype(np.float32)
    order = np.lexsort((index, -confidence))
    return index[order], confidence[order]
