"""`fcn-tui plot`'s figures of a study as a whole, read from its Optuna journal:

- `optimization_history.png`  validation accuracy of each run in the order the runs were
                              claimed, the best so far as a line, pruned and failed runs marked;
- `param_importances.png`     how much of the variation in validation accuracy each swept or
                              searched setting explains (Optuna's fANOVA evaluator), for a
                              study with at least two completed runs and a setting that varies.

They go to `OUT/<study name>/` beside the per-run figures (`fcn_tui.plot`). A journal that cannot
be read is reported with `warn` and skipped. Imports matplotlib only through the caller's `plt`.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fcn_tui.errors import StudyError
from fcn_tui.runs import study_folder_name
from fcn_tui.studies.store import JOURNAL, StudyStore, run_status


def find_studies(folder: Path) -> list[Path]:
    """Study folders (holding a journal) under `folder`, never through a link."""
    return sorted(j.parent for j in Path(folder).rglob(JOURNAL) if not j.is_symlink() and not j.parent.is_symlink())


def plot_studies(plt, folder: Path, out: Path, save: Callable, warn: Callable[[str], None]) -> list[Path]:
    written: list[Path] = []
    for study_folder in find_studies(folder):
        try:
            store = StudyStore.open(study_folder)
            trials = [t for t in store.latest_runs() if t.state.name != "WAITING"]
        except (StudyError, OSError, ValueError) as err:
            warn(f"{study_folder}: its journal cannot be read ({err}); its study figures are skipped")
            continue
        target = Path(out) / study_folder_name(store.name)
        scored = [t for t in trials if t.value is not None or t.intermediate_values]
        if len(scored) < 2:
            continue
        target.mkdir(parents=True, exist_ok=True)
        written.append(plot_history(plt, store.name, trials, target / "optimization_history.png", save))
        path = plot_importances(plt, store, target / "param_importances.png", save, warn)
        if path is not None:
            written.append(path)
    return written


def _score(trial) -> float | None:
    if trial.value is not None:
        return 100 * trial.value
    if trial.intermediate_values:  # pruned or stopped: its last validation accuracy
        return 100 * trial.intermediate_values[max(trial.intermediate_values)]
    return None


def plot_history(plt, name: str, trials: list, path: Path, save: Callable) -> Path:
    ordered = sorted(trials, key=lambda t: t.datetime_start or t.datetime_complete or 0)
    fig, ax = plt.subplots(figsize=(7, 4))
    best, best_line = None, []
    for kind, marker, color in (("completed", "o", "tab:blue"), ("pruned", "x", "tab:orange"),
                                ("other", "s", "tab:gray")):
        xs, ys = [], []
        for i, t in enumerate(ordered, start=1):
            status = run_status(t)
            group = status if status in ("completed", "pruned") else "other"
            if group == kind and (score := _score(t)) is not None:
                xs.append(i)
                ys.append(score)
        if xs:
            ax.scatter(xs, ys, marker=marker, color=color, label=kind if kind != "other" else "stopped / failed", zorder=3)
    for i, t in enumerate(ordered, start=1):
        if run_status(t) == "completed" and t.value is not None:
            best = max(best or 0.0, 100 * t.value)
        best_line.append(best)
    if any(b is not None for b in best_line):
        ax.step(range(1, len(ordered) + 1), best_line, where="post", color="tab:green", label="best so far")
    ax.set_xlabel("run, in the order the runs started")
    ax.set_ylabel("validation accuracy %")
    ax.set_title(f"{name}: optimisation history")
    ax.grid(alpha=0.3)
    ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=4, fontsize="small", frameon=False)  # hides no point
    return save(plt, fig, path)


def plot_importances(plt, store: StudyStore, path: Path, save: Callable,
                     warn: Callable[[str], None] | None = None) -> Path | None:
    import optuna

    complete = [t for t in store.trials() if t.state.name == "COMPLETE" and t.params]
    varying = {k for k in (complete[0].params if complete else {}) if len({repr(t.params.get(k)) for t in complete}) > 1}
    if len(complete) < 2 or not varying:
        return None
    if len(varying) == 1:  # importances sum to 1: a lone setting's bar would say 1.00 whatever the runs did
        if warn is not None:
            warn(f"{store.name}: param_importances.png skipped: only {next(iter(varying))} varies, "
                 "and a single setting's importance is 1.00 by definition")
        return None
    try:
        importances = optuna.importance.get_param_importances(store.study, params=sorted(varying))
    except (ValueError, RuntimeError):  # e.g. a setting that was not searched in every run
        return None
    keys = list(importances)[::-1]
    fig, ax = plt.subplots(figsize=(8, 1.6 + 0.5 * len(keys)))
    ax.barh(keys, [importances[k] for k in keys], color="tab:blue")
    for y, k in enumerate(keys):
        ax.text(importances[k], y, f" {importances[k]:.2f}", va="center", fontsize="small")
    ax.set_xlabel("importance for validation accuracy (fANOVA, sums to 1)")
    ax.set_title(f"{store.name}: setting importances over {len(complete)} completed runs")
    ax.set_xlim(0, 1.15)  # importances sum to 1; room for the labels
    return save(plt, fig, path)

