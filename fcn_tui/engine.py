"""The training engine: a pack of runs of one shape trained in one batched step, as a stream of
events per run. No UI imports.

    pack = PackTrainer([Member(config_a), Member(config_b, should_stop=flag.is_set)], split)
    for index, event in pack.events():   # per member: RunStarted, BatchProgress..., EpochEnded..., RunFinished
        ...
    pack.members[index].model            # that run's network (an nn.Sequential), for saving

    trainer = Trainer(config, split)     # one run: a pack of one, the same code path
    for event in trainer.events(): ...

Both front ends (CLI and TUI) consume these same streams, so they report the same numbers.

- Members share what `pack_key` holds (shapes, batch size, device, data split, numerics) and
  differ in anything else: optimizer and its settings, schedule, init, dropout, label smoothing,
  augmentation, epochs. Their weights are stacked (`fcn_tui.pack.Stack`); each member keeps its
  own seeded init, generators (shuffles and augmentation; dropout), torch.optim optimizer and
  schedule, so it trains exactly as it would alone (tests/test_pack.py: to 1e-9 in float64).
- Batches are sliced from a shuffled index into in-memory tensors (no per-sample DataLoader);
  on CUDA the whole split lives on the GPU. Members whose generators agree share one batch.
- No host sync per batch: the running losses are read every `progress_every` batches and at the
  end of each epoch. A member whose loss turns non-finite ends with status `diverged`.
- A member ends (completed, diverged, stopped, pruned, failed) on its own: it leaves the pack, the
  others' numbers do not change, and its `RunFinished` comes then.
- `should_stop()` is checked between batches; a stopped run keeps its completed epochs and is
  tested with the weights of its last completed epoch (the ones its checkpoint holds), so all its
  numbers describe one model; stopped before its first epoch ended, it has no test numbers and
  no model.
- `should_prune()` is checked after each epoch's `EpochEnded` has been handled (a study's pruner
  decides on that epoch's validation accuracy); a pruned run keeps its epochs, never touches the
  test set, and ends with status `pruned`.
- Problems with the setup (an unavailable device) raise `DeviceError` before `RunStarted`; any
  exception after it ends the run with status `failed` and the error in `RunFinished.error`
  (an exception in the shared step fails every member still training).
- `train.amp` trains with bf16 autocast on CUDA and on CPUs with bf16 instructions; elsewhere
  `RunStarted.note` says so and the run trains in fp32.
- Exact resume: from a member's first `EpochEnded` on, `checkpoint()` returns the complete state
  at its last epoch boundary (model, optimizer, schedule, generator states, the epoch history) as
  plain tensors, lists and numbers, loadable with `torch.load(weights_only=True)`; it stays valid
  after a stopped run's `RunFinished`. `Member(config, resume_from=state)` (or
  `Trainer(config, split, resume_from=state)`) continues from it; on the CPU with the same
  number of threads the continued run's events and final metrics equal an uninterrupted run's.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch
from torch import nn

from fcn_tui import events as ev
from fcn_tui.config import Config, config_to_dict
from fcn_tui.data import Split
from fcn_tui.errors import CheckpointError, DeviceError
from fcn_tui.fashion import IMAGE_SIDE, INPUT_FEATURES, MEAN, NUM_CLASSES, STD
from fcn_tui.model import build_mlp
from fcn_tui.pack import Stack

EVAL_BATCH = 4096  # large batches for evaluation: no gradients, so memory is small
PROGRESS_EVERY = 10  # batches between loss reads (each read is a host sync on CUDA)


CHECKPOINT_FORMAT = 2  # bumped when the checkpoint's layout changes; older ones are refused


def cuda_available() -> bool:
    try:
        return torch.cuda.is_available()
    except Exception:  # noqa: BLE001 - a broken driver means "no CUDA"
        return False


def mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def resolve_device(name: str) -> torch.device:
    """`auto` picks CUDA, then MPS, then the CPU; an explicit device must exist."""
    if name == "auto":
        if cuda_available():
            return torch.device("cuda")
        if mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.backends.cuda.is_built():
            raise DeviceError(f"device {name!r}: this PyTorch build has no CUDA support; use --device cpu")
        if not cuda_available():
            raise DeviceError(f"device {name!r}: no CUDA GPU is available here; use --device cpu")
        index = int(name.partition(":")[2] or 0)
        count = torch.cuda.device_count()
        if index >= count:
            raise DeviceError(f"device {name!r}: only {count} CUDA device(s) here (cuda:0 to cuda:{count - 1})")
        return torch.device("cuda", index)
    if name == "mps":
        if not mps_available():
            raise DeviceError("device 'mps': Apple's Metal backend is not available here; use --device cpu")
        return torch.device("mps")
    raise DeviceError(f"unknown device {name!r}; valid: auto, cpu, cuda, cuda:N, mps")


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    if device.type == "mps":
        return "Apple GPU (MPS)"
    threads = torch.get_num_threads()
    return f"CPU ({threads} thread{'s' if threads != 1 else ''})"


def to_inputs(images: torch.Tensor, normalize: bool, device: torch.device) -> torch.Tensor:
    """uint8 (N, 784) images to float32 in [0, 1] (or standardised) on `device`."""
    x = images.to(device).float().div_(255.0)
    if normalize:
        x.sub_(MEAN).div_(STD)
    return x


def augment_batch(x: torch.Tensor, kind: str, generator: torch.Generator) -> torch.Tensor:
    """Random horizontal flips and/or shifts of up to 2 pixels (zero-filled) of a flat batch."""
    n = len(x)
    images = x.view(n, IMAGE_SIDE, IMAGE_SIDE)
    device = x.device
    if "flip" in kind:
        flip = torch.rand(n, device=device, generator=generator) < 0.5
        images = torch.where(flip[:, None, None], images.flip(-1), images)
    if "shift" in kind:
        pad = 2
        padded = nn.functional.pad(images, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (n,), device=device, generator=generator)
        dx = torch.randint(0, 2 * pad + 1, (n,), device=device, generator=generator)
        steps = torch.arange(IMAGE_SIDE, device=device)
        rows = (dy[:, None] + steps)[:, :, None]
        cols = (dx[:, None] + steps)[:, None, :]
        images = padded[torch.arange(n, device=device)[:, None, None], rows, cols]
    return images.reshape(n, INPUT_FEATURES)


FUSED_DEVICES = ("cpu", "cuda")  # where torch has fused Adam/AdamW kernels


def make_optimizer(config: Config, params) -> torch.optim.Optimizer:
    params = list(params)
    o = config.optim
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    # Adam and AdamW in one fused kernel per step: torch's default on the CPU steps one parameter
    # at a time, and fused an Adam run of the baseline's shape trains 1.1x faster (README, Performance)
    fused = all(p.device.type in FUSED_DEVICES and p.is_floating_point() for p in params) or None
    if o.name == "adam":
        return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay, fused=fused)
    if o.name == "adamw":
        return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay, fused=fused)
    if o.name == "rmsprop":
        return torch.optim.RMSprop(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    raise ValueError(f"unknown optimizer {o.name!r}")


def make_scheduler(config: Config, optimizer, total_steps: int):
    """A per-step schedule, or None."""
    kind = config.optim.schedule
    if kind == "cosine":
        return torch.optim.lr_scheduler.LambdaLR(
            optimizer, lambda step: 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))
        )
    if kind == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=config.optim.lr, total_steps=total_steps)
    return None


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor, amp: bool = False,
             per_image: list | None = None) -> tuple[float, float, list[list[int]]]:
    """Mean cross-entropy, accuracy and 10x10 confusion (rows true, columns predicted).
    `per_image`, when given, receives (predicted labels, softmax probabilities) per batch on the CPU."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), device=x.device, dtype=torch.float64)
    confusion = torch.zeros(100, device=x.device, dtype=torch.int64)
    try:
        for start in range(0, len(x), EVAL_BATCH):
            xb, yb = x[start:start + EVAL_BATCH], y[start:start + EVAL_BATCH]
            with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=amp):
                logits = model(xb)
            logits = logits.float()
            loss_sum += nn.functional.cross_entropy(logits, yb, reduction="sum").double()
            predicted = logits.argmax(1)
            confusion += torch.bincount(yb * NUM_CLASSES + predicted, minlength=NUM_CLASSES**2)
            if per_image is not None:
                per_image.append((predicted.cpu(), logits.softmax(1).cpu()))
    finally:
        model.train(was_training)
    matrix = confusion.view(NUM_CLASSES, NUM_CLASSES).cpu()
    n = len(x)
    return float(loss_sum) / n, float(matrix.diagonal().sum()) / n, matrix.tolist()


@dataclass
class Member:
    """One run of a pack: its config, its stop and prune checks, and the checkpoint it continues from."""

    config: Config
    should_stop: Callable[[], bool] = lambda: False  # checked between batches, for this member only
    should_prune: Callable[[], bool] | None = None  # checked after this member's EpochEnded was handled
    resume_from: dict | None = None  # a checkpoint from MemberView.checkpoint() / Trainer.checkpoint()


def pack_key(config: Config) -> tuple:
    """Configs with equal keys may train in one pack: the shapes, the data (one split, one batch
    order per seed), the device and the numerics are shared; everything else is per member."""
    m, t, d = config.model, config.train, config.data
    return (m.hidden, m.batchnorm, m.activation, t.batch_size, t.device, t.seed, t.val_fraction,
            d.subset, d.normalize, t.amp, t.compile)


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 in hardware (AVX512-BF16 or AMX); elsewhere bf16 is emulated, slower than fp32."""
    checks = (getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None))
    try:
        return any(check() for check in checks if check is not None)
    except Exception:  # noqa: BLE001 - a private check that changed means "no"
        return False


def use_amp(config: Config, device: torch.device) -> tuple[bool, str]:
    """Whether `train.amp` trains with bf16 autocast here, and a note for the user when it cannot."""
    if not config.train.amp or device.type == "cuda":
        return config.train.amp, ""
    if device.type == "cpu" and cpu_has_bf16():
        return True, ""
    why = "this CPU has no bf16 instructions (AVX512-BF16 or AMX)" if device.type == "cpu" else f"no bf16 autocast on {device.type}"
    return False, f"train.amp: {why}; training in fp32"


def error_text(err: BaseException) -> str:
    return f"{type(err).__name__}: {err}".strip()


class MemberView:
    """One member of a pack while it trains: its config, its model (valid while its `EpochEnded`
    is handled and after its `RunFinished`) and `checkpoint()`."""

    def __init__(self, index: int, member: Member) -> None:
        self.index, self.member, self.config = index, member, member.config
        resume = member.resume_from
        self.model: nn.Sequential | None = None
        self.optimizer = self.scheduler = self.loss_fn = self.data_gen = self.dropout_gen = None
        self.history = [ev.EpochEnded(**e) for e in resume["history"]] if resume else []
        self.epoch = int(resume["epoch"]) if resume else 0  # epochs completed
        self.global_step = int(resume["global_step"]) if resume else 0
        self.train_seconds = float(resume["train_seconds"]) if resume else 0.0
        self.trained_samples = int(resume["trained_samples"]) if resume else 0
        self.wall_before = float(resume["wall_s"]) if resume else 0.0
        self.started = time.perf_counter()
        self.loss_total = 0.0  # this epoch's summed training loss, read at each progress report
        self.saved: dict | None = None  # the state at the last epoch boundary, on the device

    def checkpoint(self) -> dict:
        """The run's state at its last epoch boundary (valid from its first `EpochEnded` on)."""
        if self.saved is None:
            raise CheckpointError("no epoch has ended yet")
        s = self.saved
        return {
            "format": CHECKPOINT_FORMAT,
            "device_type": s["device_type"],  # RNG and optimizer states differ between kinds of device
            "config": config_to_dict(self.config),
            **{key: s[key] for key in ("epoch", "global_step", "train_seconds", "trained_samples")},
            "wall_s": time.perf_counter() - self.started + self.wall_before,
            "history": [dataclasses.asdict(e) for e in s["history"]],
            "model": _to_cpu(s["model"]),
            "optimizer": _to_cpu(s["optimizer"]),
            "scheduler": s["scheduler"],
            "generator": s["generator"].clone(),
            "dropout_generator": s["dropout_generator"].clone(),
        }

    def save_boundary(self, device: torch.device) -> None:
        """Keep the state at this epoch boundary (on the device: a copy, no host transfer)."""
        self.saved = {
            "device_type": device.type, "epoch": self.epoch, "global_step": self.global_step,
            "train_seconds": self.train_seconds, "trained_samples": self.trained_samples,
            "history": list(self.history),
            "model": _clone(self.model.state_dict()),
            "optimizer": _clone(self.optimizer.state_dict()),
            "scheduler": copy.deepcopy(self.scheduler.state_dict()) if self.scheduler is not None else None,
            "generator": self.data_gen.get_state().clone(),
            "dropout_generator": self.dropout_gen.get_state().clone(),
        }


@dataclass
class Stream:
    """The batches that members with one data generator state and one augmentation draw alike."""

    generator: torch.Generator
    augment: str
    runs: list[MemberView]
    order: torch.Tensor | None = None


class PackTrainer:
    """Trains a pack of compatible runs (`pack_key`) in one batched step. Iterate `events()` once."""

    def __init__(self, members: list[Member], split: Split, progress_every: int = PROGRESS_EVERY,
                 dtype: torch.dtype = torch.float32) -> None:  # float64 only for the equivalence tests
        if not members or len({pack_key(m.config) for m in members}) != 1:
            raise ValueError("a pack needs one or more members with equal pack_key")
        self.split, self.dtype = split, dtype
        self.progress_every = max(1, progress_every)
        self.device = resolve_device(members[0].config.train.device)  # raises DeviceError before any work
        for i, member in enumerate(members):
            if member.resume_from is not None:
                try:
                    check_checkpoint(member.resume_from, member.config, self.device.type)
                except CheckpointError as err:
                    if len(members) == 1:
                        raise
                    raise CheckpointError(f"run {i + 1} ({member.config.name}): {err}") from None
        self.members = [MemberView(i, m) for i, m in enumerate(members)]
        cfg = members[0].config
        self.key = pack_key(cfg)
        self._joining: list[MemberView] = []  # added while the pack trains: they start with the next epoch
        self.amp, self.note = use_amp(cfg, self.device)
        self.n_train = len(split.train_x)
        self.batch_size = min(cfg.train.batch_size, self.n_train)
        self.steps_per_epoch = math.ceil(self.n_train / self.batch_size)
        if cfg.model.batchnorm and self.n_train % self.batch_size == 1 and self.steps_per_epoch > 1:
            self.steps_per_epoch -= 1  # BatchNorm cannot train on a last batch of one sample: skip it
        self.active: list[MemberView] = []  # the members still training, in the order of the stack's slots
        self.stack: Stack | None = None
        self._window = self._correct = None  # per-slot loss sums and right answers of the epoch, on the device
        self._epoch_start, self._seen, self._window_seen = None, 0, 0  # the epoch in progress: start, samples

    def events(self) -> Iterator[tuple[int, ev.Event]]:
        """(member index, event): per member RunStarted, (BatchProgress* EpochEnded)*, RunFinished."""
        for run in self.members:
            yield run.index, self._run_started(run)
        yield from self._guarded(self._setup())
        while self.active or self._joining:  # a run added as the last one left still trains
            yield from self._guarded(self._epoch())

    def can_add(self, config: Config) -> bool:
        """Whether `config` may join this pack now: its shapes match and the pack still trains."""
        return bool(self.active or self._joining) and self.stack is not None and pack_key(config) == self.key

    def add(self, member: Member) -> int:
        """A run joins the training pack (e.g. in the slot of one that ended) and starts with the next
        epoch; returns its index in `events()`. Raises CheckpointError for an unusable `resume_from`."""
        if not self.can_add(member.config):
            raise ValueError("this run cannot join the pack (another pack_key, or the pack has ended)")
        if member.resume_from is not None:
            check_checkpoint(member.resume_from, member.config, self.device.type)
        run = MemberView(len(self.members), member)
        self.members.append(run)
        self._joining.append(run)
        return run.index

    def _admit(self) -> Iterator[tuple[int, ev.Event]]:
        """Members added since the last epoch: their RunStarted, model, slot in the stack and optimizer."""
        joining, self._joining = self._joining, []
        for run in joining:
            yield run.index, self._run_started(run)
            try:
                model = self._build_model(run)
                self.stack.add(model, run.config.model.dropout, run.dropout_gen)
                self.active.append(run)
                self._build_optimizer(run)
            except Exception as err:  # noqa: BLE001 - this member fails, the others go on
                error = error_text(err)
            else:
                continue
            yield from self._finish(run, ev.FAILED, error, mid_epoch=False)

    def _run_started(self, run: MemberView) -> ev.RunStarted:
        s = self.split
        return ev.RunStarted(
            config=run.config, device=str(self.device), device_name=device_name(self.device),
            n_train=self.n_train, n_val=len(s.val_x), n_test=len(s.test_x),
            steps_per_epoch=self.steps_per_epoch, previous_epochs=tuple(run.history), note=self.note,
        )

    def _guarded(self, phase: Iterator) -> Iterator[tuple[int, ev.Event]]:
        """Run a phase the whole pack shares; an exception in it fails every member still training."""
        try:
            yield from phase
            return
        except Exception as err:  # noqa: BLE001 - a failing run must not take the front end down
            error = error_text(err)
        for run in list(self.active):
            yield from self._finish(run, ev.FAILED, error)

    # ------------------------------------------------------------------------------- setup

    def _setup(self) -> Iterator[tuple[int, ev.Event]]:
        """The data on the device, then each member's model (seeded), the stack and each optimizer."""
        self.active = list(self.members)  # inside the phase: running out of memory here fails the runs
        cfg, device = self.members[0].config, self.device
        self.x_train = to_inputs(self.split.train_x, cfg.data.normalize, device).to(self.dtype)
        self.y_train = self.split.train_y.to(device)
        self.x_val = to_inputs(self.split.val_x, cfg.data.normalize, device).to(self.dtype)
        self.y_val = self.split.val_y.to(device)
        self.x_test = None  # made when the first member is tested
        models, failed = [], []
        for run in self.members:
            try:
                models.append(self._build_model(run))
            except Exception as err:  # noqa: BLE001 - this member fails, the others go on
                failed.append((run, error_text(err)))
        self.active = [run for run in self.members if run.model is not None]
        if self.active:
            dropouts = [run.config.model.dropout for run in self.active]
            self.stack = Stack(models, dropouts, [run.dropout_gen for run in self.active], device, self.dtype)
        for run in self.active:
            try:
                self._build_optimizer(run)
            except Exception as err:  # noqa: BLE001
                failed.append((run, error_text(err)))
        for run, error in failed:
            yield from self._finish(run, ev.FAILED, error)
        self.forward = self.stack.forward if self.stack is not None else None
        if cfg.train.compile and device.type == "cuda" and self.stack is not None:
            self.forward = torch.compile(self.stack.forward)

    def _build_model(self, run: MemberView) -> nn.Sequential:
        """The member's network as build_mlp makes it after seeding torch with the run's seed."""
        t = run.config.train
        torch.manual_seed(t.seed)
        model = build_mlp(run.config.model).to(self.dtype)
        run.data_gen = torch.Generator(device=self.device).manual_seed(t.seed)  # shuffles and augmentation
        run.dropout_gen = torch.Generator(device=self.device).manual_seed(dropout_seed(t.seed))
        if run.member.resume_from is not None:
            model.load_state_dict(run.member.resume_from["model"])
            run.data_gen.set_state(run.member.resume_from["generator"])
            run.dropout_gen.set_state(run.member.resume_from["dropout_generator"])
        run.model = model
        return model

    def _build_optimizer(self, run: MemberView) -> None:
        """The member's own torch.optim optimizer and schedule over its (stacked) parameters."""
        cfg = run.config
        run.optimizer = make_optimizer(cfg, run.model.parameters())
        run.scheduler = make_scheduler(cfg, run.optimizer, self.steps_per_epoch * cfg.train.epochs)
        run.loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.train.label_smoothing)
        resume = run.member.resume_from
        if resume is not None:
            run.optimizer.load_state_dict(resume["optimizer"])
            if run.scheduler is not None:
                run.scheduler.load_state_dict(resume["scheduler"])
            run.member.resume_from = None  # a full copy of the weights: not kept for the whole run

    # ------------------------------------------------------------------------------- training

    def _epoch(self) -> Iterator[tuple[int, ev.Event]]:
        """One epoch of every member: newcomers join, all train, then each validates and may end."""
        yield from self._admit()
        yield from self._train_one_epoch()
        if self.active:
            yield from self._end_epoch()

    def _train_one_epoch(self) -> Iterator[tuple[int, ev.Event]]:
        """One pass over the training split for every member, reporting progress as it goes."""
        streams = self._start_epoch()
        for step in range(1, self.steps_per_epoch + 1):
            for run, error in self._train_step(streams, step):
                yield from self._finish(run, ev.FAILED, error)
            if step % self.progress_every == 0 or step == self.steps_per_epoch:
                yield from self._report_progress(step)
            if step < self.steps_per_epoch:  # the check after the epoch covers its last batch
                for run in [r for r in self.active if r.member.should_stop()]:
                    yield from self._finish(run, ev.STOPPED)
            if not self.active:
                return
        for stream in streams:  # members drew alike: each keeps the stream's generator state
            for run in stream.runs:
                if run.data_gen is not stream.generator:
                    run.data_gen.set_state(stream.generator.get_state())

    def _start_epoch(self) -> list[Stream]:
        """Zero the epoch's counters and draw each stream's batch order."""
        self._epoch_start = time.perf_counter()
        self._seen = self._window_seen = 0
        self._window = torch.zeros(len(self.active), device=self.device, dtype=self.dtype)
        self._correct = torch.zeros(len(self.active), device=self.device, dtype=torch.int64)
        for run in self.active:
            run.loss_total = 0.0
        return self._streams()

    def _streams(self) -> list[Stream]:
        """Members whose data generators are in one state with one augmentation share their batches."""
        streams: dict[tuple, Stream] = {}
        for run in self.active:
            key = (run.config.data.augment, bytes(run.data_gen.get_state().tolist()))
            if key not in streams:
                streams[key] = Stream(run.data_gen, run.config.data.augment, [])
            streams[key].runs.append(run)
        for stream in streams.values():
            stream.order = torch.randperm(self.n_train, device=self.device, generator=stream.generator)
        return list(streams.values())

    def _batch(self, streams: list[Stream], step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Batch `step`: (B, in) and (B,) when every member sees the same one, else (K, B, in) and (K, B)."""
        live = [s for s in streams if any(run in self.active for run in s.runs)]
        batches = {}
        for stream in live:
            idx = stream.order[(step - 1) * self.batch_size: step * self.batch_size]
            xb = self.x_train[idx]
            if stream.augment != "none":
                xb = augment_batch(xb, stream.augment, stream.generator)
            batches[id(stream)] = (xb, self.y_train[idx])
        if len(batches) == 1:
            return next(iter(batches.values()))
        of = {id(run): id(stream) for stream in live for run in stream.runs}
        chosen = [batches[of[id(run)]] for run in self.active]
        return torch.stack([x for x, _ in chosen]), torch.stack([y for _, y in chosen])

    def _train_step(self, streams: list[Stream], step: int) -> list[tuple[MemberView, str]]:
        """One optimizer step of every member; returns the members whose own step failed."""
        x, y = self._batch(streams, step)
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            logits = self.forward(x)
        losses = torch.stack([
            run.loss_fn(logits[k].to(self.dtype), y if y.dim() == 1 else y[k]) for k, run in enumerate(self.active)
        ])
        self.stack.set_grads(torch.autograd.grad(losses.sum(), self.stack.params))
        failed = []
        for run in self.active:
            try:
                run.optimizer.step()
                if run.scheduler is not None:
                    run.scheduler.step()
            except Exception as err:  # noqa: BLE001 - this member fails, the others go on
                failed.append((run, error_text(err)))
            run.global_step += 1
        self._window.add_(losses.detach(), alpha=y.shape[-1])  # few small ops per step: they add up
        self._window_seen += y.shape[-1]
        self._seen += y.shape[-1]
        self._correct.add_((logits.detach().argmax(-1) == y).sum(-1))
        return failed

    def _report_progress(self, step: int) -> Iterator[tuple[int, ev.Event]]:
        """Read the members' loss since the last report (the only sync in the loop); NaN ends a member."""
        sums, window_seen = self._window.tolist(), self._window_seen
        self._window.zero_()
        self._window_seen = 0
        elapsed = time.perf_counter() - self._epoch_start
        for run, window_sum in zip(list(self.active), sums):
            run.loss_total += window_sum
            mean_loss = window_sum / window_seen
            if not math.isfinite(mean_loss):
                yield from self._finish(run, ev.DIVERGED)
                continue
            yield run.index, ev.BatchProgress(
                epoch=run.epoch + 1, step=step, steps_per_epoch=self.steps_per_epoch,
                global_step=run.global_step, loss=mean_loss,
                samples_per_s=self._seen / elapsed if elapsed > 0 else 0.0,
            )

    # ------------------------------------------------------------------------------- epoch ends

    def _end_epoch(self) -> Iterator[tuple[int, ev.Event]]:
        """Each member's validation and `EpochEnded`, then its end if it completed, stopped or was pruned."""
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        train_s = time.perf_counter() - self._epoch_start
        correct = self._correct.tolist()
        for run, right in zip(list(self.active), correct):
            run.train_seconds += train_s
            run.trained_samples += self._seen
            train_loss = run.loss_total / self._seen
            if not math.isfinite(train_loss):
                yield from self._finish(run, ev.DIVERGED, mid_epoch=False)
                continue
            try:
                val_loss, val_acc, val_confusion = evaluate(run.model, self.x_val, self.y_val, self.amp)
                run.epoch += 1
                epoch_event = ev.EpochEnded(
                    epoch=run.epoch, epochs=run.config.train.epochs, train_loss=train_loss,
                    train_acc=right / self._seen, val_loss=val_loss, val_acc=val_acc,
                    lr=float(run.optimizer.param_groups[0]["lr"]),
                    seconds=time.perf_counter() - self._epoch_start,
                    samples_per_s=self._seen / train_s if train_s > 0 else 0.0,
                    val_confusion=val_confusion,
                )
                run.history.append(epoch_event)
                run.save_boundary(self.device)
            except Exception as err:  # noqa: BLE001 - this member fails, the others go on
                error = error_text(err)
            else:
                error = None
            if error is not None:
                yield from self._finish(run, ev.FAILED, error, mid_epoch=False)
                continue
            yield run.index, epoch_event
            status = self._status_after_epoch(run, val_loss)
            if status is not None:
                yield from self._finish(run, status, mid_epoch=False)

    @staticmethod
    def _status_after_epoch(run: MemberView, val_loss: float) -> str | None:
        """How a member ends after the `EpochEnded` just handled, or None when it trains on."""
        if not math.isfinite(val_loss):
            return ev.DIVERGED
        if run.epoch >= run.config.train.epochs:
            return ev.COMPLETED
        if run.member.should_stop():
            return ev.STOPPED
        if run.member.should_prune is not None and run.member.should_prune():
            return ev.PRUNED
        return None

    def _test(self, run: MemberView) -> tuple:
        """Test loss, accuracy, confusion and per-image predictions of the member's model."""
        if self.x_test is None:
            self.x_test = to_inputs(self.split.test_x, run.config.data.normalize, self.device).to(self.dtype)
            self.y_test = self.split.test_y.to(self.device)
        per_image: list = []
        test_loss, test_acc, test_confusion = evaluate(run.model, self.x_test, self.y_test, self.amp, per_image)
        return test_loss, test_acc, test_confusion, predictions(self.split.test_y, per_image)

    def _finish(self, run: MemberView, status: str, error: str | None = None,
                mid_epoch: bool = True) -> Iterator[tuple[int, ev.Event]]:
        """End a member: it leaves the pack, is tested (completed, or stopped after an epoch, with the
        weights of its last epoch boundary) and yields its `RunFinished`."""
        if mid_epoch and run in self.active and self._epoch_start is not None:
            run.train_seconds += time.perf_counter() - self._epoch_start
            run.trained_samples += self._seen
        self._leave(run)
        test = (None, None, None, None)
        if status == ev.STOPPED and run.saved is None:
            run.model = None  # stopped before its first epoch ended: no model, no numbers
        elif status == ev.STOPPED and run.model is not None:
            run.model.load_state_dict(run.saved["model"])  # the weights its last epoch reported
        if status in (ev.COMPLETED, ev.STOPPED) and run.model is not None:
            try:
                test = self._test(run)
            except Exception as err:  # noqa: BLE001
                status, error = ev.FAILED, error_text(err)
        if status == ev.FAILED:
            run.model = None  # drop every reference to device memory before the next run
        run.optimizer = run.scheduler = None
        if status != ev.STOPPED:
            run.saved = None
        if not self.active and not self._joining:
            self._release()
        last = run.history[-1] if run.history else None
        yield run.index, ev.RunFinished(
            status=status, epochs_completed=len(run.history),
            train_loss=last.train_loss if last else None, val_loss=last.val_loss if last else None,
            val_acc=last.val_acc if last else None,
            best_val_acc=max(e.val_acc for e in run.history) if run.history else None,
            test_loss=test[0], test_acc=test[1], test_confusion=test[2],
            wall_s=time.perf_counter() - run.started + run.wall_before,
            samples_per_s=run.trained_samples / run.train_seconds if run.train_seconds > 0 else 0.0,
            error=error, test_predictions=test[3],
        )

    def _leave(self, run: MemberView) -> None:
        """Take a member out of the stack; the others' weights and statistics are untouched."""
        if run not in self.active:
            return
        slot = self.active.index(run)
        keep = [k for k in range(len(self.active)) if k != slot]
        if self.stack is not None:
            self.stack.release(slot)
            self.stack.keep(keep)
        self.active.pop(slot)
        if self._window is not None and keep:
            index = torch.tensor(keep, device=self.device)
            self._window, self._correct = self._window[index], self._correct[index]

    def _release(self) -> None:
        """Drop the pack's device memory (data, stacks) once no member trains."""
        self.stack = self.forward = None
        self.x_train = self.y_train = self.x_val = self.y_val = self.x_test = self.y_test = None
        self._window = self._correct = None
        if self.device.type == "cuda":
            torch.cuda.empty_cache()


class Trainer:
    """One training run: a pack of one. Iterate `events()` once; `model` holds the network afterwards."""

    def __init__(
        self,
        config: Config,
        split: Split,
        should_stop: Callable[[], bool] | None = None,
        progress_every: int = PROGRESS_EVERY,
        resume_from: dict | None = None,
        should_prune: Callable[[], bool] | None = None,
        dtype: torch.dtype = torch.float32,  # float64 only for the equivalence tests
    ) -> None:
        self.config = config
        member = Member(config, should_stop or (lambda: False), should_prune, resume_from)
        self._pack = PackTrainer([member], split, progress_every, dtype)
        self.device = self._pack.device

    @property
    def model(self) -> nn.Sequential | None:
        return self._pack.members[0].model

    @property
    def resume_from(self) -> dict | None:
        """The checkpoint this run continues from, until its weights are loaded (then None)."""
        return self._pack.members[0].member.resume_from

    def checkpoint(self) -> dict:
        """The run's state at the last epoch boundary (call while handling its `EpochEnded`)."""
        return self._pack.members[0].checkpoint()

    def events(self) -> Iterator[ev.Event]:
        for _, event in self._pack.events():
            yield event


def dropout_seed(seed: int) -> int:
    """The seed of a run's dropout generator: derived from its seed, unrelated to its data generator's."""
    return int.from_bytes(hashlib.sha256(f"{seed}/dropout".encode()).digest()[:8], "little") >> 1


def _clone(value):
    """A state dict with every tensor copied where it is (a snapshot that later steps do not change)."""
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, dict):
        return {k: _clone(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_clone(v) for v in value)
    return value


def predictions(true: torch.Tensor, per_image: list) -> ev.Predictions:
    """`evaluate`'s per-batch results as compact numpy arrays (uint8 labels, float16 probabilities)."""
    predicted = torch.cat([p for p, _ in per_image]) if per_image else torch.zeros(0, dtype=torch.int64)
    probs = torch.cat([q for _, q in per_image]) if per_image else torch.zeros(0, NUM_CLASSES)
    return ev.Predictions(
        true=true.cpu().to(torch.uint8).numpy(),
        predicted=predicted.to(torch.uint8).numpy(),
        probs=probs.to(torch.float16).numpy(),
    )


def _to_cpu(value):
    """A state dict with every tensor copied to the CPU (checkpoints load on any device)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().clone()
    if isinstance(value, dict):
        return {k: _to_cpu(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(v) for v in value)
    return value


CHECKPOINT_NUMBERS = ("global_step", "train_seconds", "trained_samples", "wall_s")


def check_checkpoint(state: dict, config: Config, device_type: str | None = None) -> None:
    """Raise `CheckpointError` unless `state` is a checkpoint of `config` that can continue
    (on a device of `device_type`, when given: `cpu`, `cuda`, `mps`)."""
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError("not a checkpoint of this version of fcn-tui")
    if state.get("config") != config_to_dict(config):
        raise CheckpointError("the checkpoint was written for another configuration")
    if device_type is not None and state.get("device_type") != device_type:
        raise CheckpointError(f"the checkpoint was written on {state.get('device_type')!r}, not {device_type!r}")
    for key in CHECKPOINT_NUMBERS:
        if not isinstance(state.get(key), (int, float)) or isinstance(state.get(key), bool):
            raise CheckpointError(f"the checkpoint's {key} is missing")
    for key in ("model", "optimizer", "generator", "dropout_generator"):
        if key not in state:
            raise CheckpointError(f"the checkpoint's {key} is missing")
    epoch = state.get("epoch")
    if not isinstance(epoch, int) or not 1 <= epoch < config.train.epochs:
        raise CheckpointError(f"the checkpoint's epoch {epoch!r} leaves nothing to train")
    history = state.get("history")
    if not isinstance(history, list) or len(history) != epoch:
        raise CheckpointError("the checkpoint's history does not match its epoch")
    try:
        for item in history:
            ev.EpochEnded(**item)
    except TypeError as err:
        raise CheckpointError(f"the checkpoint's history is malformed ({err})") from None
