"""Study wall time with 1 worker against N workers, in one run of this script.

    python benchmarks/bench_workers.py [--preset presets/optimizers.toml] [--epochs 2]
                                       [--workers 1 2] [--device cpu] [--data-dir DIR]

Each measurement is `fcn-tui run PRESET --set train.epochs=E --workers N` into a fresh folder
(the 12-run optimizer grid by default); the script prints the study's wall time for each N, the
ratio to the first, and whether every run's validation and test accuracy match the first study's
(they do when every run has the same number of threads: `--threads 1`; by default each of N
workers on C cores trains with C/N threads, and with another thread count the last decimals of
a run's numbers may differ).
Compare ratios measured in one run of this script, never absolute times across machines.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def study_table(out: Path) -> dict[str, tuple[str, str, str]]:
    (study,) = [p for p in out.iterdir() if p.is_dir()]
    with open(study / "results.csv", newline="") as f:
        return {row["name"]: (row["status"], row["val_acc"], row["test_acc"]) for row in csv.DictReader(f)}


def measure(preset: Path, epochs: int, workers: int, device: str, data_dir: str | None, out: Path,
            threads: int | None = None) -> float:
    command = [sys.executable, "-m", "fcn_tui", "run", str(preset), "--set", f"train.epochs={epochs}",
               "--workers", str(workers), "--out", str(out)]
    if threads:
        command += ["--threads", str(threads)]
    if device != "auto":
        command += ["--device", device]
    if data_dir:
        command += ["--data-dir", data_dir]
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        sys.exit(f"{' '.join(command)} exited {done.returncode}:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", type=Path, default=ROOT / "presets" / "optimizers.toml")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per run (default 2)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts to compare (default 1 2)")
    parser.add_argument("--device", default="auto", help="train.device of every run (default: the preset's)")
    parser.add_argument("--data-dir", default=os.environ.get("FCN_TUI_DATA"))
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads of every worker (default: the cores divided among the workers)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="fcn-tui-bench-workers-") as tmp:
        tables = []
        for n in args.workers:
            out = Path(tmp) / f"workers-{n}"
            wall = measure(args.preset, args.epochs, n, args.device, args.data_dir, out, args.threads)
            tables.append(study_table(out))
            results.append({"workers": n, "wall_s": round(wall, 1), "runs": len(tables[-1]),
                            "same_table": tables[-1] == tables[0]})
    base = results[0]["wall_s"]
    for r in results:
        r["speedup"] = round(base / r["wall_s"], 2)
    if args.json:
        print(json.dumps(results))
        return 0
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    print(f"{args.preset.name}, {args.epochs} epochs per run, device {args.device}, {cores} cores")
    print(f"{'workers':>7}  {'study wall s':>12}  {'speed-up':>8}  same table as {args.workers[0]} worker(s)")
    for r in results:
        print(f"{r['workers']:>7}  {r['wall_s']:>12.1f}  {r['speedup']:>7.2f}x  {r['same_table']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
