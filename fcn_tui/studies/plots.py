"""`fcn-tui plot`'s figures of a study as a whole, read from its Optuna journal:

- `optimization_history.png`  validation accuracy of each run in the order the runs were
                              claimed, the best so far as a line, pruned and failed runs marked;
- `param_importances.png`     how much of the variation in validation accuracy each swept or
                              searched setting explains (Optuna's fANOVA evaluator), for a
                              study with at least two completed runs and a setting that varies.

They go to `OUT/<study name>/` beside the per-run figures (`fcn_tui.plot`). A journal that cannot
be read is reported with `warn` and skipped. Imports matplotlib only through the caller's `plt`, and Optuna only through the store.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from fcn_tui.errors import StudyError
from fcn_tui.runs import study_folder_name
from fcn_tui.studies.store import JOURNAL, Outcome, StudyStore


def find_studies(folder: Path) -> list[Path]:
    """Study folders (holding a journal) under `folder`, never through a link."""
    return sorted(j.parent for j in Path(folder).rglob(JOURNAL) if not j.is_symlink() and not j.parent.is_symlink())


def plot_studies(plt, folder: Path, out: Path, save: Callable, warn: Callable[[str], None]) -> list[Path]:
    written: list[Path] = []
    for study_folder in find_studies(folder):
        try:
            store = StudyStore.open(study_folder)
            runs = store.history()
        except (StudyError, OSError, ValueError) as err:
            warn(f"{study_folder}: its journal cannot be read ({err}); its study figures are skipped")
            continue
        target = Path(out) / study_folder_name(store.name)
        scored = [r for r in runs if r.value is not None or r.last is not None]
        if len(scored) < 2:
            continue
        target.mkdir(parents=True, exist_ok=True)
        written.append(plot_history(plt, store.name, runs, target / "optimization_history.png", save))
        path = plot_importances(plt, store, target / "param_importances.png", save, warn)
        if path is not None:
            written.append(path)
    return written


def _score(run: Outcome) -> float | None:
    if run.value is not None:
        return 100 * run.value
    if run.last is not None:  # pruned or stopped: its last validation accuracy
        return 100 * run.last
    return None


def plot_history(plt, name: str, ordered: list[Outcome], path: Path, save: Callable) -> Path:
    """`ordered`: the runs in the order they started (`StudyStore.history`)."""
    fig, ax = plt.subplots(figsize=(7, 4))
    best, best_line = None, []
    for kind, marker, color in (("completed", "o", "tab:blue"), ("pruned", "x", "tab:orange"),
                                ("other", "s", "tab:gray")):
        xs, ys = [], []
        for i, t in enumerate(ordered, start=1):
            status = t.status
            group = status if status in ("completed", "pruned") else "other"
            if group == kind and (score := _score(t)) is not None:
                xs.append(i)
                ys.append(score)
        if xs:
            ax.scatter(xs, ys, marker=marker, color=color, label=kind if kind != "other" else "stopped / failed", zorder=3)
    for i, t in enumerate(ordered, start=1):
        if t.status == "completed" and t.value is not None:
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
    complete = store.completed_params()
    varying = {k for k in (complete[0] if complete else {}) if len({repr(params.get(k)) for params in complete}) > 1}
    if len(complete) < 2 or not varying:
        return None
    if len(varying) == 1:  # importances sum to 1: a lone setting's bar would say 1.00 whatever the runs did
        if warn is not None:
            warn(f"{store.name}: param_importances.png skipped: only {next(iter(varying))} varies, "
                 "and a single setting's importance is 1.00 by definition")
        return None
    importances = store.param_importances(sorted(varying))
    if importances is None:  # e.g. a setting that was not searched in every run
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

