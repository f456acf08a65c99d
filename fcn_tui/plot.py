"""`fcn-tui plot`: report figures (PNG) of every run under a folder.

Runs are grouped by study (a sweep folder holding `sweep.toml`; runs outside a sweep form the
group `runs`). For each group, under `OUT/<group>/`:
- `<run id>-curves.png`     per run: train and validation loss, train and validation accuracy per epoch;
- `<run id>-confusion.png`  per run with a `confusion.csv`: the test confusion matrix as a heatmap;
- `<run id>-mistakes.png`   per run with a `predictions.npz`: its most confident mistakes (image,
                            true -> predicted class, probability), which needs the test images
                            (`--data-dir`, else $FCN_TUI_DATA or the cache; never downloaded here);
- `loss.png`                train (solid) vs validation (dashed) loss of all its runs, to show over-fitting;
- `val_acc.png`             validation accuracy per epoch of all its runs;
- `val_acc_heatmap.png`     for a sweep of exactly two settings: validation accuracy per pair
                            (mean over seeds when the seed is swept too).
A study folder (an Optuna journal) also gets `optimization_history.png` and
`param_importances.png` (`fcn_tui.studies.plots`).
The last three need at least two runs. A run folder that cannot be read back (`unreadable`)
or a damaged `confusion.csv` or `predictions.npz` is skipped with a one-line warning; the other
figures are still written. Each PNG goes to a fresh temporary file renamed into place (never through a link).
matplotlib (Agg backend) is imported only here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from fcn_tui import events as ev
from fcn_tui.errors import DataError, PlotError, UnreadableFile
from fcn_tui.fashion import CLASS_NAMES, IMAGE_SIDE
from fcn_tui.fileio import atomic_write
from fcn_tui.formatting import percent, setting_label
from fcn_tui.runs import RunRecord, find_runs, is_study_folder, read_confusion, slug, study_preset
from fcn_tui.study import Comparison, compare, varying_keys

DPI = 110  # ~700-1000 px wide figures: sharp in a report, PNGs well under 200 KB
FONT_SIZE = 10
LEGEND_ROWS = 16  # a one-column legend beside the axes up to this many entries, two columns beyond
MISTAKES_ROWS, MISTAKES_COLS = 3, 6  # 18 images: the worst mistakes, each still large enough to read


@dataclass
class StudyGroup:
    """The runs of one study folder (or the loose runs) with what is needed to label them."""

    label: str
    records: list[RunRecord]
    comparison: Comparison
    run_labels: dict[str, str]  # run id -> legend label


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plt.rcParams.update({"font.size": FONT_SIZE, "axes.titlesize": FONT_SIZE + 1, "legend.fontsize": FONT_SIZE - 1})
    return plt


def study_groups(folder: Path, warn: Callable[[str], None] | None = None) -> list[StudyGroup]:
    """The runs under `folder`, grouped by study folder, in the order they ran; `unreadable`
    ones are left out (`warn` gets one line for each)."""
    records = []
    for record in find_runs(folder):
        if record.status == ev.UNREADABLE:
            if warn is not None:
                warn(f"{record.path}: unreadable, skipped: {record.reason}")
            continue
        records.append(record)
    by_parent: dict[Path, list[RunRecord]] = {}
    for record in records:
        parent = record.path.parent
        key = parent if is_study_folder(parent) else Path("")
        by_parent.setdefault(key, []).append(record)
    groups = []
    names = []
    for parent, recs in by_parent.items():
        preset = study_preset(parent) if parent != Path("") else None
        name = preset.config.name if preset is not None else (parent.name or "runs")
        names.append(name)
        comparison = compare(recs, preset, title=name)
        keys = varying_keys(recs, preset)
        labels = {}
        for r in recs:
            label = ", ".join(f"{k}={setting_label(r.config.get(k))}" for k in keys) if keys and r.config else r.name
            labels[r.run_id] = label if r.status == ev.COMPLETED else f"{label} ({r.status})"
        groups.append(StudyGroup(label=name, records=recs, comparison=comparison, run_labels=labels))
    for group, parent in zip(groups, by_parent):
        if names.count(group.label) > 1 and parent != Path(""):
            group.label = parent.name  # two studies of the same preset: keep them apart
    return groups


def _finite(xs: list[float], ys: list[float]) -> tuple[list[float], list[float]]:
    pairs = [(x, y) for x, y in zip(xs, ys) if math.isfinite(y)]
    return [p[0] for p in pairs], [p[1] for p in pairs]


def _loss_scale(ax, values: list[float]) -> None:
    """Log scale when losses span more than a factor of 30 (an unstable run next to good ones)."""
    finite = [v for v in values if math.isfinite(v) and v > 0]
    if finite and max(finite) / min(finite) > 30:
        ax.set_yscale("log")


def _colors(plt, n: int) -> list:
    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    try:
        # the figure's own artists and every legend, also one kept out of the layout (`_legend_beside`)
        artists = fig.get_default_bbox_extra_artists() + [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None]
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=DPI, bbox_inches="tight", bbox_extra_artists=artists))
    finally:
        plt.close(fig)
    return path


def plot_curves(plt, record: RunRecord, label: str, path: Path) -> Path:
    """Loss and accuracy per epoch of one run."""
    epochs = [m["epoch"] for m in record.metrics]
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.6))
    for key, style, name in (("train_loss", "-", "train"), ("val_loss", "--", "validation")):
        ax_loss.plot(*_finite(epochs, [m[key] for m in record.metrics]), style, marker=".", label=name)
    _loss_scale(ax_loss, [m[k] for m in record.metrics for k in ("train_loss", "val_loss")])
    ax_loss.set(xlabel="epoch", ylabel="cross-entropy loss", title="loss")
    for key, style, name in (("train_acc", "-", "train"), ("val_acc", "--", "validation")):
        ax_acc.plot(*_finite(epochs, [100 * m[key] for m in record.metrics]), style, marker=".", label=name)
    ax_acc.set(xlabel="epoch", ylabel="accuracy (%)", title="accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        ax.legend()
        _whole_epochs(ax)
    fig.suptitle(label, fontsize=FONT_SIZE + 1)
    return _save(plt, fig, path)


def _whole_epochs(ax) -> None:
    """Epoch axes tick at whole epochs only (never 1.2, 1.4 on a 2-epoch run)."""
    from matplotlib.ticker import MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))  # one epoch: a single tick


def _legend_beside(ax, extra=None) -> None:
    """The runs' legend to the right of the axes, outside them: however many runs there are it
    covers neither the curves nor the epoch label (the saved figure grows to hold it)."""
    handles, labels = ax.get_legend_handles_labels()
    if extra:
        handles, labels = handles + extra[0], labels + extra[1]
    ncol = 1 if len(labels) <= LEGEND_ROWS else 2
    legend = ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), ncol=ncol, frameon=False)
    legend.set_in_layout(False)  # tight_layout keeps the axes their size; savefig's tight box takes the legend in


def plot_loss(plt, group: StudyGroup, path: Path) -> Path:
    """Train (solid) and validation (dashed) loss per epoch, one colour per run."""
    from matplotlib.lines import Line2D

    runs = [r for r in group.records if r.metrics]
    fig, ax = plt.subplots(figsize=(8, 4.2))
    values = []
    for record, color in zip(runs, _colors(plt, len(runs))):
        epochs = [m["epoch"] for m in record.metrics]
        train = [m["train_loss"] for m in record.metrics]
        val = [m["val_loss"] for m in record.metrics]
        values += train + val
        ax.plot(*_finite(epochs, train), "-", color=color, label=group.run_labels[record.run_id])
        ax.plot(*_finite(epochs, val), "--", color=color)
    _loss_scale(ax, values)
    ax.set(xlabel="epoch", ylabel="cross-entropy loss", title=f"{group.label}: train (solid) vs validation (dashed) loss")
    ax.grid(alpha=0.3)
    styles = [Line2D([], [], color="black", ls="-"), Line2D([], [], color="black", ls="--")]
    _whole_epochs(ax)
    _legend_beside(ax, extra=(styles, ["train", "validation"]))
    return _save(plt, fig, path)


def plot_val_acc(plt, group: StudyGroup, path: Path) -> Path:
    """Validation accuracy per epoch, one line per run."""
    runs = [r for r in group.records if r.metrics]
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for record, color in zip(runs, _colors(plt, len(runs))):
        epochs = [m["epoch"] for m in record.metrics]
        acc = [100 * m["val_acc"] for m in record.metrics]
        ax.plot(*_finite(epochs, acc), "-", marker=".", color=color, label=group.run_labels[record.run_id])
    ax.set(xlabel="epoch", ylabel="validation accuracy (%)", title=f"{group.label}: validation accuracy")
    ax.grid(alpha=0.3)
    _whole_epochs(ax)
    _legend_beside(ax)
    return _save(plt, fig, path)


def plot_heatmap(plt, comparison: Comparison, path: Path) -> Path:
    """Validation accuracy (%) of a two-key sweep; cells without a completed run show their status."""
    row_key, col_key = comparison.keys
    rows, cols = comparison.values[row_key], comparison.values[col_key]
    grid, texts = [], []
    for row in rows:
        grid_row, text_row = [], []
        for col in cols:
            group = comparison.cell(row, col)
            stat = group.stat("val_acc") if group else None
            grid_row.append(100 * stat.mean if stat else math.nan)
            text_row.append(group.text("val_acc") if group else "-")
        grid.append(grid_row)
        texts.append(text_row)
    fig, ax = plt.subplots(figsize=(2.5 + 1.5 * len(cols), 1.8 + 0.7 * len(rows)))
    cmap = plt.get_cmap("viridis").with_extremes(bad="#d0d0d0")  # grey: no completed run
    image = ax.imshow(grid, cmap=cmap, aspect="auto")
    finite = [v for r in grid for v in r if math.isfinite(v)]
    middle = (min(finite) + max(finite)) / 2 if finite else 0
    for i, text_row in enumerate(texts):
        for j, text in enumerate(text_row):
            value = grid[i][j]
            color = "black" if not math.isfinite(value) or value > middle else "white"
            ax.text(j, i, text.replace(" ± ", "\n± "), ha="center", va="center", color=color)
    ax.set_xticks(range(len(cols)), [setting_label(c) for c in cols])
    ax.set_yticks(range(len(rows)), [setting_label(r) for r in rows])
    ax.set(xlabel=col_key, ylabel=row_key)
    title = f"{comparison.title}: validation accuracy (%)"
    if comparison.seeds:
        title += f", mean over {len(comparison.seeds)} seeds"
    ax.set_title(title)
    fig.colorbar(image, ax=ax, label="validation accuracy (%)")
    return _save(plt, fig, path)


def plot_confusion(plt, record: RunRecord, label: str, path: Path,
                   matrix_file: tuple[list[str], list[list[int]]] | None = None) -> Path:
    """The test confusion matrix: counts in each cell, colour by share of the true class."""
    classes, matrix = matrix_file or read_confusion(record.path / "confusion.csv")
    shares = [[v / max(1, sum(row)) for v in row] for row in matrix]
    fig, ax = plt.subplots(figsize=(7, 6))
    image = ax.imshow(shares, cmap="Blues", vmin=0, vmax=1)
    for i, row in enumerate(matrix):
        for j, count in enumerate(row):
            ax.text(j, i, str(count), ha="center", va="center", fontsize=FONT_SIZE - 2,
                    color="white" if shares[i][j] > 0.5 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set(xlabel="predicted class", ylabel="true class")
    acc = record.get("test_acc")
    suffix = f" (test accuracy {percent(acc, '%')})" if isinstance(acc, (int, float)) else ""
    ax.set_title(f"{label}\ntest confusion matrix{suffix}")
    fig.colorbar(image, ax=ax, label="share of the true class")
    return _save(plt, fig, path)


def plot_mistakes(plt, label: str, path: Path, predictions, images) -> Path:
    """The most confident mistakes: each test image with its true and predicted class and the
    probability given to the predicted class, most confident first."""
    import numpy as np


    wrong = np.flatnonzero(predictions.true != predictions.predicted)
    confidence = predictions.probs[wrong, predictions.predicted[wrong]].astype(np.float32)
    worst = wrong[np.lexsort((wrong, -confidence))][:MISTAKES_ROWS * MISTAKES_COLS]
    fig, axes = plt.subplots(MISTAKES_ROWS, MISTAKES_COLS, figsize=(1.7 * MISTAKES_COLS, 2.4 * MISTAKES_ROWS))
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, i in zip(axes.flat, worst.tolist()):
        true, predicted = int(predictions.true[i]), int(predictions.predicted[i])
        ax.imshow(images[i].reshape(IMAGE_SIDE, IMAGE_SIDE), cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(f"{CLASS_NAMES[true]} →\n{CLASS_NAMES[predicted]} {percent(float(predictions.probs[i, predicted]), '%', 0)}",
                     fontsize=FONT_SIZE - 2)
    total = len(predictions.true)
    if len(wrong):
        fig.suptitle(f"{label}\nmost confident mistakes: {len(wrong):,} of {total:,} test images wrong "
                     "(true → predicted, probability)", fontsize=FONT_SIZE)
    else:
        fig.suptitle(f"{label}\nno mistakes on the {total:,} test images", fontsize=FONT_SIZE)
    return _save(plt, fig, path)


class LazyTestImages:
    """The test images, loaded once and only when a run has predictions to draw."""

    def __init__(self, data_dir: Path | None) -> None:
        self.data_dir = data_dir
        self.loaded: tuple | None = None
        self.problem = ""

    def get(self) -> tuple | None:
        if self.loaded is None and not self.problem:
            from fcn_tui.data import load_fashion_mnist, resolve_data_dir

            try:
                data = load_fashion_mnist(resolve_data_dir(self.data_dir), download_missing=False)
                self.loaded = data.test_images.numpy(), data.test_labels.numpy()
            except DataError as err:
                self.problem = str(err)
        return self.loaded


def _mistakes_figure(plt, record: RunRecord, label: str, path: Path, test: LazyTestImages,
                     warn: Callable[[str], None]) -> Path | None:
    from fcn_tui.predictions import check_test_set, read_predictions

    predictions, problem = read_predictions(record.path)
    if predictions is None:
        warn(f"{record.path}: {problem}; its mistakes figure is skipped")
        return None
    loaded = test.get()
    if loaded is None:
        return None  # said once, by plot_folder
    problem = check_test_set(predictions, loaded[1])
    if problem:
        warn(f"{record.path}: {problem}; its mistakes figure is skipped")
        return None
    return plot_mistakes(plt, label, path, predictions, loaded[0])


def plot_folder(folder: Path, out: Path, warn: Callable[[str], None] | None = None,
                data_dir: Path | None = None) -> list[Path]:
    """Write every figure for the runs under `folder` into `out`; return the paths written.
    `warn` gets one line for each run or file skipped; `data_dir` holds the test images."""
    from fcn_tui.predictions import PREDICTIONS

    warn = warn or (lambda message: None)
    test = LazyTestImages(data_dir)
    groups = study_groups(Path(folder), warn)
    if not groups:
        raise PlotError(f"{folder}: no runs found (expected run folders with config.toml or summary.json)")
    plt = _pyplot()
    written = []
    for group in groups:
        target = Path(out) / slug(group.label)
        target.mkdir(parents=True, exist_ok=True)
        for record in group.records:
            label = group.run_labels[record.run_id]
            if record.metrics:
                written.append(plot_curves(plt, record, label, target / f"{record.run_id}-curves.png"))
            if (record.path / PREDICTIONS).exists() or (record.path / PREDICTIONS).is_symlink():
                figure = _mistakes_figure(plt, record, label, target / f"{record.run_id}-mistakes.png", test, warn)
                written += [figure] if figure else []
            if (record.path / "confusion.csv").is_file():
                try:
                    matrix_file = read_confusion(record.path / "confusion.csv")
                except UnreadableFile as err:
                    warn(f"{record.path}: {err}; its confusion figure is skipped")
                    continue
                written.append(plot_confusion(plt, record, label, target / f"{record.run_id}-confusion.png", matrix_file))
        if sum(1 for r in group.records if r.metrics) >= 2:
            written.append(plot_loss(plt, group, target / "loss.png"))
            written.append(plot_val_acc(plt, group, target / "val_acc.png"))
        if group.comparison.is_pivot:
            written.append(plot_heatmap(plt, group.comparison, target / "val_acc_heatmap.png"))
    if test.problem:
        warn(f"mistakes figures skipped: no test images ({test.problem})")
    from fcn_tui.studies.plots import plot_studies

    written += plot_studies(plt, Path(folder), Path(out), _save, warn)
    return written
