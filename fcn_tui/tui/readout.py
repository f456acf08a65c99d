"""The Train view's system readout line (CPU, memory, GPU), fed by `sysinfo.SystemMonitor`.

The app calls `tick(device)` from its redraw timer while the Train tab is visible; at most once
per `READ_EVERY_S` a thread worker takes a sample (a CUDA or NVML call can take a moment, and must
not hold up the UI) and posts it back with `post_message`. Nothing is read while another tab is
shown, and nothing per batch.
"""

from __future__ import annotations

import time

from textual import work
from textual.message import Message
from textual.widgets import Static

from fcn_tui.tui.sysinfo import Sample, SystemMonitor, readout_text

READ_EVERY_S = 1.0  # once a second: enough to see a stall or memory growing, and costs nothing


class SystemReadout(Static):
    """One line: `cpu 98% of 2 cores · mem 412 MiB`, and on CUDA `gpu 63% · gpu mem 2.1/79.6 GiB`."""

    DEFAULT_CSS = """
    SystemReadout { height: 1; color: $text-muted; }
    """

    class Read(Message):
        """A sample taken by the worker."""

        def __init__(self, sample: Sample) -> None:
            super().__init__()
            self.sample = sample

    def __init__(self, id: str | None = None) -> None:
        super().__init__("", id=id)
        self.monitor = SystemMonitor()
        self.last_read = float("-inf")
        self.reading = False

    def tick(self, device: str) -> None:
        """Start a sample of `device`'s figures unless one is under way or one was taken lately."""
        now = time.monotonic()
        if self.reading or now - self.last_read < READ_EVERY_S:
            return
        self.last_read, self.reading = now, True
        self.sample(device)

    @work(thread=True, exclusive=True, exit_on_error=False, group="sysinfo", description="read CPU and GPU use")
    def sample(self, device: str) -> None:
        try:
            sample = self.monitor.read(device)
        except Exception:  # noqa: BLE001 - an odd platform: the line says it is measuring
            sample = Sample()
        self.post_message(self.Read(sample))

    def on_system_readout_read(self, message: Read) -> None:
        message.stop()
        self.reading = False
        self.update(readout_text(message.sample))
