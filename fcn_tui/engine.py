"""The training engine: one run of one config, as a stream of events. No UI imports.

    trainer = Trainer(config, split, should_stop=event.is_set)
    for event in trainer.events():   # RunStarted, BatchProgress..., EpochEnded..., RunFinished
        ...
    trainer.model                    # the trained model, for saving

Both front ends (CLI and TUI) consume this same stream, so they report the same numbers.

- Batches are sliced from a shuffled index into in-memory tensors (no per-sample DataLoader);
  on CUDA the whole split lives on the GPU.
- No host sync per batch: the running loss is read every `progress_every` batches and at the
  end of each epoch. A non-finite loss ends the run with status `diverged`.
- `should_stop()` is checked between batches; a stopped run keeps its completed epochs, is
  evaluated on the test set as it stands, and ends with status `stopped`.
- `should_prune()` is checked after each epoch's `EpochEnded` has been handled (a study's pruner
  decides on that epoch's validation accuracy); a pruned run keeps its epochs, never touches the
  test set, and ends with status `pruned`.
- Problems with the setup (an unavailable device) raise `DeviceError` before `RunStarted`; any
  exception after it ends the run with status `failed` and the error in `RunFinished.error`.
- Exact resume: while the consumer handles an `EpochEnded`, `trainer.checkpoint()` returns the
  complete state at that epoch boundary (model, optimizer, schedule, every RNG state, the epoch
  history) as plain tensors, lists and numbers, loadable with `torch.load(weights_only=True)`.
  `Trainer(config, split, resume_from=state)` continues from it; on the CPU with the same number
  of threads the continued run's events and final metrics equal an uninterrupted run's.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator

import torch
from torch import nn

from fcn_tui import events as ev
from fcn_tui.config import Config, config_to_dict
from fcn_tui.data import MEAN, STD, Split
from fcn_tui.model import build_mlp

EVAL_BATCH = 4096  # large batches for evaluation: no gradients, so memory is small
PROGRESS_EVERY = 10  # batches between loss reads (each read is a host sync on CUDA)


CHECKPOINT_FORMAT = 1  # bumped when the checkpoint's layout changes; older ones are refused


class DeviceError(RuntimeError):
    """The requested device does not exist here; the message says what is available."""


class CheckpointError(ValueError):
    """A checkpoint does not belong to this run or cannot be used; the message says why."""


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
    images = x.view(n, 28, 28)
    device = x.device
    if "flip" in kind:
        flip = torch.rand(n, device=device, generator=generator) < 0.5
        images = torch.where(flip[:, None, None], images.flip(-1), images)
    if "shift" in kind:
        pad = 2
        padded = nn.functional.pad(images, (pad, pad, pad, pad))
        dy = torch.randint(0, 2 * pad + 1, (n,), device=device, generator=generator)
        dx = torch.randint(0, 2 * pad + 1, (n,), device=device, generator=generator)
        steps = torch.arange(28, device=device)
        rows = (dy[:, None] + steps)[:, :, None]
        cols = (dx[:, None] + steps)[:, None, :]
        images = padded[torch.arange(n, device=device)[:, None, None], rows, cols]
    return images.reshape(n, 784)


def make_optimizer(config: Config, params) -> torch.optim.Optimizer:
    o = config.optim
    if o.name == "sgd":
        return torch.optim.SGD(params, lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)
    if o.name == "adam":
        return torch.optim.Adam(params, lr=o.lr, weight_decay=o.weight_decay)
    if o.name == "adamw":
        return torch.optim.AdamW(params, lr=o.lr, weight_decay=o.weight_decay)
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
            confusion += torch.bincount(yb * 10 + predicted, minlength=100)
            if per_image is not None:
                per_image.append((predicted.cpu(), logits.softmax(1).cpu()))
    finally:
        model.train(was_training)
    matrix = confusion.view(10, 10).cpu()
    n = len(x)
    return float(loss_sum) / n, float(matrix.diagonal().sum()) / n, matrix.tolist()


class Trainer:
    """One training run. Iterate `events()` once; `model` holds the network afterwards."""

    def __init__(
        self,
        config: Config,
        split: Split,
        should_stop: Callable[[], bool] | None = None,
        progress_every: int = PROGRESS_EVERY,
        resume_from: dict | None = None,
        should_prune: Callable[[], bool] | None = None,
    ) -> None:
        self.config = config
        self.split = split
        self.should_stop = should_stop or (lambda: False)
        self.should_prune = should_prune or (lambda: False)
        self.progress_every = max(1, progress_every)
        self.device = resolve_device(config.train.device)  # raises DeviceError before any work
        self.model: nn.Module | None = None
        self.resume_from = resume_from
        if resume_from is not None:
            check_checkpoint(resume_from, config, self.device.type)
        self._state: dict | None = None  # what `checkpoint()` needs, set at each epoch boundary

    def checkpoint(self) -> dict:
        """The run's state at the last epoch boundary (call while handling its `EpochEnded`)."""
        if self._state is None:
            raise CheckpointError("no epoch has ended yet")
        s = self._state
        state = {
            "format": CHECKPOINT_FORMAT,
            "device_type": self.device.type,  # RNG and optimizer states differ between kinds of device
            "config": config_to_dict(self.config),
            "epoch": s["epoch"],
            "global_step": s["global_step"],
            "train_seconds": s["train_seconds"],
            "trained_samples": s["trained_samples"],
            "wall_s": time.perf_counter() - s["started"] + s["wall_before"],
            "history": [dataclasses.asdict(e) for e in s["history"]],
            "model": {k: v.detach().cpu().clone() for k, v in s["model"].state_dict().items()},
            "optimizer": _to_cpu(s["optimizer"].state_dict()),
            "scheduler": s["scheduler"].state_dict() if s["scheduler"] is not None else None,
            "generator": s["generator"].get_state().clone(),
            "cpu_rng": torch.get_rng_state(),
        }
        if self.device.type == "cuda":
            state["cuda_rng"] = torch.cuda.get_rng_state(self.device)
        return state

    def events(self) -> Iterator[ev.Event]:
        cfg, t = self.config, self.config.train
        device = self.device
        started = time.perf_counter()
        torch.manual_seed(t.seed)
        normalize = cfg.data.normalize
        n_train = len(self.split.train_x)
        batch_size = min(t.batch_size, n_train)
        steps_per_epoch = math.ceil(n_train / batch_size)
        if cfg.model.batchnorm and n_train % batch_size == 1 and steps_per_epoch > 1:
            steps_per_epoch -= 1  # BatchNorm cannot train on a last batch of one sample: skip it
        resume = self.resume_from
        history: list[ev.EpochEnded] = [ev.EpochEnded(**e) for e in resume["history"]] if resume else []
        yield ev.RunStarted(
            config=cfg, device=str(device), device_name=device_name(device),
            n_train=n_train, n_val=len(self.split.val_x), n_test=len(self.split.test_x),
            steps_per_epoch=steps_per_epoch, previous_epochs=tuple(history),
        )
        train_seconds = float(resume["train_seconds"]) if resume else 0.0
        trained_samples = int(resume["trained_samples"]) if resume else 0
        wall_before = float(resume["wall_s"]) if resume else 0.0
        first_epoch = int(resume["epoch"]) + 1 if resume else 1
        status, error = ev.COMPLETED, None
        try:
            # inside the try: running out of GPU memory here also ends the run as `failed`
            x_train = to_inputs(self.split.train_x, normalize, device)
            y_train = self.split.train_y.to(device)
            x_val, y_val = to_inputs(self.split.val_x, normalize, device), self.split.val_y.to(device)
            model = build_mlp(cfg.model).to(device)
            self.model = model
            optimizer = make_optimizer(cfg, model.parameters())
            scheduler = make_scheduler(cfg, optimizer, steps_per_epoch * t.epochs)
            loss_fn = nn.CrossEntropyLoss(label_smoothing=t.label_smoothing)
            generator = torch.Generator(device=device).manual_seed(t.seed)
            amp = t.amp and device.type == "cuda"
            step_model = torch.compile(model) if t.compile and device.type == "cuda" else model
            global_step = 0
            if resume:
                model.load_state_dict(resume["model"])
                optimizer.load_state_dict(resume["optimizer"])
                if scheduler is not None:
                    scheduler.load_state_dict(resume["scheduler"])
                generator.set_state(resume["generator"])
                torch.set_rng_state(resume["cpu_rng"])
                if device.type == "cuda" and "cuda_rng" in resume:
                    torch.cuda.set_rng_state(resume["cuda_rng"], device)
                global_step = int(resume["global_step"])
                self.resume_from = resume = None  # a full copy of the weights: not kept for the whole run
            model.train()
            for epoch in range(first_epoch, t.epochs + 1):
                epoch_start = time.perf_counter()
                order = torch.randperm(n_train, device=device, generator=generator)
                correct = torch.zeros((), device=device, dtype=torch.int64)
                window_loss = torch.zeros((), device=device)  # summed over samples, read every few steps
                loss_total = 0.0
                window_seen = seen = 0
                for step in range(1, steps_per_epoch + 1):
                    idx = order[(step - 1) * batch_size: step * batch_size]
                    xb, yb = x_train[idx], y_train[idx]
                    if cfg.data.augment != "none":
                        xb = augment_batch(xb, cfg.data.augment, generator)
                    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                        logits = step_model(xb)
                        loss = loss_fn(logits.float(), yb)
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    optimizer.step()
                    if scheduler is not None:
                        scheduler.step()
                    window_loss.add_(loss.detach(), alpha=len(idx))  # few small ops per step: they add up
                    correct.add_((logits.detach().argmax(1) == yb).sum())
                    window_seen += len(idx)
                    seen += len(idx)
                    global_step += 1
                    if step % self.progress_every == 0 or step == steps_per_epoch:
                        window_sum = float(window_loss)  # the only sync in the loop
                        loss_total += window_sum
                        mean_loss = window_sum / window_seen
                        if not math.isfinite(mean_loss):
                            status = ev.DIVERGED
                            break
                        elapsed = time.perf_counter() - epoch_start
                        yield ev.BatchProgress(
                            epoch=epoch, step=step, steps_per_epoch=steps_per_epoch,
                            global_step=global_step, loss=mean_loss,
                            samples_per_s=seen / elapsed if elapsed > 0 else 0.0,
                        )
                        window_loss.zero_()
                        window_seen = 0
                    if step < steps_per_epoch and self.should_stop():
                        status = ev.STOPPED  # the check after the epoch covers its last batch
                        break
                if device.type == "cuda":
                    torch.cuda.synchronize(device)
                epoch_train_s = time.perf_counter() - epoch_start
                train_seconds += epoch_train_s
                trained_samples += seen
                if status != ev.COMPLETED:
                    break
                train_loss = loss_total / seen
                if not math.isfinite(train_loss):
                    status = ev.DIVERGED
                    break
                val_loss, val_acc, val_confusion = evaluate(model, x_val, y_val, amp)
                epoch_event = ev.EpochEnded(
                    epoch=epoch, epochs=t.epochs, train_loss=train_loss,
                    train_acc=float(correct) / seen, val_loss=val_loss, val_acc=val_acc,
                    lr=optimizer.param_groups[0]["lr"],
                    seconds=time.perf_counter() - epoch_start,
                    samples_per_s=seen / epoch_train_s if epoch_train_s > 0 else 0.0,
                    val_confusion=val_confusion,
                )
                history.append(epoch_event)
                self._state = {
                    "epoch": epoch, "global_step": global_step, "train_seconds": train_seconds,
                    "trained_samples": trained_samples, "started": started, "wall_before": wall_before,
                    "history": list(history), "model": model, "optimizer": optimizer,
                    "scheduler": scheduler, "generator": generator,
                }
                yield epoch_event
                self._state = None
                if not math.isfinite(val_loss):
                    status = ev.DIVERGED
                    break
                if self.should_stop() and epoch < t.epochs:
                    status = ev.STOPPED
                    break
                if self.should_prune() and epoch < t.epochs:
                    status = ev.PRUNED
                    break
            test_loss = test_acc = test_confusion = test_predictions = None
            if status in (ev.COMPLETED, ev.STOPPED):
                x_test = to_inputs(self.split.test_x, normalize, device)
                per_image: list = []
                y_test = self.split.test_y.to(device)
                test_loss, test_acc, test_confusion = evaluate(model, x_test, y_test, amp, per_image)
                del x_test
                test_predictions = predictions(self.split.test_y, per_image)
        except Exception as err:  # noqa: BLE001 - a failing run must not take the front end down
            status, error = ev.FAILED, f"{type(err).__name__}: {err}".strip()
            test_loss = test_acc = test_confusion = test_predictions = None
            # drop every reference to device memory (data, model, optimizer, graph) before the next run
            x_train = y_train = x_val = y_val = model = optimizer = scheduler = step_model = None
            xb = yb = logits = loss = order = None
            self.model = None
        if status == ev.FAILED and device.type == "cuda":
            torch.cuda.empty_cache()  # after the except block, whose traceback held tensors too
        last = history[-1] if history else None
        yield ev.RunFinished(
            status=status,
            epochs_completed=len(history),
            train_loss=last.train_loss if last else None,
            val_loss=last.val_loss if last else None,
            val_acc=last.val_acc if last else None,
            best_val_acc=max(e.val_acc for e in history) if history else None,
            test_loss=test_loss,
            test_acc=test_acc,
            test_confusion=test_confusion,
            wall_s=time.perf_counter() - started + wall_before,
            samples_per_s=trained_samples / train_seconds if train_seconds > 0 else 0.0,
            error=error,
            test_predictions=test_predictions,
        )


def predictions(true: torch.Tensor, per_image: list) -> ev.Predictions:
    """`evaluate`'s per-batch results as compact numpy arrays (uint8 labels, float16 probabilities)."""
    predicted = torch.cat([p for p, _ in per_image]) if per_image else torch.zeros(0, dtype=torch.int64)
    probs = torch.cat([q for _, q in per_image]) if per_image else torch.zeros(0, 10)
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
