"""FcnApp: the terminal app. Setup / Train / Confusion / Runs tabs, training in a thread worker.

First paint is fast: nothing here imports torch. torch and the dataset load in a thread worker
after the first screen is up (`backend.TorchBackend.load`); training runs in another thread
worker (`training.run_queue`) that plans and writes the runs exactly like `fcn-tui run` and hands
every engine event to the UI with `post_message`. Charts and the status line are redrawn by a
timer a few times a second, only while the Train tab is shown, never per batch. SIGHUP (a
closed SSH session) and SIGTERM stop a run cleanly, like ctrl+q does, so it is saved as
`stopped`, and the app exits 128 + N within `HANGUP_DEADLINE_S`; after SIGHUP nothing more is
written to the dead terminal (`terminal.py`). The app's exit status is 1 after an unhandled
error (`exit_status`).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, ScrollableContainer, VerticalScroll
from textual.css.query import NoMatches
from textual.screen import ModalScreen, Screen
from textual.widgets import Button, Footer, ProgressBar, Static, TabbedContent, TabPane, Tabs

from fcn_tui import events as ev
from fcn_tui.config import Config, Preset, all_keys, check_preset, format_value, load_preset
from fcn_tui.errors import ConfigError, DataError, KeptFileError, NoRunsError, NoTestImages, UnreadableFile
from fcn_tui.fashion import NUM_CLASSES
from fcn_tui.fileio import atomic_write_text
from fcn_tui.runs import RunRecord, find_runs, is_study_folder, read_confusion, slug, study_preset
from fcn_tui.tui.charts import AccuracyChart, LossChart, Overlay, TrainCharts
from fcn_tui.tui.confusion import ConfusionView
from fcn_tui.tui.dialogs import ConfirmDialog, PathDialog, TableDialog
from fcn_tui.tui.form import SetupForm
from fcn_tui.tui.messages import (
    DataFailed,
    DataReady,
    Progress,
    QueueDone,
    RunError,
    RunsLoaded,
    SweepWritten,
    TrainEvent,
)
from fcn_tui.tui.mistakes import MistakesScreen
from fcn_tui.tui.overlays import overlay_labels
from fcn_tui.tui.picker import FilePicker, exists
from fcn_tui.tui.readout import SystemReadout
from fcn_tui.tui.runs_view import RunsView
from fcn_tui.tui.status import PREPARING, RunState, status_text
from fcn_tui.tui.study_view import StudyView
from fcn_tui.tui.tiles import TileScreen
from fcn_tui.tui.training import run_queue
from fcn_tui.tui.weights_view import WeightsScreen

DIALOG_BLOCKED = {"start", "stop", "open_preset", "save_preset", "export", "tab"}  # app keys a dialog masks
HANGUP_DEADLINE_S = 10  # after SIGHUP / SIGTERM the process ends within this, run saved or not
REDRAW_S = 0.5  # charts and the status line redraw at most twice a second: each redraw takes CPU from training
TABS = ("setup", "train", "confusion", "runs", "study")
KEYS_HELP = (
    "F1-F5 tabs · tab/shift+tab next/previous field · enter opens a list · ctrl+r start · "
    "ctrl+x stop · ctrl+o open preset · ctrl+s save preset · ctrl+p all commands · ctrl+q quit · "
    "on Train: m smoothing, l log loss"
)


def named_after_changes(base: Config, config: Config) -> Config:
    """The form's config named as `fcn-tui run --set` names a run (`Config.with_overrides`): the
    preset's name and each setting the form changed, `baseline,optim.name=adam`; a name typed
    into the form stays as typed."""
    if config.name != base.name:
        return config
    changed = {key: config.get(key) for key in all_keys() if key != "name" and config.get(key) != base.get(key)}
    return base.with_overrides(changed, "form") if changed else config


class FcnApp(App):
    """Set up an MLP, train it in the background, watch it learn, compare it with earlier runs."""

    CSS_PATH = "app.tcss"
    TITLE = "fcn-tui"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+r", "start", "Start", priority=True),
        Binding("ctrl+x", "stop", "Stop", priority=True),
        Binding("ctrl+o", "open_preset", "Open", show=False, priority=True),
        Binding("ctrl+s", "save_preset", "Save", show=False, priority=True),
        Binding("ctrl+e", "export", "Export CSV", show=False, priority=True),  # else an Input's "end"
        Binding("f1", "tab('setup')", "Setup", show=False),
        Binding("f2", "tab('train')", "Train", show=False),
        Binding("f3", "tab('confusion')", "Confusion", show=False),
        Binding("f4", "tab('runs')", "Runs", show=False),
        Binding("f5", "tab('study')", "Study", show=False),
        Binding("ctrl+q", "quit", "Quit", priority=True),
    ]

    def __init__(
        self,
        preset: Preset | None = None,
        out: Path = Path("runs"),
        data_dir: Path | None = None,
        backend_factory: Callable[[], Any] | None = None,
        confine: bool = False,
        study: tuple[str | None, str | None] = (None, None),
    ) -> None:
        """`backend_factory` replaces loading torch and the data (tests pass the `ScriptedBackend` of
        `tests/scripted.py`).
        `confine`: the dialogs accept only paths inside `out` (a served app reaches no other file)."""
        super().__init__()
        self.confine = confine
        self.study = study  # (storage, study name) for the Study tab; (None, None): the newest under OUT
        self.preset = preset or Preset(config=Config())
        self.sweep = self.preset.sweep
        self.search = self.preset.search  # a preset's [search]: ctrl+r trains the search
        self.out = Path(out)
        self.data_dir = data_dir
        self.backend_factory = backend_factory or self._load_torch_backend
        self.backend: Any = None
        self.cpu_note: str | None = None  # the thread count chosen on a busy CPU (`fcn_tui.cpu`)
        self.data_error: str | None = None
        self.running = False
        self._history_lock = threading.Lock()  # `load_runs`: one read of the history at a time
        self._history_busy = False  # a read is under way
        self._history_again = False  # the history changed during that read
        self._follow_new_run = False  # a run the app started is not listed yet: at the top, it takes the cursor
        self.stop_event = threading.Event()
        self.quit_when_stopped = False
        self.start_when_ready = False  # ctrl+r pressed while the data was still loading
        self.signal_code: int | None = None  # 128 + N once signal N asked the app to end
        self.crashed = False
        self.current = RunState()
        self.last_sweep: Path | None = None
        self._signals: list[int] = []
        self._status_shape: list[int] = []  # line lengths of the status shown (see update_status)
        self._held_toasts: list[tuple[str, bool, dict]] = []  # raised while a yes/no question is open

    def notify(self, message: str, *, markup: bool = False, **kwargs: Any) -> None:
        """A toast in plain text: the names, paths and errors in it are never read as markup.
        While a yes/no question is open, toasts wait until it is answered: on a small terminal
        they would cover its buttons."""
        if isinstance(self.screen, ConfirmDialog):
            self._held_toasts.append((message, markup, kwargs))
            return
        super().notify(message, markup=markup, **kwargs)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """While a dialog is open its keys win: ctrl+r in a path field must not start a run."""
        return not (action in DIALOG_BLOCKED and isinstance(self.screen, ModalScreen))

    def get_driver_class(self) -> Any:
        """On Linux and macOS, Textual's driver made safe against a terminal that goes away."""
        driver_class = super().get_driver_class()
        if driver_class.__name__ == "LinuxDriver":
            from fcn_tui.tui.terminal import SafeLinuxDriver

            return SafeLinuxDriver
        return driver_class

    def panic(self, *renderables: Any) -> None:
        """An error Textual could not handle (it ends the app): the exit status says so."""
        self.crashed = True
        super().panic(*renderables)

    @property
    def exit_status(self) -> int:
        """The exit status once the app has ended: 1 after a crash, 128 + N after signal N, else 0."""
        return self.return_code or (1 if self.crashed else 0)

    def _load_torch_backend(self) -> Any:
        from fcn_tui.cpu import apply_threads
        from fcn_tui.tui.backend import TorchBackend

        backend = TorchBackend.load(self.data_dir)
        self.cpu_note = apply_threads(None).note()  # the free cores at start-up; shown once the data is ready
        return backend

    # --- layout -------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        with TabbedContent(initial="setup", id="tabs"):
            with TabPane("F1 Setup", id="setup"), VerticalScroll(id="setup-scroll"):
                yield SetupForm(self.preset.config, id="form")
                yield Static(self._sweep_text(), id="sweep-info")
                with Horizontal(id="buttons"):
                    yield Button("Start ^r", id="start", variant="success", compact=True, disabled=True)
                    yield Button("Stop ^x", id="stop", variant="error", compact=True, disabled=True)
                    yield Button("Open ^o", id="open", compact=True)
                    yield Button("Save ^s", id="save", compact=True)
                yield Static("data: loading torch and Fashion-MNIST…", id="data-status")
                yield Static(KEYS_HELP, id="keys-help")
            with TabPane("F2 Train", id="train"):
                yield Static(id="run-status")
                yield ProgressBar(total=1, id="progress", show_eta=False)
                yield SystemReadout(id="sysinfo")
                yield TrainCharts(id="charts")
            with TabPane("F3 Confusion", id="confusion"), ScrollableContainer(id="cm-scroll"):
                yield ConfusionView(id="cm")
            with TabPane("F4 Runs", id="runs"):
                yield RunsView(self.out, id="runs-view")
            with TabPane("F5 Study", id="study"):
                yield StudyView(self.out, *self.study, id="study-view")
        yield Footer()

    def _q(self, selector: str, expect_type: Any = None) -> Any:
        """A widget of the main screen (`App.query_one` would search a dialog on top of it);
        `NoMatches` once the app is closing and its screens are gone."""
        if not self.screen_stack:
            raise NoMatches(f"no screen for {selector}: the app is closing")
        screen = self.screen_stack[0]
        return screen.query_one(selector, expect_type) if expect_type else screen.query_one(selector)

    @property
    def form(self) -> SetupForm:
        return self._q("#form", SetupForm)

    @property
    def runs_view(self) -> RunsView:
        return self._q("#runs-view", RunsView)

    @property
    def loss_chart(self) -> LossChart:
        return self._q("#loss-chart", LossChart)

    @property
    def acc_chart(self) -> AccuracyChart:
        return self._q("#acc-chart", AccuracyChart)

    @property
    def charts(self) -> TrainCharts:
        return self._q("#charts", TrainCharts)

    @property
    def confusion(self) -> ConfusionView:
        return self._q("#cm", ConfusionView)

    def on_mount(self) -> None:
        self._show_sweep()  # and validate the form
        self._q("#f-name").focus()
        self.load_runs()
        # importing torch holds the GIL for a while: start it only once the first screen is drawn
        self.call_after_refresh(self.load_backend)
        self.set_interval(REDRAW_S, self.redraw)
        self._catch_hangup()
        self.update_status()
        self.update_buttons()

    def on_unmount(self) -> None:
        self.stop_event.set()  # however the app ends, a run still going stops and is saved
        loop = asyncio.get_running_loop()
        for sig in self._signals:
            loop.remove_signal_handler(sig)

    def _catch_hangup(self) -> None:
        """SIGHUP (closed SSH session) and SIGTERM: stop the run cleanly, save it, then exit."""
        loop = asyncio.get_running_loop()
        for name in ("SIGHUP", "SIGTERM"):
            sig = getattr(signal, name, None)
            if sig is None:  # Windows
                continue
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, self._hang_up, sig)
                self._signals.append(sig)

    def _hang_up(self, signum: int) -> None:
        """Stop the run (saved as `stopped`), then exit 128 + N; a second signal exits at once.
        After SIGHUP the terminal is gone: output is dropped, so no write can block the exit."""
        if signum == getattr(signal, "SIGHUP", None):
            if self.signal_code == 128 + signum:  # the hang-up is being handled (a failed write
                return  # and SIGHUP both tell of it)
            driver = getattr(self, "_driver", None)
            if hasattr(driver, "hang_up"):
                driver.hang_up()
        code = 128 + signum
        if self.running and self.signal_code is None:
            self.signal_code = code
            self.quit_when_stopped = True
            self.stop_event.set()
            from fcn_tui.tui.terminal import exit_anyway_after

            exit_anyway_after(HANGUP_DEADLINE_S, code)
        else:
            self.stop_event.set()
            self.exit(return_code=self.signal_code or code)

    def on_terminal_lost(self, message: Any) -> None:
        """A write to the terminal failed (`terminal.TerminalLost`): a hang-up without SIGHUP."""
        if self.signal_code is None and hasattr(signal, "SIGHUP"):  # not when SIGHUP came first
            self._hang_up(signal.SIGHUP)

    # --- background work ----------------------------------------------------------------

    @work(thread=True, exclusive=True, exit_on_error=False, group="data", description="load torch and the dataset")
    def load_backend(self) -> None:
        try:
            backend = self.backend_factory()
        except Exception as err:  # noqa: BLE001 - DataError, a broken torch install, ...
            message = str(err) if isinstance(err, DataError) else f"{type(err).__name__}: {err}"
            self.post_message(DataFailed(message))
            return
        if backend is None:
            self.post_message(DataFailed("no data was loaded"))
            return
        self.post_message(DataReady(backend))

    def load_runs(self) -> None:
        """Read the run history again: now, or right after the read under way (a read is never
        cancelled, so every message it posts arrives and no waiting worker is let down)."""
        with self._history_lock:
            if self._history_busy:
                self._history_again = True
                return
            self._history_busy = True
        self._read_runs()

    @work(thread=True, exit_on_error=False, group="history", description="read run history")
    def _read_runs(self) -> None:
        while True:
            try:
                records = find_runs(self.out)
            except OSError as err:  # an unreadable output folder
                self.post_message(RunError("history", f"cannot read {self.out}: {err.strerror or err}"))
                records = []
            except BaseException:
                with self._history_lock:
                    self._history_busy = False  # the next load_runs reads again
                raise
            self.post_message(RunsLoaded(records))
            with self._history_lock:
                if not self._history_again:
                    self._history_busy = False
                    return
                self._history_again = False  # runs changed while it read: read again

    @work(thread=True, exclusive=True, exit_on_error=False, group="training", description="train the queue")
    def train_queue(self, presets: list[Preset], backend: Any, stop: threading.Event) -> None:
        """Run every planned run in order, writing each like `fcn-tui run` does."""
        run_queue(presets, self.out, backend, stop, self.post_message)

    # --- messages from the workers ------------------------------------------------------

    def on_data_ready(self, message: DataReady) -> None:
        try:
            self.backend = message.backend
            self.data_error = None
            self._q("#data-status", Static).update(Text(f"data: {self.backend.description}"))
            replaced = self.form.set_devices(self.backend.devices)
            if replaced:
                self.notify(f"device {replaced!r} is not available here; using auto", severity="warning")
            if self.cpu_note:
                self.notify(self.cpu_note, severity="warning")
            self.update_buttons()
        except NoMatches:  # a worker's message that lands while the app is closing
            return
        if self.start_when_ready:  # ctrl+r was pressed while the data was loading
            self.notify("the data is ready: starting the run")
            self.action_start()

    def on_data_failed(self, message: DataFailed) -> None:
        self.start_when_ready = False
        try:
            self.data_error = message.error
            self._q("#data-status", Static).update(Text(f"data: error: {message.error}", style="bold red"))
            self.notify(message.error, title="cannot load the data", severity="error", timeout=15)
            self.update_status()
            self.update_buttons()
        except NoMatches:  # a worker's message that lands while the app is closing
            pass

    def on_runs_loaded(self, message: RunsLoaded) -> None:
        try:
            if self.runs_view.set_records(message.records, keep_top=self._follow_new_run):
                self._follow_new_run = False  # the run the app started is listed
        except NoMatches:  # a worker's message that lands while the app is closing
            pass

    def on_train_event(self, message: TrainEvent) -> None:
        self.handle_event(message)

    def on_progress(self, message: Progress) -> None:
        self.handle_event(message)

    def handle_event(self, message: TrainEvent) -> None:
        event, run = message.event, self.current
        if isinstance(event, ev.RunStarted):
            self.current = run = RunState()
            run.name, run.position, run.total = event.config.name, message.position, message.total
            run.epochs, run.steps, run.device = event.config.train.epochs, event.steps_per_epoch, event.device_name
            run.torch_device = event.device
            run.started = time.monotonic()
            self.charts.clear_run(run.epochs)
            self.confusion.clear()
            self._follow_new_run = True
            self.load_runs()  # the new run shows as `running` (highlighted, if the cursor is at the top)
        elif isinstance(event, ev.BatchProgress):
            run.epoch, run.step, run.global_step = event.epoch, event.step, event.global_step
            run.samples_per_s, run.loss = event.samples_per_s, event.loss
            run.phase = "validating" if event.step == event.steps_per_epoch else ""
            for x, loss in getattr(message, "points", ()):
                self.loss_chart.add_batch(x, loss)
        elif isinstance(event, ev.EpochEnded):
            run.epoch, run.step = event.epoch, run.steps
            run.global_step = event.epoch * run.steps
            run.phase = "testing" if event.epoch == event.epochs else ""
            self.charts.add_epoch(event.epoch, event.train_loss, event.val_loss, event.train_acc, event.val_acc)
            self.confusion.show("val", event.val_confusion, f"validation, epoch {event.epoch}/{event.epochs}")
        elif isinstance(event, ev.RunFinished):
            run.finished, run.phase = event, ""
            run.error = event.error
            if event.test_confusion is not None:
                self.confusion.show("test", event.test_confusion, f"test, {run.name}", message.run_dir, run.name)
            if event.status == ev.FAILED:
                self.notify(event.error or "unknown error", title=f"{run.name} failed", severity="error", timeout=15)
            self.redraw()
            self.load_runs()

    def on_run_error(self, message: RunError) -> None:
        self.current.error = f"{message.name}: {message.error}"
        self.notify(message.error, title=f"{message.name}: error", severity="error", timeout=15)
        self.update_status()
        self.load_runs()

    def on_sweep_written(self, message: SweepWritten) -> None:
        self.last_sweep = message.sweep_dir
        self.notify(f"{message.name}: results.csv and results.md written; press c in Runs for the table",
                    title=f"{message.kind} finished", timeout=10)
        self.load_runs()

    def on_queue_done(self, message: QueueDone) -> None:
        self.running = False
        if not self.current.name:  # stopped, or failed, before a run started: not preparing any more
            self.current.phase = ""
        self.update_buttons()
        self.redraw()
        self.load_runs()
        if self.quit_when_stopped:
            self.exit(return_code=self.signal_code or 0)

    def on_setup_form_changed(self, message: SetupForm.Changed) -> None:
        with contextlib.suppress(NoMatches):  # a change that lands while the app is closing
            self.update_buttons()

    def on_runs_view_picked(self, message: RunsView.Picked) -> None:
        overlays = [Overlay(label, r.metrics) for label, r in zip(overlay_labels(message.records), message.records)]
        self.charts.set_overlays(overlays)  # drawn when Train is shown (at once when its tab opens)

    def on_tabbed_content_tab_activated(self, message: TabbedContent.TabActivated) -> None:
        if message.pane.id == "runs":  # runs other processes wrote since: shown without a key
            self.load_runs()
        if message.pane.id == "train":  # drawn at once: nothing was redrawn while it was hidden
            if not isinstance(self.focused, Tabs):  # arrowing along the tab bar keeps going
                self.charts.focus()  # its keys (smoothing, log scale) in the footer
            self.charts.redraw(force=True)
            self.redraw()

    def on_confusion_view_cell_chosen(self, message: ConfusionView.CellChosen) -> None:
        self.push_screen(MistakesScreen(message.run_dir, message.true, message.predicted, self.test_set))

    def on_confusion_view_weights_wanted(self, message: ConfusionView.WeightsWanted) -> None:
        self.push_screen(WeightsScreen(message.run_dir, message.name))

    def test_set(self) -> tuple[Any, Any]:
        """The loaded test images and labels as numpy arrays, for a worker thread (`MistakesScreen`)."""
        backend = self.backend
        if backend is None:
            raise NoTestImages(f"the test images could not be loaded: {self.data_error}" if self.data_error
                                     else "the test images are still loading: try again in a moment")
        if not hasattr(backend, "test_set"):
            raise NoTestImages("no test images are loaded in this session")
        return backend.test_set()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        actions = {"start": self.action_start, "stop": self.action_stop, "open": self.action_open_preset,
                   "save": self.action_save_preset}
        if event.button.id in actions:
            event.stop()
            actions[event.button.id]()

    # --- drawing ------------------------------------------------------------------------

    def redraw(self) -> None:
        """Replot the charts that have new points and refresh the status line (timer-driven)."""
        try:
            self._redraw()
        except NoMatches:  # the app is closing and its widgets are gone
            pass

    def _redraw(self) -> None:
        if self._q("#tabs", TabbedContent).active != "train":  # hidden: no work taken from training
            return
        with self.batch_update():
            self.charts.redraw()
            self.update_status()
            self._q("#sysinfo", SystemReadout).tick(self.current.torch_device)

    def update_status(self) -> None:
        status = self._q("#run-status", Static)
        progress = self._q("#progress", ProgressBar)
        text = status_text(self.current, self.data_error, self.stop_event.is_set())
        shape = [len(line) for line in text.plain.split("\n")]
        # a layout only when the line count or the wrapping may change: a layout of the whole
        # screen costs the training thread CPU time it needs on a small machine
        fits = max(shape + self._status_shape) < status.content_region.width
        status.update(text, layout=not (fits and len(shape) == len(self._status_shape)))
        self._status_shape = shape
        run = self.current
        if run.name:
            total_steps = run.epochs * run.steps
            progress.update(total=max(1, total_steps), progress=run.global_step)

    def update_buttons(self) -> None:
        can_start = not self.running and self.form.config is not None and self.backend is not None
        self._q("#start", Button).disabled = not can_start
        self._q("#stop", Button).disabled = not self.running

    def _show_sweep(self) -> None:
        self._q("#sweep-info", Static).update(self._sweep_text())
        self.form.set_hints({key: "swept: " + ", ".join(format_value(v) for v in values)
                             for key, values in self.sweep})

    def _sweep_text(self) -> Text:
        """What the preset adds beyond the form: its sweep or search."""
        if self.search is not None:
            keys = ", ".join(p.key for p in self.search.params)
            text = Text(f"search: {self.search.trials} trials over {keys} ({self.search.sampler}, pruner "
                        f"{self.search.pruner}); progress on F5", style="bold")
        elif not self.sweep:
            text = Text("one run per start · a preset with a [sweep] or [search] table runs as a study (F5)")
        else:
            keys = " × ".join(f"{k} = {', '.join(format_value(x) for x in v)}" for k, v in self.sweep)
            count = math.prod(len(values) for _, values in self.sweep)
            text = Text(f"sweep: {keys}: {count} runs as a queue (swept keys override the form)",
                        style="bold")
        return text

    # --- actions ------------------------------------------------------------------------

    def action_start(self) -> None:
        if self.running:
            self.notify("a run is already going; stop it first (ctrl+x)", severity="warning")
            return
        config = self.form.validate()
        if config is None:
            self.notify("fix the marked fields on the Setup tab first", severity="error")
            self.action_tab("setup")
            self.form.focus_first_error()  # the correction lands where it is needed
            return
        if self.backend is None:
            if self.data_error:
                self.notify(f"cannot train: {self.data_error}", severity="error")
            elif not self.start_when_ready:
                self.start_when_ready = True
                self.notify("the data is still loading: training starts as soon as it is ready")
            return
        self.start_when_ready = False
        try:
            config = named_after_changes(self.form.base, config)
            preset = check_preset(Preset(config=config, sweep=self.sweep, source=self.preset.source,
                                         search=self.search))
            preset.runs()  # the swept values must suit the form's settings
        except ConfigError as err:
            self.notify(str(err), severity="error")
            return
        self.stop_event = threading.Event()
        self.running = True
        self.current = RunState()
        self.current.phase = PREPARING
        self.update_buttons()
        self.update_status()
        self.action_tab("train")
        self.train_queue([preset], self.backend, self.stop_event)

    def action_stop(self) -> None:
        if not self.running and self.start_when_ready:  # ctrl+r while the data loads: not started yet
            self.start_when_ready = False
            self.notify("the start is cancelled: no run will start when the data is ready")
            return
        if not self.running:
            self.notify("no run is going")
            return
        self.stop_event.set()
        self.notify("stopping after the batch in progress…")
        self.update_status()

    async def action_quit(self) -> None:
        if not self.running:
            self.exit()
            return
        if isinstance(self.screen, ConfirmDialog):  # ctrl+q again: the question is already asked
            return

        def answer(yes: bool | None) -> None:
            held, self._held_toasts = self._held_toasts, []
            for message, markup, kwargs in held:
                self.notify(message, markup=markup, **kwargs)
            if yes:
                self.quit_when_stopped = True
                self.stop_event.set()
                self.notify("stopping the run, then quitting…")

        self.clear_notifications()  # none covers the question's buttons
        self.push_screen(ConfirmDialog("A run is going. Stop it (it is saved as stopped) and quit?"), answer)

    def action_tab(self, tab: str) -> None:
        while isinstance(self.screen, TileScreen):  # an image page is open: F1-F5 leave it
            self.pop_screen()
        self._q("#tabs", TabbedContent).active = tab
        target = {"setup": "#f-name", "train": "#charts", "confusion": "#cm", "runs": "#runs-table",
                  "study": "#study-table"}.get(tab)
        if target:
            self._q(target).focus()
        else:
            self.set_focus(None)

    def user_path(self, text: str) -> Path | None:
        """A path typed in a dialog; when confined, taken inside `out` and refused (None) outside it.
        A path that cannot be one (a NUL byte, `~nosuchuser`, a loop of links) is refused too."""
        try:
            if "\0" in text:
                raise ValueError("a path cannot hold a NUL character")
            if not self.confine:
                return Path(text).expanduser()
            root = self.out.resolve()
            path = (root / text).resolve()  # an absolute path stays absolute; symlinks are followed
        except (OSError, RuntimeError, ValueError) as err:
            self.notify(f"{text!r}: {err}", title="path refused", severity="error")
            return None
        if not path.is_relative_to(root):
            self.notify(f"{text}: only paths inside the output folder {root} are allowed here",
                        title="path refused", severity="error")
            return None
        return path

    def pick_file(self, title: str, mode: str, default: str, then: Callable[[Path | None], None]) -> None:
        """The preset file picker; a confined app's shows and accepts only its output folder."""
        try:
            base = self.out.resolve() if self.confine else Path.cwd()
        except OSError:  # the working folder was deleted under the app
            base = Path("/")
        self.push_screen(FilePicker(title, self.user_path, base, mode, default,
                                    confine_to=base if self.confine else None), then)

    def action_open_preset(self) -> None:
        def opened(target: Path | None) -> None:
            if target is None:
                return
            try:
                preset = load_preset(target)
            except ConfigError as err:
                self.notify(str(err), title="cannot open the preset", severity="error", timeout=15)
                return
            self.open_preset(preset)

        self.pick_file("Open a preset (TOML file):", "open", "", opened)

    def open_preset(self, preset: Preset) -> None:
        """Fill the form from `preset` and queue its sweep (if any) on the next start."""
        self.preset = preset
        self.sweep = preset.sweep
        self.search = preset.search
        self.form.set_config(preset.config)
        self._show_sweep()
        self.action_tab("setup")  # show what was loaded
        size = f": {len(preset.runs())} runs" if preset.sweep else ""
        self.notify(f"opened {preset.source}" + (f": a search of {preset.search.trials} trials" if preset.search else size))

    def action_clear_sweep(self) -> None:
        self.sweep = ()
        self.search = None
        self._show_sweep()

    def action_save_preset(self) -> None:
        config = self.form.validate()
        if config is None:
            self.notify("fix the marked fields before saving", severity="error")
            return

        def save(target: Path | None) -> None:
            if target is None:
                return
            from fcn_tui.config import preset_to_toml

            text = preset_to_toml(Preset(config=config, sweep=self.sweep, search=self.search))
            try:
                target.parent.mkdir(parents=True, exist_ok=True)
                atomic_write_text(target, text)  # never through a link planted at the target
            except OSError as err:
                self.notify(f"{target}: {err.strerror or err}", title="cannot save", severity="error")
                return
            self.notify(f"saved {target}")

        self.pick_file("Save the form as a preset (TOML file):", "save", f"{slug(config.name)}.toml", save)

    def action_export(self) -> None:
        """Every run to a CSV file: never over a study's or a run's own files (as `fcn-tui export`),
        and another existing file only once the user said yes."""
        from fcn_tui.export import check_export_target, export_csv

        def write(target: Path, path: str) -> None:
            try:
                count = export_csv(self.out, target)
            except (NoRunsError, KeptFileError, OSError) as err:
                self.notify(str(err), title="cannot export", severity="error")
                return
            self.notify(f"wrote {count} rows to {path}")

        def export(path: str | None) -> None:
            if not path:
                return
            target = self.user_path(path)
            if target is None:
                return
            try:
                check_export_target(target)
            except KeptFileError as err:
                self.notify(f"{err}; choose another file", title="cannot export", severity="error")
                return
            if exists(target):
                self.push_screen(ConfirmDialog(f"{path} exists. Replace it?"),
                                 lambda yes: write(target, path) if yes else None)
                return
            write(target, path)

        self.push_screen(PathDialog("Export every run to CSV:", str(self.out / "runs.csv")), export)

    def action_compare(self) -> None:
        """The comparison table of the highlighted run's sweep, else of every run."""
        from fcn_tui.tables import app_comparison

        record = self.runs_view.highlighted()
        preset, title = None, f"all runs in {self.out}"
        records: list[RunRecord] = list(self.runs_view.records)
        sweep_dir = record.path.parent if record is not None else None
        if sweep_dir is not None and is_study_folder(sweep_dir):
            records = find_runs(sweep_dir)
            preset = study_preset(sweep_dir)
            title = preset.config.name if preset is not None else sweep_dir.name
        if not records:
            self.notify("no runs to compare yet")
            return
        table = app_comparison(records, preset, title, width=self.size.width - 6)  # the dialog's border and padding
        self.push_screen(TableDialog(table, title=title))

    def action_run_mistakes(self) -> None:
        """The highlighted run's test matrix in the Confusion view, where enter shows a cell's images."""
        record = self.runs_view.highlighted()
        if record is None:
            self.notify("no run highlighted")
            return
        if not (record.path / "confusion.csv").exists():
            self.notify("it has no test matrix: it was not tested (it failed, or is still running)",
                        title=record.name, severity="warning")
            return
        try:
            classes, matrix = read_confusion(record.path / "confusion.csv")
            if len(classes) != NUM_CLASSES:
                raise UnreadableFile(f"confusion.csv has {len(classes)} classes, not {NUM_CLASSES}")
        except UnreadableFile as err:
            self.notify(str(err), title=f"{record.name}: no test matrix", severity="warning")
            return
        self.confusion.show("test", matrix, f"test, {record.name}", record.path, record.name)
        self.action_tab("confusion")

    def action_run_weights(self) -> None:
        """The first-layer weights of the highlighted run, else of the run in the Confusion view."""
        record = self.runs_view.highlighted() if self._q("#tabs", TabbedContent).active == "runs" else None
        if record is not None:
            self.push_screen(WeightsScreen(record.path, record.name))
        else:
            self.confusion.action_weights()

    def action_reload_runs(self) -> None:
        self.load_runs()

    def get_system_commands(self, screen: Screen) -> Any:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Start training", "Train with the Setup form's settings (ctrl+r)", self.action_start)
        yield SystemCommand("Stop training", "Stop after the batch in progress (ctrl+x)", self.action_stop)
        yield SystemCommand("Open preset", "Fill the form from a TOML preset (ctrl+o)", self.action_open_preset)
        yield SystemCommand("Save preset", "Save the form as a TOML preset (ctrl+s)", self.action_save_preset)
        yield SystemCommand("Clear sweep", "Forget the opened preset's sweep: one run per start", self.action_clear_sweep)
        yield SystemCommand("Export runs to CSV", "Every run in the output folder (ctrl+e)", self.action_export)
        yield SystemCommand("Comparison table", "Compare the highlighted run's sweep (c in Runs)", self.action_compare)
        yield SystemCommand("Diff two runs", "Settings and results of the two runs picked in Runs (d)",
                            self.runs_view.action_diff)
        yield SystemCommand("Reload runs", "Read the output folder again", self.action_reload_runs)
        yield SystemCommand("Mistakes of a run", "The highlighted run's test matrix; enter on a cell: its images (m in Runs)",
                            self.action_run_mistakes)
        yield SystemCommand("First-layer weights", "One image per hidden unit (w in Runs and Confusion)",
                            self.action_run_weights)
        yield SystemCommand("Cycle loss smoothing", "EMA of the batch loss: 0, 0.6, 0.9, 0.99 (m on Train)",
                            self.charts.action_cycle_smoothing)
        yield SystemCommand("Toggle log loss", "The loss chart on a log scale (l on Train)", self.charts.action_toggle_log)
        yield SystemCommand("Toggle counts / percent", "Confusion matrix cells (n)", self.confusion.action_toggle_percent)
        yield SystemCommand("Toggle validation / test matrix", "Confusion matrix source (v)",
                            self.confusion.action_toggle_source)
        for tab, key in zip(TABS, ("f1", "f2", "f3", "f4", "f5")):
            yield SystemCommand(f"Show {tab}", f"Switch to the {tab} tab ({key})", lambda t=tab: self.action_tab(t))
