"""A row-cursor DataTable whose left/right keys scroll by whole columns.

Textual's DataTable with `cursor_type="row"` scrolls one character per left/right press, so on
an 80-column terminal reaching a cut-off column takes dozens of presses. `ColumnTable` moves the
view to the start of the next (or previous) column instead; `end` / `home` on a row cursor still
go to the last / first row, as in DataTable. Other cursor types behave as in DataTable.
"""

from __future__ import annotations

from textual.widgets import DataTable


class ColumnTable(DataTable):
    """DataTable where left/right, with a row cursor, scroll the view one column at a time."""

    def column_starts(self) -> list[int]:
        """The x offset (in cells, from the table's left edge) where each column starts."""
        starts, x = [], 0
        for column in self.ordered_columns:
            starts.append(x)
            x += column.get_render_width(self)
        return starts

    def action_cursor_right(self) -> None:
        if self.cursor_type != "row":
            super().action_cursor_right()
            return
        self._set_hover_cursor(False)
        after = [x for x in self.column_starts() if x > self.scroll_x + 0.5]
        if after and self.max_scroll_x:
            self.scroll_to(x=min(after[0], self.max_scroll_x), animate=False, immediate=True)

    def action_cursor_left(self) -> None:
        if self.cursor_type != "row":
            super().action_cursor_left()
            return
        self._set_hover_cursor(False)
        before = [x for x in self.column_starts() if x < self.scroll_x - 0.5]
        self.scroll_to(x=before[-1] if before else 0, animate=False, immediate=True)
