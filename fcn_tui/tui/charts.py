"""The Train view's charts: loss and accuracy of the current run, curves of runs picked in Runs,
and one legend line above both (it hides no point, unlike a legend inside the plot).

Like textual-plotext's weather example, each chart keeps its series in plain lists and one
`replot()` clears and redraws. Adding points only marks a chart dirty; the app calls
`TrainCharts.redraw()` from its timer a few times a second while the Train tab is visible (and
once when a run ends), never per batch. Both charts share one x range with round ticks; each fits
its y range to the curves shown. Keys (while the Train view has focus): `m` cycles the smoothing
of the batch-loss curve, `l` switches the loss chart to a log scale.

Every series has its own marker (`+` train, `x` val, `*` best epoch, digits for earlier runs)
and one of the 16 ANSI colours, so the curves stay apart on a 16-colour terminal and without
colour (NO_COLOR); points are drawn after all lines, so no line hides a point.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.widgets import Static
from textual_plotext import PlotextPlot

from fcn_tui.tui import axes
from fcn_tui.tui.overlays import OVERLAY_COLORS, Overlay

__all__ = ["AccuracyChart", "LossChart", "Overlay", "TrainCharts"]

SMOOTHING_STEPS = (0.0, 0.6, 0.9, 0.99)  # what `m` cycles through: raw, light, TensorBoard's usual, heavy
DEFAULT_SMOOTHING = 0.6  # small batches give a noisy loss: 0.6 shows the trend and still shows a spike
MAX_BATCH_POINTS = 2000  # older batch-loss points are thinned beyond this, so redraws stay cheap
LINE = "braille"  # the finest line a terminal can draw: crossing curves share few cells

# (plotext colour, the same ANSI colour for the legend in Rich, point marker)
BATCH = ("gray", "bright_black", None)
TRAIN = ("cyan", "cyan", "+")
VAL = ("orange", "yellow", "x")  # plotext calls ANSI yellow "orange"
BEST = ("orange+", "bright_yellow", "*")
RICH_COLORS = {"magenta": "magenta", "green": "green", "red": "red", "blue+": "bright_blue",
               "magenta+": "bright_magenta", "green+": "bright_green", "red+": "bright_red", "white": "bright_white"}


@dataclass
class Curve:
    """One series as drawn: a line through the points (when `line`), a marker at each (when `point`)."""

    xs: list[float]
    ys: list[float]
    color: str
    point: str | None = None
    line: str | None = LINE


def best_index(values: list[float]) -> int | None:
    """Index of the highest value (the first one on a tie), None for no values."""
    finite = [(v, -i) for i, v in enumerate(values) if not math.isnan(v)]
    return -max(finite)[1] if finite else None


class RunChart(PlotextPlot):
    """Common part: title, the shared x range, a fitted y range, overlays, the dirty flag."""

    title = ""

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.dirty = False
        self.overlays: list[Overlay] = []
        self.x_max = 1.0  # set by TrainCharts, the same for both charts
        self.log_y = False
        self.best: int | None = None  # index of the best validation epoch (highest accuracy)
        self.plotted_size = self.size  # the size the ticks were chosen for

    def clear_run(self) -> None:
        """Forget the current run's points (a new run starts)."""
        self.best = None
        self.dirty = True

    def set_overlays(self, overlays: list[Overlay]) -> None:
        self.overlays = overlays
        self.dirty = True

    def on_mount(self) -> None:
        super().on_mount()
        self.replot()

    def x_extent(self, overlays: bool = True) -> float:
        """The largest x of the curves, or of the current run's alone (0 without any)."""
        curves = self.curves()
        if not overlays:
            curves = curves[min(len(self.overlays), len(OVERLAY_COLORS)):]  # `curves()` lists the overlays first
        return max((max(c.xs) for c in curves if c.xs), default=0.0)

    def curves(self) -> list[Curve]:  # pragma: no cover - overridden
        raise NotImplementedError

    def render(self):
        if self.size != self.plotted_size and self.size.area:  # first shown, or resized: ticks to fit
            self.replot(refresh=False)
        return super().render()

    def replot(self, refresh: bool = True) -> None:
        plt = self.plt
        self.plotted_size = self.size
        plt.clear_data()
        plt.title(self.title + (" (log)" if self.log_y else ""))
        width, height = (self.size.width or 40), (self.size.height or 14)
        curves = [self._shown(c) for c in self.curves()]
        fitted = axes.fit_range([c.ys for c in curves])
        plt.xlim(0, self.x_max)
        xticks = axes.nice_ticks(0, self.x_max, max(2, (width - 8) // 8), integer=True)
        plt.xticks(xticks, [f"{t:g}" for t in xticks])
        if fitted is not None:
            lo, hi = fitted
            plt.ylim(lo, hi)
            max_y = max(2, (height - 4) // 3)
            if self.log_y:
                real = axes.log_ticks(10**lo, 10**hi, max_y)
                plt.yticks([math.log10(t) for t in real], [f"{t:g}" for t in real])
            else:
                ticks = axes.readable_ticks(lo, hi, max_y)
                plt.yticks(ticks, axes.tick_labels(ticks))
        for c in curves:  # lines first, then every point on top of them
            if c.line and len(c.xs) > 1:
                plt.plot(c.xs, c.ys, color=c.color, marker=c.line)
        for c in curves:
            if c.point and c.xs:
                plt.scatter(c.xs, c.ys, color=c.color, marker=c.point)
        if refresh:
            self.refresh()

    def _shown(self, curve: Curve) -> Curve:
        """The curve's drawable points (finite, and > 0 on a log scale), in log10 on a log scale."""
        pairs = [(x, y) for x, y in zip(curve.xs, curve.ys) if math.isfinite(y)]
        if self.log_y:
            pairs = [(x, math.log10(y)) for x, y in pairs if y > 0]
        return Curve([p[0] for p in pairs], [p[1] for p in pairs], curve.color, curve.point, curve.line)

    def overlay_curves(self, values: str) -> list[Curve]:
        return [Curve(o.epochs, getattr(o, values), color, str(i + 1))
                for i, (o, color) in enumerate(zip(self.overlays, OVERLAY_COLORS))]

    def epoch_curves(self, epochs: list[int], train: list[float], val: list[float]) -> list[Curve]:
        curves = [Curve(epochs, train, TRAIN[0], TRAIN[2]), Curve(epochs, val, VAL[0], VAL[2])]
        if self.best is not None and self.best < len(epochs):
            curves.append(Curve([epochs[self.best]], [val[self.best]], BEST[0], BEST[2], line=None))
        return curves


class LossChart(RunChart):
    """Running batch loss (smoothed), and train / validation loss per epoch."""

    title = "loss"

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.smoothing = DEFAULT_SMOOTHING
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

    def smoothed(self) -> list[float]:
        return axes.ema(self.batch_y, self.smoothing)

    def curves(self) -> list[Curve]:
        curves = self.overlay_curves("val_loss")
        if self.batch_x:  # a low and a high point per column: more would look the same, and cost more
            xs, ys = axes.thin(self.batch_x, self.smoothed(), max(self.size.width, 40))
            curves.append(Curve(xs, ys, BATCH[0]))
        return curves + self.epoch_curves(self.epochs, self.train_loss, self.val_loss)


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
        self.best = best_index(self.val_acc)
        self.dirty = True

    def curves(self) -> list[Curve]:
        return self.overlay_curves("val_acc") + self.epoch_curves(self.epochs, self.train_acc, self.val_acc)


def legend_text(loss: LossChart, acc: AccuracyChart, width: int = 0) -> Text:
    """What each marker and colour means, the smoothing, the scale, and the overlaid runs; the
    runs on a line of their own when all of it is wider than `width` (0: no limit)."""
    parts: list[Text] = [
        Text.assemble((TRAIN[2], f"bold {TRAIN[1]}"), " train"),
        Text.assemble((VAL[2], f"bold {VAL[1]}"), " val"),
    ]
    if acc.best is not None and acc.best < len(acc.epochs):
        parts.append(Text.assemble((BEST[2], f"bold {BEST[1]}"), f" best epoch {acc.epochs[acc.best]}"))
    smoothing = f"ema {loss.smoothing:g}" if loss.smoothing else "raw"
    parts.append(Text.assemble(("⣀", BATCH[1]), f" batch loss, {smoothing}"))
    if loss.log_y:
        parts.append(Text("log-y"))
    text = Text("  ").join(parts)
    if loss.overlays:
        runs = Text("val of")
        for i, (overlay, color) in enumerate(zip(loss.overlays, OVERLAY_COLORS)):
            runs.append("  ")
            runs.append(str(i + 1), style=f"bold {RICH_COLORS[color]}")
            runs.append(" " + overlay.label)  # user text: appended as plain text, never markup
        one_line = len(text) + 4 + len(runs) <= width or not width
        text.append("  │ " if one_line else "\n")
        text.append_text(runs)
    return text


class TrainCharts(Vertical, can_focus=True):
    """The legend line and the two charts side by side; owns the chart keys."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("m", "cycle_smoothing", "Smoothing"),
        Binding("l", "toggle_log", "Log loss"),
    ]

    DEFAULT_CSS = """
    TrainCharts { height: 1fr; min-height: 8; }
    TrainCharts #chart-legend { height: auto; color: $text-muted; }
    TrainCharts #chart-row { height: 1fr; }
    """

    def __init__(self, id: str | None = None) -> None:
        super().__init__(id=id)
        self.planned_epochs = 0

    def compose(self) -> ComposeResult:
        yield Static(id="chart-legend")
        with Horizontal(id="chart-row"):
            yield LossChart(id="loss-chart")
            yield AccuracyChart(id="acc-chart")

    @property
    def loss(self) -> LossChart:
        return self.query_one(LossChart)

    @property
    def acc(self) -> AccuracyChart:
        return self.query_one(AccuracyChart)

    def on_mount(self) -> None:
        self.redraw(force=True)

    def clear_run(self, planned_epochs: int) -> None:
        """A new run starts: forget its points; until the first arrive, the x axis spans its planned epochs."""
        self.planned_epochs = planned_epochs
        self.loss.clear_run()
        self.acc.clear_run()

    def add_epoch(self, epoch: int, train_loss: float, val_loss: float, train_acc: float, val_acc: float) -> None:
        """One epoch's figures on both charts; the loss chart marks the same best epoch at once (a
        resize may replot it before the next redraw)."""
        self.loss.add_epoch(epoch, train_loss, val_loss)
        self.acc.add_epoch(epoch, train_acc, val_acc)
        self.loss.best = self.acc.best

    def set_overlays(self, overlays: list[Overlay]) -> None:
        """Draw `overlays` over the charts from the next redraw (at once when Train is shown again)."""
        self.loss.set_overlays(overlays)
        self.acc.set_overlays(overlays)

    def redraw(self, force: bool = False) -> None:
        """Replot both charts (sharing one x range) when either has new points, and the legend."""
        loss, acc = self.loss, self.acc
        if not (force or loss.dirty or acc.dirty):
            return
        # the current run's epochs set the x range (longer overlaid runs leave through the right
        # edge, a 3-epoch run is not squeezed into a fifth of the width); the overlays' without one
        own = max(loss.x_extent(overlays=False), acc.x_extent(overlays=False)) or float(self.planned_epochs)
        loss.x_max = acc.x_max = max(1.0, own or max(loss.x_extent(), acc.x_extent()))
        with self.app.batch_update():
            loss.replot()
            acc.replot()
            loss.dirty = acc.dirty = False  # only here: a resize's replot leaves the x range and best epoch to this
            self.update_legend()

    def update_legend(self) -> None:
        legend = self.query_one("#chart-legend", Static)
        legend.update(legend_text(self.loss, self.acc, legend.content_region.width))

    def on_resize(self) -> None:
        self.update_legend()  # first shown, or resized: the overlaid runs may fit on the first line

    def action_cycle_smoothing(self) -> None:
        loss = self.loss
        steps = SMOOTHING_STEPS
        loss.smoothing = steps[(steps.index(loss.smoothing) + 1) % len(steps)] if loss.smoothing in steps else steps[0]
        self.redraw(force=True)

    def action_toggle_log(self) -> None:
        self.loss.log_y = not self.loss.log_y
        self.redraw(force=True)
