"""`fcn-tui plot` (and the sweep it draws): a tiny 2x2 study on synthetic data, then every figure."""

import pytest
from typer.testing import CliRunner

from fcn_tui.cli import app

runner = CliRunner()

SWEEP_2x2 = """
name = "grid"

[model]
hidden = [16]

[optim]
name = "adam"
lr = 0.01

[train]
epochs = 1
batch_size = 64
device = "cpu"

[sweep]
"optim.name" = ["sgd", "adam"]
"model.dropout" = [0.0, 0.5]
"""

RUN_IDS = [
    "001-optim.name=sgd,model.dropout=0.0", "002-optim.name=sgd,model.dropout=0.5",
    "003-optim.name=adam,model.dropout=0.0", "004-optim.name=adam,model.dropout=0.5",
]


@pytest.fixture(scope="module")
def study(tmp_path_factory, synthetic_data_dir):
    """A finished 2x2 sweep (1 epoch each) and what `fcn-tui run` printed."""
    root = tmp_path_factory.mktemp("study")
    preset = root / "grid.toml"
    preset.write_text(SWEEP_2x2)
    result = runner.invoke(app, ["run", str(preset), "--data-dir", str(synthetic_data_dir), "--out", str(root / "out")])
    assert result.exit_code == 0, result.output
    return root / "out", result.output


def test_a_two_key_sweep_prints_the_pivot_and_writes_its_results(study):
    out, printed = study
    [sweep_dir] = list(out.iterdir())
    assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == RUN_IDS
    assert {"results.csv", "results.md", "sweep.toml"} <= {p.name for p in sweep_dir.iterdir()}
    assert "optim.name \\ model.dropout" in printed
    md = (sweep_dir / "results.md").read_text()
    assert "| optim.name \\ model.dropout | 0.0 | 0.5 |" in md
    [adam_row] = [line for line in md.splitlines() if line.startswith("| adam |")]
    assert adam_row.count(" / ") == 2  # validation / test accuracy in both cells


def test_plot_writes_every_figure_of_the_study(study, tmp_path, synthetic_data_dir):
    out, _ = study
    figures = tmp_path / "figures"
    result = runner.invoke(app, ["plot", str(out), "--out", str(figures), "--data-dir", str(synthetic_data_dir)])
    assert result.exit_code == 0, result.output
    expected = {f"{run_id}-{kind}.png" for run_id in RUN_IDS for kind in ("curves", "confusion", "mistakes")}
    expected |= {"loss.png", "val_acc.png", "val_acc_heatmap.png"}
    expected |= {"optimization_history.png", "param_importances.png"}  # from the study's journal
    written = {p.name for p in (figures / "grid").iterdir()}
    assert written == expected
    for path in (figures / "grid").iterdir():
        data = path.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and 5_000 < len(data) < 200_000
        assert str(path) in result.output
    assert result.output.strip().splitlines()[-1] == f"wrote {len(expected)} figures to {figures}"


def test_plot_of_a_folder_without_runs_is_one_clear_error(tmp_path):
    result = runner.invoke(app, ["plot", str(tmp_path), "--out", str(tmp_path / "figures")])
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [
        f"fcn-tui: error: {tmp_path}: no runs found (expected run folders with config.toml or summary.json)"
    ]
    assert not (tmp_path / "figures").exists()


def test_matplotlib_is_imported_only_by_the_plot_command():
    import subprocess
    import sys

    code = (
        "import sys, fcn_tui.cli, fcn_tui.study, fcn_tui.tables, fcn_tui.export, fcn_tui.plot;"
        "print('matplotlib' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_a_damaged_predictions_file_or_missing_test_images_skip_only_the_mistakes_figure(study, tmp_path,
                                                                                          synthetic_data_dir):
    import shutil

    out, _ = study
    runs = tmp_path / "runs"
    shutil.copytree(next(out.glob(f"*/{RUN_IDS[1]}")), runs / RUN_IDS[1])
    (runs / RUN_IDS[1] / "predictions.npz").write_bytes(b"PK\x03\x04 not really a zip")
    result = runner.invoke(app, ["plot", str(runs), "--out", str(tmp_path / "a"), "--data-dir", str(synthetic_data_dir)])
    assert result.exit_code == 0, result.output
    written = {p.name for p in (tmp_path / "a" / "runs").iterdir()}
    assert written == {f"{RUN_IDS[1]}-curves.png", f"{RUN_IDS[1]}-confusion.png"}  # the good run's: see above
    assert "predictions.npz is damaged or not ours (BadZipFile); its mistakes figure is skipped" in result.stderr

    shutil.copy(next(out.glob(f"*/{RUN_IDS[1]}/predictions.npz")), runs / RUN_IDS[1])  # sound again
    result = runner.invoke(app, ["plot", str(runs), "--out", str(tmp_path / "b")])  # no test images here
    assert result.exit_code == 0, result.output
    assert not list((tmp_path / "b").rglob("*-mistakes.png"))
    assert result.stderr.count("mistakes figures skipped: no test images (Fashion-MNIST not found") == 1


def test_epoch_axes_tick_whole_epochs_and_the_legend_covers_no_curve_or_label(monkeypatch):
    """A 2-epoch study of nine optimizers: ticks 1 and 2 only; the legend beside the axes."""
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from fcn_tui import plot
    from fcn_tui.config import Config
    from fcn_tui.runs import RunRecord

    records = []
    for i, name in enumerate(["sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad", "adadelta", "lion"]):
        long = f"optim.name={name},optim.lr=0.001"
        metrics = [{"epoch": float(e), "train_loss": 1 / (e + i), "val_loss": 1.1 / (e + i), "val_acc": 0.8, "train_acc": 0.8}
                   for e in (1, 2)]
        records.append(RunRecord(path=Path(f"00{i}-{long}"), summary={"name": long}, config=Config(name=long), metrics=metrics))
    group = plot.StudyGroup(label="optimizers", records=records, comparison=None,
                            run_labels={r.run_id: r.name for r in records})
    figures = []
    monkeypatch.setattr(plot, "_save", lambda plt, fig, path: figures.append(fig) or path)
    plot.plot_loss(plt, group, Path("loss.png"))
    plot.plot_val_acc(plt, group, Path("val_acc.png"))
    one_epoch = RunRecord(path=Path("one"), summary={"name": "one"}, config=Config(), metrics=records[0].metrics[:1])
    plot.plot_curves(plt, one_epoch, "one", Path("curves.png"))
    fig = figures.pop()
    fig.canvas.draw()
    for ax in fig.axes:
        lo, hi = ax.get_xlim()
        assert [t for t in ax.get_xticks() if lo <= t <= hi] == [1.0]  # one epoch: one tick, not 0.96, 0.98, ...
    plt.close(fig)
    for fig in figures:
        [ax] = fig.axes
        fig.canvas.draw()
        lo, hi = ax.get_xlim()
        assert [t for t in ax.get_xticks() if lo <= t <= hi] == [1.0, 2.0]
        renderer = fig.canvas.get_renderer()
        legend = ax.get_legend().get_window_extent(renderer)
        assert not legend.overlaps(ax.xaxis.label.get_window_extent(renderer))
        assert not legend.overlaps(ax.get_window_extent(renderer))
        plt.close(fig)


def test_a_study_that_varies_one_setting_draws_no_trivial_importance_bar(tmp_path, synthetic_data_dir):
    preset = tmp_path / "one.toml"
    preset.write_text(SWEEP_2x2.replace('"model.dropout" = [0.0, 0.5]\n', "").replace('name = "grid"', 'name = "one"'))
    out = tmp_path / "out"
    assert runner.invoke(app, ["run", str(preset), "--data-dir", str(synthetic_data_dir), "--out", str(out)]).exit_code == 0
    result = runner.invoke(app, ["plot", str(out), "--out", str(tmp_path / "figures"), "--data-dir", str(synthetic_data_dir)])
    assert result.exit_code == 0, result.output
    written = {p.name for p in (tmp_path / "figures" / "one").iterdir()}
    assert "optimization_history.png" in written and "param_importances.png" not in written
    assert "param_importances.png skipped: only optim.name varies" in " ".join(result.output.split())
