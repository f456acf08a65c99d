"""The 10x10 confusion matrix with Fashion-MNIST class names, shaded cells and the worst pairs.

Rows are true classes, columns predicted ones. `n` toggles counts and row-normalised percent;
`v` switches between the latest validation matrix and the test matrix (shown when a run ends).
The arrow keys move a cursor over the cells (it starts on the most confused pair); enter on a
cell of a run's test matrix asks for its images (`CellChosen`), `w` for the run's first-layer
weights (`WeightsWanted`); the app opens those screens.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from rich.color import Color
from rich.console import Group
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.geometry import Region
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Static

from fcn_tui.fashion import CLASS_NAMES, NUM_CLASSES
from fcn_tui.formatting import percent

SHORT = ("T-sh", "Trou", "Pull", "Drss", "Coat", "Sand", "Shrt", "Snkr", "Bag", "Boot")  # 4 wide
TOP_PAIRS = 3
CURSOR = Style(reverse=True, underline=True)  # the chosen cell stands out on any shade


def shade(fraction: float, diagonal: bool) -> Style:
    """A background from dark to green (diagonal) or red (mistakes) by the row share."""
    f = max(0.0, min(1.0, fraction))
    if not diagonal:
        f = min(1.0, f * 4)  # mistakes are small shares: make them visible
    base = (30, 30, 30)
    top = (40, 160, 70) if diagonal else (190, 50, 50)
    rgb = tuple(int(b + (t - b) * f) for b, t in zip(base, top))
    return Style(bgcolor=Color.from_rgb(*rgb), color="white", bold=diagonal)


def confused_pairs(matrix: list[list[int]], top: int = TOP_PAIRS) -> list[tuple[int, int, int]]:
    """The `top` largest off-diagonal cells as (true, predicted, count), largest first."""
    cells = [(matrix[t][p], t, p) for t in range(NUM_CLASSES) for p in range(NUM_CLASSES) if t != p and matrix[t][p] > 0]
    cells.sort(key=lambda c: (-c[0], c[1], c[2]))
    return [(t, p, n) for n, t, p in cells[:top]]


MOVES = {"up": (-1, 0), "down": (1, 0), "left": (0, -1), "right": (0, 1)}  # arrow key: (rows, columns)


class ConfusionView(Static, can_focus=True):
    """Draws one matrix; the app feeds it with `show(...)`."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "toggle_percent", "Counts/%"),
        Binding("v", "toggle_source", "Val/Test"),
        Binding("enter", "choose", "Images"),
        Binding("w", "weights", "Weights"),
        *(Binding(key, f"move({rows}, {cols})", key.title(), show=False) for key, (rows, cols) in MOVES.items()),
    ]

    class CellChosen(Message):
        """Enter on a cell of the test matrix of the run in `run_dir`."""

        def __init__(self, run_dir: Path, true: int, predicted: int) -> None:
            super().__init__()
            self.run_dir, self.true, self.predicted = run_dir, true, predicted

    class WeightsWanted(Message):
        """`w`: the first-layer weights of the run in `run_dir`, named `name`."""

        def __init__(self, run_dir: Path, name: str) -> None:
            super().__init__()
            self.run_dir, self.name = run_dir, name

    def __init__(self, id: str | None = None) -> None:
        super().__init__("No confusion matrix yet: it appears after the first epoch.", id=id)
        self.percent = False
        self.matrices: dict[str, tuple[list[list[int]], str]] = {}  # "val"/"test" -> (matrix, caption)
        self.source = "val"
        self.run_dir: Path | None = None  # the run whose test matrix is shown: its files have the images
        self.run_name = ""
        self.chosen: tuple[int, int] | None = None  # None: the cursor is on the most confused pair

    @property
    def matrix(self) -> list[list[int]] | None:
        entry = self.matrices.get(self.source)
        return entry[0] if entry else None

    @property
    def total(self) -> int:
        matrix = self.matrix
        return sum(map(sum, matrix)) if matrix else 0

    @property
    def cursor(self) -> tuple[int, int]:
        """The (true, predicted) cell under the cursor."""
        if self.chosen is not None:
            return self.chosen
        pairs = confused_pairs(self.matrix) if self.matrix else []
        return (pairs[0][0], pairs[0][1]) if pairs else (0, 0)

    def clear(self) -> None:
        self.matrices.clear()
        self.source = "val"
        self.run_dir, self.run_name, self.chosen = None, "", None
        self.update("No confusion matrix yet: it appears after the first epoch.")

    def show(self, source: str, matrix: list[list[int]], caption: str,
             run_dir: Path | None = None, run_name: str = "") -> None:
        """Store a `val` or `test` matrix and display it; a test matrix names its run's folder."""
        if source == "test" and run_dir is not None:
            if Path(run_dir) != self.run_dir:
                self.chosen = None
            self.run_dir, self.run_name = Path(run_dir), run_name
        self.matrices[source] = (matrix, caption)
        self.source = source
        self.redraw()

    def action_move(self, rows: int, columns: int) -> None:
        if self.matrix is None:
            return
        true, predicted = self.cursor
        self.chosen = ((true + rows) % NUM_CLASSES, (predicted + columns) % NUM_CLASSES)
        self.redraw()
        # a narrow terminal scrolls the matrix (the arrows no longer do): keep the cell in view
        left = 0 if self.chosen[1] == 0 else 12 + 5 * self.chosen[1]  # the first column brings the class names
        cell = Region(left, 3 + self.chosen[0], 17 if left == 0 else 5, 1).translate(self.virtual_region.offset)
        if isinstance(self.parent, Widget):
            self.parent.scroll_to_region(cell, animate=False, immediate=True)

    def action_choose(self) -> None:
        if self.matrix is None:
            return
        if self.source != "test":
            has_test = "test" in self.matrices
            self.notify("images are kept for the test set: press v for the test matrix" if has_test
                        else "the images can be seen once the run has been tested (when it ends)", timeout=4)
            return
        if self.run_dir is None:
            self.notify("this matrix has no run folder to read images from", severity="warning")
            return
        self.post_message(self.CellChosen(self.run_dir, *self.cursor))

    def action_weights(self) -> None:
        if self.run_dir is None:
            self.notify("the weights can be seen once the run has ended", timeout=4)
            return
        self.post_message(self.WeightsWanted(self.run_dir, self.run_name or self.run_dir.name))

    def action_toggle_percent(self) -> None:
        self.percent = not self.percent
        self.redraw()

    def action_toggle_source(self) -> None:
        other = "test" if self.source == "val" else "val"
        if other in self.matrices:
            self.source = other
            self.redraw()
        else:
            self.notify(f"no {other} matrix yet", timeout=2)

    def redraw(self) -> None:
        entry = self.matrices.get(self.source)
        if entry is None:
            return
        matrix, caption = entry
        self.update(self.render_matrix(matrix, caption))

    def render_matrix(self, matrix: list[list[int]], caption: str) -> Group:
        total = sum(map(sum, matrix))
        mode = "row %" if self.percent else "counts"
        title = Text.assemble((f"{caption}", "bold"), f" · {total:,} images · {mode}")
        keys = Text.assemble(
            ("arrows", "bold"), " cell · ", ("enter", "bold"), " its images · ", ("w", "bold"), " weights · ",
            ("n", "bold"), " counts/% · ", ("v", "bold"), " val/test", style="dim",
        )
        table = Table(box=None, padding=(0, 0), show_edge=False, pad_edge=False, collapse_padding=True)
        table.add_column("true \\ pred", justify="left", no_wrap=True, width=12)
        for name in SHORT:
            table.add_column(name, justify="right", width=5, no_wrap=True)
        table.add_column("  acc", justify="right", width=7, no_wrap=True)
        cursor = self.cursor
        for t, row in enumerate(matrix):
            row_total = sum(row) or 1
            cells = []
            for p, count in enumerate(row):
                share = count / row_total
                text = (percent(share, digits=1) if share < 0.9995 else "100") if self.percent else str(count)
                style = shade(share, t == p) + CURSOR if (t, p) == cursor else shade(share, t == p)
                cells.append(Text(text.rjust(4) + " ", style=style))
            cells.append(Text(f"{percent(row[t] / row_total, digits=1):>6}%"))
            table.add_row(Text(CLASS_NAMES[t], style="bold" if t == cursor[0] else ""), *cells)
        pairs = confused_pairs(matrix)
        lines = [Text("most confused (true → predicted):", style="bold")]
        for t, p, n in pairs:
            amount = percent(n / (sum(matrix[t]) or 1), "%", 1) if self.percent else f"{n}"
            lines.append(Text(f"  {CLASS_NAMES[t]} → {CLASS_NAMES[p]}: {amount}"))
        if not pairs:
            lines.append(Text("  none"))
        t, p = cursor
        lines.append(Text.assemble(("cell: ", "bold"), f"true {CLASS_NAMES[t]} → predicted {CLASS_NAMES[p]}: {matrix[t][p]:,}"))
        return Group(title, keys, table, *lines)
