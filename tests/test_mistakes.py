"""Seeing what the network gets wrong: the predictions each run saves, the images of a confusion
cell (enter on it), the first layer's weights (w), and files that are not what we wrote.

The app tests use the scripted backend (its test set and predictions agree with its matrix), so
they run in a second or two; the first test trains a tiny model for real and checks the saved
predictions against the saved model.
"""

from __future__ import annotations

import io
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console

from fcn_tui.config import Config, load_preset
from fcn_tui.data import load_fashion_mnist, make_split
from fcn_tui.engine import Trainer, to_inputs
from fcn_tui.events import Predictions
from fcn_tui.model import build_mlp
from fcn_tui.predictions import NO_PREDICTIONS, PREDICTIONS, cell_images, check_test_set, read_predictions
from fcn_tui.runs import confusion_csv, find_runs, read_confusion, record_run
from fcn_tui.tui.app import FcnApp
from fcn_tui.tui.confusion import ConfusionView
from fcn_tui.tui.mistakes import MistakesScreen
from fcn_tui.tui.weights_view import WeightsScreen
from tests.helpers import damaged_history, press, settle
from tests.scripted import ScriptedBackend, scripted_test_set

SIZE = (100, 32)  # three 28x28 tiles a row, one row a page


def test_a_run_saves_every_test_prediction_next_to_its_confusion_matrix(synthetic_data_dir, tmp_path):
    data = load_fashion_mnist(synthetic_data_dir, download_missing=False)
    split = make_split(data, 0.1, 0)
    config = Config().with_values({"model.hidden": (16,), "train.epochs": 1, "train.batch_size": 64,
                                   "train.device": "cpu", "optim.lr": 0.001})
    run_dir = tmp_path / "run"
    finished = list(record_run(Trainer(config, split), run_dir))[-1]

    predictions, problem = read_predictions(run_dir)
    assert problem == ""
    assert predictions.true.dtype == np.uint8 and predictions.predicted.dtype == np.uint8
    assert predictions.probs.dtype == np.float16 and predictions.probs.shape == (200, 10)
    assert (run_dir / PREDICTIONS).stat().st_size < 10_000  # compact: 200 images
    # the reference: the saved model run again on the test images
    model = build_mlp(config.model)
    model.load_state_dict(torch.load(run_dir / "model.pt", weights_only=True))
    with torch.no_grad():
        probs = model.eval()(to_inputs(split.test_x, config.data.normalize, torch.device("cpu"))).softmax(1)
    assert np.array_equal(predictions.true, split.test_y.numpy())
    assert np.array_equal(predictions.predicted, probs.argmax(1).numpy())
    assert np.allclose(predictions.probs.astype(np.float32), probs.numpy(), atol=1e-3)
    # and they are the confusion matrix the run reported and wrote
    counts = np.zeros((10, 10), dtype=int)
    np.add.at(counts, (predictions.true, predictions.predicted), 1)
    assert counts.tolist() == finished.test_confusion == read_confusion(run_dir / "confusion.csv")[1]


def _npz(path: Path, **arrays) -> None:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    path.write_bytes(buffer.getvalue())


def _header_claiming(path: Path, images: int) -> None:
    """A `true` member whose header claims `images` entries but holds ten bytes."""
    member = io.BytesIO()
    np.lib.format.write_array_header_1_0(member, {"descr": "|u1", "fortran_order": False, "shape": (images,)})
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("true.npy", member.getvalue() + bytes(10))


GOOD = {"true": np.arange(20, dtype=np.uint8) % 10, "predicted": np.zeros(20, dtype=np.uint8),
        "probs": np.full((20, 10), 0.1, dtype=np.float16)}
DAMAGES = {
    "missing": (lambda path: None, NO_PREDICTIONS),
    "garbage": (lambda path: path.write_bytes(b"\x00not a zip" * 50), "damaged or not ours (BadZipFile)"),
    "pickled objects": (lambda path: _npz(path, **{**GOOD, "true": np.array([object()] * 20)}),
                        "damaged or not ours ('true' is |O, not |u1)"),
    "huge claim": (lambda path: _header_claiming(path, 10**12), "damaged or not ours ('true' has shape"),
    "short data": (lambda path: _header_claiming(path, 5000), "damaged or not ours ('true' is truncated or padded)"),
    "three classes": (lambda path: _npz(path, **{**GOOD, "probs": np.zeros((20, 3), dtype=np.float16)}),
                      "'probs' has shape (20, 3)"),
    "class 12": (lambda path: _npz(path, **{**GOOD, "predicted": np.full(20, 12, dtype=np.uint8)}),
                 "a label is not a class 0-9"),
    "NaN": (lambda path: _npz(path, **{**GOOD, "probs": np.full((20, 10), np.nan, dtype=np.float16)}),
            "a probability is not in [0, 1]"),
    "a link": (lambda path: path.symlink_to("/etc/passwd"), "is a symbolic link; not followed"),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_or_foreign_predictions_file_is_one_line_never_an_error(damage, tmp_path):
    make, expected = DAMAGES[damage]
    make(tmp_path / PREDICTIONS)
    predictions, problem = read_predictions(tmp_path)
    assert predictions is None
    assert expected in problem and "\n" not in problem


def test_a_cells_images_come_most_confident_first_and_only_from_the_same_test_set():
    predictions = Predictions(true=np.array([6, 6, 6, 0, 6], dtype=np.uint8),
                              predicted=np.array([0, 0, 6, 0, 0], dtype=np.uint8),
                              probs=np.zeros((5, 10), dtype=np.float16))
    predictions.probs[:, 0] = [0.5, 0.9, 0.0, 0.99, 0.9]
    index, confidence = cell_images(predictions, 6, 0)  # true Shirt, predicted T-shirt/top
    assert index.tolist() == [1, 4, 0]  # a tie keeps test-set order
    assert confidence.tolist() == pytest.approx([0.9, 0.9, 0.5], abs=1e-3)
    assert check_test_set(predictions, [6, 6, 6, 0, 6]) == ""
    assert "do not match the loaded test set's labels" in check_test_set(predictions, [6, 6, 6, 6, 6])
    assert "cover 5 test images but the loaded test set has 10,000" in check_test_set(predictions, [0] * 10_000)


def scripted_app(tiny_preset: Path, out: Path) -> FcnApp:
    return FcnApp(preset=load_preset(tiny_preset, {"model.hidden": [3]}), out=out, backend_factory=ScriptedBackend)


async def train(pilot) -> Path:
    """Start the scripted run, wait for it to end; its folder."""
    await settle(pilot)
    await press(pilot, "ctrl+r")
    return find_runs(pilot.app.out)[0].path


def plain(renderable) -> str:
    """What a widget's content reads as on the screen, without colours."""
    console = Console(width=200, file=io.StringIO(), color_system=None)
    with console.capture() as capture:
        console.print(renderable)
    return capture.get()


def captions(screen) -> list[str]:
    return [tile.caption.plain for tile in screen.grid.visible()]


def title(screen) -> str:
    return plain(screen.query_one("#tiles-title").content).strip()


async def test_enter_on_a_confusion_cell_pages_through_its_images_most_confident_first(tiny_preset, tmp_path):
    app = scripted_app(tiny_preset, tmp_path / "runs")
    async with app.run_test(size=SIZE) as pilot:
        run_dir = await train(pilot)
        await pilot.press("f3")
        view = app.query_one("#cm", ConfusionView)
        assert "cell: true Dress → predicted Coat: 20" in plain(view.content)  # the most confused pair first
        await pilot.press("down", "down", "down", "left", "left", "left", "left")  # to true Shirt, predicted T-shirt
        assert "cell: true Shirt → predicted T-shirt/top: 9" in plain(view.content)
        await press(pilot, "enter")
        screen = app.screen
        assert isinstance(screen, MistakesScreen)
        assert title(screen) == "true Shirt → predicted T-shirt/top · 9 wrong, most confident first · page 1/3"
        # the reference: the predictions file and the test images, read here independently
        with np.load(run_dir / PREDICTIONS) as saved:
            true, predicted, probs = saved["true"], saved["predicted"], saved["probs"]
        cell = np.flatnonzero((true == 6) & (predicted == 0))
        ranked = sorted(cell.tolist(), key=lambda i: (-float(probs[i, 0]), i))
        images = scripted_test_set()[0]
        assert captions(screen) == [f"{100 * float(probs[i, 0]):.1f}%  test image #{i}" for i in ranked[:3]]
        assert np.array_equal(screen.grid.visible()[0].pixels, images[ranked[0]].reshape(28, 28))
        await pilot.press("pagedown")
        assert "page 2/3" in title(screen)
        assert captions(screen)[0].endswith(f"#{ranked[3]}")
        await pilot.press("end", "pagedown")  # the last page stays the last
        assert "page 3/3" in title(screen) and captions(screen)[-1].endswith(f"#{ranked[-1]}")
        await pilot.press("home", "z")  # small tiles: all 9 on one page, halved images, short captions
        assert "page 1/1" in title(screen) and len(screen.grid.visible()) == 9
        small = screen.grid.render()
        assert small.columns[0].width == 14 and f"{100 * float(probs[ranked[0], 0]):.1f}% #{ranked[0]}" in plain(small)
        await pilot.press("z")
        assert "page 1/3" in title(screen)
        await pilot.press("escape")
        assert app.screen is app.screen_stack[0] and app.focused is view
        await pilot.press("v", "enter")  # the validation matrix has no saved images: a message, no page
        await pilot.pause()
        assert app.screen is app.screen_stack[0]
        await pilot.resize_terminal(60, 20)  # too narrow for the matrix: it scrolls to follow the cursor
        await pilot.press(*["right"] * 9)
        await pilot.pause()
        scroll = app.query_one("#cm-scroll")
        assert view.cursor == (6, 9) and scroll.scroll_x > 0
        await pilot.press("right")  # round to the first column, and the class names come back
        await pilot.pause()
        assert view.cursor == (6, 0) and scroll.scroll_x == 0


async def test_a_run_without_or_with_a_damaged_predictions_file_says_so_and_the_app_goes_on(tiny_preset, tmp_path):
    app = scripted_app(tiny_preset, tmp_path / "runs")
    async with app.run_test(size=SIZE) as pilot:
        run_dir = await train(pilot)
        (run_dir / PREDICTIONS).unlink()  # as a run made before predictions were saved
        await pilot.press("f4", "m")  # the highlighted run's test matrix, from Runs
        assert app.query_one("#tabs").active == "confusion"
        await press(pilot, "enter")
        assert title(app.screen).startswith("true Dress → predicted Coat")
        assert NO_PREDICTIONS in plain(app.screen.grid.render())
        await pilot.press("escape")
        (run_dir / PREDICTIONS).write_bytes(b"PK\x03\x04 truncated")
        await press(pilot, "enter")
        assert "predictions.npz is damaged or not ours" in plain(app.screen.grid.render())
        await pilot.press("f4")  # F1-F4 leave the page for the tab
        assert app.screen is app.screen_stack[0] and app.query_one("#tabs").active == "runs"
        assert app.return_code is None and not app.crashed


def write_model(run_dir: Path) -> np.ndarray:
    """A model.pt with three hidden units: each lights a different part of the image."""
    first = np.zeros((3, 784), dtype=np.float32)
    first[0, :392] = 2.0  # the top half
    first[1, 392:] = -0.5  # the bottom half, negative
    first[2, ::29] = 1.0  # a diagonal
    state = {"0.weight": torch.from_numpy(first), "0.bias": torch.zeros(3),
             "2.weight": torch.zeros(10, 3), "2.bias": torch.zeros(10)}
    torch.save(state, run_dir / "model.pt")
    return first


async def test_w_shows_the_first_layers_weights_as_one_image_per_unit(tiny_preset, tmp_path, monkeypatch):
    loaded_on = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda *a, **k: loaded_on.append(threading.current_thread()) or real_load(*a, **k))
    app = scripted_app(tiny_preset, tmp_path / "runs")
    async with app.run_test(size=SIZE) as pilot:
        run_dir = await train(pilot)
        await press(pilot, "f4", "w")  # the highlighted run has no model yet (the scripted run saves none)
        assert "this run has no model.pt" in plain(app.screen.grid.render())
        await pilot.press("escape")
        write_model(run_dir)
        await press(pilot, "w")
        screen = app.screen
        assert isinstance(screen, WeightsScreen)
        assert "first-layer weights of tiny" in title(screen) and "3 units" in title(screen)
        assert captions(screen) == ["unit 1 · max |w| 2", "unit 2 · max |w| 0.5", "unit 3 · max |w| 1"]
        top, bottom, diagonal = (tile.pixels for tile in screen.grid.visible())
        assert (top[:14] == 255).all() and (top[14:] == 128).all()  # white: positive; mid-grey: zero
        assert (bottom[14:] == 0).all()  # black: negative
        assert diagonal[5, 5] == 255 and diagonal[5, 6] == 128
        await press(pilot, "escape", "f3", "w")  # the run whose matrix is shown: the current one
        assert isinstance(app.screen, WeightsScreen) and len(app.screen.grid.tiles) == 3
    assert loaded_on and threading.main_thread() not in loaded_on  # torch never on the UI thread


async def test_m_and_w_on_every_row_of_a_damaged_history_are_messages_never_errors(tiny_preset, tmp_path):
    out = tmp_path / "runs"
    damaged_history(out)
    good = out / "20260101-000000-good"
    (good / "model.pt").write_bytes(b"PK\x03\x04" + bytes(range(256)))  # a foreign file
    (good / "confusion.csv").write_text(confusion_csv([[10 * (t == p) for p in range(10)] for t in range(10)]))
    app = FcnApp(preset=load_preset(tiny_preset), out=out, backend_factory=ScriptedBackend)
    told: list[str] = []
    app.notify = lambda message, **options: told.append(message)  # toasts expire; this list stays
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("f4")
        table = app.query_one("#runs-table")
        for row in range(table.row_count):
            table.move_cursor(row=row)
            await press(pilot, "w")
            problem = plain(app.screen.grid.render())
            assert "model.pt is damaged or not ours" in problem or "this run has no model.pt" in problem
            await press(pilot, "escape", "m")  # only the good run has a test matrix
            if app.query_one("#tabs").active == "confusion":
                await press(pilot, "enter")
                assert NO_PREDICTIONS in plain(app.screen.grid.render())
                await pilot.press("f4")
        assert told == ["it has no test matrix: it was not tested (it failed, or is still running)"] * 3
        assert app.is_running
    assert app.exit_status == 0
