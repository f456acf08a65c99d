"""How fast fcn-tui trains, starts and loads, against the hardware and the usual tutorial loop.

    python benchmarks/bench_train.py [--data-dir DIR] [--reps 3] [--epochs 1 | --steps N]
                                     [--device auto] [--amp] [--compile] [--json] [--no-tui] [--tiny] [--busy]

Every figure is measured in this one run of the script, on the baseline MLP (784-400-400-10
ReLU, SGD lr 0.05), with the median of `--reps` repetitions; each repetition goes round every
figure in turn, so a burst of load elsewhere on the machine hits them alike:

- `gemm_gflops` at batch 64 and 256: fp32 matrix-multiply throughput of this machine for the
  model's layer shapes (the forward, weight-gradient and input-gradient GEMMs of one training
  step, outputs preallocated), and `floor_samples_per_s`: that throughput over the training
  FLOPs per sample (`fcn_tui.model.training_flops_per_sample`), the speed limit of this model on
  this hardware;
- `engine_samples_per_s` at batch 64 and 256: `fcn_tui.engine.Trainer`, headless; the run's
  `samples_per_s`, which counts training steps only (not validation or test);
- `tutorial_samples_per_s` at batch 64 and 256: torchvision's `FashionMNIST` with
  `transforms.ToTensor()`, `DataLoader(shuffle=True)`, the same model and optimizer,
  `loss.item()` every step; `tutorial_data_share` is the part of its time spent waiting for
  the DataLoader;
- `tui_samples_per_s` at batch 256: the same run started with ctrl+r inside the app (headless
  `App.run_test`, charts live), the `samples_per_s` of the run the app reports;
- `help_s`: wall time of `fcn-tui --help` in a fresh process (and `help_imports`: the heavy
  libraries it loaded, should be none); `first_paint_s`: from starting a fresh interpreter to
  the app's first screen mounted (headless `App.run_test`, timed by this process);
  `data_load_s`: `load_fashion_mnist` (read, decompress, parse, MD5 check), warm.

`--tiny` is a smoke mode for tests: one repetition of 5 steps, on any data folder (the
synthetic test fixture works). The table goes to stdout, progress to stderr; `--json` prints
everything as JSON instead of the table (it says the OpenMP wait policy when one is set);
measure on an otherwise idle machine for the numbers you publish.

`--busy` measures instead how training shares a busy CPU: headless engine runs of `--steps`
(default 100) batches of 256, each in a fresh process, without and then with a CPU hog beside
them (a Python busy loop, one core), for fcn-tui's default (threads from the free cores at
start-up, `fcn_tui.cpu`) and for the old behaviour (torch's thread count); it reports each one's busy / idle ratio
(target: the default keeps at least 40 % of its idle speed). The repetitions alternate idle and
busy so that load from elsewhere hits both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# isort: off
import fcn_tui  # noqa: F401 - first: sets OpenMP's wait policy before torch loads it
import torch
# isort: on
from torch import nn

from fcn_tui.config import Config, config_to_toml
from fcn_tui.cpu import cpu_model
from fcn_tui.data import FILES, find_files, load_fashion_mnist, make_split, read_bytes, resolve_data_dir
from fcn_tui.engine import Trainer, resolve_device
from fcn_tui.events import RunFinished
from fcn_tui.model import INPUT_FEATURES, NUM_CLASSES, build_mlp, training_flops_per_sample

BATCHES = (64, 256)  # the small batch shows per-step overhead, the large one the GEMM limit
FLOOR_BATCH = 256  # the baseline's batch size
POLL_S = 0.2  # how often the app benchmark looks whether the run is over
TARGETS = {  # ratio or seconds, and which way is good
    "engine_vs_tutorial_64": (2.5, ">="),
    "engine_vs_floor_256": (0.7, ">="),
    "tui_vs_headless_256": (0.9, ">="),
    "help_s": (0.6, "<="),
    "first_paint_s": (2.0, "<="),
    "data_load_s": (1.0, "<="),
}


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def baseline_config(batch_size: int, epochs: int, subset: int, device: str, amp: bool, compile_: bool) -> Config:
    """The baseline preset's model and optimizer, shortened to the benchmark's length."""
    return Config().with_values({
        "name": f"bench-b{batch_size}",
        "model.hidden": [400, 400], "optim.name": "sgd", "optim.lr": 0.05, "optim.momentum": 0.0,
        "train.batch_size": batch_size, "train.epochs": epochs, "train.device": device,
        "train.amp": amp, "train.compile": compile_, "data.subset": subset,
    }, "benchmark")


def subset_for(steps: int | None, batch: int, val_fraction: float, available: int) -> int:
    """`data.subset` whose training split holds `steps` batches (0 = every image)."""
    if not steps:
        return 0
    wanted = math.ceil(steps * batch / (1 - val_fraction)) + 1
    return 0 if wanted >= available else wanted


def machine() -> dict:
    cpu = cpu_model()
    return {
        "cpu": cpu, "cores": os.cpu_count(), "torch": torch.__version__,
        "threads": torch.get_num_threads(), "python": platform.python_version(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", "default"),
    }


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


# ---------------------------------------------------------------------------------- the floor

def gemm_seconds_per_step(hidden: tuple[int, ...], batch: int, device: torch.device, min_s: float) -> float:
    """Seconds for the matrix multiplies of one training step, nothing else (outputs preallocated)."""
    widths = [INPUT_FEATURES, *hidden, NUM_CLASSES]
    ops = []
    for i, (m, n) in enumerate(itertools.pairwise(widths)):
        x, w, b, g = (torch.randn(*s, device=device) for s in ((batch, m), (n, m), (n,), (batch, n)))
        fwd, wgrad, xgrad = torch.empty(batch, n, device=device), torch.empty(n, m, device=device), torch.empty(batch, m, device=device)
        ops.append(lambda x=x, w=w, b=b, fwd=fwd: torch.addmm(b, x, w.t(), out=fwd))  # forward
        ops.append(lambda x=x, g=g, wgrad=wgrad: torch.mm(g.t(), x, out=wgrad))  # weight gradient
        if i > 0:  # the input needs no gradient
            ops.append(lambda g=g, w=w, xgrad=xgrad: torch.mm(g, w, out=xgrad))  # input gradient
    for _ in range(5):  # warm-up
        for op in ops:
            op()
    sync(device)
    steps, start = 0, time.perf_counter()
    while True:
        for op in ops:
            op()
        steps += 1
        if steps % 10 == 0:
            sync(device)
            elapsed = time.perf_counter() - start
            if elapsed >= min_s:
                return elapsed / steps


# --------------------------------------------------------------------------------- the engine

def engine_samples_per_s(config: Config, split) -> float:
    """Training throughput of one headless run (validation and test are not counted)."""
    finished = None
    for event in Trainer(config, split).events():
        if isinstance(event, RunFinished):
            finished = event
    if finished is None or finished.status != "completed":
        raise RuntimeError(f"engine run ended {finished.status if finished else 'without RunFinished'}: {finished and finished.error}")
    return finished.samples_per_s


# ------------------------------------------------------------------------------- the tutorial

def torchvision_root(data_dir: Path, into: Path) -> Path:
    """A root in torchvision's layout (`FashionMNIST/raw/`, uncompressed files, which is what
    `download=False` accepts): symlinks to plain files, decompressed copies of `.gz` ones."""
    raw = into / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for path in (find_files(data_dir) or {}).values():
        target = raw / FILES[next(k for k, v in FILES.items() if path.name.startswith(v))]
        if path.suffix == ".gz":
            target.write_bytes(read_bytes(path))
        else:
            target.symlink_to(path.resolve())
    return into


def tutorial_samples_per_s(root: Path, hidden: tuple[int, ...], batch: int, steps: int | None,
                           epochs: int, device: torch.device) -> tuple[float, float]:
    """The loop most tutorials teach: per-sample PIL -> ToTensor, DataLoader, loss.item() per step.
    Returns samples/s and the share of the time spent waiting for the DataLoader's batches."""
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms

    dataset = datasets.FashionMNIST(str(root), train=True, download=False, transform=transforms.ToTensor())
    loader = DataLoader(dataset, batch_size=batch, shuffle=True)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), build_mlp(Config().with_values({"model.hidden": list(hidden)}).model)).to(device)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    seen = done = 0
    running = waiting = 0.0
    start = time.perf_counter()
    for _ in range(epochs):
        batches = iter(loader)
        while True:
            asked = time.perf_counter()
            x, y = next(batches, (None, None))
            waiting += time.perf_counter() - asked
            if x is None:
                break
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            loss = loss_fn(model(x), y)
            loss.backward()
            optimizer.step()
            running += loss.item()
            seen += len(y)
            done += 1
            if steps and done >= steps:
                break
    elapsed = time.perf_counter() - start
    return seen / elapsed, waiting / elapsed


# ------------------------------------------------------------------------------------ the app

async def tui_run(config: Config, data_dir: Path, out: Path) -> float:
    """Train `config` from inside the app (headless `run_test`, charts live), started the way a
    user starts it (ctrl+r once the data is loaded); the samples/s the run reports."""
    from fcn_tui.config import Preset
    from fcn_tui.tui.app import FcnApp

    app = FcnApp(preset=Preset(config=config), out=out, data_dir=data_dir)
    async with app.run_test(size=(160, 50)) as pilot:
        while app.backend is None:
            if app.data_error:
                raise RuntimeError(f"the app could not load the data: {app.data_error}")
            await asyncio.sleep(0.05)
        await pilot.press("ctrl+r")
        while app.running:  # a tiny run may already be over here
            await asyncio.sleep(POLL_S)  # not pilot.pause(): it waits for a full refresh, a cost the user never pays
        finished = app.current.finished
        while any(worker.is_running for worker in app.workers):  # e.g. the history reload after the run
            await asyncio.sleep(0.05)
    if finished is None:
        raise RuntimeError("ctrl+r started no run")
    if finished.status != "completed":
        raise RuntimeError(f"the app's run ended {finished.status}: {finished.error}")
    return finished.samples_per_s


TUI_CHILD = """
import asyncio, sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
import bench_train
from fcn_tui.config import load_preset
config = load_preset(sys.argv[2]).config
print(asyncio.run(bench_train.tui_run(config, Path(sys.argv[3]), Path(sys.argv[4]))))
"""


def tui_samples_per_s(config: Config, data_dir: Path) -> float:
    """The app's run in a fresh interpreter, as a user starts it. Not in this process: its main
    thread has run torch ops (data loading, the headless runs), and libgomp then throttles the
    thread pool of any other thread that trains (more pool threads than cores), which would
    charge the app with a slowdown the real app, whose UI thread runs no torch op, never has."""
    with tempfile.TemporaryDirectory(prefix="fcn-bench-tui-") as out:
        preset = Path(out) / "bench.toml"
        preset.write_text(config_to_toml(config))
        child = subprocess.run(
            [sys.executable, "-c", TUI_CHILD, str(Path(__file__).resolve().parent), str(preset),
             str(data_dir), str(Path(out) / "runs")],
            capture_output=True, text=True, check=False,
        )
        if child.returncode != 0:
            lines = child.stderr.strip().splitlines() or [f"exit status {child.returncode}"]
            raise RuntimeError(lines[-1])
        return float(child.stdout.strip().splitlines()[-1])


FIRST_PAINT_CHILD = """
import asyncio, os, sys
from pathlib import Path
async def main():
    from fcn_tui.tui.app import FcnApp
    app = FcnApp(preset=None, out=Path(sys.argv[1]), data_dir=Path(sys.argv[2]))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        print("painted", flush=True)
        os._exit(0)
asyncio.run(main())
"""


def first_paint_s(data_dir: Path) -> float:
    """A fresh interpreter, timed by this process, until the app's first screen is mounted."""
    with tempfile.TemporaryDirectory(prefix="fcn-bench-paint-") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-c", FIRST_PAINT_CHILD, out, str(data_dir)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        watchdog = threading.Timer(120, proc.kill)  # a hung app must not hang the benchmark
        watchdog.start()
        line = proc.stdout.readline()
        elapsed = time.perf_counter() - start
        _, err = proc.communicate()
        watchdog.cancel()
        if line.strip() != "painted":
            raise RuntimeError(f"the app did not start: {err.strip().splitlines()[-1] if err.strip() else 'no output'}")
        return elapsed


# ------------------------------------------------------------------------------ CLI and data

def help_command() -> list[str]:
    script = Path(sys.executable).with_name("fcn-tui")
    if script.exists():
        return [str(script), "--help"]
    found = shutil.which("fcn-tui")
    return [found, "--help"] if found else [sys.executable, "-m", "fcn_tui", "--help"]


def help_s() -> float:
    command = help_command()
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


HELP_IMPORTS_CHILD = """
import sys
from fcn_tui.cli import app
try:
    app(["--help"])
except SystemExit:
    pass
import json
heavy = sorted(m for m in ("torch", "torchvision", "textual", "matplotlib") if m in sys.modules)
print("heavy:", json.dumps(heavy), file=sys.stderr)
"""


def help_imports() -> list[str]:
    """Heavy libraries `fcn-tui --help` imports (should be none)."""
    proc = subprocess.run([sys.executable, "-c", HELP_IMPORTS_CHILD], check=True, capture_output=True, text=True)
    line = [x for x in proc.stderr.splitlines() if x.startswith("heavy:")][-1]
    return json.loads(line.split(":", 1)[1])


def data_load_s(data_dir: Path) -> float:
    start = time.perf_counter()
    load_fashion_mnist(data_dir, download_missing=False)
    return time.perf_counter() - start


# ------------------------------------------------------------------------------- a busy CPU

BUSY_STEPS = 100  # batches per busy-mode run: seconds idle, well under a minute in the old collapse
BUSY_TARGET = 0.4  # the default keeps at least this share of its idle speed beside one hog (fair: ~0.5)
BUSY_MODES = ("default", "old")
HOG = "while True: pass"  # one core kept busy, the way any CPU-bound neighbour does

BUSY_CHILD = """
import json, sys
mode, data_dir, steps, bench_dir = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
import fcn_tui  # noqa: F401
from fcn_tui.cpu import apply_threads
sys.path.insert(0, bench_dir)
import bench_train
from fcn_tui.data import load_fashion_mnist, make_split

choice = apply_threads(None) if mode == "default" else None
import torch
data = load_fashion_mnist(data_dir, download_missing=False)
config = bench_train.baseline_config(256, 1, bench_train.subset_for(steps, 256, 0.1, len(data.train_images)), "cpu", False, False)
split = make_split(data, config.train.val_fraction, config.train.seed, config.data.subset)
speed = bench_train.engine_samples_per_s(config, split)
print(json.dumps({"samples_per_s": speed, "threads": torch.get_num_threads(), "note": choice and choice.note()}))
"""


def busy_child(mode: str, data_dir: Path, steps: int) -> dict:
    """One engine run in a fresh interpreter (the wait policy is read when OpenMP loads)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "OMP_NUM_THREADS")}
    proc = subprocess.run([sys.executable, "-c", BUSY_CHILD, mode, str(data_dir), str(steps), str(Path(__file__).parent)],
                          check=False, env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode:
        raise RuntimeError(f"the {mode} run failed: {proc.stderr.strip().splitlines()[-1:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run_busy(args: argparse.Namespace) -> dict:
    """Busy / idle samples/s of the default and of the old behaviour, measured in this one run."""
    data_dir = resolve_data_dir(args.data_dir)
    steps = args.steps or BUSY_STEPS
    results: dict = {"machine": machine(), "settings": {"steps": steps, "batch": 256, "reps": args.reps,
                                                        "load_at_start": os.getloadavg()[0]}}
    samples: dict[str, list[float]] = {f"{m}_{load}": [] for m in BUSY_MODES for load in ("idle", "busy")}
    threads: dict[str, list[int]] = {key: [] for key in samples}
    notes: list[str] = []
    for rep in range(1, args.reps + 1):
        for load in ("idle", "busy"):
            hog = subprocess.Popen([sys.executable, "-c", HOG]) if load == "busy" else None
            try:
                if hog:
                    time.sleep(0.5)  # the hog at full speed before the run looks at the load
                for mode in BUSY_MODES:
                    log(f"[{rep}/{args.reps}] {mode}, {load}: {steps} steps")
                    child = busy_child(mode, data_dir, steps)
                    samples[f"{mode}_{load}"].append(child["samples_per_s"])
                    threads[f"{mode}_{load}"].append(child["threads"])
                    if child["note"] and child["note"] not in notes:
                        notes.append(child["note"])
            finally:
                if hog:
                    hog.kill()
                    hog.wait()
    figures = {key: statistics.median(values) for key, values in samples.items()}
    ratios = {m: figures[f"{m}_busy"] / figures[f"{m}_idle"] for m in BUSY_MODES}
    results.update(samples=samples, threads=threads, figures=figures, ratios=ratios, notes=notes,
                   target={"value": ratios["default"], "target": f">= {BUSY_TARGET:g}", "met": ratios["default"] >= BUSY_TARGET})
    return results


def busy_table(results: dict) -> str:
    m, s, f, r = results["machine"], results["settings"], results["figures"], results["ratios"]
    lines = [
        f"machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']}; load average {s['load_at_start']:.2f} at start",
        f"engine, batch {s['batch']}, {s['steps']} steps per run, median of {s['reps']} repetition(s); busy = one CPU hog beside",
        "",
        f"{'samples/s':<26}{'idle':>10}{'busy':>10}{'busy/idle':>11}  threads idle/busy",
    ]
    for mode in BUSY_MODES:
        label = "default (fcn_tui.cpu)" if mode == "default" else "old (torch's threads)"
        t = results["threads"]
        lines.append(f"{label:<26}{f[f'{mode}_idle']:>10,.0f}{f[f'{mode}_busy']:>10,.0f}{r[mode]:>10.2f}x"
                     f"  {','.join(map(str, t[f'{mode}_idle']))} / {','.join(map(str, t[f'{mode}_busy']))}")
    target = results["target"]
    lines.append(f"default busy/idle {target['value']:.2f} (target {target['target']}): {'met' if target['met'] else 'NOT met'}")
    lines += [f"console: {note}" for note in results["notes"]]
    return "\n".join(lines)


# -------------------------------------------------------------------------------------- main

def run(args: argparse.Namespace) -> dict:
    data_dir = resolve_data_dir(args.data_dir)
    device = resolve_device(args.device)
    reps, steps, epochs = args.reps, args.steps, args.epochs
    hidden = (400, 400)
    flops = training_flops_per_sample(Config().model)
    results: dict = {"machine": machine(), "device": str(device), "notes": {}}
    notes = results["notes"]
    if device.type == "cuda":
        results["machine"]["gpu"] = torch.cuda.get_device_name(device)

    log("data: loading and verifying")
    data_load_s(data_dir)  # the first load warms the file cache
    data = load_fashion_mnist(data_dir, download_missing=False)
    n_available = len(data.train_images)
    results["settings"] = {
        "model": "784-400-400-10 relu", "optimizer": "sgd lr 0.05", "reps": reps,
        "steps": steps, "epochs": None if steps else epochs, "data_dir": str(data_dir),
        "official_data": data.official, "amp": args.amp, "compile": args.compile,
        "training_flops_per_sample": flops,
    }
    configs, splits = {}, {}
    for batch in BATCHES:
        subset = subset_for(steps, batch, 0.1, n_available)
        config = configs[batch] = baseline_config(batch, 1 if steps else epochs, subset, args.device, args.amp, args.compile)
        splits[batch] = make_split(data, config.train.val_fraction, config.train.seed, config.data.subset)
    log("warm-up: a few engine steps (first-call costs stay out of the figures)")
    warm = baseline_config(64, 1, subset_for(10, 64, 0.1, n_available), args.device, args.amp, args.compile)
    engine_samples_per_s(warm, make_split(data, warm.train.val_fraction, warm.train.seed, warm.data.subset))

    # repetitions go round every figure in turn, so a burst of load elsewhere hits them alike
    samples: dict[str, list[float]] = {}
    app_ok = not args.no_tui
    if args.no_tui:
        notes["tui_samples_per_s"] = notes["first_paint_s"] = "n/a: skipped (--no-tui)"
    with tempfile.TemporaryDirectory(prefix="fcn-bench-tv-") as tv_dir:
        root = torchvision_root(data_dir, Path(tv_dir))
        for rep in range(1, reps + 1):
            def measure(name: str, what: str, fn, *fn_args) -> None:
                log(f"[{rep}/{reps}] {what}")  # noqa: B023 - called at once, inside this repetition
                value = fn(*fn_args)
                if isinstance(value, tuple):  # the tutorial: samples/s and its data-loading share
                    value, share = value
                    samples.setdefault(f"{name}_data_share", []).append(share)
                samples.setdefault(name, []).append(value)

            measure("data_load_s", "data: load and verify", data_load_s, data_dir)
            measure("help_s", "fcn-tui --help", help_s)
            for batch in BATCHES:
                measure(f"gemm_{batch}", f"floor: GEMMs at batch {batch}",
                        gemm_seconds_per_step, hidden, batch, device, args.min_gemm_s)
                config, split = configs[batch], splits[batch]
                measure(f"engine_{batch}", f"engine: batch {batch}, {len(split.train_x)} images x {config.train.epochs}",
                        engine_samples_per_s, config, split)
                measure(f"tutorial_{batch}", f"tutorial: batch {batch}",
                        tutorial_samples_per_s, root, hidden, batch, steps, config.train.epochs, device)
            if app_ok:
                try:
                    measure("first_paint_s", "app: first paint", first_paint_s, data_dir)
                    measure("tui_samples_per_s", f"app: training at batch {FLOOR_BATCH}",
                            tui_samples_per_s, configs[FLOOR_BATCH], data_dir)
                except Exception as err:  # noqa: BLE001 - the app's figures are reported n/a, the rest stand
                    app_ok = False
                    notes["tui_samples_per_s"] = notes["first_paint_s"] = f"n/a: {type(err).__name__}: {err}"
                    log(f"app: {notes['tui_samples_per_s']}")
                    samples.pop("first_paint_s", None)
                    samples.pop("tui_samples_per_s", None)
    del data, splits  # free the memory before the summary

    figures: dict = {name: statistics.median(values) for name, values in samples.items() if not name.startswith(("engine_", "tutorial_", "gemm_"))}
    results["figures"] = figures
    figures["help_imports"] = help_imports()
    gemm_s = {str(b): statistics.median(samples[f"gemm_{b}"]) for b in BATCHES}
    figures["gemm_gflops"] = {str(b): flops * b / gemm_s[str(b)] / 1e9 for b in BATCHES}
    figures["floor_samples_per_s"] = {str(b): b / gemm_s[str(b)] for b in BATCHES}
    for kind in ("engine", "tutorial"):
        figures[f"{kind}_samples_per_s"] = {str(b): statistics.median(samples[f"{kind}_{b}"]) for b in BATCHES}
    figures["tutorial_data_share"] = {str(b): statistics.median(samples[f"tutorial_{b}_data_share"]) for b in BATCHES}
    figures.setdefault("first_paint_s", None)
    figures.setdefault("tui_samples_per_s", None)
    results["samples"] = samples  # every repetition's value (gemm_* in seconds per training step)

    engine, tutorial = figures["engine_samples_per_s"], figures["tutorial_samples_per_s"]
    tui = figures["tui_samples_per_s"]
    results["ratios"] = {
        "engine_vs_tutorial_64": engine["64"] / tutorial["64"],
        "engine_vs_floor_256": engine["256"] / figures["floor_samples_per_s"]["256"],
        "engine_vs_floor_64": engine["64"] / figures["floor_samples_per_s"]["64"],
        "engine_vs_tutorial_256": engine["256"] / tutorial["256"],
        "floor_vs_tutorial_64": figures["floor_samples_per_s"]["64"] / tutorial["64"],  # the best any engine could do
        "tui_vs_headless_256": tui / engine["256"] if tui else None,
    }
    checks = {**results["ratios"], **{k: figures[k] for k in ("help_s", "first_paint_s", "data_load_s")}}
    results["targets"] = {
        name: {"target": f"{way} {limit:g}", "value": checks[name],
               "met": None if checks[name] is None else (checks[name] >= limit if way == ">=" else checks[name] <= limit)}
        for name, (limit, way) in TARGETS.items()
    }
    results["targets"]["help_imports_no_torch"] = {
        "target": "no torch", "value": figures["help_imports"], "met": "torch" not in figures["help_imports"],
    }
    return results


def fmt(value, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if unit == "s":
        return f"{value:.2f} s"
    if unit == "x":
        return f"{value:.2f}x"
    return f"{value:,.0f}"


def per_batch(label: str, values: dict, pattern: str = "{:,.0f}") -> str:
    cells = ["n/a" if values.get(str(b), 0) is None else pattern.format(values[str(b)]) if str(b) in values else ""
             for b in BATCHES]
    return f"{label:<26}" + "".join(f"{cell:>12}" for cell in cells)


def table(results: dict) -> str:
    m, s, f, r = results["machine"], results["settings"], results["figures"], results["ratios"]
    length = f"{s['steps']} steps" if s["steps"] else f"{s['epochs']} epoch(s) of the training split"
    gpu = f", GPU {m['gpu']}" if "gpu" in m else ""
    lines = [
        (f"machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} ({m['threads']} threads"
         + ("" if m["omp_wait_policy"] == "default" else f", OMP_WAIT_POLICY={m['omp_wait_policy']}")
         + f"), device {results['device']}{gpu}"),
        f"model: {s['model']}, {s['optimizer']}; {length}; median of {s['reps']} repetition(s)"
        + ("" if s["official_data"] else "; NOT the official Fashion-MNIST"),
        "",
        f"{'figure':<26}{'batch 64':>12}{'batch 256':>12}",
        per_batch("gemm_gflops", f["gemm_gflops"], "{:.1f}"),
        per_batch("floor_samples_per_s", f["floor_samples_per_s"]),
        per_batch("engine_samples_per_s", f["engine_samples_per_s"]),
        per_batch("tutorial_samples_per_s", f["tutorial_samples_per_s"]),
        per_batch("tutorial: data loading", f["tutorial_data_share"], "{:.0%}"),
        per_batch("tui_samples_per_s", {"256": f["tui_samples_per_s"]}),
        "",
        f"{'ratio / time':<26}{'value':>12}{'target':>12}  met",
    ]
    values = {**r, **{k: f[k] for k in ("help_s", "first_paint_s", "data_load_s")}}
    labels = {
        "engine_vs_tutorial_64": "engine / tutorial @64", "engine_vs_tutorial_256": "engine / tutorial @256",
        "floor_vs_tutorial_64": "floor / tutorial @64",
        "engine_vs_floor_256": "engine / floor @256", "engine_vs_floor_64": "engine / floor @64",
        "tui_vs_headless_256": "tui / headless @256", "help_s": "help_s", "first_paint_s": "first_paint_s",
        "data_load_s": "data_load_s (warm)",
    }
    for name, label in labels.items():
        unit = "s" if name.endswith("_s") else "x"
        target = results["targets"].get(name)
        if target is None:  # context, no target
            lines.append(f"{label:<26}{fmt(values[name], unit):>12}")
            continue
        met = {True: "yes", False: "NO", None: "-"}[target["met"]]
        wanted = target["target"] + ("x" if unit == "x" else " s")
        lines.append(f"{label:<26}{fmt(values[name], unit):>12}{wanted:>12}  {met}")
    imports = results["targets"]["help_imports_no_torch"]
    lines.append(f"{'--help imports':<26}{', '.join(imports['value']) or 'nothing heavy':>12}{'no torch':>12}  {'yes' if imports['met'] else 'NO'}")
    for name, note in results["notes"].items():
        lines.append(f"{name}: {note}")
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=None, help="Fashion-MNIST folder (default: $FCN_TUI_DATA, else the per-user cache)")
    parser.add_argument("--reps", type=int, default=3, help="repetitions of every figure; the median is reported (default 3)")
    length = parser.add_mutually_exclusive_group()
    length.add_argument("--epochs", type=int, default=1, help="epochs per training measurement (default 1: 54,000 images)")
    length.add_argument("--steps", type=int, default=None, help="training steps per measurement instead of whole epochs")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N or mps (default auto)")
    parser.add_argument("--amp", action="store_true", help="train.amp = true for the engine (bf16, CUDA only)")
    parser.add_argument("--compile", action="store_true", help="train.compile = true for the engine (CUDA only)")
    parser.add_argument("--no-tui", action="store_true", help="skip the app's figures (first paint, training in the app)")
    parser.add_argument("--tiny", action="store_true", help="smoke mode: 1 repetition of 5 steps (seconds, any data folder)")
    parser.add_argument("--busy", action="store_true", help="measure idle vs busy (one CPU hog) speed of the default and the old behaviour")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of the table")
    args = parser.parse_args(argv)
    args.min_gemm_s = 0.3
    if args.tiny:
        args.reps, args.steps, args.min_gemm_s = 1, args.steps or 5, 0.02
    if args.reps < 1 or (args.steps is not None and args.steps < 1) or args.epochs < 1:
        parser.error("--reps, --steps and --epochs must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.busy:
        results = run_busy(args)
        print(json.dumps(results, indent=2) if args.json else busy_table(results))
        return 0
    results = run(args)
    print(json.dumps(results, indent=2) if args.json else table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
