"""The engine and the study runner know nothing of the front ends: importing them pulls in no
Textual, Rich, Typer or plotext."""

import subprocess
import sys


def test_engine_imports_no_ui_library():
    code = (
        "import sys, fcn_tui.engine, fcn_tui.runs, fcn_tui.data, fcn_tui.config, fcn_tui.events, fcn_tui.memory,"
        " fcn_tui.studies.runner, fcn_tui.studies.store, fcn_tui.backend, fcn_tui.studies.queue, fcn_tui.study;"
        "print(sorted(m for m in ('textual', 'rich', 'typer', 'plotext') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
