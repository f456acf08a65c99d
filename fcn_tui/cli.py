"""The `fcn-tui` command (Typer). No command opens the terminal app (`fcn-tui --out DIR` is
`fcn-tui ui --out DIR`).

    fcn-tui run PRESET.toml [PRESET.toml ...] [--set KEY=VALUE ...] [--out DIR] [--data-dir DIR]
                [--device D] [--resume] [--workers N] [--devices LIST] [--threads N] [--storage URL]
                [--study NAME] [--pack N|auto] [--checkpoint-every SECONDS]
    fcn-tui worker --storage URL|STUDY_FOLDER [--study NAME] [--out DIR] [--device D] [--threads N]
                   [--pack N|auto] [--checkpoint-every SECONDS]
    fcn-tui ui [PRESET.toml] [--set KEY=VALUE ...] [--out DIR] [--data-dir DIR]
    fcn-tui serve [PRESET.toml] [--set KEY=VALUE ...] [--out DIR] [--data-dir DIR] [--host H] [--port P]
                  [--allow-remote] [--max-tabs N]
    fcn-tui export DIR --csv FILE [--per-epoch]
    fcn-tui export --storage URL --study NAME --csv FILE
    fcn-tui plot DIR [--out FIGDIR] [--data-dir DIR]

Heavy imports (torch, textual) stay inside the commands so that `fcn-tui --help` answers at
once. Exit status: 0 when every run finished (completed or diverged), 1 when a run failed,
2 for bad input (preset, data, device, a run too big for the device's memory, output folder),
128 + N after signal N (130 for Ctrl-C).
Every error is one line on stderr, `fcn-tui: error: ...`, Typer's own usage errors included;
`run` checks everything before it creates OUT. User text is never read as Rich markup.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException

if TYPE_CHECKING:
    from fcn_tui.console import StudyPresenter as Presenter


class Commands(TyperGroup):
    """The command group, with two changes to Typer's: its own usage errors (a missing argument,
    an unknown option) are the same one `fcn-tui: error:` line, exit 2, as every other error;
    and options without a command are `ui`'s (`fcn-tui --out DIR` is `fcn-tui ui --out DIR`)."""

    def parse_args(self, ctx, args):
        if args and args[0].startswith("-") and args[0] not in ctx.help_option_names:
            args = ["ui", *args]
        return super().parse_args(ctx, args)

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode, **extra)
        try:  # not standalone: errors come back here instead of being printed as Typer would
            code = super().main(args, prog_name, complete_var, False, **extra)
        except TyperException as err:
            message = " ".join(line.strip() for line in err.format_message().splitlines()).rstrip(".")
            message = message[:1].lower() + message[1:]  # "Missing argument" reads "missing argument"
            context = getattr(err, "ctx", None)
            hint = f" (see '{context.command_path} --help')" if context is not None else ""
            print(f"fcn-tui: error: {message}{hint}", file=sys.stderr, flush=True)
            sys.exit(err.exit_code)
        except typer.Abort:  # end of input at a prompt
            print("fcn-tui: error: aborted", file=sys.stderr, flush=True)
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)  # an Exit's code, else 0 (the command returned)


app = typer.Typer(
    cls=Commands,
    add_completion=False,
    no_args_is_help=False,
    rich_markup_mode=None,
    help=(
        "Train fully connected networks on Fashion-MNIST: a terminal app and a headless runner. "
        "Without a command, opens the terminal app (same as `fcn-tui ui`)."
    ),
    context_settings={"help_option_names": ["-h", "--help"]},
)

EXIT_OK, EXIT_FAILED_RUN, EXIT_BAD_INPUT = 0, 1, 2
# A job array's workers start with, or just after, the `run` that creates their study, which
# checks its presets and reads its data first: seconds, a minute on a slow shared disk.
WORKER_WAIT_S = 120

SetOption = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", metavar="KEY=VALUE", help="Override a setting, value in TOML syntax, e.g. --set model.hidden=[512,256]."),
]
OutOption = Annotated[Path, typer.Option("--out", "-o", metavar="DIR", help="Folder that receives one folder per run.")]
DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", metavar="DIR", help="Folder with the Fashion-MNIST IDX files (default: $FCN_TUI_DATA, else a per-user cache)."),
]


def fail(message: str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
    """Print one clear line to stderr and return the Exit to raise."""
    print(f"fcn-tui: error: {message}", file=sys.stderr, flush=True)
    return typer.Exit(code)


def warn(message: str) -> None:
    """One warning line on stderr (a damaged run folder that is listed or skipped)."""
    print(f"fcn-tui: warning: {message}", file=sys.stderr, flush=True)


def load_presets(paths: list[Path], overrides: list[str] | None, device: str | None):
    from fcn_tui.config import Config, load_preset, parse_overrides
    from fcn_tui.errors import ConfigError

    try:
        values = parse_overrides(overrides or [])
        if device is not None:  # `--device ''` is refused as `--set train.device=""` is
            Config().with_values({"train.device": device}, "--device")  # an error names --device
            values["train.device"] = device
        return [load_preset(p, values) for p in paths]
    except ConfigError as err:
        raise fail(str(err)) from None


def seeded(presets: list, seeds: str | None) -> list:
    """The presets with `train.seed` swept over `--seeds` (`0,1,2`), or as they are."""
    if seeds is None:
        return presets
    from fcn_tui.config import with_seeds
    from fcn_tui.errors import ConfigError

    try:
        values = [int(part) for part in seeds.split(",")]
    except ValueError:
        raise fail(f"--seeds: expected whole numbers separated by commas (e.g. 0,1,2), got {seeds!r}") from None
    try:
        return [with_seeds(preset, values) for preset in presets]
    except ConfigError as err:
        raise fail(str(err)) from None


def ensure_writable(out: Path) -> None:
    import os

    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise fail(f"{out}: cannot create the output folder ({err.strerror or err})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise fail(f"{out}: the output folder is not writable")


def check_out(out: Path) -> None:
    """Fail now if OUT could not be created, creating nothing: a run that never starts (bad
    device, data or split, found later) leaves no empty folder behind."""
    import os

    existing = out
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise fail(f"{out}: cannot create the output folder ({existing} is not a folder)")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise fail(f"{out}: the output folder is not writable" if existing == out
                   else f"{out}: cannot create the output folder ({existing} is not writable)")


def check_runs_folder(folder: Path) -> None:
    if folder.is_file():
        raise fail(f"{folder}: is a file, expected a folder of runs")
    if not folder.is_dir():
        raise fail(f"{folder}: no such folder")


@app.callback(invoke_without_command=True)
def main(ctx: typer.Context) -> None:
    """With no command, open the terminal app (same as `fcn-tui ui`)."""
    if ctx.invoked_subcommand is None:
        ui(preset=None, set_=None, out=Path("runs"), data_dir=None)


StorageOption = Annotated[
    str | None,
    typer.Option("--storage", metavar="URL", help="Where the study is kept: postgresql://USER:PASSWORD@HOST/DB or sqlite:///FILE (default: a journal file in the study folder)."),
]


def study_name(value: str | None) -> str | None:
    from fcn_tui.errors import StudyError
    from fcn_tui.studies.store import check_study_name

    if value is not None:
        try:
            check_study_name(value)
        except StudyError as err:
            raise fail(f"--study: {err}") from None
    return value


StudyOption = Annotated[str | None, typer.Option("--study", metavar="NAME", callback=study_name,
                                                 help="Study name in the storage (default: the preset's name).")]
# worker, export and ui take no preset: their study is the storage's only one unless named
StoredStudyOption = Annotated[str | None, typer.Option("--study", metavar="NAME", callback=study_name,
                                                       help="Study name in the storage (default: its only study).")]


MAX_PACK = 1024  # a larger pack is a typo: no device trains that many runs at once


def parse_pack(value: str) -> int | None:
    """`--pack N` (1 trains one run at a time, as without packing) or `auto` (None)."""
    if value.strip().lower() == "auto":
        return None
    try:
        pack = int(value)
    except ValueError:
        pack = 0
    if not 1 <= pack <= MAX_PACK:
        raise fail(f"--pack: expected auto or a number of runs from 1 to {MAX_PACK}, got {value!r}")
    return pack


PackOption = Annotated[str, typer.Option("--pack", metavar="N|auto", help="Runs of a study trained at once as one pack (same shapes and data); auto: as many as fit on a GPU, a few on the CPU; 1: one at a time.")]
CheckpointOption = Annotated[float | None, typer.Option("--checkpoint-every", min=0, metavar="SECONDS", help="Write a run's checkpoint at most this often (default 30; 0: after every epoch); a stop always writes it.")]


def parse_devices(text: str | None) -> list[str]:
    from fcn_tui.config import Config
    from fcn_tui.errors import ConfigError

    if text is None:
        return []
    devices = [d.strip() for d in text.split(",") if d.strip()] or [text]  # `--devices ''` is refused
    try:
        for d in devices:
            Config().with_values({"train.device": d}, "--devices")
    except ConfigError as err:
        raise fail(str(err)) from None
    return devices


def searched_values(preset):
    """A search's settings one at a time (each choice, each end of a range) on the preset's runs, for
    `run` to check devices, memory and splits before the study starts, as it does for a sweep's."""
    if preset.search is None:
        return []
    import contextlib

    from fcn_tui.config import format_value
    from fcn_tui.errors import ConfigError

    out = []
    for config in preset.runs():
        for key, value in ((p.key, v) for p in preset.search.params for v in (p.choices or (p.low, p.high))):
            with contextlib.suppress(ConfigError):  # each value was checked against the preset when it was read
                out.append(config.with_values({key: value, "name": f"{config.name}, search {key} = {format_value(value)}"}))
    return out


def drive(events, present: Presenter) -> None:
    """Show every event of the runner. An error while showing one (a bug in the presentation)
    is thrown back into the runner, which marks that run failed and goes on with the next."""
    from fcn_tui.errors import RunWriteError, StudyError

    error: Exception | None = None
    while True:
        try:
            event = events.throw(error) if error is not None else next(events)
        except StopIteration:
            return
        except (StudyError, RunWriteError):  # a study that cannot be opened or written: the command says so
            raise
        except Exception as err:  # noqa: BLE001 - the runner could not recover from it either
            present.reporter.close()
            present.reporter.error(f"{type(err).__name__}: {err}")
            present.failed = True
            return
        error = None
        try:
            present.show(event)
        except Exception as err:  # noqa: BLE001 - see above
            error = err


@app.command()
def run(
    presets: Annotated[list[Path], typer.Argument(metavar="PRESET.toml", help="Preset files (TOML); a [sweep] table runs every combination, a [search] table searches.")],
    set_: SetOption = None,
    out: OutOption = Path("runs"),
    data_dir: DataDirOption = None,
    device: Annotated[str | None, typer.Option("--device", metavar="DEVICE", help="auto, cpu, cuda, cuda:N or mps.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue the study (or run) where it was left: skip finished runs, continue stopped or interrupted ones from their last completed epoch.")] = False,
    workers: Annotated[int | None, typer.Option("--workers", min=1, max=256, metavar="N", help="Worker processes for a study (default 1, or one per --devices entry); the CPU's cores are shared among them.")] = None,
    devices: Annotated[str | None, typer.Option("--devices", metavar="LIST", help="Devices of the workers, e.g. cuda:0,cuda:1 (default: every GPU when there are several).")] = None,
    threads: Annotated[int | None, typer.Option("--threads", min=1, max=1024, metavar="N", help="torch threads per worker (default: the free cores divided among the workers).")] = None,
    storage: StorageOption = None,
    study: StudyOption = None,
    pack: PackOption = "auto",
    checkpoint_every: CheckpointOption = None,
    seeds: Annotated[str | None, typer.Option("--seeds", metavar="LIST", help="Train every run once per seed, e.g. 0,1,2 (sweeps train.seed): tables show mean ± std over them.")] = None,
) -> None:
    """Train the runs of one or more presets headlessly, writing each to OUT."""
    pack_size = parse_pack(pack)
    loaded = seeded(load_presets(presets, set_, device), seeds)
    worker_devices = parse_devices(devices)
    check_out(out)  # created only once everything below has been checked
    from fcn_tui.backend import TorchBackend
    from fcn_tui.console import Reporter, StudyPresenter
    from fcn_tui.signals import StopOnSignals
    from fcn_tui.studies import runner

    configs = [c for p in loaded for c in [*p.runs(), *searched_values(p)]]
    check_devices(configs, worker_devices)  # before the data is read or a folder made
    if storage:
        check_study_storage(loaded, storage, study)
    count, worker_devices = worker_count(loaded, configs, workers, worker_devices)
    reporter = Reporter()
    data = load_checked_data(data_dir, configs, reporter)
    ensure_writable(out)
    backend = TorchBackend(data, [])
    options = runner.RunOptions(out=out, resume=resume, storage=storage, study_name=study,
                                device=worker_devices[0] if count == 1 and worker_devices else None,
                                pack=pack_size, checkpoint_every_s=checkpoint_every)
    plan = runner.WorkerPlan(count=count, devices=worker_devices, threads=worker_threads(threads, count, reporter),
                             data_dir=data_dir)
    present = StudyPresenter(reporter)
    if count > 1 and any(not p.is_study for p in loaded):
        reporter.print(f"--workers {count}: a single run trains in one process")
    with StopOnSignals() as stop:
        present_runs(runner.preset_runs(loaded, backend, stop.is_set, options, plan, lambda: stop.signum), present)
    if stop.exit_code is not None:
        raise typer.Exit(stop.exit_code)
    if present.bad_input:
        raise typer.Exit(EXIT_BAD_INPUT)
    if present.failed:
        raise typer.Exit(EXIT_FAILED_RUN)


def check_devices(configs: list, worker_devices: list[str]) -> None:
    """Every device and every run's memory on each device it may train on, up front."""
    from fcn_tui.engine import resolve_device
    from fcn_tui.errors import DeviceError, MemoryCheckError
    from fcn_tui.memory import check_fits, dataset_sizes

    try:
        names = {c.train.device for c in configs} | set(worker_devices)
        resolved = {name: resolve_device(name) for name in names}
        for cfg in configs:
            for name in worker_devices or [cfg.train.device]:
                try:
                    check_fits(cfg, resolved[name], *dataset_sizes(cfg))
                except MemoryCheckError as err:
                    raise fail(f"{cfg.name}: {err}") from None
    except DeviceError as err:
        raise fail(str(err)) from None


def check_study_storage(loaded: list, storage: str, study: str | None) -> None:
    """Each study's name, and the storage reached (nothing created in it yet)."""
    from fcn_tui.errors import StudyError
    from fcn_tui.studies.store import check_storage, check_study_name

    try:
        for preset in loaded:
            if preset.is_study:
                check_study_name(study or preset.config.name)
        check_storage(storage)
    except StudyError as err:
        raise fail(str(err)) from None


def worker_count(loaded: list, configs: list, workers: int | None, worker_devices: list[str]) -> tuple[int, list[str]]:
    """How many worker processes train the studies (no more than a study has runs), and their
    devices: `--devices`, else one GPU each when there are several."""
    count = workers or max(1, len(worker_devices))
    if any(p.is_study for p in loaded):  # a worker with no run to train would only wait
        count = min(count, max(p.search.trials if p.search else len(p.runs()) for p in loaded if p.is_study))
    if count > 1 and not worker_devices and any(c.train.device in ("auto", "cuda") for c in configs):
        import torch

        if torch.cuda.is_available() and torch.cuda.device_count() > 1:
            worker_devices = [f"cuda:{i}" for i in range(torch.cuda.device_count())]  # one GPU per worker
    return count, worker_devices


def load_checked_data(data_dir: Path | None, configs: list, reporter):
    """The dataset, said where it came from, with every run's split made once up front: a bad one
    is bad input, found before any run folder exists."""
    from rich.markup import escape  # user text (names, paths, errors) is never read as markup

    from fcn_tui.data import load_fashion_mnist, make_split
    from fcn_tui.errors import DataError

    try:
        data = load_fashion_mnist(data_dir)
    except DataError as err:
        raise fail(str(err)) from None
    reporter.print(escape(f"data: {data.source}: {data.verdict}"))
    try:
        for key in {(c.train.val_fraction, c.train.seed, c.data.subset) for c in configs}:
            make_split(data, *key)
    except DataError as err:
        raise fail(str(err)) from None
    return data


def worker_threads(threads: int | None, count: int, reporter) -> int:
    """torch threads of this process (one worker), or each worker process's share of the free cores."""
    from rich.markup import escape

    from fcn_tui.cpu import apply_threads, busy_cores, choose_threads, threads_from_env, usable_cores

    if count == 1:
        choice = apply_threads(threads)
    else:  # each worker process gets its share of the free cores
        choice = choose_threads(usable_cores(), 0.0 if threads or threads_from_env() else busy_cores(), usable_cores())
    if choice.note():
        reporter.print(escape(choice.note()))
    return threads or max(1, choice.threads // count)


def present_runs(streams, present: Presenter) -> None:
    """Show what the runner yields for each preset (`runner.preset_runs`), then the summary; a
    study that cannot be opened is one error line (exit 2, or 1 when its storage was lost)."""
    from rich.markup import escape

    from fcn_tui.errors import RunWriteError, StorageLost, StudyError

    reporter = present.reporter
    try:
        for events in streams:
            drive(events, present)
    except StorageLost as err:  # the run being trained is saved as stopped in its folder
        reporter.close()
        raise fail(f"{err}: stopped; --resume continues the study", EXIT_FAILED_RUN) from None
    except StudyError as err:
        reporter.close()
        raise fail(str(err)) from None
    except RunWriteError as err:  # the study's folder cannot be made
        reporter.close()
        reporter.print(f"[red]error[/]: {escape(str(err))}")
        present.failed = True
    reporter.close()
    if present.records:
        reporter.summary_table(present.records,
                               folders=[r for r in present.records if id(r) not in present.study_records])


@app.command()
def worker(
    storage: Annotated[str, typer.Option("--storage", metavar="URL", help="The study's storage: postgresql://..., sqlite:///..., or a study folder (its journal).")],
    study: StoredStudyOption = None,
    out: OutOption = Path("runs"),
    data_dir: DataDirOption = None,
    device: Annotated[str | None, typer.Option("--device", metavar="DEVICE", help="Train on this device instead of the runs' own.")] = None,
    threads: Annotated[int | None, typer.Option("--threads", min=1, max=1024, metavar="N", help="torch threads (default: the free cores).")] = None,
    label: Annotated[str, typer.Option("--label", metavar="TEXT", help="This worker's name in the study (default HOST:PID).")] = "",
    wait: Annotated[float, typer.Option("--wait", min=0, max=86400, metavar="SECONDS", help="Wait this long for the study to appear (a worker started with the `run` that creates it).")] = WORKER_WAIT_S,
    pack: PackOption = "auto",
    checkpoint_every: CheckpointOption = None,
) -> None:
    """Join a study and train its queued runs until none is left (run folders go to OUT/<study>)."""
    from fcn_tui.signals import StopOnSignals, stop_with_parent

    packing = (parse_pack(pack), checkpoint_every)
    # a stop (Ctrl-C, or the signal `run --workers` passes on) is handled from the start to the
    # end: loading the data or exiting after the last run, the worker stops and is never killed.
    # Ignoring the signals on the way out is for the process alone: a caller's own handlers stay.
    with StopOnSignals(ignore_after=AS_PROCESS["yes"]) as stop:
        stop_with_parent()  # a worker of `run --workers` stops, saving its run, when that process is gone
        _work(storage, study, out, data_dir, device, threads, printable(label), stop, wait, packing)
    if stop.exit_code is not None:
        raise typer.Exit(stop.exit_code)


def printable(text: str) -> str:
    """User text for a terminal line: a control character (ESC of a title escape) shown as '?'."""
    return "".join(c if c.isprintable() else "?" for c in text)


def _work(storage: str, study: str | None, out: Path, data_dir: Path | None, device: str | None,
          threads: int | None, label: str, stop, wait: float = 0,
          packing: tuple[int | None, float | None] = (None, None)) -> None:
    """The worker command's body, under its signal handlers."""
    if device is not None:
        parse_devices(device)
    from rich.markup import escape

    from fcn_tui.backend import TorchBackend
    from fcn_tui.console import Reporter, StudyPresenter, plural
    from fcn_tui.cpu import apply_threads
    from fcn_tui.data import load_fashion_mnist
    from fcn_tui.engine import resolve_device
    from fcn_tui.errors import DataError, DeviceError, StorageLost, StudyError
    from fcn_tui.studies import runner
    from fcn_tui.studies.store import describe, is_url

    try:
        if device:  # before anything is claimed: a device that is not here would fail every run
            resolve_device(device)
        store = _open_when_there(storage, study, wait, stop)
        if store is None:  # stopped while waiting
            return
        if not device:
            for name in sorted({c.train.device for c in [*store.preset.runs(), *searched_values(store.preset)]}):
                resolve_device(name)
    except (StudyError, DeviceError) as err:
        raise fail(str(err)) from None
    folder = runner.runs_folder(storage, store.name, out)
    reporter = Reporter()
    try:
        data = load_fashion_mnist(data_dir)
    except DataError as err:
        raise fail(str(err)) from None
    where = f"{describe(storage)}; runs go to {folder}" if is_url(storage) else str(folder)  # a study folder: said once
    reporter.print(escape(f"worker {label or 'here'}: study {store.name} in {where}"))
    choice = apply_threads(threads)
    if choice.note():
        reporter.print(escape(choice.note()))
    options = runner.RunOptions(out=out, storage=storage if is_url(storage) else None, study_name=store.name,
                                device=device, worker=label, pack=packing[0], checkpoint_every_s=packing[1])
    present = StudyPresenter(reporter)
    try:
        drive(runner.work(store, folder, TorchBackend(data, []), stop.is_set, options), present)
    except StorageLost as err:  # its run is saved as stopped in its folder; the storage has it running
        reporter.close()
        raise fail(f"{err}: stopped; its runs continue with --resume or another worker", EXIT_FAILED_RUN) from None
    except StudyError as err:
        raise fail(str(err)) from None
    reporter.close()
    if present.started:
        reporter.print(f"trained {plural(present.started, 'run')}")
    elif stop.exit_code is None:
        done = len(_safe_records(store))
        reporter.print(f"nothing left to train: {plural(done, 'run')} done")
    if present.failed and stop.exit_code is None:
        raise typer.Exit(EXIT_FAILED_RUN)


def _open_when_there(storage: str, study: str | None, wait: float, stop):
    """The study, once it exists: a worker started together with the `run` that creates it
    asks before it is there. Waits at most `wait` seconds, saying so once; None if stopped."""
    import time

    from fcn_tui.errors import StudyNotFound
    from fcn_tui.studies.store import StudyStore

    deadline = time.monotonic() + wait
    told = False
    while True:
        try:
            return StudyStore.open(storage, study)
        except StudyNotFound as err:
            left = deadline - time.monotonic()
            if left <= 0:
                raise StudyNotFound(f"{err} (waited {wait:g} s)" if wait else str(err)) from None
            if not told:
                print(f"worker: {err}; waiting up to {wait:g} s for it to be created", flush=True)
                told = True
            if stop.event.wait(min(1.0, left)):
                return None


def _safe_records(store) -> list:
    """The study's runs that are not queued, for a closing line (none when the storage is gone)."""
    from fcn_tui.formatting import QUEUED

    try:
        return [r for r in store.records() if r.status != QUEUED]
    except Exception:  # noqa: BLE001 - a lost connection must not turn a finished worker into an error
        return []


@app.command()
def ui(
    preset: Annotated[Path | None, typer.Argument(help="Preset to pre-fill the form with (default: the baseline).")] = None,
    set_: SetOption = None,
    out: OutOption = Path("runs"),
    data_dir: DataDirOption = None,
    confine: Annotated[bool, typer.Option("--confine", hidden=True, help="Dialog paths only inside OUT (set by serve).")] = False,
    storage: Annotated[str | None, typer.Option("--storage", metavar="URL", help="Show this study on the Study tab (F5): postgresql://..., sqlite:///... or a study folder (default: the newest study under OUT).")] = None,
    study: StoredStudyOption = None,
) -> None:
    """Open the terminal app: set up an MLP, train it, watch it learn, compare runs and studies."""
    loaded = load_presets([preset], set_, None)[0] if preset else None
    if loaded is None and set_:
        from fcn_tui.config import Config, Preset, parse_overrides
        from fcn_tui.errors import ConfigError

        try:
            loaded = Preset(config=Config().with_overrides(parse_overrides(set_)))
        except ConfigError as err:
            raise fail(str(err)) from None
    if storage:
        from fcn_tui.errors import StudyError
        from fcn_tui.studies.store import StudyStore

        try:
            StudyStore.open(storage, study)
        except StudyError as err:
            raise fail(str(err)) from None
    from fcn_tui.tui.app import FcnApp

    tui = FcnApp(preset=loaded, out=out, data_dir=data_dir, confine=confine, study=(storage, study))
    tui.run()
    if tui.exit_status:  # 1 after a crash, 128 + N after signal N
        raise typer.Exit(tui.exit_status)


@app.command()
def serve(
    preset: Annotated[Path | None, typer.Argument(metavar="PRESET.toml", help="Preset to pre-fill each tab's form with (default: the baseline).")] = None,
    set_: SetOption = None,
    out: OutOption = Path("runs"),
    data_dir: DataDirOption = None,
    host: Annotated[str, typer.Option("--host", metavar="HOST", help="Address to listen on; not a loopback one only with --allow-remote.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", metavar="PORT", min=0, max=65535, help="Port to listen on (0: any free port).")] = 8000,
    allow_remote: Annotated[bool, typer.Option("--allow-remote", help="Allow a --host that other machines can reach.")] = False,
    max_tabs: Annotated[int | None, typer.Option("--max-tabs", min=1, max=1000, metavar="N", help="Apps (browser tabs) served at once, each a process of ~600 MB; the next tab is asked to close one.")] = None,
) -> None:
    """Serve the app to web browsers: each tab gets the app as `fcn-tui ui` would show it."""
    if preset:
        load_presets([preset], set_, None)
    elif set_:
        from fcn_tui.config import Config, parse_overrides
        from fcn_tui.errors import ConfigError

        try:
            Config().with_values(parse_overrides(set_))
        except ConfigError as err:
            raise fail(str(err)) from None
    from fcn_tui.errors import ServeError
    from fcn_tui.serve import MAX_TABS, check_host
    from fcn_tui.serve import serve as serve_app

    try:
        check_host(host, allow_remote)
    except ServeError as err:
        raise fail(str(err)) from None
    ensure_writable(out)
    try:
        code = serve_app(preset, set_ or [], out, data_dir, host, port, allow_remote, max_tabs=max_tabs or MAX_TABS)
    except ServeError as err:
        raise fail(str(err)) from None
    raise typer.Exit(code)


@app.command()
def export(
    csv_file: Annotated[Path, typer.Option("--csv", help="CSV file to write.")],
    folder: Annotated[Path | None, typer.Argument(help="Folder to search for runs (sweeps included); not with --storage.")] = None,
    per_epoch: Annotated[bool, typer.Option("--per-epoch", help="One row per run and epoch instead of per run.")] = False,
    storage: StorageOption = None,
    study: StoredStudyOption = None,
) -> None:
    """Write every run found under FOLDER, or every run of a study in --storage, to a CSV file."""
    from fcn_tui.errors import KeptFileError, NoRunsError
    from fcn_tui.export import check_export_target, export_csv

    try:
        check_export_target(csv_file)
    except KeptFileError as err:
        raise fail(f"{err}; give another --csv") from None
    records = None
    if storage:
        from fcn_tui.errors import StudyError
        from fcn_tui.studies.store import StudyStore

        try:
            records = StudyStore.open(storage, study).records()
        except StudyError as err:
            raise fail(str(err)) from None
        folder = Path(f"study {study or ''}".strip())
    elif folder is None:
        raise fail("give a FOLDER of runs, or --storage URL --study NAME")
    else:
        check_runs_folder(folder)
    try:
        count = export_csv(folder, csv_file, per_epoch=per_epoch, warn=warn, records=records)
    except (NoRunsError, OSError) as err:
        raise fail(str(err)) from None
    print(f"wrote {count} rows to {csv_file}")


@app.command()
def plot(
    folder: Annotated[Path, typer.Argument(help="Folder to search for runs (sweeps included).")],
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder that receives the PNG figures.")] = Path("figures"),
    data_dir: DataDirOption = None,
) -> None:
    """Draw report figures (PNG) of every run under FOLDER: curves, confusion matrices, mistakes, comparisons."""
    check_runs_folder(folder)
    from fcn_tui.errors import PlotError
    from fcn_tui.plot import plot_folder

    try:
        written = plot_folder(folder, out, warn=warn, data_dir=data_dir)
    except PlotError as err:
        raise fail(str(err)) from None
    except OSError as err:
        raise fail(f"{out}: cannot write the figures ({err.strerror or err})") from None
    for path in written:
        print(path)
    print(f"wrote {len(written)} figures to {out}")


AS_PROCESS = {"yes": False}  # set by `entry`: this interpreter is the fcn-tui process, not a test calling `app`


def entry() -> None:
    AS_PROCESS["yes"] = True
    app()
