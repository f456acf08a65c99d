"""What runs train with: torch, the dataset and the engine, behind one small interface.

`TorchBackend.load(data_dir)` imports torch and reads Fashion-MNIST (the slow part; the app
does it in a worker thread after its first paint); `split(config)` makes (and caches) the
seeded train/validation split and `trainer(...)` an `fcn_tui.engine.Trainer`, after
`fcn_tui.memory.check_fits` has made sure the run fits in the device's memory. The study runner
(`fcn_tui.runner`) accepts any object with the same members (`fcn_tui.tui.scripted` is one),
which is how tests feed it a deterministic event stream; an optional `test_set()` gives the app's
views of a run's mistakes the test images. No UI imports.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol


class Backend(Protocol):
    description: str  # one line about the data, shown on the Setup tab
    devices: list[tuple[str, str]]  # (label, train.device value) of devices that exist here

    def split(self, config: Any) -> Any: ...

    def trainer(self, config: Any, split: Any, should_stop: Callable[[], bool],
                resume_from: dict | None = None, should_prune: Callable[[], bool] | None = None) -> Any: ...


def list_devices() -> list[tuple[str, str]]:
    """`auto`, the CPU, and every CUDA / MPS device that exists, with the GPU's name."""
    import torch

    from fcn_tui.engine import cuda_available, mps_available

    devices = [("auto (best)", "auto"), ("cpu", "cpu")]
    if cuda_available():
        count = torch.cuda.device_count()
        for i in range(count):
            value = "cuda" if count == 1 else f"cuda:{i}"
            devices.append((f"{value} · {torch.cuda.get_device_name(i)}", value))
    if mps_available():
        devices.append(("mps · Apple GPU", "mps"))
    return devices


class TorchBackend:
    """The real thing: Fashion-MNIST in memory and the engine's Trainer."""

    def __init__(self, data: Any, devices: list[tuple[str, str]]) -> None:
        self.data = data
        self.devices = devices
        self.description = f"{data.source}: {data.verdict}"
        self._splits: dict[tuple, Any] = {}

    @classmethod
    def load(cls, data_dir: Path | None) -> TorchBackend:
        """Import torch and load the dataset; raises `fcn_tui.data.DataError` on bad data."""
        from fcn_tui.data import load_fashion_mnist

        data = load_fashion_mnist(data_dir)
        return cls(data, list_devices())

    def split(self, config: Any) -> Any:
        from fcn_tui.data import make_split

        key = (config.train.val_fraction, config.train.seed, config.data.subset)
        if key not in self._splits:
            self._splits[key] = make_split(self.data, *key)
        return self._splits[key]

    def test_set(self) -> tuple[Any, Any]:
        """The test images (uint8 (N, 784)) and labels as numpy arrays (views, no copy)."""
        return self.data.test_images.numpy(), self.data.test_labels.numpy()

    def trainer(self, config: Any, split: Any, should_stop: Callable[[], bool],
                resume_from: dict | None = None, should_prune: Callable[[], bool] | None = None) -> Any:
        """The run's Trainer; raises `MemoryCheckError` (reported, no folder made) when it would not fit."""
        from fcn_tui.engine import Trainer
        from fcn_tui.memory import check_fits

        # resolves the device and checks the checkpoint; allocates nothing
        trainer = Trainer(config, split, should_stop=should_stop, resume_from=resume_from, should_prune=should_prune)
        check_fits(config, trainer.device, len(split.train_x), len(split.val_x) + len(split.test_x))
        return trainer
