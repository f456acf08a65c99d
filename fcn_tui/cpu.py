"""How training shares the CPU: the thread count chosen at start-up.

torch's CPU kernels run on OpenMP (GNU libgomp in the PyPI wheels), whose threads spin for a
while between parallel regions, waiting for work. When another process keeps one of the cores
busy, every parallel region waits for the thread that shares a core with it while the others
spin, and a 2-thread run falls to a fraction of its speed. `choose_threads()` therefore trains
on the cores that are free at start-up (the cores this process may use minus those other
processes keep busy, at least one) when the machine is busy, and leaves torch's own choice alone
on an idle one; one thread has no other thread to wait for. The spinning itself is kept: a
passive wait policy (`OMP_WAIT_POLICY=PASSIVE`) made the idle machine 37 % slower (42,163
against 67,224 samples/s in `benchmarks/bench_train.py --busy`), for every run, to help only
runs whose neighbour starts after them. The thread count does not change a run's numbers for
this model (its matrix multiplies give the same bits on 1 or 2 threads).

`--threads N` and `OMP_NUM_THREADS` override the choice. No torch import at module level:
`--help` stays fast.
"""

from __future__ import annotations

import functools
import os
import platform
import time
from dataclasses import dataclass
from pathlib import Path

BUSY_SAMPLE_S = 0.2  # how long start-up watches the CPU: long enough to see a steady hog, short to wait
STAT = Path("/proc/stat")  # Linux's CPU time counters; elsewhere the 1-minute load average is used
CPUINFO = Path("/proc/cpuinfo")  # Linux's CPU description; elsewhere `platform.processor()`
MODEL_KEYS = ("model name", "Model", "Hardware")  # x86, then ARM boards' spellings


@functools.cache
def cpu_model() -> str:
    """The processor's name (e.g. `Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz`), recorded with every
    run so that two machines can be told apart; the architecture when nothing better is known."""
    try:
        for line in CPUINFO.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() in MODEL_KEYS and value.strip():
                return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def usable_cores() -> int:
    """The cores this process may run on (its affinity mask, e.g. under taskset or a batch system)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _cpu_times() -> tuple[int, int] | None:
    """(busy, total) jiffies of all CPUs from /proc/stat, or None where it cannot be read."""
    try:
        fields = [int(v) for v in STAT.read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return None
    if len(fields) < 5:
        return None
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user time
    return total - idle, total


def busy_cores(sample_s: float = BUSY_SAMPLE_S) -> float:
    """How many of the machine's cores other processes keep busy right now (this process sleeps
    while it watches): CPU time over `sample_s` on Linux, else the 1-minute load average."""
    before = _cpu_times()
    if before is not None:
        time.sleep(sample_s)
        after = _cpu_times()
        if after is not None and after[1] > before[1]:
            return (after[0] - before[0]) / (after[1] - before[1]) * (os.cpu_count() or 1)
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


@dataclass(frozen=True)
class ThreadChoice:
    threads: int  # torch threads to train with
    cores: int  # cores this process may use
    busy: float  # cores other processes kept busy at start-up
    default: int  # torch's own choice

    @property
    def is_busy(self) -> bool:
        return self.threads < self.default

    def note(self) -> str | None:
        """The one console line when the machine is busy, None on an idle one."""
        if not self.is_busy:
            return None
        return (f"CPU busy: other processes use {self.busy:.1f} of {self.cores} cores; "
                f"training with {self.threads} thread{'s' if self.threads != 1 else ''} "
                f"instead of {self.default} (--threads N to choose)")


def choose_threads(cores: int, busy: float, default: int) -> ThreadChoice:
    """Torch's default on an idle machine; on a busy one the free cores (at least one)."""
    free = max(1, cores - round(busy))
    return ThreadChoice(threads=min(default, free), cores=cores, busy=busy, default=default)


def threads_from_env() -> bool:
    """Whether the environment chose the thread count (`OMP_NUM_THREADS`, as batch systems and
    users set it): torch reads it, and the load is then not looked at."""
    return bool(os.environ.get("OMP_NUM_THREADS", "").strip())


def apply_threads(threads: int | None) -> ThreadChoice:
    """Set torch's thread count: `threads` when the user gave one, torch's own when
    `OMP_NUM_THREADS` chose it, else `choose_threads` from the load now. Imports torch."""
    import torch

    default = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
        return ThreadChoice(threads=threads, cores=usable_cores(), busy=0.0, default=threads)
    if threads_from_env():
        return ThreadChoice(threads=default, cores=usable_cores(), busy=0.0, default=default)
    choice = choose_threads(usable_cores(), busy_cores(), default)
    if choice.threads != default:
        torch.set_num_threads(choice.threads)
    return choice
