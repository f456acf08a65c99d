"""Packing and bf16 on this machine, in one short run: model-samples/s of packs of K runs of the
optimizers preset's shape (784-400-400-10, batch 256) on a real-data subset, and fp32 against bf16
autocast (`train.amp`) for one run. Speeds are per CPU second of this process (`--threads 1` by
default, so no thread spins waiting), which a machine busy with other processes disturbs far less
than wall time; rounds are interleaved and the best is reported. Compare the ratios.

    python benchmarks/bench_pack.py [--subset 6000] [--rounds 3] [--packs 1,4,12] [--data-dir DIR]
    python benchmarks/bench_pack.py --engine-from OTHER_CHECKOUT   # also today's engine there (a pack of one)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

LRS = (0.001, 0.01, 0.05, 0.1)  # the optimizers preset's grid: {rmsprop, adam, sgd} x these
OPTIMIZERS = ("rmsprop", "adam", "sgd")


def shape(subset: int, **values):
    from fcn_tui.config import Config

    return Config().with_values({"model.hidden": [400, 400], "train.batch_size": 256, "train.epochs": 1,
                                 "train.device": "cpu", "data.subset": subset, **values})


def pack_configs(k: int, subset: int, **values) -> list:
    grid = [(o, lr) for o in OPTIMIZERS for lr in LRS]
    return [shape(subset, **{"optim.name": o, "optim.lr": lr, **values}) for o, lr in grid[:k]]


def train(configs: list, split) -> tuple[float, list[float]]:
    """Model-samples per CPU second of one pack's first epoch of training (from its first event to
    its first EpochEnded: validation and test stay out), and its members' validation accuracies."""
    from fcn_tui import events as ev
    from fcn_tui.engine import Member, PackTrainer

    pack = PackTrainer([Member(c) for c in configs], split)
    start = end = None
    finished = {}
    for index, event in pack.events():
        start = start if start is not None else time.process_time()
        if isinstance(event, ev.EpochEnded) and end is None:
            end = time.process_time()
        if isinstance(event, ev.RunFinished):
            finished[index] = event
    return len(configs) * len(split.train_x) / (end - start), [finished[i].val_acc for i in range(len(configs))]


def other_engine(checkout: str, subset: int, data_dir: str, threads: int) -> float:
    """Samples/s of one run with the `Trainer` of another checkout (e.g. main), in a subprocess."""
    code = f"""
import time, json, torch
torch.set_num_threads({threads})
from fcn_tui.config import Config
from fcn_tui.data import load_fashion_mnist, make_split
from fcn_tui.engine import Trainer
c = Config().with_values({{"model.hidden": [400, 400], "train.batch_size": 256, "train.epochs": 1,
                          "train.device": "cpu", "data.subset": {subset}, "optim.name": "rmsprop", "optim.lr": 0.001}})
split = make_split(load_fashion_mnist({data_dir!r}), 0.1, 0, {subset})
list(Trainer(c, split).events())  # warm-up, as for this checkout's runs
start = None
for event in Trainer(c, split).events():
    start = start if start is not None else time.process_time()
    if type(event).__name__ == "EpochEnded":
        print(len(split.train_x) / (time.process_time() - start))
        break
"""
    env = {**os.environ, "PYTHONPATH": checkout}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True, cwd=checkout)
    return float(out.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subset", type=int, default=6000)  # 5,400 training images: a few seconds per variant
    parser.add_argument("--rounds", type=int, default=3)  # interleaved repeats; the best is reported
    parser.add_argument("--packs", default="1,4,12")
    parser.add_argument("--data-dir", default=os.environ.get("FCN_TUI_DATA", "data"))
    parser.add_argument("--threads", type=int, default=1)  # one: CPU time then measures work, not spinning
    parser.add_argument("--engine-from", default=None, help="another checkout whose Trainer to time as well")
    args = parser.parse_args()
    import torch

    from fcn_tui.data import load_fashion_mnist, make_split
    from fcn_tui.engine import cpu_has_bf16

    torch.set_num_threads(args.threads)

    split = make_split(load_fashion_mnist(args.data_dir), 0.1, 0, args.subset)
    sizes = [int(k) for k in args.packs.split(",")]
    speeds: dict[str, list[float]] = {}
    accuracy: dict[str, list[float]] = {}
    train(pack_configs(1, args.subset), split)  # warm-up: first-call costs stay out of the figures
    for _ in range(args.rounds):
        for k in sizes:
            speed, _ = train(pack_configs(k, args.subset), split)
            speeds.setdefault(f"pack {k}", []).append(speed)
        for amp in (False, True):
            speed, acc = train(pack_configs(1, args.subset, **{"train.amp": amp, "train.epochs": 2}), split)
            speeds.setdefault(f"amp {amp}", []).append(speed)
            accuracy[f"amp {amp}"] = acc
        if args.engine_from:
            speeds.setdefault("other engine", []).append(other_engine(args.engine_from, args.subset, args.data_dir, args.threads))
            this = str(Path(__file__).resolve().parents[1])  # in a fresh process too, like the other one
            speeds.setdefault("this engine", []).append(other_engine(this, args.subset, args.data_dir, args.threads))
    # the best round is the least disturbed by other processes on a shared machine
    # float32: the pack's members against the same runs alone (the tables a study would show)
    grid = pack_configs(max(sizes), args.subset, **{"train.epochs": 2})
    packed = train(grid, split)[1]
    lone = [train([c], split)[1][0] for c in grid]
    largest = max(abs(a - b) for a, b in zip(packed, lone))
    median = {name: max(values) for name, values in speeds.items()}
    ratios = {f"pack {k} / pack 1": median[f"pack {k}"] / median["pack 1"] for k in sizes}
    ratios["bf16 / fp32"] = median["amp True"] / median["amp False"]
    if args.engine_from:
        ratios["this engine / other engine"] = median["this engine"] / median["other engine"]
    print(json.dumps({"cpu_has_bf16": cpu_has_bf16(), "threads": torch.get_num_threads(),
                      "model_samples_per_cpu_s_best_round": median, "ratios": ratios, "val_acc_2_epochs": accuracy,
                      "largest_val_acc_difference_pack_vs_alone": largest,
                      "all": speeds}, indent=1))


if __name__ == "__main__":
    main()
