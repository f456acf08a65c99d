"""The engine on synthetic data: event order, metrics vs. an independent computation,
determinism, the stop flag and divergence."""

import pytest
import torch

from fcn_tui import events as ev
from fcn_tui.config import Config
from fcn_tui.data import load_fashion_mnist, make_split
from fcn_tui.engine import DeviceError, Trainer, cpu_has_bf16, resolve_device, to_inputs

TINY = {"model.hidden": [32], "optim.name": "adam", "optim.lr": 0.01, "train.epochs": 2,
        "train.batch_size": 32, "train.device": "cpu"}


@pytest.fixture(scope="module")
def split(synthetic_data_dir):
    return make_split(load_fashion_mnist(synthetic_data_dir, download_missing=False), 0.1, seed=0)


def run(config, split, **kw):
    trainer = Trainer(config, split, **kw)
    return trainer, list(trainer.events())


def test_events_arrive_in_order_and_the_model_learns(split):
    _, events = run(Config().with_values(TINY), split)
    kinds = [type(e).__name__ for e in events]
    assert kinds[0] == "RunStarted" and kinds[-1] == "RunFinished"
    epochs = [e for e in events if isinstance(e, ev.EpochEnded)]
    assert [e.epoch for e in epochs] == [1, 2]
    assert all(isinstance(e, ev.BatchProgress) for e in events[1:-1] if not isinstance(e, ev.EpochEnded))
    started, finished = events[0], events[-1]
    assert (started.n_train, started.n_val, started.n_test) == (540, 60, 200)
    assert started.steps_per_epoch == 17  # ceil(540 / 32)
    assert finished.status == ev.COMPLETED and finished.epochs_completed == 2
    assert finished.test_acc > 0.9  # the synthetic classes are easy
    assert sum(map(sum, finished.test_confusion)) == 200
    assert sum(map(sum, epochs[-1].val_confusion)) == 60
    assert finished.best_val_acc == max(e.val_acc for e in epochs)


def test_test_metrics_match_an_independent_computation(split):
    trainer, events = run(Config().with_values(TINY), split)
    finished = events[-1]
    model = trainer.model.eval()
    with torch.no_grad():
        logits = model(to_inputs(split.test_x, False, torch.device("cpu")))
    predicted = logits.argmax(1)
    assert finished.test_acc == pytest.approx(float((predicted == split.test_y).float().mean()))
    loss = torch.nn.functional.cross_entropy(logits, split.test_y)
    assert finished.test_loss == pytest.approx(float(loss), rel=1e-5)
    for true_cls in range(10):
        for pred_cls in range(10):
            expected = int(((split.test_y == true_cls) & (predicted == pred_cls)).sum())
            assert finished.test_confusion[true_cls][pred_cls] == expected


def test_same_seed_gives_identical_metrics(split):
    config = Config().with_values({**TINY, "model.dropout": 0.2, "data.augment": "flip+shift"})
    first = [e for e in run(config, split)[1] if isinstance(e, ev.EpochEnded)]
    second = [e for e in run(config, split)[1] if isinstance(e, ev.EpochEnded)]
    assert [(e.train_loss, e.val_acc) for e in first] == [(e.train_loss, e.val_acc) for e in second]
    other = [e for e in run(config.with_values({"train.seed": 1}), split)[1] if isinstance(e, ev.EpochEnded)]
    assert [e.train_loss for e in other] != [e.train_loss for e in first]


def test_stop_flag_ends_the_run_as_stopped_keeping_finished_epochs(split):
    state = {"epochs": 0}
    trainer = Trainer(Config().with_values({**TINY, "train.epochs": 50}), split, should_stop=lambda: state["epochs"] >= 1)
    events = []
    for event in trainer.events():
        events.append(event)
        if isinstance(event, ev.EpochEnded):
            state["epochs"] += 1
    finished = events[-1]
    assert finished.status == ev.STOPPED
    assert finished.epochs_completed == 1
    assert finished.test_acc is not None  # the model as it stood is still evaluated


def test_stop_flag_is_checked_between_batches(split):
    calls = []
    trainer = Trainer(Config().with_values(TINY), split, should_stop=lambda: calls.append(1) or len(calls) >= 3)
    events = list(trainer.events())
    assert events[-1].status == ev.STOPPED and events[-1].epochs_completed == 0
    assert len(calls) == 3


def test_non_finite_loss_ends_the_run_as_diverged(split):
    config = Config().with_values({**TINY, "optim.name": "sgd", "optim.lr": 100.0, "model.hidden": [64, 64, 64],
                                   "model.init": "random_normal", "model.init_std": 10.0, "train.epochs": 5})
    finished = run(config, split, progress_every=1)[1][-1]
    assert finished.status == ev.DIVERGED
    assert finished.test_acc is None and finished.epochs_completed < 5


def test_an_exception_inside_the_run_becomes_a_failed_status(split, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr("fcn_tui.engine.make_optimizer", broken)
    finished = run(Config().with_values(TINY), split)[1][-1]
    assert finished.status == ev.FAILED and finished.error == "RuntimeError: boom"


def test_unavailable_devices_are_errors_that_say_so():
    if not torch.cuda.is_available():
        with pytest.raises(DeviceError, match="cuda"):
            resolve_device("cuda")
    assert resolve_device("cpu").type == "cpu"


@pytest.mark.parametrize("schedule", ["cosine", "onecycle"])
def test_schedules_end_near_zero_learning_rate(split, schedule):
    config = Config().with_values({**TINY, "optim.schedule": schedule, "train.label_smoothing": 0.1})
    epochs = [e for e in run(config, split)[1] if isinstance(e, ev.EpochEnded)]
    assert epochs[-1].lr < 0.01 * 0.05
    assert epochs[0].lr > epochs[-1].lr


def record_layer_dtypes(monkeypatch) -> set:
    """The dtypes the batched layers compute in, seen at `fcn_tui.pack.stacked_linear`."""
    from fcn_tui import pack

    dtypes: set = set()
    real = pack.stacked_linear

    def recorded(*args):
        out = real(*args)
        dtypes.add(out.dtype)
        return out

    monkeypatch.setattr(pack, "stacked_linear", recorded)
    return dtypes


@pytest.mark.skipif(not cpu_has_bf16(), reason="needs a CPU with bf16 instructions")
def test_amp_on_a_cpu_with_bf16_trains_in_bfloat16_as_well_as_fp32(split, monkeypatch):
    dtypes = record_layer_dtypes(monkeypatch)
    trainer, events = run(Config().with_values({**TINY, "train.amp": True}), split)
    assert torch.bfloat16 in dtypes and events[0].note == ""
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # master weights stay fp32
    fp32 = run(Config().with_values(TINY), split)[1]
    assert events[-1].test_acc > 0.9 and abs(events[-1].test_acc - fp32[-1].test_acc) < 0.05


def test_amp_on_a_cpu_without_bf16_says_so_and_trains_in_fp32(split, monkeypatch):
    monkeypatch.setattr("fcn_tui.engine.cpu_has_bf16", lambda: False)
    dtypes = record_layer_dtypes(monkeypatch)
    events = run(Config().with_values({**TINY, "train.amp": True, "train.epochs": 1}), split)[1]
    assert events[0].note == "train.amp: this CPU has no bf16 instructions (AVX512-BF16 or AMX); training in fp32"
    assert dtypes == {torch.float32} and events[-1].status == ev.COMPLETED
