"""Packs: K runs trained in one batched step keep, each, the numbers they have alone (in float64 on
the CPU, to 1e-9), whatever differs between them; a member that diverges, stops or is pruned leaves
the pack without changing anyone else's numbers; a stopped run reports the weights of its last epoch."""

from __future__ import annotations

import pytest
import torch

from fcn_tui import events as ev
from fcn_tui.config import Config
from fcn_tui.data import load_fashion_mnist, make_split
from fcn_tui.engine import CheckpointError, Member, PackTrainer, Trainer, evaluate, pack_key, to_inputs
from fcn_tui.model import build_mlp

F64 = torch.float64
TOLERANCE_F32 = 1e-6  # float32 packs with and without a member agree to the bit here; other BLAS may round otherwise
# 540 training images in batches of 27: 20 steps per epoch
BASE = {"model.hidden": [24, 16], "train.batch_size": 27, "train.epochs": 1, "train.device": "cpu",
        "optim.lr": 0.02}
# what a study varies between the runs of one pack: optimizers and their settings, schedules, every
# init, dropout, label smoothing and epochs
VARIED = [
    {"optim.name": "sgd", "optim.momentum": 0.9, "optim.weight_decay": 1e-3, "model.init": "kaiming_normal"},
    {"optim.name": "adam", "optim.lr": 0.005, "model.init": "xavier_uniform", "model.dropout": 0.3},
    {"optim.name": "adamw", "optim.weight_decay": 0.05, "optim.schedule": "cosine", "model.init": "xavier_normal",
     "train.epochs": 2},
    {"optim.name": "rmsprop", "optim.lr": 0.001, "optim.momentum": 0.5, "optim.schedule": "onecycle",
     "model.init": "kaiming_uniform", "train.label_smoothing": 0.1},
    {"optim.name": "sgd", "model.init": "random_normal", "model.init_std": 0.1, "model.dropout": 0.5},
    {"optim.name": "adam", "optim.lr": 0.002, "model.init": "default", "train.label_smoothing": 0.2, "train.epochs": 3},
]
AUGMENTS = ["none", "flip", "shift", "flip+shift", "none", "shift"]


@pytest.fixture(scope="module")
def split(synthetic_data_dir):
    return make_split(load_fashion_mnist(synthetic_data_dir, download_missing=False), 0.1, seed=0)


def configs(variants: list[dict], **common) -> list[Config]:
    return [Config().with_values({**BASE, **common, **v}) for v in variants]


def train_pack(members: list[Member], split, dtype=F64) -> tuple[PackTrainer, dict[int, list]]:
    pack = PackTrainer(members, split, progress_every=1, dtype=dtype)
    events: dict[int, list] = {i: [] for i in range(len(members))}
    for index, event in pack.events():
        events[index].append(event)
    return pack, events


def alone(config: Config, split) -> tuple[Trainer, list]:
    trainer = Trainer(config, split, progress_every=1, dtype=F64)
    return trainer, list(trainer.events())


def max_difference(a: torch.nn.Module, b: torch.nn.Module) -> float:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    return max(float((sa[k].double() - sb[k].double()).abs().max()) for k in sa)


def numbers(events: list) -> list:
    """The values of a run's epochs and end, without timings."""
    out = []
    for e in events:
        if isinstance(e, ev.EpochEnded):
            out.append((e.epoch, e.train_loss, e.train_acc, e.val_loss, e.val_acc, e.lr))
        elif isinstance(e, ev.RunFinished):
            out.append((e.status, e.epochs_completed, e.val_acc, e.test_loss, e.test_acc))
    return out


def assert_same_numbers(packed: list, lone: list, tolerance: float = 1e-9) -> None:
    a, b = numbers(packed), numbers(lone)
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x == pytest.approx(y, abs=tolerance)


def assert_each_as_alone(pack: PackTrainer, events: dict[int, list], configs: dict[int, Config], split) -> None:
    """Members (by index) whose weights and numbers equal their configs' runs trained alone."""
    for index, config in configs.items():
        trainer, lone = alone(config, split)
        assert max_difference(pack.members[index].model, trainer.model) < 1e-9
        assert_same_numbers(events[index], lone)


@pytest.mark.parametrize("case", ["one shared batch", "own batches (augmentation)", "batch norm"])
def test_every_member_of_a_pack_equals_the_same_run_trained_alone(split, case):
    common = {"model.batchnorm": True} if case == "batch norm" else {}
    variants = [dict(v) for v in VARIED]
    if case != "one shared batch":
        for v, augment in zip(variants, AUGMENTS):
            v["data.augment"] = augment
    runs = configs(variants, **common)
    assert len({pack_key(c) for c in runs}) == 1
    pack, events = train_pack([Member(c) for c in runs], split)
    for i, config in enumerate(runs):
        trainer, lone = alone(config, split)
        assert events[i][-1].status == ev.COMPLETED
        assert max_difference(pack.members[i].model, trainer.model) < 1e-9, config.name
        assert_same_numbers(events[i], lone)
        assert [type(e) for e in events[i]] == [type(e) for e in lone]  # the same event stream per member


def test_a_run_alone_equals_plain_pytorch_training(split):
    """The stacked engine against the textbook loop: nn.Sequential, torch.optim, cross-entropy."""
    config = Config().with_values({**BASE, "optim.name": "sgd", "optim.momentum": 0.9, "optim.weight_decay": 1e-3,
                                   "train.label_smoothing": 0.1})
    trainer, _ = alone(config, split)
    torch.manual_seed(config.train.seed)
    model = build_mlp(config.model).double()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.02, momentum=0.9, weight_decay=1e-3)
    x = to_inputs(split.train_x, False, torch.device("cpu")).double()
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(config.train.seed))
    for step in range(20):
        idx = order[step * 27:(step + 1) * 27]
        loss = torch.nn.functional.cross_entropy(model(x[idx]), split.train_y[idx], label_smoothing=0.1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert max_difference(trainer.model, model) < 1e-12


def test_a_diverging_member_leaves_the_others_numbers_unchanged(split):
    """In float32, where a huge learning rate overflows: the NaN stays in its member."""
    deep = {"model.hidden": [64, 64, 64]}
    good = configs(VARIED[:3], **deep)
    wild = Config().with_values({**BASE, **deep, "optim.name": "sgd", "optim.lr": 100.0,
                                 "model.init": "random_normal", "model.init_std": 10.0, "train.epochs": 3})
    members = [Member(good[0]), Member(wild), Member(good[1]), Member(good[2])]
    pack, events = train_pack(members, split, dtype=torch.float32)
    assert events[1][-1].status == ev.DIVERGED and events[1][-1].test_acc is None
    reference, expected = train_pack([Member(c) for c in good], split, dtype=torch.float32)
    for mine, theirs in ((0, 0), (2, 1), (3, 2)):
        assert events[mine][-1].status == ev.COMPLETED
        assert max_difference(pack.members[mine].model, reference.members[theirs].model) <= TOLERANCE_F32
        assert_same_numbers(events[mine], expected[theirs], TOLERANCE_F32)


def stop_after_calls(n: int):
    calls = []
    return lambda: calls.append(1) or len(calls) >= n


def test_stopped_and_pruned_members_leave_the_others_unchanged(split):
    runs = configs([{**v, "train.epochs": 3} for v in VARIED[:4]])
    members = [
        Member(runs[0]),
        Member(runs[1], should_stop=stop_after_calls(25)),  # during epoch 2 (19 checks per epoch, then 1 after it)
        Member(runs[2], should_prune=lambda: True),  # after epoch 1
        Member(runs[3]),
    ]
    pack, events = train_pack(members, split)
    assert [events[i][-1].status for i in range(4)] == [ev.COMPLETED, ev.STOPPED, ev.PRUNED, ev.COMPLETED]
    assert events[1][-1].epochs_completed == 1 and events[2][-1].epochs_completed == 1
    assert events[2][-1].test_acc is None
    reference, expected = train_pack([Member(runs[0]), Member(runs[3])], split)
    for mine, theirs in ((0, 0), (3, 1)):
        assert max_difference(pack.members[mine].model, reference.members[theirs].model) < 1e-9
        assert_same_numbers(events[mine], expected[theirs])


def test_a_run_stopped_mid_epoch_reports_the_weights_of_its_last_epoch(split):
    config = Config().with_values({**BASE, "optim.name": "adam", "train.epochs": 3})
    saved = {}
    trainer = Trainer(config, split, should_stop=stop_after_calls(25), dtype=F64)  # stops in epoch 2
    for event in trainer.events():
        if isinstance(event, ev.EpochEnded):
            saved = trainer.checkpoint()
        last = event
    assert last.status == ev.STOPPED and last.epochs_completed == 1 and saved["epoch"] == 1
    assert all(torch.equal(v, saved["model"][k]) for k, v in trainer.model.state_dict().items())
    assert trainer.checkpoint()["global_step"] == 20  # still the last epoch's state, after the stop
    x = to_inputs(split.test_x, False, torch.device("cpu")).double()
    loss, acc, confusion = evaluate(trainer.model, x, split.test_y)
    assert (last.test_loss, last.test_acc, last.test_confusion) == (loss, acc, confusion)


def test_a_run_stopped_before_its_first_epoch_ended_has_no_test_numbers_and_no_model(split):
    trainer = Trainer(Config().with_values(BASE), split, should_stop=stop_after_calls(3))
    finished = list(trainer.events())[-1]
    assert finished.status == ev.STOPPED and finished.epochs_completed == 0
    assert (finished.test_acc, finished.test_loss, finished.test_predictions) == (None, None, None)
    assert trainer.model is None
    with pytest.raises(CheckpointError, match="no epoch"):
        trainer.checkpoint()


def test_a_checkpoint_of_a_packed_member_continues_alone_exactly(split):
    runs = configs([{**v, "train.epochs": 3} for v in VARIED[:3]])
    members = [Member(c, should_stop=stop_after_calls(20)) for c in runs]  # each stops after epoch 1
    pack = PackTrainer(members, split, progress_every=1, dtype=F64)
    states = {}
    for index, event in pack.events():
        if isinstance(event, ev.EpochEnded):
            states[index] = pack.members[index].checkpoint()
    whole, expected = train_pack([Member(c) for c in runs], split)
    for i, config in enumerate(runs):
        trainer = Trainer(config, split, resume_from=states[i], progress_every=1, dtype=F64)
        events = list(trainer.events())
        assert events[-1].status == ev.COMPLETED
        assert max_difference(trainer.model, whole.members[i].model) < 1e-9
        assert_same_numbers(list(events[0].previous_epochs) + events, expected[i])


def test_members_of_different_shapes_do_not_pack(split):
    a, b = configs([{}, {"model.hidden": [8]}])
    assert pack_key(a) != pack_key(b)
    with pytest.raises(ValueError, match="pack_key"):
        PackTrainer([Member(a), Member(b)], split)


def test_a_run_added_in_a_freed_slot_trains_as_it_would_alone(split):
    first, second, third = configs([VARIED[0], {**VARIED[1], "train.epochs": 3}, {**VARIED[3], "train.epochs": 2}])
    pack = PackTrainer([Member(first), Member(second)], split, progress_every=1, dtype=F64)
    events: dict[int, list] = {}
    for index, event in pack.events():
        events.setdefault(index, []).append(event)
        if isinstance(event, ev.RunFinished) and index == 0:
            assert pack.can_add(third) and not pack.can_add(third.with_values({"model.hidden": [8]}))
            assert pack.add(Member(third)) == 2
    assert_each_as_alone(pack, events, {1: second, 2: third}, split)
    assert not pack.can_add(third)  # the pack has ended


def test_runs_added_as_the_last_members_leave_still_train_as_they_would_alone(split):
    one, two = configs([VARIED[0], VARIED[4]])  # both end after their first epoch
    three, four = configs([{**VARIED[1], "train.epochs": 2}, VARIED[3]])
    pack = PackTrainer([Member(one), Member(two)], split, progress_every=1, dtype=F64)
    events: dict[int, list] = {}
    for index, event in pack.events():
        events.setdefault(index, []).append(event)
        if isinstance(event, ev.RunFinished) and index in (0, 1):  # each slot, as it frees, to a queued run
            assert pack.add(Member((three, four)[index])) == index + 2
    assert_each_as_alone(pack, events, {2: three, 3: four}, split)
    assert not pack.can_add(three)  # the pack has ended


def test_a_bad_checkpoint_names_its_member_before_any_work(split):
    good, other = configs([VARIED[0], VARIED[1]])
    with pytest.raises(CheckpointError, match=r"run 2 \(.*\): not a checkpoint"):
        PackTrainer([Member(good), Member(other, resume_from={"format": 1})], split)
