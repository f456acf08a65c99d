"""The Train view as a researcher reads it: charts, legend, overlays, the status and system lines.

Pilot sessions drive the app with scripted events (no torch, no data): they press the keys a user
would and assert on what is plotted and written on the screen. The axis arithmetic and the system
readout are checked directly, with the numbers a user would see.
"""

from __future__ import annotations

import sys
import threading
import types

from rich.style import Style
from rich.text import Text

from fcn_tui.config import Config, Preset
from fcn_tui.runs import find_runs
from fcn_tui.tui import axes
from fcn_tui.tui.app import FcnApp
from fcn_tui.tui.charts import BATCH, TRAIN, VAL, legend_text
from fcn_tui.tui.overlays import OVERLAY_COLORS, overlay_labels
from fcn_tui.tui.status import FIRST_BATCHES, PREPARING
from fcn_tui.tui.sysinfo import MIB, Sample, SystemMonitor, gpu_figures, readout_text
from tests.helpers import LrBackend, earlier_runs, press, rendered, screen_text, settle, until
from tests.scripted import ScriptedBackend, ScriptedTrainer

SIZE = (80, 24)


def config(**values) -> Config:
    return Config().with_values({"train.epochs": 3, **values})


def plot_rows(chart) -> list[str]:
    """The rows inside the chart's frame (no title, no tick labels)."""
    rows = [r.replace("┤", "│", 1) for r in rendered(chart).split("\n")]
    return [r.split("│", 1)[1] for r in rows if "│" in r]


def data_colors(text: Text, legend: bool = False) -> set:
    """The colours of what is drawn inside a chart's frame (of a legend's one-glyph markers)."""
    colors = set()
    for span in text.spans:
        line_start = text.plain.rfind("\n", 0, span.start) + 1
        line = text.plain[line_start:text.plain.find("\n", span.start) % (len(text.plain) + 1)]
        frame = min((line.find(c) for c in "│┤" if c in line), default=-1)
        inside = span.end - span.start == 1 if legend else span.start - line_start > frame >= 0
        style = Style.parse(span.style) if isinstance(span.style, str) else span.style
        if inside and style.color and text.plain[span.start:span.end].strip("│┤ "):
            colors.add(style.color)
    return colors


async def overlay_two_runs(pilot) -> None:
    """Train the form's run, pick the two earlier runs in Runs (space), back to Train."""
    await settle(pilot)
    await press(pilot, "ctrl+r")  # the current run
    await pilot.press("f4", "down", "space", "down", "space")  # newest first: skip the current run
    await press(pilot, "f2")


# --- axes ------------------------------------------------------------------------------------


def test_ticks_are_round_numbers():
    assert axes.nice_ticks(0, 3, 4, integer=True) == [0, 1, 2, 3]
    assert axes.nice_ticks(0, 3.1, 4, integer=True) == [0, 1, 2, 3]  # never 0.2 / 1.2 / 2.1 / 3.1
    assert axes.nice_ticks(0, 40, 4, integer=True) == [0, 10, 20, 30, 40]
    assert axes.nice_ticks(0.28, 1.63, 4) == [0.5, 1.0, 1.5]
    assert axes.tick_labels([0.5, 1.0, 1.5]) == ["0.5", "1.0", "1.5"]
    assert axes.tick_labels([70, 75, 80]) == ["70", "75", "80"]
    assert axes.log_ticks(0.09, 2.5, 6) == [0.1, 0.2, 0.5, 1, 2]


def test_one_diverged_run_does_not_squash_the_others():
    healthy = [[0.9, 0.6, 0.45], [0.8, 0.5, 0.4]]
    lo, hi = axes.fit_range([*healthy, [0.9, 40.0, float("nan")]])
    assert lo < 0.4 and 0.9 < hi < 3  # the healthy curves keep their height
    lo, hi = axes.fit_range(healthy)
    assert 0.35 < lo < 0.4 and 0.9 < hi < 0.95  # fitted to what is shown, a little room each side


def test_a_long_batch_curve_is_thinned_without_losing_its_spikes():
    xs = [i / 100 for i in range(2000)]
    ys = [1.0] * 2000
    ys[1234] = 9.0  # one spike
    tx, ty = axes.thin(xs, ys, 60)
    assert len(tx) <= 120 and 9.0 in ty and tx == sorted(tx) and tx[0] == 0.0
    assert axes.thin(xs[:100], ys[:100], 60) == (xs[:100], ys[:100])  # short curves stay as they are


def test_smoothing_is_a_debiased_moving_average():
    assert axes.ema([2.0, 1.0], 0) == [2.0, 1.0]
    smooth = axes.ema([2.0, 1.0, 1.0], 0.9)
    assert smooth[0] == 2.0  # starts at the first value, not near zero
    assert 1.0 < smooth[2] < smooth[1] < 2.0


# --- the charts in the app -------------------------------------------------------------------


async def test_after_a_run_the_legend_hides_no_point_the_axis_is_shared_and_keys_smooth_and_log(tmp_path):
    app = FcnApp(preset=Preset(config(name="adam")), out=tmp_path / "runs", backend_factory=ScriptedBackend)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "m" not in app.active_bindings  # the chart keys: only on the Train view
        await press(pilot, "ctrl+r")
        legend = app.query_one("#chart-legend")
        assert legend.region.bottom <= app.loss_chart.region.y  # above the charts, not inside them
        text = screen_text(app, "#chart-legend")
        assert "+ train" in text and "x val" in text and "* best epoch 3" in text and "ema 0.6" in text
        for chart in (app.loss_chart, app.acc_chart):
            plot = "\n".join(plot_rows(chart))
            assert "train" not in plot and "val" not in plot
            # three epochs: train +, val x, and the best validation epoch (the last) a *
            assert plot.count("+") == 3 and plot.count("x") == 2 and plot.count("*") == 1
        # 16 colours only, one per series: readable on any terminal, and the markers without colour
        colors = data_colors(app.loss_chart.render()) | data_colors(app.acc_chart.render())
        assert len(colors) == 4 and all(c.number is not None and c.number < 16 for c in colors)
        assert len({TRAIN[0], VAL[0], BATCH[0], *OVERLAY_COLORS}) == 3 + len(OVERLAY_COLORS) >= 3 + 8
        # one epoch axis for both charts, with round ticks
        assert app.loss_chart.x_max == app.acc_chart.x_max == 3
        for chart in (app.loss_chart, app.acc_chart):
            assert rendered(chart).rstrip().split("\n")[-1].split() == ["0", "1", "2", "3"]
        # the keys of the Train view: smoothing of the batch loss, a log scale
        assert {"m", "l"} <= {key for key, b in app.active_bindings.items() if b.binding.show}
        chart = app.loss_chart
        raw = list(chart.batch_y)
        await pilot.press("m")  # 0.6 -> 0.9
        assert "ema 0.9" in screen_text(app, "#chart-legend")
        batch = next(c for c in chart.curves() if c.color == BATCH[0])
        assert batch.ys == axes.ema(raw, 0.9) and batch.ys != raw
        await pilot.press("m", "m")  # 0.99, then off
        assert "batch loss, raw" in screen_text(app, "#chart-legend")
        assert next(c for c in chart.curves() if c.color == BATCH[0]).ys == raw
        await pilot.press("l")
        assert chart.log_y and "log-y" in screen_text(app, "#chart-legend")
        assert "loss (log)" in rendered(chart)
        labels = [row.split("┤")[0].strip() for row in rendered(chart).split("\n") if "┤" in row]
        assert labels and all(float(label) in {0.2, 0.5, 1, 2, 5} for label in labels)  # real values
        await pilot.press("f1")
        assert "m" not in app.active_bindings


async def test_an_epoch_that_arrives_between_a_resize_and_the_redraw_is_drawn_with_its_best_mark(tmp_path):
    app = FcnApp(preset=Preset(config(name="adam")), out=tmp_path / "runs", backend_factory=ScriptedBackend)
    async with app.run_test(size=SIZE) as pilot:
        await press(pilot, "f2")
        charts = app.charts
        charts.clear_run(3)
        for epoch, acc in ((1, 0.70), (2, 0.75)):
            charts.add_epoch(epoch, 1.0 / epoch, 1.1 / epoch, acc, acc)
        app.redraw()
        charts.add_epoch(3, 0.3, 0.35, 0.80, 0.80)  # the best epoch so far
        for chart in (app.loss_chart, app.acc_chart):  # the terminal was resized: each replots as it renders
            chart.plotted_size = chart.size.__class__(1, 1)
            chart.render()
        app.redraw()  # the timer's redraw still sets the x range and the best mark
        assert app.loss_chart.x_max == app.acc_chart.x_max == 3
        for chart in (app.loss_chart, app.acc_chart):
            best = [c for c in chart.curves() if c.line is None]
            assert [c.xs for c in best] == [[3]]  # the best mark on the last epoch, in both charts
            assert "\n".join(plot_rows(chart)).count("*") == 1


async def test_overlays_are_labelled_by_their_settings_and_coloured_apart(tmp_path):
    out = tmp_path / "runs"
    earlier_runs(out, config(name="run", **{"optim.name": "adam", "optim.lr": 0.001}),
                 config(name="run", **{"optim.name": "sgd", "optim.lr": 0.1}))
    app = FcnApp(preset=Preset(config(name="now")), out=out, backend_factory=LrBackend)
    async with app.run_test(size=SIZE) as pilot:
        await overlay_two_runs(pilot)
        assert [o.label for o in app.loss_chart.overlays] == ["sgd lr=0.1", "adam lr=1e-3"]  # as Runs writes it
        legend = screen_text(app, "#chart-legend")
        assert "1 sgd lr=0.1" in legend and "2 adam lr=1e-3" in legend
        plot = "\n".join(plot_rows(app.acc_chart))
        assert plot.count("1") >= 2 and plot.count("2") >= 2  # each run's own marker on its points
        legend_colors = {c.number for c in data_colors(legend_text(app.loss_chart, app.acc_chart), legend=True)}
        assert len(legend_colors) == 6  # train, val, best, batch and the two runs: no two alike
        assert {c.number for c in data_colors(app.acc_chart.render())} <= legend_colors  # as on the chart


async def test_overlay_labels_write_searched_numbers_short_so_they_fit(tmp_path):
    """Search runs have values like 0.459305 and 0.000417: written as the Runs table writes them
    (3 significant digits), so no label is cut and the legend names both runs whole."""
    out = tmp_path / "runs"
    earlier_runs(out, config(name="s1", **{"optim.name": "sgd", "optim.lr": 0.00041714, "model.dropout": 0.459305}),
                 config(name="s2", **{"optim.name": "adam", "optim.lr": 0.0123456, "model.dropout": 0.357408}))
    app = FcnApp(preset=Preset(config(name="now")), out=out, backend_factory=LrBackend)
    async with app.run_test(size=SIZE) as pilot:
        await overlay_two_runs(pilot)
        legend = screen_text(app, "#chart-legend")
        assert "1 adam drop=0.357 lr=0.0123" in legend and "2 sgd drop=0.459 lr=4.17e-4" in legend
        assert "…" not in legend


def test_labels_fall_back_to_names_when_the_settings_are_alike(tmp_path):
    earlier_runs(tmp_path, config(name="alpha"), config(name="beta"), config(name="gamma", **{"model.hidden": [64]}))
    runs = {r.name: r for r in find_runs(tmp_path)}
    assert overlay_labels([runs["alpha"], runs["beta"]]) == ["alpha", "beta"]
    assert overlay_labels([runs["alpha"], runs["gamma"], runs["beta"]]) == ["h=400,400 alpha", "h=64", "h=400,400 beta"]
    assert overlay_labels([runs["gamma"]]) == ["gamma"]  # one run: its name


def test_a_label_says_all_images_where_the_subset_is_zero(tmp_path):
    earlier_runs(tmp_path, config(name="full", **{"data.subset": 0}), config(name="part", **{"data.subset": 6000}))
    runs = {r.name: r for r in find_runs(tmp_path)}
    assert overlay_labels([runs["full"], runs["part"]]) == ["n=all", "n=6000"]  # n=0 read as zero images


# --- what the Train view says before and while a run goes ------------------------------------


class GatedBackend(ScriptedBackend):
    """Holds the run before it starts, after RunStarted, and after the first progress."""

    def __init__(self) -> None:
        super().__init__()
        self.split_gate, self.batch_gate, self.progress_gate = threading.Event(), threading.Event(), threading.Event()

    def split(self, config):
        self.split_gate.wait(10)

    def trainer(self, config, split, should_stop):
        gates = self.batch_gate, self.progress_gate

        class Trainer(ScriptedTrainer):
            def events(self):
                stream = super().events()
                for gate in gates:
                    yield next(stream)  # RunStarted, then the first BatchProgress
                    gate.wait(10)
                yield from stream

        return Trainer(config, should_stop, None)


async def test_the_status_says_what_happens_before_the_first_batches_then_the_running_loss(tmp_path):
    backend = GatedBackend()
    app = FcnApp(preset=Preset(config(name="adam")), out=tmp_path / "runs", backend_factory=lambda: backend)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.backend is not None)
        await pilot.press("ctrl+r")
        await pilot.pause()
        assert PREPARING in screen_text(app, "#run-status")
        backend.split_gate.set()
        await until(pilot, lambda: app.current.name == "adam")
        app.redraw()
        status = screen_text(app, "#run-status")
        assert FIRST_BATCHES in status and "epoch 1/3" in status
        assert "samples/s" not in status and "ETA" not in status
        backend.batch_gate.set()
        await until(pilot, lambda: app.current.step == 1)
        app.redraw()
        assert "batch 1/4 · loss 1.33 · 12,000 samples/s" in screen_text(app, "#run-status")  # the running loss
        backend.progress_gate.set()
        await until(pilot, lambda: not app.running)
        await settle(pilot)
        assert "completed" in screen_text(app, "#run-status")


# --- redraws and the system readout ------------------------------------------------------------


async def test_nothing_is_redrawn_or_measured_while_another_tab_is_shown(tmp_path, monkeypatch):
    reads = []
    monkeypatch.setattr(SystemMonitor, "read", lambda self, device="": reads.append(device) or Sample(
        cpu_percent=97.0, cores=2, rss=412 * MIB))
    app = FcnApp(preset=Preset(config(name="adam")), out=tmp_path / "runs", backend_factory=ScriptedBackend)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        app.loss_chart.add_epoch(1, 0.5, 0.6)  # new points while Setup is shown
        app.redraw()
        await settle(pilot)
        assert app.loss_chart.dirty and reads == []
        sysinfo = await press(pilot, "f2", read="#sysinfo")
        assert not app.loss_chart.dirty and reads
        assert sysinfo == "cpu 97% of 2 cores · mem 412 MiB"


def test_the_system_readout_degrades_gracefully(monkeypatch):
    monitor = SystemMonitor()
    first, second = monitor.read(), monitor.read()
    assert first.cpu_percent is None and second.cpu_percent is not None  # CPU use needs two samples
    assert second.rss is None or second.rss > 10 * MIB
    assert gpu_figures("cpu") == (None, None, None)
    fake_cuda = types.SimpleNamespace(mem_get_info=lambda device: (60 << 30, 80 << 30),
                                      utilization=lambda device: (_ for _ in ()).throw(ModuleNotFoundError("pynvml")))
    monkeypatch.setitem(sys.modules, "torch", types.SimpleNamespace(cuda=fake_cuda))
    util, used, total = gpu_figures("cuda:0")
    assert (util, used, total) == (None, 20 << 30, 80 << 30)  # no NVML: memory only
    text = readout_text(Sample(cpu_percent=180.0, cores=16, rss=3 << 30, gpu_util=None, gpu_used=used,
                               gpu_total=total))
    assert text.plain == "cpu 180% of 16 cores · mem 3.0 GiB · gpu mem 20.0/80.0 GiB"
    assert readout_text(Sample()) == Text("system figures: measuring…")


async def test_at_80x24_with_overlays_the_loss_axis_has_values_and_the_run_its_width(tmp_path):
    """Two earlier 15-epoch runs overlaid on a 3-epoch run: the x axis is the run's 3 epochs
    (the longer curves leave through the right edge), the loss axis at least two labels."""
    out = tmp_path / "runs"
    earlier_runs(out, config(name="a", **{"train.epochs": 15}), config(name="b", **{"train.epochs": 15, "optim.lr": 0.1}))
    app = FcnApp(preset=Preset(config(name="now")), out=out, backend_factory=LrBackend)
    async with app.run_test(size=SIZE) as pilot:
        await overlay_two_runs(pilot)
        assert len(app.loss_chart.overlays) == 2
        assert app.loss_chart.x_max == app.acc_chart.x_max == 3
        labels = [line.split("┤")[0].strip() for line in rendered(app.loss_chart).split("\n") if "┤" in line]
        assert len([label for label in labels if label]) >= 2, labels  # more than one loss value to read


def test_a_short_chart_still_gets_two_ticks():
    assert axes.nice_ticks(0.3, 1.9, 2) == [1.0]  # what a chart 8 rows high got: one label
    assert axes.readable_ticks(0.3, 1.9, 2) == [0.5, 1.0, 1.5]
