"""The Runs tab at 80x24, used like a researcher would: read the table, filter, sort, pick two
runs and diff them, open the comparison table. The history is six synthetic run folders
(`runs_history.history`); the app's training backend is the scripted one, nothing trains.
"""

from __future__ import annotations

import pytest
from textual.widgets import DataTable, Input

from fcn_tui.config import Config
from fcn_tui.formatting import short_number, short_setting
from fcn_tui.rundiff import best_epoch, settings_diff
from fcn_tui.runs import find_runs
from fcn_tui.tui.app import FcnApp
from fcn_tui.tui.dialogs import TableDialog
from tests.helpers import rendered, settle, until
from tests.runs_history import history, write_run
from tests.scripted import ScriptedBackend

SIZE = (80, 24)


@pytest.fixture
def app(tmp_path) -> FcnApp:
    return FcnApp(out=history(tmp_path / "runs"), backend_factory=ScriptedBackend)


def names(app: FcnApp) -> list[str]:
    """The full run names of the rows, top to bottom."""
    table = app.query_one("#runs-table", DataTable)
    by_path = {str(r.path): r.name for r in app.runs_view.records}
    return [by_path[row.key.value] for row in table.ordered_rows]


def row_text(app: FcnApp, name: str) -> str:
    table = app.query_one("#runs-table", DataTable)
    index = names(app).index(name)
    return " ".join(str(cell) for cell in table.get_row_at(index))


async def open_runs(pilot) -> None:
    await settle(pilot)
    await pilot.press("f4")
    await pilot.pause()


@pytest.mark.parametrize("value, text", [
    (0.001, "1e-3"), (0.0003, "3e-4"), (2.5e-5, "2.5e-5"), (0.05, "0.05"), (0.1, "0.1"), (0.9, "0.9"),
    (0.0, "0"), (6000, "6000"), (1_000_000, "1e6"), (True, "yes"), ([400, 400], "400,400"),
])
def test_settings_are_written_short_and_never_round_to_zero(value, text):
    assert short_setting(value) == text
    assert short_number(0.00001) != "0.00"


def test_the_diff_lists_only_the_settings_that_differ_and_the_best_epoch(tmp_path):
    records = {r.name: r for r in find_runs(history(tmp_path))}
    fast, slow = records["adam-lr1e-3"], records["adam-lr3e-4"]
    assert settings_diff(fast, slow) == [("model.dropout", 0.0, 0.2), ("optim.lr", 0.001, 0.0003)]
    assert best_epoch(fast) == (2, 0.89)  # 0.85, 0.89, 0.88: the best is not the last


async def test_small_numbers_names_and_marks_read_well_at_80_columns(app):
    async with app.run_test(size=SIZE) as pilot:
        await open_runs(pilot)
        screen = rendered(app.query_one("#runs-table"))
        assert "1e-3" in screen and "3e-4" in screen  # lr is on screen
        table = app.query_one("#runs-table", DataTable)
        lr = list(table.columns).index(next(k for k, c in table.columns.items() if c.label.plain == "lr"))
        assert {str(table.get_row_at(i)[lr]) for i in range(6)} == {"0.05", "1e-3", "3e-4", "0.5"}
        header = screen.splitlines()[0]
        assert header.index("name") < header.index("best val") < header.index("lr") < 78
        long_row = next(line for line in screen.splitlines() if "a-rather" in line)
        assert "…" in long_row and "a-rather-long-run-name-with-momentum" not in long_row  # cut to fit
        assert row_text(app, "quick-subset").startswith(" ~")  # trained on a subset
        assert row_text(app, "a-rather-long-run-name-with-momentum").startswith(" +")  # momentum 0.9
        assert row_text(app, "adam-lr1e-3").startswith("  ")  # nothing unusual
        legend = str(app.query_one("#runs-legend").render())
        assert "~ data subset" in legend and "+ other settings not default" in legend
        while not names(app)[app.runs_view.table.cursor_row].startswith("a-rather"):
            await pilot.press("down")
        assert "+ momentum 0.9" in str(app.query_one("#runs-detail").render())


async def test_slash_filters_by_name_setting_or_status_and_escape_clears(app):
    async with app.run_test(size=SIZE) as pilot:
        await open_runs(pilot)
        await pilot.press("slash")  # the filter field opens, focused
        assert app.focused is app.query_one("#runs-filter", Input)
        await pilot.press(*"adam")
        assert sorted(names(app)) == ["adam-lr0.5", "adam-lr1e-3", "adam-lr3e-4"]
        assert "3 of 6 runs" in str(app.query_one("#runs-legend").render())
        await pilot.press(*" 3e-4")  # every word must match: here a setting in its short form
        assert names(app) == ["adam-lr3e-4"]
        await pilot.press("enter")  # back to the table, the filter kept
        assert app.focused is app.runs_view.table and names(app) == ["adam-lr3e-4"]
        await pilot.press("escape")
        assert len(names(app)) == 6 and not app.query_one("#runs-filter").display
        await pilot.press("slash", *"div")  # by status
        assert names(app) == ["adam-lr0.5"]
        await pilot.press("escape", "slash", *"[b]")  # user text, not markup
        assert names(app) == [] and "no run matches" in str(app.query_one("#runs-detail").render())
        await pilot.press("escape")
        assert len(names(app)) == 6


async def test_sort_best_first_then_diff_the_two_best_runs(app):
    async with app.run_test(size=SIZE) as pilot:
        await open_runs(pilot)
        assert names(app)[0] == "adam-lr0.5"  # newest first
        await pilot.press("d")  # nothing picked: a hint, no dialog
        assert not isinstance(app.screen, TableDialog)
        await pilot.press("s", "s", "s")  # name, status, best val: best first, the diverged run last
        assert names(app)[:2] == ["adam-lr1e-3", "adam-lr3e-4"] and names(app)[-1] == "adam-lr0.5"
        assert "best val▼" in rendered(app.query_one("#runs-table")).splitlines()[0]
        await pilot.press("s")  # test accuracy: best first too; the diverged run has none: last
        assert names(app)[0] == "adam-lr1e-3" and names(app)[-1] == "adam-lr0.5"
        await pilot.press("r")  # worst first; a run without a number stays last
        assert names(app)[0] == "quick-subset" and names(app)[-1] == "adam-lr0.5"
        await pilot.press("r", "space", "down", "space")  # pick the two best
        assert names(app)[:2] == ["adam-lr1e-3", "adam-lr3e-4"]
        assert "d: diff of the 2 picked" in str(app.query_one("#runs-legend").render())
        await pilot.press("d")
        await pilot.pause()
        assert isinstance(app.screen, TableDialog)
        assert str(app.screen.query_one("#table-title").render()) == "adam-lr1e-3  vs  adam-lr3e-4"
        lines = rendered(app.screen.query_one("#comparison")).splitlines()
        row = {line.split("  ")[0].strip(): line.split() for line in lines if line.strip()}
        assert " ".join(row["best val epoch"]).endswith("epoch 2 (89.00) epoch 3 (87.00)")
        assert row["test acc %"][-2:] == ["87.50", "86.00"]
        assert row["wall time"][-2:] == ["12.5s", "12.5s"] and row["epochs"][-2:] == ["3/3", "3/3"]
        assert row["optim.lr"][-2:] == ["1e-3", "3e-4"] and row["model.dropout"][-2:] == ["0", "0.2"]
        assert "train loss" in row and "val loss" in row and "val acc %" in row
        assert "optim.name" not in row and "model.hidden" not in row  # the same in both: left out
        await pilot.press("escape")
        assert not isinstance(app.screen, TableDialog)


async def test_the_comparison_table_reads_well_at_80x24(app):
    async with app.run_test(size=SIZE) as pilot:
        await open_runs(pilot)
        await pilot.press("c")
        await pilot.pause()
        assert isinstance(app.screen, TableDialog)
        title = app.screen.query_one("#table-title")
        assert str(title.render()).startswith("all runs in") and title.region.y >= 0
        assert app.screen.get_widget_at(title.region.x, title.region.y)[0] is title  # on screen
        lines = rendered(app.screen.query_one("#comparison")).splitlines()
        header = lines[0].split()
        assert header[:5] == ["run", "best", "val", "test", "time"]  # the name, then results
        settings = header[5:]  # then only what varies
        assert set(settings) == {"drop", "optim", "lr", "momentum", "subset"}
        assert lines[2].split()[:3] == ["adam-lr1e-3", "89.00", "87.50"]  # best first
        assert "diverged" in next(line for line in lines if "adam-lr0.5" in line)
        scroll = app.screen.query_one("#table-scroll")
        assert scroll.region.width <= SIZE[0]
        if scroll.max_scroll_x:  # wider than the terminal: the arrows reach the settings
            await pilot.press("right", "right", "right")
            assert scroll.scroll_x > 0


def test_a_swept_seed_adds_the_mean_over_seeds_under_the_runs(tmp_path):
    from rich.console import Console

    from fcn_tui.config import preset_from_text
    from fcn_tui.tables import app_comparison

    preset = preset_from_text('name = "seeds"\n[sweep]\n"optim.lr" = [0.001, 0.0003]\n"train.seed" = [0, 1]\n', "s.toml")
    for i, config in enumerate(preset.runs()):
        write_run(tmp_path, f"20260101-10000{i}-run", config, val_accs=(0.80 + i / 100,))
    console = Console(width=74, record=True, color_system=None)
    console.print(app_comparison(find_runs(tmp_path), preset, "seeds", width=74))
    text = console.export_text()
    header = text.splitlines()[0].split()
    assert header[:5] == ["run", "best", "val", "test", "time"] and header[5:] == ["lr", "seed"]
    assert "1e-3" in text and "3e-4" in text and "±" in text  # each run, then mean ± std per lr


def highlighted_name(app: FcnApp) -> str:
    return names(app)[app.runs_view.table.cursor_row]


async def test_runs_written_by_another_process_appear_when_the_tab_is_shown_and_on_g(app):
    out = app.out
    async with app.run_test(size=SIZE) as pilot:
        await open_runs(pilot)
        await pilot.press("down", "down")
        chosen = highlighted_name(app)
        base = Config(name="from-elsewhere").with_values({"train.epochs": 3})
        write_run(out, "20260101-110000-from-elsewhere", base)  # another terminal trains a run
        await pilot.press("f5", "f4")  # shown again: read again
        await until(pilot, lambda: len(names(app)) == 7)
        assert names(app)[0] == "from-elsewhere" and highlighted_name(app) == chosen  # the cursor stayed
        help_line = rendered(app.query_one("#runs-help"))
        assert "g reload" in help_line
        assert "g" in {key for key, b in app.active_bindings.items() if b.binding.show}  # in the footer
        app.running = True  # also while a run trains in the app
        write_run(out, "20260101-111000-second", base.with_values({"name": "second"}))
        await pilot.press("g")
        await until(pilot, lambda: len(names(app)) == 8)
        assert names(app)[0] == "second" and highlighted_name(app) == chosen
        app.running = False


async def test_left_and_right_scroll_a_whole_column_to_the_cut_off_ones(app):
    async with app.run_test(size=SIZE) as pilot:
        await open_runs(pilot)
        table = app.runs_view.table
        assert "hidden" not in rendered(table).splitlines()[0]  # cut off at 80 columns
        starts = table.column_starts()
        presses = 0
        while "hidden" not in rendered(table).splitlines()[0]:
            await pilot.press("right")
            await pilot.pause()
            presses += 1
            assert presses <= len(starts)  # a column per press, not a character
            assert table.scroll_x in starts or table.scroll_x == table.max_scroll_x
        header = rendered(table).splitlines()[0].split()
        assert header[-3:] == ["drop", "bn", "hidden"]
        await pilot.press("left")
        await pilot.pause()
        assert table.scroll_x in starts and table.scroll_x < table.max_scroll_x


async def test_sweep_names_too_long_for_the_column_still_tell_the_runs_apart(tmp_path):
    out = history(tmp_path / "runs")
    base = Config().with_values({"train.epochs": 3})
    for i, dropout in enumerate((0.1, 0.2, 0.3)):
        name = f"sweep,train.epochs=3,data.subset=5000,model.dropout={dropout}"
        write_run(out, f"20260102-10000{i}-sweep", base.with_values({"name": name, "model.dropout": dropout}))
    app = FcnApp(out=out, backend_factory=ScriptedBackend)
    async with app.run_test(size=SIZE) as pilot:
        await open_runs(pilot)
        table = app.runs_view.table
        cells = {}
        for i, name in enumerate(names(app)):
            if name.startswith("sweep"):
                cells[name] = str(table.get_row_at(i)[1])
        assert len(set(cells.values())) == 3  # never the same cut name three times
        for name, cell in cells.items():
            assert cell.endswith(f"dropout={name.rsplit('=', 1)[1]}") and "…" in cell
        assert table.columns[table.ordered_columns[1].key].width >= 10  # the name column still shrinks to fit


async def test_a_subset_run_with_other_unusual_settings_shows_both_marks(tmp_path):
    out = history(tmp_path / "runs")
    odd = Config(name="odd").with_values({"train.epochs": 3, "data.subset": 3000, "optim.schedule": "cosine",
                                          "train.label_smoothing": 0.1})
    write_run(out, "20260101-120000-odd", odd)
    app = FcnApp(out=out, backend_factory=ScriptedBackend)
    async with app.run_test(size=SIZE) as pilot:
        await open_runs(pilot)
        assert names(app)[0] == "odd"
        mark = rendered(app.runs_view.table).splitlines()[1][:4]
        assert "~" in mark and "+" in mark
        detail = str(app.query_one("#runs-detail").render())
        assert "~ subset of 3000 images" in detail and "+ schedule cosine, label_smoothing 0.1" in detail


def test_a_name_too_long_keeps_what_tells_it_apart():
    from fcn_tui.tui.runs_view import fit_names

    search = [f"search,train.epochs=3,data.subset=5000,optim.lr={lr},optim.name={o},model.dropout={d}"
              for lr, o, d in (("0.00387", "sgd", "0.306"), ("0.35", "adam", "0.429"))]
    assert fit_names(search, 34) == ["…lr=0.00387,name=sgd,dropout=0.306", "…lr=0.35,name=adam,dropout=0.429"]
    assert fit_names(search, 20) == ["…0.00387,sgd,0.306", "…0.35,adam,0.429"]  # the searched values
    assert fit_names(["model.dropout=0.1", "model.dropout=0.2"], 12) == ["dropout=0.1", "dropout=0.2"]
    assert fit_names(["experiment-alpha-run-1", "experiment-alpha-run-2"], 12) == ["…alpha-run-1", "…alpha-run-2"]
    assert fit_names(["short", "tiny,train.epochs=1"], 20) == ["short", "tiny,train.epochs=1"]  # fits: as is


def test_settings_names_are_shortened_alike_row_to_row():
    from fcn_tui.tui.runs_view import fit_names

    names = ["optim.name=sgd,optim.lr=0.1", "optim.name=sgd,optim.lr=0.001", "optim.name=adam,optim.lr=0.001"]
    # the first fits whole at 28 columns, the others not: all three are written the same way
    assert fit_names(names, 28) == ["name=sgd,lr=0.1", "name=sgd,lr=0.001", "name=adam,lr=0.001"]


async def test_only_settings_away_from_the_defaults_are_marked_and_the_study_is_shown(tmp_path):
    """The default baseline (15 epochs) beside 3-epoch runs gets no `+`; a tanh run names its
    activation, a ReLU run does not; two sweeps of one grid are told apart by their study."""
    out = history(tmp_path / "runs")
    write_run(out, "20260101-110000-baseline", Config(name="baseline"))
    write_run(out, "20260101-111000-tanh", Config(name="tanh").with_values({"model.activation": "tanh"}))
    for folder in ("20260102-100000-grid", "20260103-113000-grid"):
        (out / folder).mkdir()
        (out / folder / "sweep.toml").write_text('name = "grid"\n[sweep]\n"optim.lr" = [0.1]\n')
        write_run(out / folder, "20260102-100001-optim.lr=0.1", Config(name="optim.lr=0.1").with_values({"optim.lr": 0.1}))
    app = FcnApp(out=out, backend_factory=ScriptedBackend)
    async with app.run_test(size=(160, 40)) as pilot:
        await open_runs(pilot)
        assert row_text(app, "baseline").startswith("  ") and " 15 " in row_text(app, "baseline")  # epochs column
        assert row_text(app, "tanh").startswith(" +")
        table = app.runs_view.table
        study = next(k for k, c in table.columns.items() if c.label.plain == "study")
        studies = [str(table.get_cell(row.key, study)) for row in table.ordered_rows]
        assert sorted(s for s in studies if s != "-") == ["grid 01-02 10:00", "grid 01-03 11:30"]
        for name, shown in (("baseline", None), ("tanh", "+ activation tanh")):
            table.move_cursor(row=names(app).index(name))
            await pilot.pause()
            detail = str(app.query_one("#runs-detail").render())
            assert "relu" not in detail and "epochs" in detail
            assert (shown or "+") in detail if shown else "+" not in detail
