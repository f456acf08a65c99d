"""The 10x10 confusion matrix with Fashion-MNIST class names, shaded cells and the worst pairs.

Rows are true classes, columns predicted ones. `n` toggles counts and row-normalised percent;
`v` switches between the latest validation matrix and the test matrix (shown when a run ends).
"""

from __future__ import annotations

from typing import ClassVar

from rich.color import Color
from rich.console import Group
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual.binding import Binding, BindingType
from textual.widgets import Static

# The names of fcn_tui.data.CLASSES (a test checks they agree), kept here so that drawing the
# matrix never imports the data module and with it torch.
CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
SHORT = ("T-sh", "Trou", "Pull", "Drss", "Coat", "Sand", "Shrt", "Snkr", "Bag", "Boot")  # 4 wide
TOP_PAIRS = 3


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
    cells = [(matrix[t][p], t, p) for t in range(10) for p in range(10) if t != p and matrix[t][p] > 0]
    cells.sort(key=lambda c: (-c[0], c[1], c[2]))
    return [(t, p, n) for n, t, p in cells[:top]]


class ConfusionView(Static, can_focus=True):
    """Draws one matrix; the app feeds it with `show(...)`."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("n", "toggle_percent", "Counts/%"),
        Binding("v", "toggle_source", "Val/Test"),
    ]

    def __init__(self, id: str | None = None) -> None:
        super().__init__("No confusion matrix yet: it appears after the first epoch.", id=id)
        self.percent = False
        self.matrices: dict[str, tuple[list[list[int]], str]] = {}  # "val"/"test" -> (matrix, caption)
        self.source = "val"

    @property
    def matrix(self) -> list[list[int]] | None:
        entry = self.matrices.get(self.source)
        return entry[0] if entry else None

    @property
    def total(self) -> int:
        matrix = self.matrix
        return sum(map(sum, matrix)) if matrix else 0

    def clear(self) -> None:
        self.matrices.clear()
        self.source = "val"
        self.update("No confusion matrix yet: it appears after the first epoch.")

    def show(self, source: str, matrix: list[list[int]], caption: str) -> None:
        """Store a `val` or `test` matrix and display it."""
        self.matrices[source] = (matrix, caption)
        self.source = source
        self.redraw()

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
        title = Text.assemble(
            (f"{caption}", "bold"), f" · {total:,} images · {mode}   ",
            ("n", "bold"), " counts/% · ", ("v", "bold"), " val/test",
        )
        table = Table(box=None, padding=(0, 0), show_edge=False, pad_edge=False, collapse_padding=True)
        table.add_column("true \\ pred", justify="left", no_wrap=True, width=12)
        for name in SHORT:
            table.add_column(name, justify="right", width=5, no_wrap=True)
        table.add_column("  acc", justify="right", width=7, no_wrap=True)
        for t, row in enumerate(matrix):
            row_total = sum(row) or 1
            cells = []
            for p, count in enumerate(row):
                share = count / row_total
                text = (f"{100 * share:.1f}" if share < 0.9995 else "100") if self.percent else str(count)
                cells.append(Text(text.rjust(4) + " ", style=shade(share, t == p)))
            cells.append(Text(f"{100 * row[t] / row_total:6.1f}%"))
            table.add_row(CLASSES[t], *cells)
        pairs = confused_pairs(matrix)
        lines = [Text("most confused (true → predicted):", style="bold")]
        for t, p, n in pairs:
            amount = f"{100 * n / (sum(matrix[t]) or 1):.1f}%" if self.percent else f"{n}"
            lines.append(Text(f"  {CLASSES[t]} → {CLASSES[p]}: {amount}"))
        if not pairs:
            lines.append(Text("  none"))
        return Group(title, table, *lines)
