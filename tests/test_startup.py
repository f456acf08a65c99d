"""fcn-tui answers at once: `--help` loads neither torch nor Textual, and the app's first screen
is up before torch is imported (torch and the data load in the background)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

HEAVY = ("torch", "torchvision", "textual", "matplotlib", "plotext", "optuna")

HELP_CHILD = """
import json, sys
from fcn_tui.cli import entry
sys.argv = ["fcn-tui", *sys.argv[1:]]
try:
    entry()
    code = 0
except SystemExit as exit:
    code = exit.code or 0
heavy = sorted(m for m in %r if m in sys.modules)
print(json.dumps({"code": code, "heavy": heavy}), file=sys.stderr)
""".replace("%r", repr(HEAVY))


def help_in_fresh_interpreter(*args: str) -> tuple[int, str, list[str]]:
    proc = subprocess.run([sys.executable, "-c", HELP_CHILD, *args], check=False, capture_output=True, text=True, timeout=60)
    report = json.loads(proc.stderr.strip().splitlines()[-1])
    return report["code"], proc.stdout, report["heavy"]


@pytest.mark.parametrize("command", [[], ["run"], ["ui"], ["export"], ["plot"]], ids=lambda c: " ".join(c) or "top")
def test_help_loads_no_heavy_library(command):
    code, out, heavy = help_in_fresh_interpreter(*command, "--help")
    assert code == 0
    assert "Usage: fcn-tui" in out
    if not command:
        assert all(name in out for name in ("run", "ui", "export", "plot"))
    assert heavy == []


def test_installed_command_prints_help():
    script = Path(sys.executable).with_name("fcn-tui")
    if not script.exists():
        pytest.skip("fcn-tui is not installed next to this interpreter")
    proc = subprocess.run([str(script), "--help"], check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    assert "Train fully connected networks on Fashion-MNIST" in proc.stdout


def test_python_m_help_imports_no_torch_by_importtime():
    # an independent check: Python's own import log of `python -m fcn_tui --help`
    proc = subprocess.run([sys.executable, "-X", "importtime", "-m", "fcn_tui", "--help"],
                          check=False, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0
    imported = {line.rsplit("|", 1)[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}
    assert "fcn_tui.cli" in imported  # the log is real
    assert not {name for name in imported if name.split(".")[0] in ("torch", "torchvision", "textual")}


FIRST_SCREEN_CHILD = """
import asyncio, json, os, sys, threading
from pathlib import Path
from fcn_tui.tui.app import FcnApp

release = threading.Event()

def held_back_backend():
    release.wait(60)  # the data "loads" until the first screen has been checked

async def main():
    app = FcnApp(out=Path(sys.argv[1]), backend_factory=held_back_backend)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        report = {"mounted": app.screen.is_mounted, "widgets": len(app.screen.query("*")),
                  "backend": app.backend is not None, "torch": "torch" in sys.modules,
                  "optuna": "optuna" in sys.modules}
        print(json.dumps(report), flush=True)
        os._exit(0)  # the held-back load never finishes; nothing else to wait for

asyncio.run(main())
"""


def test_first_screen_is_up_before_torch_is_imported(tmp_path):
    proc = subprocess.run([sys.executable, "-c", FIRST_SCREEN_CHILD, str(tmp_path)],
                          check=False, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    assert report["mounted"] and report["widgets"] > 10
    assert report["backend"] is False  # the data is still loading
    assert report["torch"] is False
    assert report["optuna"] is False  # studies are read and trained in threads, after the first paint
