"""What a run of presets is asked to do (`RunOptions`): where its folders go, which study and
storage, which device, how many runs at once. The runner and the worker processes read it;
imports nothing heavy."""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass
from pathlib import Path


@dataclass
class RunOptions:
    out: Path
    resume: bool = False
    storage: str | None = None  # an RDB URL; None: a journal in the study folder
    study_name: str | None = None  # default: the preset's name
    device: str | None = None  # this worker's device, replacing train.device (one worker per GPU)
    worker: str = ""  # a label for this worker in the storage and the app (default host:pid)
    pack: int | None = None  # runs trained at once (a pack of compatible queued runs); None: `auto`,
    # the backend's `pack_size` (as many as fit on a GPU, a measured few on the CPU)
    checkpoint_every_s: float | None = None  # None: `fcn_tui.runs.CHECKPOINT_EVERY_S`

    @property
    def worker_label(self) -> str:
        return self.worker or f"{socket.gethostname()}:{os.getpid()}"
