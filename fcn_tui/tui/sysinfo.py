"""The Train view's one-line system readout: this process's CPU use and memory, and on CUDA the
GPU's utilisation and memory.

`SystemMonitor.read(device)` takes one sample; the app calls it from a thread worker about once a
second while the Train tab is visible, never per batch. Everything degrades quietly: CPU time
comes from `os.times()` (any OS), resident memory from `/proc/self/statm` (Linux) or else the peak
from `resource` (other Unixes), the GPU figures from `torch.cuda` only when torch is already
loaded and the run's device is CUDA (utilisation needs NVML; without it only memory is shown).
Nothing here imports torch or Textual.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass

from rich.text import Text

from fcn_tui.formatting import GIB, MIB, memory_size  # noqa: F401 - MIB: the tests size samples with it


@dataclass
class Sample:
    cpu_percent: float | None = None  # of one core, as `top` shows it: 200 = two cores busy
    cores: int | None = None
    rss: int | None = None  # bytes resident now
    peak_rss: int | None = None  # bytes, where only the peak is known
    gpu_util: int | None = None  # percent
    gpu_used: int | None = None  # bytes in use on the device (all processes)
    gpu_total: int | None = None


def resident_bytes() -> int | None:
    """This process's resident memory from /proc/self/statm (Linux), else None."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            pages = int(f.read().split()[1])
        return pages * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, AttributeError):
        return None


def peak_resident_bytes() -> int | None:
    """The peak resident memory where `resource` exists (kilobytes on Linux, bytes on macOS)."""
    try:
        import resource
    except ImportError:  # Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak if sys.platform == "darwin" else peak * 1024


def gpu_figures(device: str) -> tuple[int | None, int | None, int | None]:
    """(utilisation %, used bytes, total bytes) of a CUDA `device`; None where unknown."""
    torch = sys.modules.get("torch")  # loaded by the backend already: never imported here
    if torch is None or not device.startswith("cuda"):
        return None, None, None
    util = used = total = None
    with contextlib.suppress(Exception):  # a driver error must not break the view
        free, total = torch.cuda.mem_get_info(device)
        used = total - free
    with contextlib.suppress(Exception):  # needs NVML (pynvml), often absent
        util = int(torch.cuda.utilization(device))
    return util, used, total


class SystemMonitor:
    """CPU use between two calls of `read`, plus the figures of the moment."""

    def __init__(self) -> None:
        self._last: tuple[float, float] | None = None  # (wall, cpu seconds)

    def cpu_percent(self) -> float | None:
        times = os.times()
        now = (time.monotonic(), times.user + times.system)
        last, self._last = self._last, now
        if last is None or now[0] - last[0] <= 0:
            return None
        return 100 * (now[1] - last[1]) / (now[0] - last[0])

    def read(self, device: str = "") -> Sample:
        rss = resident_bytes()
        util, used, total = gpu_figures(device)
        return Sample(
            cpu_percent=self.cpu_percent(), cores=os.cpu_count(), rss=rss,
            peak_rss=peak_resident_bytes() if rss is None else None,
            gpu_util=util, gpu_used=used, gpu_total=total,
        )


def readout_text(sample: Sample) -> Text:
    """`cpu 185% of 16 cores · mem 1.2 GiB · gpu 63% · gpu mem 2.1/79.6 GiB`, parts known only."""
    parts = []
    if sample.cpu_percent is not None:
        cores = f" of {sample.cores} cores" if sample.cores else ""
        parts.append(f"cpu {sample.cpu_percent:.0f}%{cores}")
    if sample.rss is not None:
        parts.append(f"mem {memory_size(sample.rss, mib=True)}")
    elif sample.peak_rss is not None:
        parts.append(f"mem peak {memory_size(sample.peak_rss, mib=True)}")
    if sample.gpu_util is not None:
        parts.append(f"gpu {sample.gpu_util}%")
    if sample.gpu_used is not None and sample.gpu_total:
        parts.append(f"gpu mem {sample.gpu_used / GIB:.1f}/{sample.gpu_total / GIB:.1f} GiB")
    return Text(" · ".join(parts) or "system figures: measuring…")
