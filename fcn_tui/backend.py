"""What runs train with: torch, the dataset and the engine, behind one small interface.

`TorchBackend.load(data_dir)` imports torch and reads Fashion-MNIST (the slow part; the app
does it in a worker thread after its first paint); `split(config)` makes (and caches) the
seeded train/validation split and `trainer(...)` an `fcn_tui.engine.Trainer`, after
`fcn_tui.memory.check_fits` has made sure the run fits in the device's memory;
`pack_trainer(members, split)` trains several runs of equal `pack_key` at once (a pack, whose
events come as `(member index, event)`, per member the events of a lone run) and `pack_size(config)`
says how many runs of `config` one pack takes here (`--pack auto`). A backend without
`pack_trainer` packs through `InterleavedPack`, which takes turns between lone trainers. The study runner
(`fcn_tui.studies.runner`) accepts any object with the same members (the tests' `ScriptedBackend`, in
`tests/scripted.py`, is one), which is how tests feed it a deterministic event stream; an optional
`test_set()` gives the app's views of a run's mistakes the test images. No UI imports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from fcn_tui import events as ev


class Backend(Protocol):
    description: str  # one line about the data, shown on the Setup tab
    devices: list[tuple[str, str]]  # (label, train.device value) of devices that exist here

    def split(self, config: Any) -> Any: ...

    def trainer(self, config: Any, split: Any, should_stop: Callable[[], bool],
                resume_from: dict | None = None, should_prune: Callable[[], bool] | None = None) -> Any: ...


@dataclass
class Member:
    """One run of a pack, as the runner hands it to `pack_trainer` (the fields of `fcn_tui.engine.Member`)."""

    config: Any
    should_stop: Callable[[], bool] = lambda: False  # checked between batches, for this member alone
    should_prune: Callable[[], bool] | None = None  # checked after this member's EpochEnded was handled
    resume_from: dict | None = None  # a checkpoint (`Trainer.checkpoint()`) to continue from


def new_trainer(backend: Any, config: Any, split: Any, should_stop: Callable[[], bool],
                state: dict | None = None, should_prune: Callable[[], bool] | None = None) -> Any:
    """`backend.trainer(...)`, passing a checkpoint or a pruning check only when there is one, so
    a backend that never resumes or prunes (a scripted one) needs neither argument."""
    extra = {k: v for k, v in (("resume_from", state), ("should_prune", should_prune)) if v is not None}
    return backend.trainer(config, split, should_stop, **extra)


class InterleavedPack:
    """A pack trained by taking turns between one lone trainer per member (`backend.trainer`): each
    member's events up to its next `EpochEnded` (or its end), then the next member's. It packs any
    backend (the scripted one, tests) with the same events a packed engine yields; it is no faster."""

    def __init__(self, backend: Any, members: list[Member], split: Any) -> None:
        self.members = [new_trainer(backend, m.config, split, m.should_stop, m.resume_from, m.should_prune)
                        for m in members]  # raises before any work, as a lone trainer does

    def events(self) -> Iterator[tuple[int, ev.Event]]:
        streams = {k: trainer.events() for k, trainer in enumerate(self.members)}
        try:
            while streams:
                for k in list(streams):
                    for event in streams[k]:
                        yield k, event
                        if isinstance(event, (ev.EpochEnded, ev.RunFinished)):
                            break
                    else:
                        event = None
                    if event is None or isinstance(event, ev.RunFinished):
                        del streams[k]
        finally:
            for stream in streams.values():
                stream.close()


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

    def pack_trainer(self, members: list[Member], split: Any) -> Any:
        """One pack of runs of equal `pack_key`; raises `MemoryCheckError` when the pack would not
        fit (the memory check counts every member), `DeviceError`, `CheckpointError`."""
        from fcn_tui.engine import resolve_device
        from fcn_tui.memory import check_pack_fits

        check_pack_fits([m.config for m in members], resolve_device(members[0].config.train.device),
                        len(split.train_x), len(split.val_x) + len(split.test_x))
        from fcn_tui.engine import Member as EngineMember
        from fcn_tui.engine import PackTrainer

        return PackTrainer([EngineMember(m.config, m.should_stop, m.should_prune, m.resume_from) for m in members], split)

    def pack_size(self, config: Any) -> int:
        """How many runs like `config` one pack takes here: as many as fit on a GPU, `CPU_PACK` on the CPU."""
        from fcn_tui.engine import resolve_device
        from fcn_tui.memory import auto_pack_size

        split = self.split(config)
        return auto_pack_size(config, resolve_device(config.train.device), len(split.train_x),
                              len(split.val_x) + len(split.test_x))
