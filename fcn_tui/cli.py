"""The `fcn-tui` command (Typer). No command opens the terminal app (`fcn-tui --out DIR` is
`fcn-tui ui --out DIR`).

    fcn-tui run PRESET.toml [PRESET.toml ...] [--set KEY=VALUE ...] [--out DIR] [--data-dir DIR]
                [--device D] [--resume]
    fcn-tui ui [PRESET.toml] [--set KEY=VALUE ...] [--out DIR] [--data-dir DIR]
    fcn-tui serve [PRESET.toml] [--set KEY=VALUE ...] [--out DIR] [--data-dir DIR] [--host H] [--port P]
                  [--allow-remote]
    fcn-tui export DIR --csv FILE [--per-epoch]
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
from typing import Annotated

import typer
from typer.core import TyperGroup
from typer.exceptions import TyperException


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
    from fcn_tui.config import Config, ConfigError, load_preset, parse_overrides

    try:
        values = parse_overrides(overrides or [])
        if device:
            Config().with_values({"train.device": device}, "--device")  # an error names --device
            values["train.device"] = device
        return [load_preset(p, values) for p in paths]
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


@app.command()
def run(
    presets: Annotated[list[Path], typer.Argument(metavar="PRESET.toml", help="Preset files (TOML); a [sweep] table runs every combination.")],
    set_: SetOption = None,
    out: OutOption = Path("runs"),
    data_dir: DataDirOption = None,
    device: Annotated[str | None, typer.Option("--device", metavar="DEVICE", help="auto, cpu, cuda, cuda:N or mps.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Skip runs already completed with the same configuration in OUT; continue stopped or interrupted ones from their last completed epoch.")] = False,
) -> None:
    """Train the runs of one or more presets headlessly, writing each to OUT."""
    loaded = load_presets(presets, set_, device)
    check_out(out)  # created only once everything below has been checked
    from rich.markup import escape  # user text (names, paths, errors) is never read as markup

    from fcn_tui.console import Reporter
    from fcn_tui.data import DataError, load_fashion_mnist, make_split
    from fcn_tui.engine import DeviceError, Trainer, resolve_device
    from fcn_tui.memory import MemoryCheckError, check_fits, dataset_sizes
    from fcn_tui.queue import plan
    from fcn_tui.runs import RunWriteError, mark_failed, read_run, record_run
    from fcn_tui.signals import StopOnSignals
    from fcn_tui.study import write_results

    try:  # every device and every run's memory up front, before the data is read or a folder made
        devices = {name: resolve_device(name) for name in {run.train.device for p in loaded for run in p.runs()}}
        for cfg in (run for p in loaded for run in p.runs()):
            try:
                check_fits(cfg, devices[cfg.train.device], *dataset_sizes(cfg))
            except MemoryCheckError as err:
                raise fail(f"{cfg.name}: {err}") from None
    except DeviceError as err:
        raise fail(str(err)) from None
    reporter = Reporter()
    try:
        data = load_fashion_mnist(data_dir)
    except DataError as err:
        raise fail(str(err)) from None
    reporter.print(escape(f"data: {data.source}: {data.verdict}"))
    groups = plan(loaded, out, resume=resume)
    total = sum(len(g.runs) for g in groups)
    reporter.start_study(total)
    splits: dict[tuple, object] = {}
    try:  # every split up front: a bad one is bad input, found before any run folder exists
        for cfg in (p.config for g in groups for p in g.runs if not p.skip):
            key = (cfg.train.val_fraction, cfg.train.seed, cfg.data.subset)
            if key not in splits:
                splits[key] = make_split(data, *key)
    except DataError as err:
        raise fail(str(err)) from None
    ensure_writable(out)
    any_failed = False
    position = 0
    with StopOnSignals() as stop:
        for group in groups:
            for planned in group.runs:
                position += 1
                if stop.is_set():
                    break
                if planned.skip:
                    reporter.skip_run(position, planned.config.name, planned.run_dir)
                    continue
                cfg = planned.config
                key = (cfg.train.val_fraction, cfg.train.seed, cfg.data.subset)
                try:
                    if key not in splits:
                        splits[key] = make_split(data, *key)
                    state, cannot_continue = planned.checkpoint(devices[cfg.train.device].type)
                    trainer = Trainer(cfg, splits[key], should_stop=stop.is_set, resume_from=state)
                except (DataError, DeviceError) as err:
                    raise fail(str(err)) from None
                reporter.start_run(position, cfg.name)
                if cannot_continue:
                    reporter.print(escape(f"  cannot continue the earlier attempt ({cannot_continue}): a new folder"))
                try:
                    run_dir = planned.make_dir()
                    for event in record_run(trainer, run_dir):
                        reporter.handle(event)
                        if getattr(event, "status", None) == "failed":
                            any_failed = True
                except RunWriteError as err:
                    reporter.close()
                    reporter.print(f"[red]error[/]: {escape(str(err))}")
                    any_failed = True
                    if planned.run_dir is None:
                        break
                except Exception as err:  # noqa: BLE001 - one broken run must not end the study
                    reporter.close()
                    reporter.print(f"[red]error[/]: {escape(f'{cfg.name} failed: {type(err).__name__}: {err}')}")
                    any_failed = True
                    if planned.run_dir is not None:
                        mark_failed(planned.run_dir, f"{type(err).__name__}: {err}")
            if group.is_sweep and group.sweep_dir is not None:
                records = group.records()
                try:
                    csv_path, md_path = write_results(group.sweep_dir, records, group.name, group.preset)
                    reporter.print(escape(f"results: {csv_path} and {md_path.name}"))
                except RunWriteError as err:
                    reporter.print(f"[red]error[/]: {escape(str(err))}")
                    any_failed = True
                from fcn_tui.tables import comparison_table

                reporter.print(comparison_table(records, group.preset))
            if stop.is_set():
                break
        reporter.close()
        done = [r for g in groups for p in g.runs if p.run_dir is not None and (r := read_run(p.run_dir))]
        if done:
            reporter.summary_table(done)
    if stop.exit_code is not None:
        raise typer.Exit(stop.exit_code)
    if any_failed:
        raise typer.Exit(EXIT_FAILED_RUN)


@app.command()
def ui(
    preset: Annotated[Path | None, typer.Argument(help="Preset to pre-fill the form with (default: the baseline).")] = None,
    set_: SetOption = None,
    out: OutOption = Path("runs"),
    data_dir: DataDirOption = None,
    confine: Annotated[bool, typer.Option("--confine", hidden=True, help="Dialog paths only inside OUT (set by serve).")] = False,
) -> None:
    """Open the terminal app: set up an MLP, train it, watch it learn, compare runs."""
    loaded = load_presets([preset], set_, None)[0] if preset else None
    if loaded is None and set_:
        from fcn_tui.config import Config, ConfigError, Preset, parse_overrides

        try:
            loaded = Preset(config=Config().with_overrides(parse_overrides(set_)))
        except ConfigError as err:
            raise fail(str(err)) from None
    from fcn_tui.tui.app import FcnApp

    tui = FcnApp(preset=loaded, out=out, data_dir=data_dir, confine=confine)
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
) -> None:
    """Serve the app to web browsers: each tab gets the app as `fcn-tui ui` would show it."""
    if preset:
        load_presets([preset], set_, None)
    elif set_:
        from fcn_tui.config import Config, ConfigError, parse_overrides

        try:
            Config().with_values(parse_overrides(set_))
        except ConfigError as err:
            raise fail(str(err)) from None
    from fcn_tui.serve import ServeError, check_host
    from fcn_tui.serve import serve as serve_app

    try:
        check_host(host, allow_remote)
    except ServeError as err:
        raise fail(str(err)) from None
    ensure_writable(out)
    try:
        code = serve_app(preset, set_ or [], out, data_dir, host, port, allow_remote)
    except ServeError as err:
        raise fail(str(err)) from None
    raise typer.Exit(code)


@app.command()
def export(
    folder: Annotated[Path, typer.Argument(help="Folder to search for runs (sweeps included).")],
    csv_file: Annotated[Path, typer.Option("--csv", help="CSV file to write.")],
    per_epoch: Annotated[bool, typer.Option("--per-epoch", help="One row per run and epoch instead of per run.")] = False,
) -> None:
    """Write every run found under FOLDER to a CSV file."""
    from fcn_tui.export import NoRunsError, export_csv

    check_runs_folder(folder)
    try:
        count = export_csv(folder, csv_file, per_epoch=per_epoch, warn=warn)
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
    from fcn_tui.plot import PlotError, plot_folder

    try:
        written = plot_folder(folder, out, warn=warn, data_dir=data_dir)
    except PlotError as err:
        raise fail(str(err)) from None
    except OSError as err:
        raise fail(f"{out}: cannot write the figures ({err.strerror or err})") from None
    for path in written:
        print(path)
    print(f"wrote {len(written)} figures to {out}")


def entry() -> None:
    app()
