"""A scripted backend: a fixed, deterministic event stream without torch or data.

A test double for `fcn_tui.backend.TorchBackend`, used by the app, study and snapshot tests (so
screens do not depend on timing or on a real model). `ScriptedBackend(fail_at_epoch=k)` raises
inside the stream at epoch k, like a crashing engine would. The scripted test set (`test_set()`,
numpy images with a bright band whose height tells the class) and its predictions agree with the
scripted test matrix, so the views of a run's mistakes have images to show.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fcn_tui import events as ev
from fcn_tui.fashion import IMAGE_SIDE, INPUT_FEATURES, NUM_CLASSES

N_TRAIN, N_VAL, N_TEST = 5400, 600, 1000
STEPS = 4  # batches per epoch in the script


def scripted_test_set() -> tuple[Any, Any]:
    """`N_TEST` 28x28 uint8 images (flattened) and labels 0-9: class c lights rows 2+2c to 4+2c."""
    import numpy as np

    rng = np.random.default_rng(2)
    labels = np.arange(N_TEST, dtype=np.uint8) % NUM_CLASSES
    images = rng.integers(0, 60, (N_TEST, IMAGE_SIDE, IMAGE_SIDE))
    for cls in range(NUM_CLASSES):
        images[labels == cls, 2 + 2 * cls:5 + 2 * cls, 4:24] += 170
    return images.clip(0, 255).astype(np.uint8).reshape(N_TEST, INPUT_FEATURES), labels


def scripted_predictions(matrix: list[list[int]]) -> ev.Predictions:
    """Per-image predictions of `scripted_test_set()` whose confusion matrix is `matrix`; the
    probability of the predicted class varies from image to image."""
    import numpy as np

    true = scripted_test_set()[1]
    predicted = np.zeros(N_TEST, dtype=np.uint8)
    probs = np.zeros((N_TEST, NUM_CLASSES), dtype=np.float32)
    for t in range(NUM_CLASSES):
        rows = np.flatnonzero(true == t)
        cells = [p for p in range(NUM_CLASSES) for _ in range(matrix[t][p])]
        for k, (row, p) in enumerate(zip(rows, cells)):
            confidence = 0.4 + 0.55 * ((k * 37) % 100) / 100
            probs[row] = (1 - confidence) / (NUM_CLASSES - 1)
            probs[row, p] = confidence
            predicted[row] = p
    return ev.Predictions(true=true, predicted=predicted, probs=probs.astype(np.float16))


def scripted_confusion(total: int, accuracy: float) -> list[list[int]]:
    """A 10x10 matrix of `total` images, `accuracy` of each class on the diagonal."""
    matrix = [[0] * NUM_CLASSES for _ in range(NUM_CLASSES)]
    for true in range(NUM_CLASSES):
        count = total // NUM_CLASSES + (1 if true < total % NUM_CLASSES else 0)
        right = round(count * accuracy * (1.0 - 0.03 * (true % 4)))
        wrong = count - right
        matrix[true][true] = right
        matrix[true][(true + 1) % NUM_CLASSES] += wrong - wrong // 3
        matrix[true][(true + 4) % NUM_CLASSES] += wrong // 3
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
            test_predictions=None if test_acc is None else scripted_predictions(scripted_confusion(N_TEST, test_acc)),
        )


class ScriptedBackend:
    """Stands in for `TorchBackend`: no data, scripted trainers."""

    description = "scripted events (no data loaded)"

    def __init__(self, fail_at_epoch: int | None = None) -> None:
        self.devices = [("auto (best)", "auto"), ("cpu", "cpu")]
        self.fail_at_epoch = fail_at_epoch

    def split(self, config: Any) -> None:
        return None

    def test_set(self) -> tuple[Any, Any]:
        return scripted_test_set()

    def trainer(self, config: Any, split: Any, should_stop: Callable[[], bool], resume_from: dict | None = None,
                should_prune: Callable[[], bool] | None = None) -> ScriptedTrainer:
        return ScriptedTrainer(config, should_stop, self.fail_at_epoch, should_prune)
