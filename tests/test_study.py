"""Study results: sweep expansion, grouping over seeds, the pivot, results.csv and results.md."""

import csv
import math
from pathlib import Path

import pytest

from fcn_tui.config import Config, config_to_toml, load_preset, preset_from_text
from fcn_tui.runs import RunRecord, find_runs, read_run
from fcn_tui.study import RESULT_COLUMNS, compare, mean_std, results_markdown, write_results
from tests.helpers import EXPECTED_HEADER, dead_pid, write_run_folder

SWEEP_2x3 = """
name = "grid"
[optim]
name = "adam"
[sweep]
"optim.name" = ["sgd", "adam"]
"optim.lr" = [0.001, 0.01, 0.1]
"""


def record(tmp_path, config, status="completed", val=None, test=None, epochs=3, wall=10.0):
    """A run as read back from disk, with the numbers a finished run would have."""
    summary = {
        "name": config.name, "status": status, "epochs_completed": epochs,
        "train_loss": 0.3, "val_loss": 0.4, "val_acc": val, "best_val_acc": val, "test_acc": test,
        "wall_s": wall, "samples_per_s": 1000.0, "device": "CPU (2 threads)",
    }
    return RunRecord(path=tmp_path / config.name, summary=summary, config=config)


def test_sweep_expands_to_the_cartesian_product_in_file_order():
    runs = preset_from_text(SWEEP_2x3, "grid.toml").runs()
    assert [r.name for r in runs] == [
        "optim.name=sgd,optim.lr=0.001", "optim.name=sgd,optim.lr=0.01", "optim.name=sgd,optim.lr=0.1",
        "optim.name=adam,optim.lr=0.001", "optim.name=adam,optim.lr=0.01", "optim.name=adam,optim.lr=0.1",
    ]
    assert [(r.optim.name, r.optim.lr) for r in runs][:2] == [("sgd", 0.001), ("sgd", 0.01)]
    assert {r.train.epochs for r in runs} == {15}  # the rest of the base config is kept


def test_mean_and_sample_std_match_a_hand_computation():
    stat = mean_std([0.80, 0.82, 0.84])
    # mean 0.82; deviations -0.02, 0, 0.02 -> sum of squares 0.0008 / (3 - 1) = 0.0004 -> std 0.02
    assert stat.n == 3 and math.isclose(stat.mean, 0.82) and math.isclose(stat.std, 0.02)
    assert mean_std([0.5]).std == 0.0 and mean_std([]) is None


def test_seeds_are_grouped_with_mean_and_std_over_the_other_settings(tmp_path):
    preset = preset_from_text(
        'name = "seeds"\n[sweep]\n"model.dropout" = [0.0, 0.5]\n"train.seed" = [0, 1, 2]\n', "seeds.toml"
    )
    vals = {(0.0, 0): 0.80, (0.0, 1): 0.82, (0.0, 2): 0.84, (0.5, 0): 0.85, (0.5, 1): 0.85, (0.5, 2): 0.88}
    records = [
        record(tmp_path, c, val=vals[(c.model.dropout, c.train.seed)], test=vals[(c.model.dropout, c.train.seed)] - 0.01)
        for c in preset.runs()
    ]
    comparison = compare(records, preset)
    assert comparison.keys == ["model.dropout"] and comparison.seeds == [0, 1, 2]
    assert [g.settings for g in comparison.groups] == [{"model.dropout": 0.0}, {"model.dropout": 0.5}]
    best, other = comparison.ranked()
    # dropout 0.5: mean 86.00, std sqrt(((-1)^2 + (-1)^2 + 2^2) / 2) = sqrt(3) = 1.73
    assert best.text("val_acc") == "86.00 ± 1.73"
    assert best.text("test_acc") == "85.00 ± 1.73"
    assert other.text("val_acc") == "82.00 ± 2.00"

    md = results_markdown(records, "seeds", preset)
    assert "_mean ± std over seeds 0, 1, 2_" in md
    assert "| 0.5 | 3 | completed | 86.00 ± 1.73 | 86.00 ± 1.73 | 85.00 ± 1.73 | 3 | 10.0 |" in md
    assert md.index("| 0.5 |") < md.index("| 0.0 |")  # best validation accuracy first


def test_a_group_with_a_diverged_seed_says_so(tmp_path):
    preset = preset_from_text('name = "s"\n[sweep]\n"train.seed" = [0, 1]\n', "s.toml")
    first, second = preset.runs()
    records = [record(tmp_path, first, val=0.9, test=0.89), record(tmp_path, second, status="diverged", epochs=2)]
    [group] = compare(records, preset).groups
    assert group.text("val_acc") == "90.00 (1 of 2)"
    assert group.status == "1 completed, 1 diverged"


def test_two_varying_keys_make_a_pivot_with_val_and_test_in_each_cell(tmp_path):
    preset = preset_from_text(SWEEP_2x3, "grid.toml")
    records = []
    for i, config in enumerate(preset.runs()):
        if config.optim.name == "adam" and config.optim.lr == 0.1:
            records.append(record(tmp_path, config, status="diverged", epochs=1))
        else:
            records.append(record(tmp_path, config, val=0.80 + i / 100, test=0.70 + i / 100))
    comparison = compare(records, preset)
    assert comparison.is_pivot
    assert comparison.values == {"optim.name": ["sgd", "adam"], "optim.lr": [0.001, 0.01, 0.1]}
    md = results_markdown(records, "grid", preset)
    table = [line for line in md.splitlines() if line.startswith("| ")]
    assert table[0] == "| optim.name \\ optim.lr | 0.001 | 0.01 | 0.1 |"
    assert table[2] == "| sgd | 80.00 / 70.00 | 81.00 / 71.00 | 82.00 / 72.00 |"
    assert table[3] == "| adam | 83.00 / 73.00 | 84.00 / 74.00 | diverged |"
    assert "each cell: validation accuracy % / test accuracy %" in md


def test_one_row_per_run_sorted_by_validation_accuracy_with_statuses_last(tmp_path):
    preset = preset_from_text('name = "d"\n[sweep]\n"model.dropout" = [0.0, 0.2, 0.5]\n', "d.toml")
    a, b, c = preset.runs()
    records = [record(tmp_path, a, val=0.85, test=0.84), record(tmp_path, b, status="stopped", val=0.9, test=0.9),
               record(tmp_path, c, val=0.87, test=0.86)]
    md = results_markdown(records, "d", preset)
    rows = [line for line in md.split("## Runs")[0].splitlines() if line.startswith("| 0")]
    assert rows == [
        "| 0.5 | completed | 87.00 | 87.00 | 86.00 | 3 | 10.0 |",
        "| 0.0 | completed | 85.00 | 85.00 | 84.00 | 3 | 10.0 |",
        "| 0.2 | stopped | stopped | stopped | stopped | 3 | 10.0 |",
    ]


def test_results_csv_has_the_issue_columns_and_incomplete_runs_by_status(tmp_path):
    base = Config(name="done")
    write_run_folder(tmp_path / "001-done", base, "completed", val_acc=0.88, epochs=2)
    write_run_folder(tmp_path / "002-cut", base.with_values({"name": "cut", "train.seed": 1}), "running",
                     val_acc=0.7, epochs=1, pid=dead_pid())
    records = find_runs(tmp_path)
    assert [r.status for r in records] == ["completed", "incomplete"]
    csv_path, md_path = write_results(tmp_path, records, "study")
    with open(csv_path, newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = list(reader)
    assert header == EXPECTED_HEADER == list(RESULT_COLUMNS)
    by_name = {row[1]: dict(zip(header, row)) for row in rows}
    assert by_name["done"]["status"] == "completed" and float(by_name["done"]["val_acc"]) == 0.88
    assert by_name["cut"]["status"] == "incomplete" and by_name["cut"]["epochs_completed"] == "1"
    assert by_name["cut"]["model.hidden"] == "[400,400]" and by_name["cut"]["train.seed"] == "1"
    md = md_path.read_text()
    assert "| cut | incomplete | incomplete | incomplete | incomplete | 1 |" in md
    assert read_run(tmp_path / "001-done").get("val_acc") == 0.88


PRESETS = Path(__file__).resolve().parent.parent / "presets"
STUDY_PRESETS = {
    "optimizers": 12, "dropout": 2, "init": 3, "batchnorm": 2,
}


@pytest.mark.parametrize("name", sorted(STUDY_PRESETS))
def test_study_presets_follow_the_baseline_protocol(name):
    preset = load_preset(PRESETS / f"{name}.toml")
    runs = preset.runs()
    assert len(runs) == STUDY_PRESETS[name]
    for config in runs:
        assert config.model.hidden == (400, 400) and config.model.activation == "relu"
        assert (config.train.epochs, config.train.batch_size, config.train.seed) == (15, 256, 0)
        assert config.train.val_fraction == 0.1 and not config.data.normalize and config.data.augment == "none"
        assert config.optim.momentum == 0.0 and config.optim.weight_decay == 0.0 and config.optim.schedule == "none"
    if name != "optimizers":
        assert {(c.optim.name, c.optim.lr) for c in runs} == {("adam", 0.001)}
    if name == "init":
        assert [c.model.init for c in runs] == ["random_normal", "xavier_normal", "kaiming_uniform"]
        assert {c.model.init_std for c in runs} == {1.0}


def test_best_preset_sweeps_three_seeds_of_one_pure_mlp():
    runs = load_preset(PRESETS / "best.toml").runs()
    assert len({c.train.seed for c in runs}) == 3 == len(runs)
    assert len({config_to_toml(c.with_values({"train.seed": 0, "name": "x"})) for c in runs}) == 1
