"""The study runner in one process: a [search] with a pruner, and `--resume` that loses nothing
(a study reached through a link, a changed preset, a run another host is still training)."""

from __future__ import annotations

import re
import threading
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fcn_tui.cli import app
from fcn_tui.config import load_preset
from fcn_tui.errors import StudyError
from fcn_tui.rundiff import short_setting
from fcn_tui.runs import read_run
from fcn_tui.studies import runner
from fcn_tui.studies.store import StudyStore
from tests.helpers import TINY_PRESET, grid, rendered, stop_in_run, until
from tests.scripted import ScriptedBackend

cli = CliRunner()

SEARCH = TINY_PRESET.replace("epochs = 2", "epochs = 4") + """
[search]
trials = 8
pruner = "median"
"optim.lr" = { low = 1e-5, high = 0.5, log = true }
"optim.name" = ["sgd", "adam"]
"""


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_search_with_a_median_pruner_prunes_runs_and_tests_only_finished_ones(
        synthetic_data_dir, tmp_path, monkeypatch):
    from fcn_tui import engine

    tested = []
    real_evaluate = engine.evaluate

    def evaluate(model, x, y, *args, **kwargs):
        if len(x) == 200:  # the synthetic test set (the validation split has 60 images)
            tested.append(len(x))
        return real_evaluate(model, x, y, *args, **kwargs)

    monkeypatch.setattr(engine, "evaluate", evaluate)
    (tmp_path / "search.toml").write_text(SEARCH)
    result = cli.invoke(app, ["run", str(tmp_path / "search.toml"), "--data-dir", str(synthetic_data_dir),
                              "--out", str(tmp_path / "out"), "--pack", "1"])  # the pruner's 5 trials come first
    assert result.exit_code == 0, result.output
    (study,) = (tmp_path / "out").iterdir()
    store = StudyStore.open(study)
    trials = store.trials()
    assert len(trials) == 8
    states = [t.state.name for t in trials]
    assert "PRUNED" in states and "COMPLETE" in states
    for trial in trials:
        record = read_run(Path(trial.user_attrs["run_dir"]))
        assert set(trial.params) == {"optim.lr", "optim.name"}
        assert record.config.optim.name == trial.params["optim.name"]
        assert record.config.optim.lr == trial.params["optim.lr"]
        # per-epoch validation accuracy guides the search
        assert [trial.intermediate_values[e] for e in sorted(trial.intermediate_values)] == pytest.approx(
            [m["val_acc"] for m in record.metrics], abs=1e-6)  # metrics.csv keeps 6 decimals
        if trial.state.name == "PRUNED":
            assert record.status == "pruned" and record.get("test_acc") is None
            assert record.get("epochs_completed") < 4 and not (record.path / "confusion.csv").exists()
        else:
            assert record.status == "completed" and record.get("test_acc") is not None
    assert len(tested) == states.count("COMPLETE")  # the test set only at the end of finished runs
    table = (study / "results.md").read_text()
    assert "pruned" in table
    from fcn_tui.plot import plot_folder

    figures = {p.name for p in plot_folder(study, tmp_path / "figures")}
    assert {"optimization_history.png", "param_importances.png"} <= figures


def test_a_search_samples_the_same_trials_again_from_the_same_seed(tmp_path):
    preset_path = tmp_path / "search.toml"
    preset_path.write_text(SEARCH.replace('pruner = "median"', 'pruner = "none"').replace("trials = 8", "trials = 4"))
    preset = load_preset(preset_path)
    names = []
    for out in ("a", "b"):
        events = list(runner.run_study(preset, ScriptedBackend(), lambda: False, runner.RunOptions(out=tmp_path / out)))
        names.append([e.name for e in events if isinstance(e, runner.RunStarting)])
    assert names[0] == names[1] and len(set(names[0])) == 4
    # each trial is named by what was sampled for it, as grid runs are: `optim.lr=0.0123,optim.name=sgd`
    assert all(re.fullmatch(r"optim\.lr=[0-9.e-]+,optim\.name=(sgd|adam)", name) for name in names[0]), names[0]


def test_resume_never_continues_a_study_reached_through_a_link(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    study = stop_in_run(grid(tmp_path), elsewhere, run=1)
    before = files_of(study)
    out = tmp_path / "out"
    out.mkdir()
    (out / study.name).symlink_to(study, target_is_directory=True)
    events = list(runner.run_study(load_preset(grid(tmp_path)), ScriptedBackend(), lambda: False,
                                   runner.RunOptions(out=out, resume=True)))
    opened = events[0]
    assert opened.created and opened.folder != out / study.name  # a new study beside the link
    assert files_of(study) == before


def test_resume_after_a_changed_preset_keeps_the_stopped_run_and_trains_the_new_ones(tmp_path):
    out = tmp_path / "out"
    study = stop_in_run(grid(tmp_path), out, run=1)
    (stopped,) = [p for p in study.iterdir() if p.is_dir()]
    assert read_run(stopped).status == "stopped"
    kept = files_of(stopped)
    changed = grid(tmp_path, epochs=4)  # every run's configuration changes
    events = list(runner.run_study(load_preset(changed), ScriptedBackend(), lambda: False,
                                   runner.RunOptions(out=out, resume=True)))
    started = [e for e in events if isinstance(e, runner.RunStarting)]
    assert len(started) == 2 and all(e.run_dir != stopped for e in started)  # new folders
    assert files_of(stopped) == kept
    assert [r.status for r in events[-1].records].count("completed") == 2


def test_resume_after_a_value_was_added_to_a_sweep_trains_the_new_run(tmp_path):
    preset = tmp_path / "grid.toml"
    preset.write_text(TINY_PRESET + "\n[sweep]\n'optim.lr' = [0.01, 0.02]\n")
    list(runner.run_study(load_preset(preset), ScriptedBackend(), lambda: False, runner.RunOptions(out=tmp_path / "out")))
    preset.write_text(TINY_PRESET + "\n[sweep]\n'optim.lr' = [0.01, 0.02, 0.05]\n")
    events = list(runner.run_study(load_preset(preset), ScriptedBackend(), lambda: False,
                                   runner.RunOptions(out=tmp_path / "out", resume=True)))
    assert [e.name for e in events if isinstance(e, runner.RunStarting)] == ["optim.lr=0.05"]
    assert [r.status for r in events[-1].records] == ["completed"] * 3


def test_resume_leaves_a_run_that_another_host_is_training_to_it(tmp_path):
    out = tmp_path / "out"
    study = stop_in_run(grid(tmp_path), out, run=1)
    store = StudyStore.open(study)
    busy = store.claim()  # run 2, being trained on another machine
    store.storage.set_trial_user_attr(busy.id, "host", "another-machine")
    store.storage.set_trial_user_attr(busy.id, "pid", 1)
    seen = []
    stop = threading.Event()
    for event in runner.run_study(load_preset(grid(tmp_path)), ScriptedBackend(), stop.is_set,
                                  runner.RunOptions(out=out, resume=True)):
        seen.append(event)
        if isinstance(event, runner.Waiting):
            stop.set()  # the stopped run 1 is done; run 2 is the other host's
    trained = [e.name for e in seen if isinstance(e, runner.RunStarting)]
    assert trained == ["optim.lr=0.01"]
    assert any(isinstance(e, runner.Waiting) and e.running == 1 for e in seen)
    assert StudyStore.open(study).storage.get_trial(busy.id).state.name == "RUNNING"


def test_a_claim_still_being_written_is_not_taken_for_a_dead_worker(tmp_path, monkeypatch):
    import os
    import socket

    from fcn_tui.studies import store as study_store

    study = stop_in_run(grid(tmp_path), tmp_path / "out", run=1)
    store = StudyStore.open(study)
    claimed = store.claim()  # another worker has just claimed run 2 and writes who it is
    tid = claimed.id
    assert store.reclaim_dead() == 0
    store.storage.set_trial_user_attr(tid, "host", socket.gethostname())  # its host, not yet its pid
    assert store.reclaim_dead() == 0 and store.busy_elsewhere() == 1
    store.storage.set_trial_user_attr(tid, "pid", os.getpid())
    assert store.reclaim_dead() == 0 and study_store.run_status(store.storage.get_trial(tid)) == "running"
    store.storage.set_trial_user_attr(tid, "pid", 2**22 + 12345)  # that worker is gone
    assert store.reclaim_dead() == 1
    assert [t.state.name for t in store.trials() if t.user_attrs["run"] == 2] == ["FAIL", "WAITING"]


def test_a_worker_that_died_before_saying_who_it_is_loses_its_claim_after_a_grace(tmp_path, monkeypatch):
    from fcn_tui.studies import store as study_store

    study = stop_in_run(grid(tmp_path), tmp_path / "out", run=1)
    store = StudyStore.open(study)
    claimed = store.claim()
    assert study_store.run_status(store.storage.get_trial(claimed.id)) == "running"
    monkeypatch.setattr(study_store, "CLAIM_GRACE_S", -1)  # as if the claim were long past
    assert study_store.run_status(store.storage.get_trial(claimed.id)) == "incomplete"
    assert store.busy_elsewhere() == 0
    assert store.reclaim_dead() == 1
    events = list(runner.run_study(load_preset(grid(tmp_path)), ScriptedBackend(), lambda: False,
                                   runner.RunOptions(out=tmp_path / "out", resume=True)))
    assert [r.status for r in events[-1].records] == ["completed", "completed"]


@pytest.mark.parametrize("spec, message", [
    ("mysql://x", "unsupported storage"),
    ("postgresql://nobody@127.0.0.1:1/none", "cannot open postgresql+psycopg://nobody@127.0.0.1:1/none"),
])
def test_a_storage_that_cannot_be_used_is_one_line_exit_2(tiny_preset, tmp_path, spec, message):
    preset = tmp_path / "grid.toml"
    preset.write_text(tiny_preset.read_text() + "\n[sweep]\n'optim.lr' = [0.01, 0.02]\n")
    result = cli.invoke(app, ["run", str(preset), "--storage", spec, "--out", str(tmp_path / "out")])
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_a_worker_for_a_study_that_does_not_exist_says_so(tmp_path):
    result = cli.invoke(app, ["worker", "--storage", str(tmp_path), "--wait", "0"])
    assert result.exit_code == 2
    assert "no study here" in result.stderr


async def test_the_study_tab_shows_a_study_trained_elsewhere_live(tmp_path):
    """F5 finds the newest study under OUT by itself and lists its runs with their workers;
    a run being trained elsewhere shows as running, and the chart follows the highlighted run."""
    from textual.widgets import DataTable

    from fcn_tui.tui.app import FcnApp
    from fcn_tui.tui.study_view import StudyChart

    out = tmp_path / "out"
    study = stop_in_run(grid(tmp_path), out, run=2)  # run 1 completed, run 2 stopped
    store = StudyStore.open(study)
    app = FcnApp(out=out, backend_factory=ScriptedBackend)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f5")
        table = app.query_one("#study-table", DataTable)
        await until(pilot, lambda: table.row_count == 2)
        rows = [[str(c) for c in table.get_row_at(i)] for i in range(2)]
        assert [r[1] for r in rows] == ["completed", "stopped"]
        assert rows[0][3] == "3/3"
        title = str(app.query_one("#study-title").render())
        assert "study tiny" in title and "2 runs: 1 completed, 1 stopped" in title
        await pilot.press("down")
        chart = app.query_one("#study-chart", StudyChart)
        await until(pilot, lambda: chart.shown == "optim.lr=0.02")

        store.enqueue(3, load_preset(grid(tmp_path)).runs()[0].with_values({"optim.lr": 0.5, "name": "more"}))
        claimed = store.claim()  # another process picks it up
        store.storage.set_trial_user_attr(claimed.id, "worker", "w9")
        store.storage.set_trial_user_attr(claimed.id, "host", "elsewhere")
        await until(pilot, lambda: table.row_count == 3)
        assert [str(c) for c in table.get_row_at(2)][1:3] == ["running", "w9"]


def test_a_study_in_sqlite_trains_once_and_exports_from_the_storage(tmp_path):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    options = runner.RunOptions(out=tmp_path / "out", storage=url, study_name="grid-in-sqlite")
    events = list(runner.run_study(load_preset(grid(tmp_path, epochs=2)), ScriptedBackend(), lambda: False, options))
    assert [e.name for e in events if isinstance(e, runner.RunStarting)] == ["optim.lr=0.01", "optim.lr=0.02"]
    assert {p.name for p in (tmp_path / "out" / "grid-in-sqlite").iterdir()} >= {
        "001-optim.lr=0.01", "002-optim.lr=0.02", "results.csv", "results.md"}
    result = cli.invoke(app, ["export", "--storage", url, "--study", "grid-in-sqlite", "--csv", str(tmp_path / "all.csv")])
    assert result.exit_code == 0, result.output
    rows = (tmp_path / "all.csv").read_text().splitlines()
    assert len(rows) == 3 and all(",completed," in row for row in rows[1:])


def test_studies_whose_names_clean_up_alike_get_folders_of_their_own(tmp_path):
    url = f"sqlite:///{tmp_path / 'studies.db'}"
    folders = []
    for name in ("exp 1", "exp-1"):
        options = runner.RunOptions(out=tmp_path / "out", storage=url, study_name=name)
        events = list(runner.run_study(load_preset(grid(tmp_path, epochs=1)), ScriptedBackend(), lambda: False, options))
        folders.append(events[0].folder)
    assert folders[1] == tmp_path / "out" / "exp-1" and folders[0].name.startswith("exp-1-")
    for folder in folders:  # each its own two runs and its own results
        assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == ["001-optim.lr=0.01", "002-optim.lr=0.02"]
        assert len((folder / "results.csv").read_text().splitlines()) == 3


def test_a_study_that_optuna_made_without_fcn_tui_is_refused_in_seconds(tmp_path):
    import time

    import optuna

    url = f"sqlite:///{tmp_path / 'theirs.db'}"
    optuna.create_study(storage=url, study_name="theirs")
    started = time.monotonic()
    result = cli.invoke(app, ["export", "--storage", url, "--study", "theirs", "--csv", str(tmp_path / "x.csv")])
    assert result.exit_code == 2 and "study 'theirs' was not made by fcn-tui" in result.output
    assert time.monotonic() - started < 30  # not the minute a study being created is given


async def test_the_study_tab_reads_well_at_80x24_for_a_search(tmp_path):
    """A search whose runs have long names: each row starts with the run's number and shows the
    searched settings written short; the line above the chart names the highlighted run; the
    title line does not end in a dangling separator; the chart has whole-epoch ticks and its
    legend above it, not over the data."""
    from textual.widgets import DataTable

    from fcn_tui.tui.app import FcnApp
    from fcn_tui.tui.study_view import StudyChart

    preset = tmp_path / "search.toml"
    preset.write_text(SEARCH.replace('name = "tiny"', 'name = "search,train.epochs=3,data.subset=5000,optim"')
                      .replace('pruner = "median"', 'pruner = "none"').replace("trials = 8", "trials = 3")
                      .replace("epochs = 4", "epochs = 2") + '"model.dropout" = { low = 0.0, high = 0.6 }\n')
    out = tmp_path / "out"
    list(runner.run_study(load_preset(preset), ScriptedBackend(), lambda: False, runner.RunOptions(out=out)))
    (study,) = out.iterdir()
    trials = sorted(StudyStore.open(study).trials(), key=lambda t: t.number)
    app = FcnApp(out=out, backend_factory=ScriptedBackend)
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.press("f5")
        table = app.query_one("#study-table", DataTable)
        await until(pilot, lambda: table.row_count == 3)
        await pilot.pause()
        screen = rendered(table).splitlines()
        assert screen[0].split() == ["run", "status", "worker", "epoch", "val", "%", "best", "%", "lr", "optim", "drop"]
        for line, trial in zip(screen[1:4], trials):
            cells = line.split()
            assert cells[0] == str(trial.number + 1) and cells[1] == "completed"
            lr, dropout = trial.params["optim.lr"], trial.params["model.dropout"]
            assert cells[-3:] == [short_setting(lr), trial.params["optim.name"], short_setting(dropout)]
            assert len(cells[-1]) <= 5  # 3 significant digits, not 0.459305
        title = rendered(app.query_one("#study-title")).rstrip()
        assert "3 runs: 3 completed" in title and not title.endswith("·")
        await pilot.press("down")
        chart = app.query_one("#study-chart", StudyChart)
        second = trials[1].params
        await until(pilot, lambda: chart.shown is not None and f"drop={short_setting(second['model.dropout'])}"
                    in rendered(app.query_one("#study-run")))
        line = rendered(app.query_one("#study-run")).strip()
        assert line.startswith("#2 ") and "completed" in line and "val acc %" in line
        plot = rendered(chart)
        assert "1.25" not in plot and "1.50" not in plot  # whole epochs only
        assert "val acc" not in plot  # the legend is not drawn over the data
        # narrower than the columns: right scrolls a whole column at a time, and the view stays
        # where it was through the refreshes (once a second)
        await pilot.resize_terminal(50, 24)
        await pilot.pause()
        table.focus()
        assert table.max_scroll_x > 0
        await pilot.press("right")
        await pilot.pause()
        header = rendered(table).splitlines()[0]
        assert header.split()[0] == "status" and "run" not in header  # one column, not one character
        await pilot.pause(2.5)
        assert rendered(table).splitlines()[0].split()[0] == "status"
        await pilot.press("end", "right", "right", "right", "right", "right", "right")
        await pilot.pause()
        assert rendered(table).splitlines()[0].split()[-1] == "drop"  # the last setting is reachable


def test_resume_of_a_search_whose_choices_changed_is_refused_before_anything_runs(tmp_path):
    preset = tmp_path / "search.toml"
    preset.write_text(SEARCH.replace("trials = 8", "trials = 2").replace('pruner = "median"', 'pruner = "none"'))
    list(runner.run_study(load_preset(preset), ScriptedBackend(), lambda: False, runner.RunOptions(out=tmp_path / "out")))
    (study,) = (tmp_path / "out").iterdir()
    before = files_of(study)
    preset.write_text(preset.read_text().replace('["sgd", "adam"]', '["sgd", "adam", "rmsprop"]'))
    with pytest.raises(StudyError, match=r"search\.optim\.name: changed since the study began "
                                                 r"\(\[sgd, adam\] -> \[sgd, adam, rmsprop\]\)"):
        list(runner.run_study(load_preset(preset), ScriptedBackend(), lambda: False,
                              runner.RunOptions(out=tmp_path / "out", resume=True)))
    assert files_of(study) == before  # nothing of the study changed
