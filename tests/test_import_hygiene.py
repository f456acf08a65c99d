"""The engine knows nothing of the front ends: importing it pulls in no Textual or Rich."""

import subprocess
import sys


def test_engine_imports_no_ui_library():
    code = (
        "import sys, fcn_tui.engine, fcn_tui.runs, fcn_tui.data, fcn_tui.config, fcn_tui.events, fcn_tui.memory;"
        "print(sorted(m for m in ('textual', 'rich', 'typer', 'plotext') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
