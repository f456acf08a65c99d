"""How much memory a run needs, how much the device has, and a refusal before it runs out.

Contract:
- `estimate(config, n_train, n_eval, device_type)` is an upper-side estimate, in bytes, of what
  one run of the engine holds at its peak: the parameters (fp32) with their gradients, optimizer
  state and one parameter-sized temporary of the optimizer step; the activations of one training
  batch (or one evaluation batch of `EVAL_BATCH`, whichever is larger); and the float32 copies of
  the `n_train` training and `n_eval` evaluated images (validation and test) that the engine
  makes on the device; and a fixed allowance for PyTorch's own buffers. `estimate_bytes` is its
  total. On the CPU it lies 5 to 35 % above the measured peak (MLPs from 1x256 to 3x2048,
  SGD, momentum and Adam): it errs on the side of refusing.
- `available_bytes(device)` is what the device can still give: on CUDA the free memory the driver
  reports, elsewhere the smallest of the kernel's MemAvailable, the cgroup's remaining limit and
  the address-space limit. None when it cannot be known (the check is then skipped).
- `check_fits(config, device, n_train, n_eval)` raises `MemoryCheckError` with one line (estimate
  vs available in GiB, and what to reduce) when the run would not fit. Front ends call it before
  anything is created for the run, so the kernel's OOM killer never has to end it.
- Packs (several runs trained at once, `fcn_tui.backend.Backend.pack_trainer`): `pack_estimate`
  counts the data and PyTorch's allowance once and each member's parameters and activations;
  `check_pack_fits` refuses a pack as `check_fits` does a run; `auto_pack_size` is how many runs
  of a config `--pack auto` packs: as many as fit on a GPU (up to `GPU_PACK_MAX`), `CPU_PACK` on
  the CPU.
- `dataset_sizes(config)` gives n_train and n_eval from the config alone (Fashion-MNIST's 60000
  training and 10000 test images), for a check made before the data is loaded.

No UI imports: both front ends use it.
"""

from __future__ import annotations

import itertools
import os
import resource
from dataclasses import dataclass
from pathlib import Path

import torch

from fcn_tui.config import Config, ModelConfig
from fcn_tui.engine import EVAL_BATCH
from fcn_tui.errors import MemoryCheckError
from fcn_tui.fashion import INPUT_FEATURES, NUM_CLASSES
from fcn_tui.formatting import memory_size

FLOAT = 4  # bytes of an fp32 value: parameters, gradients, optimizer state, activations
TRAIN_IMAGES, TEST_IMAGES = 60000, 10000  # Fashion-MNIST's sizes, before the data is loaded
RUNTIME_BYTES = 192 * 2**20  # libraries and buffers PyTorch touches on its first training steps:
# measured 150 to 170 MiB on the CPU whatever the model's size
CPU_PACK = 4  # runs per pack on the CPU: the seed study trained 1.11x and 1.16x faster packed in fours
# than one run at a time (2 cores, 2 threads, bench_study.py --epochs 3 --pack 4 --threads 2)
GPU_PACK_MAX = 64  # runs per pack on a GPU at most: one H200 went from 7.8 M to 10.6 M model-samples/s
# between 12 and 48 packed models; past that the GEMMs fill the GPU and only memory grows
GPU_HEADROOM = 0.9  # of the free GPU memory a pack may plan on: the allocator's blocks round up


@dataclass(frozen=True)
class Estimate:
    """Bytes one run holds at its peak, by kind."""

    parameters: int  # weights, gradients, optimizer state and the step's temporaries
    activations: int  # one training batch through the network and back (or one evaluation batch)
    data: int  # float32 copies of the images on the device
    runtime: int = RUNTIME_BYTES  # what PyTorch itself takes once training starts

    @property
    def total(self) -> int:
        return self.parameters + self.activations + self.data + self.runtime


def count_parameters(model: ModelConfig) -> int:
    """Trainable parameters of `fcn_tui.model.build_mlp(model)`, without building it."""
    widths = [INPUT_FEATURES, *model.hidden, NUM_CLASSES]
    total = sum(m * n + n for m, n in itertools.pairwise(widths))
    if model.batchnorm:
        total += sum(2 * w for w in model.hidden)  # weight and bias of each BatchNorm1d
    return total


def optimizer_copies(config: Config) -> int:
    """Parameter-sized tensors of optimizer state (momentum buffers, moment estimates)."""
    o = config.optim
    if o.name in ("adam", "adamw"):
        return 2  # first and second moments
    if o.name == "rmsprop":
        return 1 + (o.momentum > 0)  # squared average, and a momentum buffer
    return int(o.momentum > 0)  # sgd: a momentum buffer only with momentum


def activation_values(config: Config, batch: int, training: bool) -> int:
    """fp32 values alive for one batch: kept for the backward pass and its gradients when training."""
    m = config.model
    if not training:  # no graph: only one layer's input and output exist at a time
        return batch * (INPUT_FEATURES + 2 * max(m.hidden) + NUM_CLASSES)
    # per hidden unit: the Linear's output, the norm's, the activation's, dropout's output and mask,
    # and about two more of the same size during the backward pass
    per_unit = 2 + m.batchnorm + 2 * (m.dropout > 0) + 2
    inputs = INPUT_FEATURES * (1 + 3 * (config.data.augment != "none"))  # the batch, its augmented copies
    return batch * (inputs + per_unit * sum(m.hidden) + 3 * NUM_CLASSES)


def estimate(config: Config, n_train: int, n_eval: int, device_type: str = "cpu") -> Estimate:
    """Peak memory of one run on `n_train` training images and `n_eval` evaluated images."""
    params = count_parameters(config.model)
    copies = 1 + 1 + optimizer_copies(config) + 1  # weights, gradients, state, the step's temporary
    parameter_bytes = params * copies * FLOAT
    if config.train.amp and device_type == "cuda":
        parameter_bytes += params * 2  # bf16 copies of the weights under autocast
    batch = max(1, min(config.train.batch_size, n_train))
    activations = max(
        activation_values(config, batch, training=True),
        activation_values(config, min(EVAL_BATCH, max(n_eval, 1)), training=False),
    ) * FLOAT
    data = (n_train + n_eval) * (INPUT_FEATURES * FLOAT + 8)  # float32 images and int64 labels
    return Estimate(parameters=parameter_bytes, activations=activations, data=data)


def estimate_bytes(config: Config, n_train: int, n_eval: int, device_type: str = "cpu") -> int:
    return estimate(config, n_train, n_eval, device_type).total


def dataset_sizes(config: Config) -> tuple[int, int]:
    """(n_train, n_eval) of a run on Fashion-MNIST, from its subset and validation share."""
    n = config.data.subset or TRAIN_IMAGES
    n_val = round(n * config.train.val_fraction)
    return n - n_val, n_val + TEST_IMAGES


def _meminfo_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def _cgroup_remaining() -> int | None:
    """What a container's memory limit still allows (cgroup v2, else v1); None without a limit."""
    for limit_file, usage_file in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        ("/sys/fs/cgroup/memory/memory.limit_in_bytes", "/sys/fs/cgroup/memory/memory.usage_in_bytes"),
    ):
        try:
            limit = Path(limit_file).read_text().strip()
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if limit == "max" or int(limit) >= 2**60:  # v1 writes "no limit" as a huge number
            return None
        return max(0, int(limit) - usage)
    return None


def _address_space_remaining() -> int | None:
    """What `ulimit -v` still allows this process; None when unlimited."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return max(0, soft - int(line.split()[1]) * 1024)
    except (OSError, ValueError, IndexError):
        pass
    return soft


def available_bytes(device: torch.device) -> int | None:
    """Memory the device can still give a run, or None when unknown."""
    if device.type == "cuda":
        try:
            free, _ = torch.cuda.mem_get_info(device)
            return int(free)
        except Exception:  # noqa: BLE001 - a driver that cannot say: skip the check
            return None
    known = [b for b in (_meminfo_available(), _cgroup_remaining(), _address_space_remaining()) if b is not None]
    return min(known) if known else None  # MPS shares the host's memory


def check_fits(config: Config, device: torch.device, n_train: int, n_eval: int) -> Estimate:
    """Raise `MemoryCheckError` when the run's estimate exceeds what `device` has available."""
    need = estimate(config, n_train, n_eval, device.type)
    have = available_bytes(device)
    if have is None or need.total <= have:
        return need
    largest = max(("parameters", need.parameters), ("activations", need.activations), ("data", need.data),
                  key=lambda kv: kv[1])[0]
    advice = {
        "parameters": "use fewer or narrower hidden layers (model.hidden)",
        "activations": "lower train.batch_size or narrow model.hidden",
        "data": "train on fewer images (data.subset)",
    }[largest]
    where = "the CPU" if device.type == "cpu" else str(device)
    raise MemoryCheckError(
        f"needs about {memory_size(need.total)} of memory (parameters, gradients and optimizer "
        f"state {memory_size(need.parameters)}, activations {memory_size(need.activations)}, data {memory_size(need.data)}) "
        f"but {where} has {memory_size(have)} available; {advice}"
    )


def pack_estimate(configs: list[Config], n_train: int, n_eval: int, device_type: str = "cpu") -> Estimate:
    """Peak memory of one pack: the images and PyTorch's allowance once, each member's
    parameters (with gradients and optimizer state) and activations (all train on one batch)."""
    each = [estimate(c, n_train, n_eval, device_type) for c in configs]
    return Estimate(parameters=sum(e.parameters for e in each), activations=sum(e.activations for e in each),
                    data=max(e.data for e in each))


def check_pack_fits(configs: list[Config], device: torch.device, n_train: int, n_eval: int) -> Estimate:
    """`check_fits` for a pack of runs: raise `MemoryCheckError` when it would not fit."""
    if len(configs) == 1:
        return check_fits(configs[0], device, n_train, n_eval)
    need = pack_estimate(configs, n_train, n_eval, device.type)
    have = available_bytes(device)
    if have is None or need.total <= have:
        return need
    where = "the CPU" if device.type == "cpu" else str(device)
    raise MemoryCheckError(f"a pack of {len(configs)} runs needs about {memory_size(need.total)} of memory but {where} "
                           f"has {memory_size(have)} available; pack fewer runs (--pack)")


def auto_pack_size(config: Config, device: torch.device, n_train: int, n_eval: int) -> int:
    """How many runs like `config` `--pack auto` trains in one pack on `device`."""
    if device.type != "cuda":
        return CPU_PACK if device.type == "cpu" else 1  # MPS: packing not measured there
    have = available_bytes(device)
    one = estimate(config, n_train, n_eval, device.type)
    if have is None:
        return 1
    per_member = one.parameters + one.activations
    room = int(have * GPU_HEADROOM) - one.data - one.runtime
    return max(1, min(GPU_PACK_MAX, room // max(1, per_member)))
