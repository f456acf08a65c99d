"""The images of one confusion-matrix cell (say true Shirt, predicted T-shirt/top), most confident first.

Opened with enter on a cell of the Confusion view, for the run whose matrix it shows (the current
run, or one opened from the Runs view with `m`). It reads that run's `predictions.npz` and takes
the images from the test set the app loaded, in a thread worker; each tile is the image with the
probability the network gave the predicted class and the image's index in the test set. A run
without the file (older runs), a damaged file, or predictions made on other data is one clear
line, never a traceback. Paging and escape: see `tiles.TileScreen`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.text import Text

from fcn_tui.errors import NoTestImages
from fcn_tui.fashion import CLASS_NAMES, IMAGE_SIDE
from fcn_tui.formatting import percent
from fcn_tui.tui.tiles import TILE_W, Tile, TileScreen


class MistakesScreen(TileScreen):
    """The test images of class `true` that the run predicted as `predicted`."""

    def __init__(self, run_dir: Path, true: int, predicted: int,
                 test_set: Callable[[], tuple[Any, Any]]) -> None:
        """`test_set()` gives the loaded test images (uint8 (N, 784)) and labels as numpy arrays,
        or raises `NoTestImages`; it is called in the worker thread."""
        self.run_dir, self.true, self.predicted, self.test_set = Path(run_dir), true, predicted, test_set
        super().__init__(f"{self.cell_name}: loading…")

    @property
    def cell_name(self) -> str:
        return f"true {CLASS_NAMES[self.true]} → predicted {CLASS_NAMES[self.predicted]}"

    def load(self) -> tuple[list[Tile], str, str]:
        from fcn_tui.predictions import cell_images, check_test_set, read_predictions

        predictions, problem = read_predictions(self.run_dir)
        if predictions is None:
            return [], self.cell_name, problem
        try:
            images, labels = self.test_set()
        except NoTestImages as err:
            return [], self.cell_name, str(err)
        problem = check_test_set(predictions, labels)
        if problem:
            return [], self.cell_name, problem
        index, confidence = cell_images(predictions, self.true, self.predicted)
        tiles = [
            Tile(images[i].reshape(IMAGE_SIDE, IMAGE_SIDE), Text(f"{percent(p, '%', 1)}  test image #{i}"[:TILE_W]), f"{percent(p, '%', 1)} #{i}")
            for i, p in zip(index.tolist(), confidence.tolist())
        ]
        kind = "right" if self.true == self.predicted else "wrong"
        title = f"{self.cell_name} · {len(tiles):,} {kind}, most confident first"
        if not tiles:
            return [], title, "no test image in this cell"
        return tiles, title, ""
