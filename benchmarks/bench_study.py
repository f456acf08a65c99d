"""The seed study's wall time with and without packing (or without and with bf16), in one run.

    python benchmarks/bench_study.py [--epochs N] [--data-dir DIR] [--device D] [--workers N]
                                     [--threads N] [--amp] [--pack auto] [--compare pack|amp] [--set KEY=VALUE ...] [--json]

The seed study is `presets/optimizers.toml dropout.toml init.toml batchnorm.toml` (19 runs, 15
epochs each). It is trained twice with `fcn-tui run`, each into a fresh folder: once with
`--pack 1` (one run at a time, as without packing) and once with `--pack auto` (or the `--pack`
given); `--workers`, `--device`, `--amp` (`train.amp = true`: bf16 where the device has it) and
`--set` apply to both. The script prints each one's wall time (the whole command: start, data,
every run, results), the ratio, and the largest difference in validation (and test) accuracy
between the two studies' tables, run by run. Compare ratios measured in one run of this script,
never absolute times across machines. `--json` prints everything as JSON instead.

`--compare amp` trains it in fp32 and then with `train.amp = true` instead (both with `--pack`),
so the two wall times and the tables' differences are bf16's speed-up and accuracy cost.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SEED_STUDY = ("optimizers", "dropout", "init", "batchnorm")  # the presets of the README's seed study


def study_tables(out: Path) -> dict[tuple[str, str], dict[str, str]]:
    """Every run of every study folder under `out`: (study, run name) -> its results.csv row."""
    rows = {}
    for results in sorted(out.glob("*/results.csv")):
        with open(results, newline="") as f:
            for row in csv.DictReader(f):
                preset = results.parent.name.split("-", 2)[-1].split(",")[0]  # the name, without the --set values
                rows[(preset, row["name"])] = row
    return rows


def train(args: argparse.Namespace, pack: str, amp: bool, out: Path) -> float:
    """`fcn-tui run` of the seed study with `--pack pack` (and bf16 if `amp`) into `out`; its wall time in seconds."""
    command = [sys.executable, "-m", "fcn_tui", "run", *[str(ROOT / "presets" / f"{p}.toml") for p in args.presets],
               "--pack", pack, "--out", str(out)]
    if args.epochs:
        command += ["--set", f"train.epochs={args.epochs}"]
    if amp:
        command += ["--set", "train.amp=true"]
    for setting in args.set or []:
        command += ["--set", setting]
    if args.device:
        command += ["--device", args.device]
    if args.workers:
        command += ["--workers", str(args.workers)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    if args.data_dir:
        command += ["--data-dir", str(args.data_dir)]
    print(f"bench_study: --pack {pack}{' bf16' if amp else ''} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return wall


def differences(a: dict, b: dict, column: str) -> list[tuple[float, str]]:
    """|a - b| of `column` with its run, over the runs both tables have a number for, largest first."""
    gaps = []
    for key in a.keys() & b.keys():
        try:
            gaps.append((abs(float(a[key][column]) - float(b[key][column])), "/".join(key)))
        except (TypeError, ValueError):  # a run without that number (pruned, diverged)
            continue
    return sorted(gaps, reverse=True)


def largest_difference(a: dict, b: dict, column: str) -> tuple[float | None, str | None]:
    """The largest |a - b| of `column` over the runs both tables have a number for, and its run."""
    gaps = differences(a, b, column)
    return gaps[0] if gaps else (None, None)


def median_difference(a: dict, b: dict, column: str) -> float | None:
    """The median |a - b| of `column`: how far a typical run moved (the largest is often one run on
    the edge of divergence)."""
    gaps = [gap for gap, _ in differences(a, b, column)]
    return statistics.median(gaps) if gaps else None


def variants(args: argparse.Namespace) -> list[tuple[str, str, bool]]:
    """The two studies to train: (label, --pack, bf16), the reference first."""
    if args.compare == "amp":
        return [(f"pack_{args.pack}_fp32", args.pack, False), (f"pack_{args.pack}_bf16", args.pack, True)]
    return [("pack_1", "1", args.amp), (f"pack_{args.pack}", args.pack, args.amp)]


def measure(args: argparse.Namespace) -> dict:
    (first, *_), (second, *_) = plan = variants(args)
    with tempfile.TemporaryDirectory(prefix="fcn-tui-bench-study-") as tmp:
        walls, tables = {}, {}
        for label, pack, amp in plan:
            out = Path(tmp) / label
            walls[label] = train(args, pack, amp, out)
            tables[label] = study_tables(out)
    one, packed = tables[first], tables[second]
    return {
        "settings": {"presets": list(args.presets), "epochs": args.epochs, "device": args.device or "preset's",
                     "workers": args.workers or 1, "threads": args.threads, "amp": args.amp, "pack": args.pack,
                     "compare": args.compare,
                     "set": args.set or [],
                     "data_dir": str(args.data_dir) if args.data_dir else None},
        "machine": {"cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
                    "cpu": platform.processor() or platform.machine(), "python": platform.python_version()},
        "runs": len(one),
        "same_runs": one.keys() == packed.keys(),
        "wall_s": {label: round(wall, 2) for label, wall in walls.items()},
        "speedup": round(walls[first] / walls[second], 2) if walls[second] > 0 else None,
        **{f"max_{col}_diff": largest_difference(one, packed, col)[0] for col in ("val_acc", "test_acc")},
        **{f"max_{col}_diff_run": largest_difference(one, packed, col)[1] for col in ("val_acc", "test_acc")},
        **{f"median_{col}_diff": median_difference(one, packed, col) for col in ("val_acc", "test_acc")},
        "statuses_agree": all(one[k]["status"] == packed[k]["status"] for k in one.keys() & packed.keys()),
    }


def table(results: dict) -> str:
    s = results["settings"]
    head = (f"seed study ({', '.join(s['presets'])}): {results['runs']} runs, epochs {s['epochs'] or 'as preset'}, "
            f"device {s['device']}, {s['workers']} worker(s), {s['threads'] or 'free-core'} threads, "
            f"{'fp32 against bf16' if s['compare'] == 'amp' else 'amp ' + str(s['amp'])}, {results['machine']['cores']} cores")
    lines = [head]
    for label, wall in results["wall_s"].items():
        lines.append(f"  {label.replace('_', ' '):<17} {wall:>9.1f} s")
    first, second = (label.replace("_", " ") for label in results["wall_s"])
    lines.append(f"  speed-up      {results['speedup']:>8.2f}x  ({first} time / {second} time)")
    for key, label in (("max_val_acc_diff", "val"), ("max_test_acc_diff", "test")):
        gap = results[key]
        where = f" ({results[key + '_run']})" if gap else ""
        lines.append(f"  largest {label} acc difference: {'n/a' if gap is None else f'{100 * gap:.2f} points'}{where}")
        median = results[key.replace("max_", "median_")]
        lines.append(f"  median {label} acc difference:  {'n/a' if median is None else f'{100 * median:.2f} points'}")
    if not results["same_runs"] or not results["statuses_agree"]:
        lines.append("  WARNING: the two studies' runs or statuses differ")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--presets", nargs="+", default=list(SEED_STUDY), help="preset names in presets/ (default: the seed study)")
    parser.add_argument("--epochs", type=int, default=None, help="epochs per run (default: the presets' 15)")
    parser.add_argument("--data-dir", type=Path, default=os.environ.get("FCN_TUI_DATA"))
    parser.add_argument("--device", default=None, help="train on this device (default: the presets' auto)")
    parser.add_argument("--workers", type=int, default=None, help="worker processes per study (default 1)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads of both studies (default: fcn-tui's choice from the free cores at each start,"
                             " which a busy moment can lower for one of the two)")
    parser.add_argument("--amp", action="store_true", help="train.amp = true in both studies")
    parser.add_argument("--pack", default="auto", help="the packed study's --pack (default auto)")
    parser.add_argument("--compare", choices=("pack", "amp"), default="pack",
                        help="pack: --pack 1 against --pack (default); amp: fp32 against bf16, both with --pack")
    parser.add_argument("--set", action="append", metavar="KEY=VALUE", help="a setting for both studies")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args(argv)
    results = measure(args)
    print(json.dumps(results, indent=2) if args.json else table(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
