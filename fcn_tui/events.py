"""The events a training run yields, in order:

    RunStarted, (BatchProgress* EpochEnded)*, RunFinished

Plain frozen dataclasses holding Python numbers and lists (no tensors), so the CLI, the TUI,
the run writer and tests consume the same values. Accuracies are fractions in [0, 1].
Confusion matrices are 10x10 lists of counts, rows = true class, columns = predicted class.
The one exception is `RunFinished.test_predictions`: per-image results as compact numpy arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Final statuses of a run. `running` is only ever on disk while a run is in progress;
# a `running` run whose process is gone reads back as `incomplete`.
COMPLETED, STOPPED, DIVERGED, FAILED = "completed", "stopped", "diverged", "failed"
PRUNED = "pruned"  # a study's pruner ended it early: its epochs are kept, the test set is not used
RUNNING, INCOMPLETE = "running", "incomplete"
STATUSES = (COMPLETED, STOPPED, DIVERGED, FAILED, PRUNED, RUNNING, INCOMPLETE)
# Never on disk: a run folder whose files cannot be read back (`fcn_tui.runs.RunRecord.problems` says why).
UNREADABLE = "unreadable"


@dataclass(frozen=True)
class RunStarted:
    config: Any  # fcn_tui.config.Config
    device: str  # e.g. "cpu", "cuda:0"
    device_name: str  # e.g. "CPU (2 threads)", "NVIDIA H100 80GB HBM3"
    n_train: int
    n_val: int
    n_test: int
    steps_per_epoch: int
    previous_epochs: tuple = ()  # EpochEnded of the epochs before a resumed run's checkpoint
    note: str = ""  # what the front ends should tell the user, e.g. that train.amp cannot apply here


@dataclass(frozen=True)
class BatchProgress:
    epoch: int  # 1-based
    step: int  # batches done in this epoch
    steps_per_epoch: int
    global_step: int  # batches done in the run
    loss: float  # mean training loss of the samples since the previous progress event
    samples_per_s: float  # training throughput of the epoch so far


@dataclass(frozen=True)
class EpochEnded:
    epoch: int  # 1-based
    epochs: int
    train_loss: float
    train_acc: float
    val_loss: float
    val_acc: float
    lr: float  # learning rate at the end of the epoch
    seconds: float  # wall time of the epoch, validation included
    samples_per_s: float  # training throughput of the epoch
    val_confusion: list[list[int]] = field(default_factory=list)


@dataclass(frozen=True)
class RunFinished:
    status: str  # completed | stopped | diverged | failed | pruned
    epochs_completed: int
    train_loss: float | None
    val_loss: float | None
    val_acc: float | None
    best_val_acc: float | None
    test_loss: float | None
    test_acc: float | None
    test_confusion: list[list[int]] | None
    wall_s: float
    samples_per_s: float  # mean training throughput over the run
    error: str | None = None
    # every test image's result, for the mistakes views; arrays do not compare with ==, so left out of it
    test_predictions: Predictions | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Predictions:
    """The final test evaluation per image, in test-set order (numpy arrays, small enough to keep):
    `true` and `predicted` uint8 (N,), `probs` float16 (N, 10) softmax probabilities."""

    true: Any
    predicted: Any
    probs: Any


Event = RunStarted | BatchProgress | EpochEnded | RunFinished
