"""The README's commands write their folders and files into the checkout; git ignores every one."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = re.compile(r"--(?:out|csv|md)[ =]([A-Za-z0-9_.][\w./-]*)")  # a concrete path, not DIR or $VAR


def readme_outputs() -> set[str]:
    """The top folder or file of every concrete --out / --csv / --md path in the README's commands."""
    lines = [line for line in (ROOT / "README.md").read_text().splitlines() if "fcn-tui " in line]
    return {match.split("/")[0] for line in lines for match in OUTPUT.findall(line) if not match.isupper()}


def test_every_folder_the_readme_commands_write_is_git_ignored():
    ignored = {line.strip().strip("/") for line in (ROOT / ".gitignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    outputs = readme_outputs()
    assert {"study", "best", "runs"} <= outputs  # the parse still finds the README's commands
    assert outputs - ignored == set()
