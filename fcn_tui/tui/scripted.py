"""A scripted backend: a fixed, deterministic event stream without torch or data.

Used by the snapshot tests (so screens do not depend on timing or on a real model) and handy to
try the interface quickly. `ScriptedBackend(fail_at_epoch=k)` raises inside the stream at epoch
k, like a crashing engine would.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fcn_tui import events as ev

N_TRAIN, N_VAL, N_TEST = 5400, 600, 1000
STEPS = 4  # batches per epoch in the script


def scripted_confusion(total: int, accuracy: float) -> list[list[int]]:
    """A 10x10 matrix of `total` images, `accuracy` of each class on the diagonal."""
    matrix = [[0] * 10 for _ in range(10)]
    for true in range(10):
        count = total // 10 + (1 if true < total % 10 else 0)
        right = round(count * accuracy * (1.0 - 0.03 * (true % 4)))
        wrong = count - right
        matrix[true][true] = right
        matrix[true][(true + 1) % 10] += wrong - wrong // 3
        matrix[true][(true + 4) % 10] += wrong // 3
    return matrix


class ScriptedTrainer:
    """Yields RunStarted, BatchProgress and EpochEnded per epoch, then RunFinished."""

    def __init__(self, config: Any, should_stop: Callable[[], bool], fail_at_epoch: int | None,
                 should_prune: Callable[[], bool] | None = None) -> None:
        self.config = config
        self.should_stop = should_stop
        self.should_prune = should_prune or (lambda: False)
        self.fail_at_epoch = fail_at_epoch
        self.model = None

    def events(self) -> Iterator[ev.Event]:
        epochs = self.config.train.epochs
        yield ev.RunStarted(
            config=self.config, device="cpu", device_name="CPU (scripted)",
            n_train=N_TRAIN, n_val=N_VAL, n_test=N_TEST, steps_per_epoch=STEPS,
        )
        history: list[ev.EpochEnded] = []
        status = ev.COMPLETED
        for epoch in range(1, epochs + 1):
            if self.fail_at_epoch == epoch:
                raise RuntimeError(f"scripted failure in epoch {epoch}")
            for step in range(1, STEPS + 1):
                t = (epoch - 1) + step / STEPS
                yield ev.BatchProgress(
                    epoch=epoch, step=step, steps_per_epoch=STEPS, global_step=(epoch - 1) * STEPS + step,
                    loss=round(1.6 / (1 + t) + 0.05 * (step % 2), 4), samples_per_s=12000.0,
                )
            val_acc = round(0.70 + 0.15 * (1 - 1 / epoch), 4)
            event = ev.EpochEnded(
                epoch=epoch, epochs=epochs, train_loss=round(1.2 / (1 + epoch), 4),
                train_acc=round(val_acc + 0.02, 4), val_loss=round(1.3 / (1 + epoch) + 0.1, 4),
                val_acc=val_acc, lr=self.config.optim.lr, seconds=2.5, samples_per_s=12000.0,
                val_confusion=scripted_confusion(N_VAL, val_acc),
            )
            history.append(event)
            yield event
            if self.should_stop() and epoch < epochs:
                status = ev.STOPPED
                break
            if self.should_prune() and epoch < epochs:
                status = ev.PRUNED
                break
        last = history[-1]
        test_acc = None if status == ev.PRUNED else round(last.val_acc - 0.01, 4)
        yield ev.RunFinished(
            status=status, epochs_completed=len(history), train_loss=last.train_loss,
            val_loss=last.val_loss, val_acc=last.val_acc, best_val_acc=max(e.val_acc for e in history),
            test_loss=None if test_acc is None else round(last.val_loss + 0.02, 4), test_acc=test_acc,
            test_confusion=None if test_acc is None else scripted_confusion(N_TEST, test_acc), wall_s=2.5 * len(history),
            samples_per_s=12000.0,
        )


class ScriptedBackend:
    """Stands in for `TorchBackend`: no data, scripted trainers."""

    description = "scripted events (no data loaded)"

    def __init__(self, fail_at_epoch: int | None = None) -> None:
        self.devices = [("auto (best available)", "auto"), ("cpu", "cpu")]
        self.fail_at_epoch = fail_at_epoch

    def split(self, config: Any) -> None:
        return None

    def trainer(self, config: Any, split: Any, should_stop: Callable[[], bool], resume_from: dict | None = None,
                should_prune: Callable[[], bool] | None = None) -> ScriptedTrainer:
        return ScriptedTrainer(config, should_stop, self.fail_at_epoch, should_prune)
