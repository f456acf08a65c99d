"""Make the README's screenshots of the app, at 80x24, from the app's own SVG screenshots.

    FCN_TUI_DATA=DIR python docs/screenshots.py [--out docs]

On the real Fashion-MNIST (a 12,000-image subset, so it takes a minute on a CPU): two runs are
trained headlessly, then the app trains a third with ctrl+r, picks the two earlier ones in Runs
(space) and shows the Train view with them overlaid (`train_overlays.svg`); then, on the
Confusion view, enter on the cell Shirt -> T-shirt/top opens its gallery of test images,
most confident mistakes first (`gallery.svg`). Each SVG is also drawn to a PNG by Chromium (Playwright) for the README.
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import tempfile
import threading
from pathlib import Path

from fcn_tui.backend import TorchBackend
from fcn_tui.config import Config, Preset
from fcn_tui.tui.app import FcnApp
from fcn_tui.tui.training import run_queue

SIZE = (80, 24)  # what a user over SSH has
SHIRT, T_SHIRT = 6, 0  # Fashion-MNIST's class numbers: the classic mistake
BASE = {"data.subset": 12000, "train.epochs": 6, "model.hidden": [256, 128]}  # a minute, real images


async def settle(pilot) -> None:
    for _ in range(4):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()


async def until(pilot, condition, seconds: float = 600) -> None:
    for _ in range(int(seconds / 0.1)):
        if condition():
            return
        await pilot.pause(0.1)
    raise SystemExit("the app never got there")


async def shoot(out: Path, work: Path) -> list[Path]:
    backend = TorchBackend.load(None)
    earlier = [Config().with_values({**BASE, "name": "sgd", "optim.name": "sgd", "optim.lr": 0.1}),
               Config().with_values({**BASE, "name": "adam", "optim.name": "adam", "optim.lr": 0.01})]
    run_queue([Preset(c) for c in earlier], work, backend, threading.Event(), lambda message: None)
    now = Config().with_values({**BASE, "name": "adam-slow", "optim.name": "adam", "optim.lr": 0.001})
    app = FcnApp(preset=Preset(now), out=work, backend_factory=lambda: backend)
    written = []
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.backend is not None)
        await pilot.press("ctrl+r")
        await until(pilot, lambda: not app.running and len(app.runs_view.records) == 3)
        await settle(pilot)
        await pilot.press("f4", "down", "space", "down", "space", "f2")
        await settle(pilot)
        await pilot.pause(1.0)
        written.append(Path(app.save_screenshot("train_overlays.svg", str(out))))
        await pilot.press("f3")
        view = app.query_one("#cm")
        true, predicted = view.cursor  # it starts on the most confused cell; go to Shirt -> T-shirt/top
        await pilot.press(*["down"] * ((SHIRT - true) % 10), *["right"] * ((T_SHIRT - predicted) % 10), "enter")
        await settle(pilot)
        await pilot.pause(1.0)
        written.append(Path(app.save_screenshot("gallery.svg", str(out))))
    return written


def to_png(svgs: list[Path]) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=shutil.which("chromium"), args=["--no-sandbox"])
        page = browser.new_page()
        for svg in svgs:
            page.goto(svg.resolve().as_uri())
            page.query_selector("svg").screenshot(path=str(svg.with_suffix(".png")))
            print(svg.with_suffix(".png"))
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)  # before training, not after it
    with tempfile.TemporaryDirectory(prefix="fcn-tui-shots-") as work:
        svgs = asyncio.run(shoot(args.out, Path(work)))
    to_png(svgs)


if __name__ == "__main__":
    main()
