"""Exact resume at the engine: a run stopped after some epochs and continued from its checkpoint
ends with exactly the numbers of a run that was never interrupted."""

from __future__ import annotations

import io

import pytest
import torch

from fcn_tui import events as ev
from fcn_tui.config import Config, config_to_dict
from fcn_tui.data import load_fashion_mnist, make_split
from fcn_tui.engine import CheckpointError, Trainer

# every source of state a checkpoint must carry: momentum buffers (Adam), a per-step schedule,
# dropout (global RNG), augmentation and shuffles (the run's generator), batch-norm statistics
EVERYTHING = {
    "model.hidden": [32, 16], "model.dropout": 0.3, "model.batchnorm": True,
    "optim.name": "adamw", "optim.lr": 0.01, "optim.schedule": "onecycle",
    "train.epochs": 4, "train.batch_size": 32, "train.device": "cpu", "train.label_smoothing": 0.1,
    "data.augment": "flip+shift",
}


@pytest.fixture(scope="module")
def split(synthetic_data_dir):
    return make_split(load_fashion_mnist(synthetic_data_dir, download_missing=False), 0.1, seed=0)


def numbers(event):
    """An event's values without its timings."""
    if isinstance(event, ev.EpochEnded):
        return (event.epoch, event.train_loss, event.train_acc, event.val_loss, event.val_acc, event.lr,
                event.val_confusion)
    return (event.status, event.epochs_completed, event.train_loss, event.val_loss, event.val_acc,
            event.best_val_acc, event.test_loss, event.test_acc, event.test_confusion)


def through_disk(state: dict) -> dict:
    """The checkpoint as it comes back from a file, loaded the safe way."""
    buf = io.BytesIO()
    torch.save(state, buf)
    buf.seek(0)
    return torch.load(buf, weights_only=True)


def stop_after(epochs: int):
    """A stop flag that is raised once `epochs` epochs have ended (what Ctrl-C does mid-run)."""
    seen = []
    return seen, lambda: len(seen) >= epochs


@pytest.mark.parametrize("stop_at", [1, 2, 3])
def test_a_run_continued_from_its_checkpoint_equals_an_uninterrupted_run(split, stop_at):
    config = Config().with_values(EVERYTHING)
    whole = [e for e in Trainer(config, split).events() if isinstance(e, (ev.EpochEnded, ev.RunFinished))]

    # first session: stopped by the user after `stop_at` epochs, checkpoint kept at each epoch
    seen, should_stop = stop_after(stop_at)
    first = Trainer(config, split, should_stop=should_stop)
    state = None
    for event in first.events():
        if isinstance(event, ev.EpochEnded):
            state = through_disk(first.checkpoint())
            seen.append(event.epoch)
        if isinstance(event, ev.RunFinished):
            assert event.status == ev.STOPPED and event.epochs_completed == stop_at
    assert state is not None and state["epoch"] == stop_at

    # second session: continue from the checkpoint
    second = Trainer(config, split, resume_from=state)
    events = list(second.events())
    started = events[0]
    assert [e.epoch for e in started.previous_epochs] == list(range(1, stop_at + 1))
    continued = [e for e in events if isinstance(e, (ev.EpochEnded, ev.RunFinished))]
    assert [e.epoch for e in continued[:-1]] == list(range(stop_at + 1, 5))
    assert [numbers(e) for e in started.previous_epochs + tuple(continued)] == [numbers(e) for e in whole]
    assert continued[-1].status == ev.COMPLETED


def test_a_checkpoint_of_another_configuration_is_refused(split):
    config = Config().with_values({**EVERYTHING, "train.epochs": 3})
    trainer = Trainer(config, split)
    events = trainer.events()
    state = next(through_disk(trainer.checkpoint()) for e in events if isinstance(e, ev.EpochEnded))
    with pytest.raises(CheckpointError, match="another configuration"):
        Trainer(config.with_values({"optim.lr": 0.02}), split, resume_from=state)
    one_epoch = config.with_values({"train.epochs": 1})
    with pytest.raises(CheckpointError, match="nothing to train"):
        Trainer(one_epoch, split, resume_from={**state, "config": config_to_dict(one_epoch)})
    with pytest.raises(CheckpointError, match="written on 'cuda', not 'cpu'"):  # RNG states differ by device
        Trainer(config, split, resume_from={**state, "device_type": "cuda"})
    with pytest.raises(CheckpointError, match="train_seconds is missing"):
        Trainer(config, split, resume_from={k: v for k, v in state.items() if k != "train_seconds"})
    with pytest.raises(CheckpointError, match="not a checkpoint"):
        Trainer(config, split, resume_from={"format": 99})
