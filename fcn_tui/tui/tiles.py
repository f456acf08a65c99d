"""Pages of small 28x28 images drawn with half-block characters, and a screen that pages them.

`HalfBlockImage(pixels)` draws a grey (H, W) uint8 array in W x H/2 cells: each cell is an upper
half block whose foreground is the upper pixel and whose background the lower one, which any
terminal with colours shows (over SSH and in tmux too). `TileGrid` lays out as many captioned
tiles as fit its size and pages through them; `z` halves the tiles (14x14 pixels in 14x7 cells,
each pixel the mean of a 2x2 block) to see five times as many at 80x24. `TileScreen` is a full screen around a grid: a title
line, the grid, the footer; subclasses load their tiles in `load()`, which runs in a thread worker
(it may read files and use torch) and hands its result to the UI with `post_message`.
Keys: pagedown/→/space next page, pageup/← previous, home/end, z small/large tiles, escape back.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar

from rich.color import Color
from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.measure import Measurement
from rich.segment import Segment
from rich.style import Style
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.message import Message
from textual.screen import Screen
from textual.widget import Widget
from textual.widgets import Footer, Static

from fcn_tui.fashion import IMAGE_SIDE

HALF = IMAGE_SIDE // 2  # a small tile's side: each pixel the mean of a 2x2 block
TILE_W, TILE_H = IMAGE_SIDE, HALF + 1  # a 28x28 image in 28x14 cells and its one-line caption
SMALL_W, SMALL_H = HALF, HALF // 2 + 1  # the image halved (14x7 cells) and a short caption: 10 tiles at 80x24
GAP_W, GAP_H = 2, 1  # blank columns between tiles, blank line between rows of tiles


@lru_cache(maxsize=4096)  # grey pairs repeat a lot: one Style each, not one per cell
def _cell_style(top: int, bottom: int) -> Style:
    return Style(color=Color.from_rgb(top, top, top), bgcolor=Color.from_rgb(bottom, bottom, bottom))


class HalfBlockImage:
    """A grey image (uint8 array of shape (H, W), H even) as W x H/2 upper-half-block cells."""

    def __init__(self, pixels: Any) -> None:
        self.rows = [[int(v) for v in row] for row in pixels]  # plain ints: no numpy in the drawing

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        width = len(self.rows[0]) if self.rows else 0
        return Measurement(width, width)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for y in range(0, len(self.rows) - 1, 2):
            top, bottom = self.rows[y], self.rows[y + 1]
            yield from (Segment("▀", _cell_style(t, b)) for t, b in zip(top, bottom))
            yield Segment.line()


@dataclass
class Tile:
    pixels: Any  # uint8 (28, 28)
    caption: Text  # one line, at most 28 wide
    short: str = ""  # the caption of a small tile, at most 14 wide

    def halved(self) -> Any:
        """The image at 14x14: each pixel the mean of a 2x2 block."""
        return self.pixels.reshape(HALF, 2, HALF, 2).mean(axis=(1, 3)).astype(self.pixels.dtype)


class TileGrid(Widget):
    """As many tiles as fit, a page at a time; `page` and `pages` follow the widget's size."""

    DEFAULT_CSS = "TileGrid { height: 1fr; width: 1fr; }"

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.tiles: list[Tile] = []
        self.page = 0
        self.empty = Text("")
        self.small = False

    @property
    def tile_size(self) -> tuple[int, int]:
        return (SMALL_W, SMALL_H) if self.small else (TILE_W, TILE_H)

    @property
    def per_row(self) -> int:
        return max(1, (self.size.width + GAP_W) // (self.tile_size[0] + GAP_W))

    @property
    def per_page(self) -> int:
        return self.per_row * max(1, (self.size.height + GAP_H) // (self.tile_size[1] + GAP_H))

    def resize_tiles(self) -> None:
        """Small tiles, or large ones again, keeping the first tile shown on the page."""
        first = self.page * self.per_page
        self.small = not self.small
        self.turn(first // self.per_page)

    @property
    def pages(self) -> int:
        return max(1, -(-len(self.tiles) // self.per_page))

    def set_tiles(self, tiles: list[Tile], empty: Text) -> None:
        self.tiles, self.page, self.empty = tiles, 0, empty
        self.refresh()

    def turn(self, page: int) -> None:
        self.page = max(0, min(page, self.pages - 1))
        self.refresh()

    def on_resize(self) -> None:
        self.turn(self.page)  # fewer tiles per page may mean more pages

    def visible(self) -> list[Tile]:
        start = min(self.page, self.pages - 1) * self.per_page
        return self.tiles[start:start + self.per_page]

    def render(self) -> Any:
        tiles = self.visible()
        if not tiles:
            return self.empty
        grid = Table.grid(padding=(0, GAP_W, GAP_H, 0))
        for _ in range(min(self.per_row, len(tiles))):
            grid.add_column(width=self.tile_size[0], no_wrap=True)
        for start in range(0, len(tiles), self.per_row):
            grid.add_row(*(self._drawn(t) for t in tiles[start:start + self.per_row]))
        return grid

    def _drawn(self, tile: Tile) -> Group:
        if self.small:
            return Group(HalfBlockImage(tile.halved()), Text(tile.short or tile.caption.plain[:SMALL_W]))
        return Group(HalfBlockImage(tile.pixels), tile.caption)


class TileScreen(Screen):
    """A title line, a `TileGrid` and the footer; `load()` fills it from a thread worker."""

    DEFAULT_CSS = """
    TileScreen #tiles-title { height: auto; padding: 0 1; }
    TileScreen TileGrid { padding: 0 1; }
    """

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("pagedown,right,space", "turn(1)", "Next page"),
        Binding("pageup,left", "turn(-1)", "Previous page"),
        Binding("home", "first", "First", show=False),
        Binding("end", "last", "Last", show=False),
        Binding("z", "zoom", "Tile size"),
    ]

    class Loaded(Message):
        """What `load()` produced: the tiles and the title line, or why there are none."""

        def __init__(self, tiles: list[Tile], title: str, problem: str = "") -> None:
            super().__init__()
            self.tiles, self.title, self.problem = tiles, title, problem

    def __init__(self, loading: str) -> None:
        super().__init__()
        self.title_text = loading
        self.problem = ""

    def compose(self) -> ComposeResult:
        yield Static(Text(self.title_text), id="tiles-title")
        yield TileGrid(id="tiles")
        yield Footer()

    @property
    def grid(self) -> TileGrid:
        return self.query_one(TileGrid)

    def on_mount(self) -> None:
        self.load_tiles()

    @work(thread=True, exclusive=True, exit_on_error=False, group="tiles", description="load images")
    def load_tiles(self) -> None:
        try:
            tiles, title, problem = self.load()
        except Exception as err:  # noqa: BLE001 - a surprise in a file is shown, never a traceback
            tiles, title, problem = [], self.title_text, f"{type(err).__name__}: {err}"
        self.post_message(self.Loaded(tiles, title, problem))

    def load(self) -> tuple[list[Tile], str, str]:
        """(tiles, title, problem): runs in a thread worker, touches no widget."""
        raise NotImplementedError

    def on_tile_screen_loaded(self, message: Loaded) -> None:
        self.title_text, self.problem = message.title, message.problem
        empty = Text(message.problem, style="bold red") if message.problem else Text("nothing to show")
        self.grid.set_tiles(message.tiles, empty)
        self.show_title()

    def show_title(self) -> None:
        text = Text(self.title_text, style="bold")
        if self.grid.tiles:
            text.append(f" · page {self.grid.page + 1}/{self.grid.pages}", style="not bold")
        self.query_one("#tiles-title", Static).update(text)

    def on_resize(self) -> None:
        self.call_after_refresh(self.show_title)  # the page count follows the grid's new size

    def action_turn(self, step: int) -> None:
        self.grid.turn(self.grid.page + step)
        self.show_title()

    def action_first(self) -> None:
        self.grid.turn(0)
        self.show_title()

    def action_last(self) -> None:
        self.grid.turn(self.grid.pages - 1)
        self.show_title()

    def action_zoom(self) -> None:
        self.grid.resize_tiles()
        self.show_title()

    def action_back(self) -> None:
        self.dismiss()
