"""What the first layer looks for: one 28x28 image per hidden unit of a run's saved model.

Opened with `w` in the Confusion view (the run whose matrix it shows) or in the Runs view (the
highlighted run). The model is loaded in a thread worker (`fcn_tui.weights.first_layer`, which
uses torch: never on the UI thread). Mid-grey is a zero weight, white positive, black negative,
each unit scaled to its largest magnitude. Paging and escape: see `tiles.TileScreen`.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text

from fcn_tui.tui.tiles import TILE_W, Tile, TileScreen


class WeightsScreen(TileScreen):
    """The first layer of the run in `run_dir`, named `name` in the title."""

    def __init__(self, run_dir: Path, name: str) -> None:
        self.run_dir, self.run_name = Path(run_dir), name
        super().__init__(f"first-layer weights of {name}: loading…")

    def load(self) -> tuple[list[Tile], str, str]:
        from fcn_tui.weights import first_layer, unit_image

        title = f"first-layer weights of {self.run_name}"
        weights, problem = first_layer(self.run_dir)
        if weights is None:
            return [], title, problem
        tiles = []
        for unit, row in enumerate(weights):
            image, scale = unit_image(row)
            tiles.append(Tile(image, Text(f"unit {unit + 1} · max |w| {scale:.3g}"[:TILE_W]), f"unit {unit + 1}"))
        title += f" · {len(tiles)} units · grey 0, white +, black −"
        return tiles, title, ""
