"""The Rich comparison table printed after a sweep: pivot, ranked rows, statuses, seeds."""

from rich.console import Console

from fcn_tui.config import preset_from_text
from fcn_tui.runs import RunRecord
from fcn_tui.tables import comparison_table


def record(config, status="completed", val=None, test=None):
    summary = {"name": config.name, "status": status, "epochs_completed": 15, "val_acc": val,
               "best_val_acc": val, "test_acc": test, "wall_s": 20.0}
    return RunRecord(path=config.name, summary=summary, config=config)


def shown(table) -> list[str]:
    console = Console(width=160, record=True, color_system=None)
    console.print(table)
    return [line.strip() for line in console.export_text().splitlines()]


def cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip("│┃").split("│" if "│" in line else "┃")]


def test_two_swept_keys_print_a_pivot_of_optimizers_by_learning_rate():
    preset = preset_from_text(
        'name = "optimizers"\n[sweep]\n"optim.name" = ["rmsprop", "adam"]\n"optim.lr" = [0.001, 0.1]\n', "o.toml"
    )
    numbers = {("rmsprop", 0.001): (0.8905, 0.8807), ("adam", 0.001): (0.8912, 0.8834), ("adam", 0.1): (0.1, 0.1)}
    records = [
        record(c, val=numbers[k][0], test=numbers[k][1]) if (k := (c.optim.name, c.optim.lr)) in numbers
        else record(c, status="diverged")
        for c in preset.runs()
    ]
    lines = shown(comparison_table(records, preset))
    assert lines[0] == "optimizers"
    assert cells(lines[2]) == ["optim.name \\ optim.lr", "0.001", "0.1"]
    assert cells(lines[4]) == ["rmsprop", "89.05 / 88.07", "diverged"]
    assert cells(lines[5]) == ["adam", "89.12 / 88.34", "10.00 / 10.00"]
    caption = " ".join(line.strip() for line in lines[7:])  # below the table, wrapped to its width
    assert caption.startswith("each cell: validation accuracy % / test accuracy %")
    assert caption.endswith("best: optim.name=adam, optim.lr=0.001 (validation 89.12 %, test 88.34 %)")


def test_other_sweeps_print_one_row_per_run_best_validation_first():
    preset = preset_from_text('name = "init"\n[sweep]\n"model.init" = ["random_normal", "xavier_normal", "kaiming_uniform"]\n', "i.toml")
    normal, xavier, kaiming = preset.runs()
    records = [record(normal, status="failed"), record(xavier, val=0.8877, test=0.8791),
               record(kaiming, val=0.8901, test=0.8850)]
    lines = shown(comparison_table(records, preset))
    rows = [cells(line) for line in lines if line.startswith("│")]
    assert cells(lines[2])[:3] == ["model.init", "status", "val acc %"]
    assert rows == [
        ["kaiming_uniform", "completed", "89.01", "89.01", "88.50", "15", "20.0"],
        ["xavier_normal", "completed", "88.77", "88.77", "87.91", "15", "20.0"],
        ["random_normal", "failed", "failed", "failed", "failed", "15", "20.0"],
    ]


def test_swept_seeds_print_mean_and_std_per_setting():
    preset = preset_from_text('name = "best"\n[sweep]\n"train.seed" = [0, 1, 2]\n', "b.toml")
    vals = [0.91, 0.92, 0.93]
    records = [record(c, val=v, test=v - 0.01) for c, v in zip(preset.runs(), vals)]
    lines = shown(comparison_table(records, preset))
    [row] = [cells(line) for line in lines if line.startswith("│")]
    assert row == ["all runs", "3", "completed", "92.00 ± 1.00", "92.00 ± 1.00", "91.00 ± 1.00", "15", "20.0"]
    assert "mean ± std over seeds 0, 1, 2" in " ".join(lines)


def test_a_one_column_pivot_keeps_its_title_whole():
    name = "learning-rates-of-rmsprop-and-adam-at-one-epoch-each"  # one word, wider than the table
    preset = preset_from_text(f'name = "{name}"\n[sweep]\n"optim.name" = ["rmsprop", "adam"]\n"optim.lr" = [0.001, 0.1]\n', "o.toml")
    records = [record(c, val=0.9, test=0.89) for c in preset.runs() if c.optim.lr == 0.001]  # one column
    lines = shown(comparison_table(records, preset))
    assert lines[0] == name
    assert cells(lines[2]) == ["optim.name \\ optim.lr", "0.001"]
