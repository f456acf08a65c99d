"""Live loss and accuracy charts (textual-plotext), plus curves of runs picked in Runs.

Like textual-plotext's weather example, each chart keeps its series in plain lists and one
`replot()` clears and redraws. Adding points only marks a chart dirty; the app calls `replot()`
from a timer a few times a second (and once when a run ends), never per batch.
"""

from __future__ import annotations

from textual_plotext import PlotextPlot

OVERLAY_COLORS = ("magenta", "yellow", "cyan", "white", "blue", "orange")
TRAIN_COLOR, TRAIN_POINT = "cyan", "+"
VAL_COLOR, VAL_POINT = "orange", "x"
MAX_BATCH_POINTS = 2000  # older batch-loss points are thinned beyond this, so redraws stay cheap


class Overlay:
    """Per-epoch curves of one earlier run (from `RunRecord.metrics`)."""

    def __init__(self, label: str, metrics: list[dict[str, float]]) -> None:
        self.label = label
        self.epochs = [m["epoch"] for m in metrics]
        self.val_loss = [m["val_loss"] for m in metrics]
        self.val_acc = [100 * m["val_acc"] for m in metrics]


def epoch_series(plt, epochs: list, values: list, label: str, color: str, point: str) -> None:
    """A per-epoch curve: a line, with `point` at each epoch (visible from the first epoch on,
    and telling train from val where there is no colour); the legend shows the point."""
    if len(epochs) > 1:
        plt.plot(epochs, values, color=color, marker="hd")
    plt.scatter(epochs, values, label=label, color=color, marker=point)


class RunChart(PlotextPlot):
    """Common part: title, epoch axis, dirty flag, overlays."""

    title = ""

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.dirty = False
        self.overlays: list[Overlay] = []

    def clear_run(self) -> None:
        """Forget the current run's points (a new run starts)."""
        self.dirty = True

    def set_overlays(self, overlays: list[Overlay]) -> None:
        self.overlays = overlays
        self.replot()

    def on_mount(self) -> None:
        super().on_mount()
        self.replot()

    def replot(self) -> None:
        plt = self.plt
        plt.clear_data()
        plt.title(self.title)
        plt.xlabel("epoch")
        self.draw(plt)
        for overlay, color in zip(self.overlays, OVERLAY_COLORS):
            self.draw_overlay(plt, overlay, color)
        self.dirty = False
        self.refresh()

    def draw(self, plt) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def draw_overlay(self, plt, overlay: Overlay, color: str) -> None:  # pragma: no cover - overridden
        raise NotImplementedError


class LossChart(RunChart):
    """Running batch loss, and train / validation loss per epoch."""

    title = "loss"

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.batch_x: list[float] = []
        self.batch_y: list[float] = []
        self.epochs: list[int] = []
        self.train_loss: list[float] = []
        self.val_loss: list[float] = []

    def clear_run(self) -> None:
        for series in (self.batch_x, self.batch_y, self.epochs, self.train_loss, self.val_loss):
            series.clear()
        super().clear_run()

    def add_batch(self, x: float, loss: float) -> None:
        self.batch_x.append(x)
        self.batch_y.append(loss)
        if len(self.batch_x) > MAX_BATCH_POINTS:
            del self.batch_x[::2], self.batch_y[::2]
        self.dirty = True

    def add_epoch(self, epoch: int, train_loss: float, val_loss: float) -> None:
        self.epochs.append(epoch)
        self.train_loss.append(train_loss)
        self.val_loss.append(val_loss)
        self.dirty = True

    def draw(self, plt) -> None:
        if self.batch_x:
            plt.plot(self.batch_x, self.batch_y, label="batch", color="gray", marker="braille")
        if self.epochs:
            epoch_series(plt, self.epochs, self.train_loss, "train", TRAIN_COLOR, TRAIN_POINT)
            epoch_series(plt, self.epochs, self.val_loss, "val", VAL_COLOR, VAL_POINT)

    def draw_overlay(self, plt, overlay: Overlay, color: str) -> None:
        if overlay.epochs:
            plt.plot(overlay.epochs, overlay.val_loss, label=overlay.label, color=color, marker="dot")


class AccuracyChart(RunChart):
    """Train and validation accuracy (%) per epoch."""

    title = "accuracy %"

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.epochs: list[int] = []
        self.train_acc: list[float] = []
        self.val_acc: list[float] = []

    def clear_run(self) -> None:
        for series in (self.epochs, self.train_acc, self.val_acc):
            series.clear()
        super().clear_run()

    def add_epoch(self, epoch: int, train_acc: float, val_acc: float) -> None:
        self.epochs.append(epoch)
        self.train_acc.append(100 * train_acc)
        self.val_acc.append(100 * val_acc)
        self.dirty = True

    def draw(self, plt) -> None:
        if self.epochs:
            epoch_series(plt, self.epochs, self.train_acc, "train", TRAIN_COLOR, TRAIN_POINT)
            epoch_series(plt, self.epochs, self.val_acc, "val", VAL_COLOR, VAL_POINT)

    def draw_overlay(self, plt, overlay: Overlay, color: str) -> None:
        if overlay.epochs:
            plt.plot(overlay.epochs, overlay.val_acc, label=overlay.label, color=color, marker="dot")
